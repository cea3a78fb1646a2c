"""Synthetic speech–video pairs whose ground truth is known.

espeak-ng speaks a sentence, and the face photo is animated in one of two styles:

* ``"motion"``: the face does what :func:`avdiff.data.motion_truth.motion_truth` draws (the mouth from the phonemes'
  visemes with coarticulation, natural blinks, a head that turns, leans and nods with the speech's prosody), rendered
  at the photo's resolution by :class:`avdiff.video.render.FaceRenderer`; the :class:`~avdiff.video.motion.Motion` is
  saved beside the video (``clips/ID.motion.npz``) and its ``mouth_open`` as the aperture. The motion generator learns from these.
  Where the lips part, the renderer leaves a dark cavity; in a share of the clips (``teeth``, half by default) teeth and
  a tongue are drawn there from the phonemes instead (:func:`avdiff.data.mouth_truth.draw_mouth_interior`, as the mouth
  painter's truth draws them), so a sync expert trained on the clips knows both mouths: the fast path's cavity and the
  painter's teeth.
* ``"loudness"``: the mouth alone opens and closes with the speech's loudness through the mouth warp
  (:mod:`avdiff.video.mouth_animation`); the per-frame aperture the warp produced is saved. The pixel talking-head
  recipes (``configs/train/talking_head_*.yaml``) were trained on these.

A dataset varies the sentences, voices,
speeds, pitches, faces and face augmentations (flip, colour, scale, shift). Its faces come from a pool of identities
(:mod:`avdiff.data.faces`: the LFW faces of ``skimage.data.lfw_subset()``, the astronaut, and any folder of photos
given), split by identity as its sentences are split: a ``test`` clip shows a person and says a sentence that no
``train`` clip does.

The DATA format, shared with ``avdiff prepare`` and read by the talking-head trainer::

    DATA/
      index.jsonl                one JSON object per clip (see ClipRecord)
      clips/ID.mp4               25 fps H.264 video with 16 kHz mono AAC speech
      clips/ID.aperture.npy      float32 [F] ground-truth aperture (synthetic clips only)
      clips/ID.motion.npz        the clip's Motion truth ("motion" style)
      faces.json                 the face pool of a dataset: each photo's name, source, identity and split
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageEnhance
from tqdm.auto import tqdm

from avdiff.audio.io import Waveform, load_audio
from avdiff.audio.phonemes import speak_with_phonemes
from avdiff.audio.tts import speak
from avdiff.data.faces import PoolFace, face_pool, findable
from avdiff.data.format import ClipRecord, append_index, check_name, read_index, save_motion, save_npy
from avdiff.data.motion_truth import BLINKS_PER_MIN, motion_truth
from avdiff.data.mouth_truth import toothed_frames
from avdiff.video.face import detect_face
from avdiff.video.image import ImageLike, load_image
from avdiff.video.mouth_animation import SAMPLE_RATE, animate
from avdiff.video.render import FaceRenderer
from avdiff.video.writer import write_video

logger = logging.getLogger(__name__)

FPS = 25

# Sentences for varied speech. The last TEST_SENTENCES are held out: a "test" split uses only those, so a model
# trained on the "train" split is evaluated on sentences it never heard.
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "A rainbow is a division of white light into many beautiful colors.",
    "She sells sea shells by the sea shore.",
    "We will meet at the station at half past nine tomorrow morning.",
    "Open the window and let the fresh air into the room.",
    "My father bought a small boat to go fishing on the lake.",
    "The museum is closed on Mondays, but open late on Fridays.",
    "How much wood would a woodchuck chuck if a woodchuck could chuck wood?",
    "Bright sunshine followed the heavy rain all afternoon.",
    "I would like a cup of tea with milk and no sugar, please.",
    "The children played football in the park until it grew dark.",
    "Turn left at the bakery and walk straight on for two blocks.",
    "Good morning everyone, and welcome to the meeting.",
    "Our flight was delayed by almost three hours last night.",
    "Music can change the mood of a whole room in a moment.",
    "The old clock on the wall stopped at exactly midnight.",
    "Remember to water the plants while I am away on holiday.",
    "A big black bug bit a big black bear.",
    "The library has thousands of books about history and science.",
    "Could you speak a little more slowly, please?",
    "Every morning he runs five miles along the river.",
    "The soup was too hot, so we waited for it to cool.",
    "Autumn leaves turn red, orange and gold before they fall.",
    "Peter Piper picked a peck of pickled peppers.",
    "I have never seen so many stars in the night sky.",
    "The train to the city leaves from platform number four.",
    "Mother baked an apple pie for the family dinner.",
    "Wash your hands before you sit down to eat.",
    "Thank you very much for your kind and generous help.",
    "Ships sailed across the ocean carrying spices and silk.",
    "Nobody knows where the old pirate buried his treasure.",
    "My sister is learning to play the violin this year.",
    "Keep calm and carry on with your work.",
    "The doctor said I should rest for a few days.",
    "Mountains covered with snow surrounded the quiet village.",
    # held out (test)
    "Yellow butterflies danced above the summer meadow.",
    "We opened the box and found a very old map inside.",
    "Who would have thought that the answer was so simple?",
    "The baby laughed when the puppy licked her nose.",
    "Several owls were hooting loudly in the woods at night.",
    "Put the blue vase on the table by the window.",
    "An apple a day keeps the doctor away.",
    "The weather today is mild with a gentle breeze from the south.",
    "Lucky Lucy lost her lovely lemon locket.",
    "Heavy trucks rumbled over the bridge all morning.",
    "Moving to a new town can be exciting and frightening.",
    "Why do we always find things in the last place we look?",
]
TEST_SENTENCES = 12
VOICES = ["en-us", "en-gb", "en-us+m3", "en-us+f3", "en-gb+m5", "en-us+f2", "en-gb+f4", "en-us+m1"]
STYLES = ("loudness", "motion")
HEAD_AMOUNT = (0.0, 1.5)  # a "motion" dataset clip's head-motion amount is drawn in this range (0: a still head)
TEETH_SHARE = 0.5  # the share of a "motion" dataset's clips whose open mouths show teeth and tongue


def sentences(split: str) -> list[str]:
    """The sentence pool of a split: ``"train"``, ``"test"`` (held out) or ``"all"``."""
    if split == "train":
        return SENTENCES[:-TEST_SENTENCES]
    if split == "test":
        return SENTENCES[-TEST_SENTENCES:]
    if split == "all":
        return list(SENTENCES)
    raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")


@dataclass
class FaceAugment:
    """A face augmentation: mirror, colour and a similarity move of the whole photo (reflected borders).

    Attributes:
        flip: mirror left-right.
        brightness, contrast, saturation: PIL enhancement factors (1 = unchanged).
        scale: zoom about the centre (1 = unchanged).
        shift: ``(dx, dy)`` as fractions of the width and height.
    """

    flip: bool = False
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def random(cls, rng: np.random.Generator) -> FaceAugment:
        return cls(
            flip=bool(rng.random() < 0.5),
            brightness=float(rng.uniform(0.8, 1.2)),
            contrast=float(rng.uniform(0.8, 1.2)),
            saturation=float(rng.uniform(0.6, 1.3)),
            scale=float(rng.uniform(0.9, 1.25)),
            shift=(float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.06, 0.06))),
        )

    def apply(self, image: np.ndarray) -> np.ndarray:
        """uint8 [H, W, 3] -> uint8 [H, W, 3]."""

        out = image[:, ::-1] if self.flip else image
        im = Image.fromarray(np.ascontiguousarray(out))
        im = ImageEnhance.Brightness(im).enhance(self.brightness)
        im = ImageEnhance.Contrast(im).enhance(self.contrast)
        im = ImageEnhance.Color(im).enhance(self.saturation)
        out = np.asarray(im)
        if self.scale != 1.0 or self.shift != (0.0, 0.0):
            h, w = out.shape[:2]
            m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, self.scale)
            m[:, 2] += (self.shift[0] * w, self.shift[1] * h)
            out = cv2.warpAffine(out, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        return np.ascontiguousarray(out)


def default_face() -> np.ndarray:
    """The built-in example face: ``skimage.data.astronaut()`` (Eileen Collins, public domain), uint8 [512, 512, 3]."""
    import skimage.data

    return skimage.data.astronaut()


def make_clip(
    out_dir: str | os.PathLike,
    clip_id: str,
    image: ImageLike,
    speech: Waveform,
    *,
    text: str | None = None,
    split: str | None = None,
    source: dict | None = None,
    identity: str | None = None,
) -> ClipRecord:
    """Animate ``image`` with ``speech`` and write ``clips/ID.mp4`` and ``clips/ID.aperture.npy`` under ``out_dir``.

    Raises ValueError (before writing anything) when ``clip_id`` is not a safe file name
    (:func:`avdiff.data.format.check_name`)."""
    check_name(clip_id, "clip id")  # it names the files: nothing may land outside out_dir/clips
    out_dir = Path(out_dir)
    speech = load_audio(speech, sample_rate=SAMPLE_RATE)
    anim = animate(load_image(image), speech, FPS)
    video = Path("clips") / f"{clip_id}.mp4"
    aperture = Path("clips") / f"{clip_id}.aperture.npy"
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    save_npy(out_dir / aperture, anim.aperture)
    write_video(out_dir / video, anim.frames, FPS, speech)
    return ClipRecord(
        id=clip_id,
        video=str(video),
        fps=float(FPS),
        sample_rate=SAMPLE_RATE,
        num_frames=len(anim.frames),
        duration_s=round(speech.duration_s, 6),
        aperture=str(aperture),
        text=text,
        split=split,
        source=source or {},
        identity=identity,
    )


def make_motion_clip(
    out_dir: str | os.PathLike,
    clip_id: str,
    image: ImageLike,
    text: str,
    rng: np.random.Generator,
    *,
    voice: str = "en-us",
    speed_wpm: int = 160,
    pitch: int = 50,
    head_amount: float = 1.0,
    blink_rate_per_min: float | None = None,
    teeth: bool = False,
    split: str | None = None,
    source: dict | None = None,
    identity: str | None = None,
    progress_bar: bool = False,
) -> ClipRecord:
    """Speak ``text``, draw the face's motion from its phonemes and natural statistics, render ``image`` by it and
    write ``clips/ID.mp4``, ``clips/ID.motion.npz`` (the truth) and ``clips/ID.aperture.npy`` (its ``mouth_open``).

    Args:
        out_dir: the DATA folder.
        clip_id: a safe file name (:func:`avdiff.data.format.check_name`).
        image: the face photo; it is rendered at its own resolution.
        text: what espeak-ng says (its phoneme events drive the mouth).
        rng: draws the blinks and the head's random sway (:func:`avdiff.data.motion_truth.motion_truth`).
        voice, speed_wpm, pitch: espeak-ng's settings.
        head_amount: the head's motion, 0 (still) ... ~1.5.
        blink_rate_per_min: None draws it in :data:`~avdiff.data.motion_truth.BLINKS_PER_MIN`.
        teeth: draw teeth and tongue inside the parted lips (the phonemes move the tongue); False: the renderer's
            dark cavity.

    Raises:
        ValueError: an unsafe ``clip_id`` (before any work); NoFaceError: no face in ``image``.
    """
    check_name(clip_id, "clip id")
    out_dir = Path(out_dir)
    photo = load_image(image)
    renderer = FaceRenderer(photo, detect_face(photo))  # the face first: no speech is made for a photo without one
    speech, events = speak_with_phonemes(text, voice=voice, speed_wpm=speed_wpm, pitch=pitch, sample_rate=SAMPLE_RATE)
    rate = float(rng.uniform(*BLINKS_PER_MIN)) if blink_rate_per_min is None else float(blink_rate_per_min)
    own_open = renderer.aperture  # the photo's own mouth_open: the jaw is relative to it
    motion = motion_truth(
        events, speech, FPS, rng, head_amount=head_amount, blink_rate_per_min=rate, reference_open=own_open
    )
    if teeth:
        rendered = (toothed for toothed, *_ in toothed_frames(renderer, motion, events, FPS, speech.sample_rate))
    else:
        rendered = renderer.frames(motion)
    bar = tqdm(rendered, desc=clip_id, unit="frame", total=len(motion), disable=not progress_bar, leave=False)
    frames = list(bar)
    names = {k: Path("clips") / f"{clip_id}.{k}" for k in ("mp4", "motion.npz", "aperture.npy")}
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    save_motion(out_dir / names["motion.npz"], motion)
    save_npy(out_dir / names["aperture.npy"], motion.mouth_open)
    write_video(out_dir / names["mp4"], np.stack(frames), FPS, speech)
    source = {
        "style": "motion",
        "voice": voice,
        "speed_wpm": speed_wpm,
        "pitch": pitch,
        "head_amount": head_amount,
        "blink_rate_per_min": round(rate, 3),
        "reference_open": round(own_open, 6),  # the photo's own mouth_open: the jaw is relative to it
        "teeth": teeth,
        **(source or {}),
    }
    return ClipRecord(
        id=clip_id,
        video=str(names["mp4"]),
        fps=float(FPS),
        sample_rate=SAMPLE_RATE,
        num_frames=len(motion),
        duration_s=round(speech.duration_s, 6),
        aperture=str(names["aperture.npy"]),
        text=text,
        split=split,
        source=source,
        identity=identity,
        motion=str(names["motion.npz"]),
    )


def make_dataset(
    out_dir: str | os.PathLike,
    num_clips: int,
    faces: list[ImageLike] | None = None,
    *,
    faces_dir: str | os.PathLike | None = None,
    split: str = "train",
    seed: int = 0,
    augment: bool = True,
    style: str = "loudness",
    teeth: float = TEETH_SHARE,
    sentences_per_clip: int = 1,
    progress_bar: bool = True,
) -> list[ClipRecord]:
    """Write ``num_clips`` varied clips (sentence, voice, speed, pitch, face, face augmentation; with ``style="motion"``
    also the head-motion amount, in :data:`HEAD_AMOUNT`, and the blink rate) and their index.

    Args:
        out_dir: the DATA folder.
        num_clips: clips to make.
        faces: explicit photos to draw from (each its own identity, no identity split); None draws from the pool of
            :func:`avdiff.data.faces.face_pool` (LFW faces and the astronaut, plus ``faces_dir``), restricted to the
            identities of ``split``.
        faces_dir: a folder of photos added to the pool.
        split: ``"train"``, ``"test"`` (held-out sentences and identities) or ``"all"``.
        seed: clip ``k`` is drawn from ``np.random.default_rng([seed, k])``, so a dataset is reproducible and its
            first clips do not change when more are asked for. Clips already in the index are kept, not remade.
        augment: random face augmentations (flip, colour, scale, shift).
        style: ``"loudness"`` or ``"motion"`` (module docstring). Clips of one style get ids of their own
            (``train_000_00000``, ``train_motion_000_00000``), so both can share a folder.
        teeth: the share of "motion" clips whose open mouths show teeth and tongue (each clip draws it from its own
            stream, ``np.random.default_rng([seed, k, 1])``, so the rest of the clip is the same either way).
        sentences_per_clip: sentences each clip says, one after another (distinct ones of the split's pool). The first
            is the one a one-sentence clip says; the others come from a stream of their own,
            ``np.random.default_rng([seed, k, 2])``, so the rest of the clip is drawn as it would be; the clip's id
            ends in ``_sN`` for N sentences. Longer clips time lip sync better: on a 2-4 s sentence, the loudness
            offset of ``avdiff eval lipsync`` can land a syllable off, even for the truth (docs/talking-heads.md).

    Raises:
        ValueError: ``num_clips < 1``, an unknown style, ``teeth`` outside [0, 1], ``sentences_per_clip`` below 1 or
            above the split's sentences, or the split has no faces.
    """
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if not 0 <= teeth <= 1:
        raise ValueError(f"teeth must be a share in [0, 1], got {teeth}")
    pool = sentences(split)
    if isinstance(sentences_per_clip, bool) or not isinstance(sentences_per_clip, (int, np.integer)):
        raise ValueError(f"sentences_per_clip must be a whole number, got {sentences_per_clip!r}")
    if not 1 <= sentences_per_clip <= len(pool):
        raise ValueError(
            f"sentences_per_clip must be in [1, {len(pool)}] (the {split} split's sentences), got {sentences_per_clip}"
        )
    photos = _photos(faces, faces_dir, split)
    _write_pool(out_dir, photos)
    done = {r.id: r for r in read_index(out_dir)}
    records = []
    for k in tqdm(range(num_clips), desc=f"synth {split}", unit="clip", disable=not progress_bar):
        clip_id = f"{split}_{seed:03d}_{k:05d}" if style == "loudness" else f"{split}_motion_{seed:03d}_{k:05d}"
        if sentences_per_clip > 1:  # not the one-sentence clip of the same draw, which an index may already hold
            clip_id += f"_s{sentences_per_clip}"
        if clip_id in done:
            records.append(done[clip_id])
            continue
        rng = np.random.default_rng([seed, k])
        first = int(rng.integers(len(pool)))
        others = np.random.default_rng([seed, k, 2]).permutation([i for i in range(len(pool)) if i != first])
        text = " ".join(pool[i] for i in [first, *others[: sentences_per_clip - 1]])
        voice = VOICES[int(rng.integers(len(VOICES)))]
        speed, pitch = int(rng.integers(130, 200)), int(rng.integers(30, 70))
        face = photos[int(rng.integers(len(photos)))]
        aug = _findable_augment(face.image, rng) if augment else FaceAugment()
        if style == "motion":
            record = make_motion_clip(
                out_dir,
                clip_id,
                aug.apply(face.image),
                text,
                rng,
                voice=voice,
                speed_wpm=speed,
                pitch=pitch,
                head_amount=float(rng.uniform(*HEAD_AMOUNT)),
                teeth=bool(np.random.default_rng([seed, k, 1]).random() < teeth),
                split=split,
                source={"face": face.name, "augment": asdict(aug)},
                identity=face.identity,
            )
        else:
            speech = speak(text, voice=voice, speed_wpm=speed, pitch=pitch, sample_rate=SAMPLE_RATE)
            source = {"voice": voice, "speed_wpm": speed, "pitch": pitch, "face": face.name, "augment": asdict(aug)}
            record = make_clip(
                out_dir,
                clip_id,
                aug.apply(face.image),
                speech,
                text=text,
                split=split,
                source=source,
                identity=face.identity,
            )
        records.append(record)
        append_index(out_dir, record)
    return records


def _findable_augment(image: np.ndarray, rng: np.random.Generator, tries: int = 5) -> FaceAugment:
    """A random augmentation after which mediapipe still finds the face, shut and opened wide (redrawn up to
    ``tries`` times; none when every draw loses it)."""

    for _ in range(tries):
        aug = FaceAugment.random(rng)
        if findable(aug.apply(image)):
            return aug
    logger.info("no augmentation of this photo keeps its face findable; using it as it is")
    return FaceAugment()


def _photos(faces: list[ImageLike] | None, faces_dir: str | os.PathLike | None, split: str) -> list[PoolFace]:
    """The photos a dataset draws from: the given ones, or the pool's faces of ``split`` (all for ``"all"``)."""
    if faces:
        return [
            PoolFace(
                load_image(f),
                f"face_{i}",
                f if isinstance(f, (str, os.PathLike)) else f"<image {i}>",
                identity=f"face_{i}",
                split=split,
            )
            for i, f in enumerate(faces)
        ]
    photos = [f for f in face_pool(faces_dir) if split == "all" or f.split == split]
    if not photos:
        raise ValueError(f"the face pool has no identity in split {split!r}")
    return photos


def _write_pool(out_dir: str | os.PathLike, photos: list[PoolFace]) -> None:
    """``DATA/faces.json``: the photos this dataset draws from (merged with those of earlier calls)."""
    import json

    path = Path(out_dir) / "faces.json"
    known = {}
    if path.is_file():
        try:
            known = {f["name"]: f for f in json.loads(path.read_text())}
        except (ValueError, KeyError, TypeError):
            logger.warning("rewriting the unreadable %s", path)
    known.update({f.name: f.describe() for f in photos})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(sorted(known.values(), key=lambda f: f["name"]), indent=1) + "\n")
    os.replace(tmp, path)
