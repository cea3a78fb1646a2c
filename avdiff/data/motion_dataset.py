"""Speech and motion to train the motion generator on: windows of (per-frame log-mel, motion), with the frames before.

Two sources of clips (:class:`MotionClip`: mono speech and the raw :class:`~avdiff.video.motion.Motion` of its
frames, plus the clip's controls):

* **synthetic**, with no video at all (:func:`synthetic_utterances`, :func:`synthetic_clips`): espeak-ng sentences
  (:data:`avdiff.data.synthetic.SENTENCES` of a split, a voice, a speed and a pitch drawn per utterance) spoken by
  :func:`~avdiff.audio.phonemes.speak_with_phonemes`, each with a few motion truths
  (:func:`~avdiff.data.motion_truth.motion_truth`) of random blink rate and head amount, which are the clip's controls;
* **DATA folders** (:func:`data_folder_clips`): every clip whose record has ``motion`` (``avdiff prepare`` writes it):
  the audio read from the clip's video with :func:`~avdiff.audio.io.load_audio`, the motion from its ``.motion.npz``
  (frames without a face filled from their neighbours), its controls estimated from the motion
  (:func:`estimate_controls`).

:class:`MotionWindows` cuts the clips into training items of ``K + T`` frames: ``T`` to denoise and the ``K`` before
(frames before a clip's start are the reference itself, all fields 0 and ``scale`` 1, with silence), the audio of
each frame cut by the model's :class:`~avdiff.audio.clock.FrameClock`, and with the model's ``future_frames`` ``A``
the audio of the ``A`` frames after the window too (silence past the clip's end).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from avdiff.audio.clock import FpsLike, FrameClock, parse_fps
from avdiff.audio.intonation import random_intonation
from avdiff.audio.io import Waveform, load_audio
from avdiff.audio.phonemes import PhonemeEvent, espeak_version, speak_with_phonemes
from avdiff.data.format import read_index
from avdiff.data.motion_truth import JAW_PER_OPEN, motion_truth_with_blinks
from avdiff.data.synthetic import VOICES, sentences
from avdiff.models.motion import MotionDenoiser, blink_onsets, neutral_motion
from avdiff.video.motion import FIELDS, Motion

logger = logging.getLogger(__name__)

BLINK_RANGE = (7.0, 30.0)  # blinks per minute drawn for a synthetic truth (within blink_rate_limits)
HEAD_RANGE = (0.2, 1.5)  # head amount drawn for a synthetic truth (or 0, with STILL_SHARE)
STILL_SHARE = 0.2
INTONATION_HEARD = ("speech", "pitch")  # where a clip's new intonation is heard (synthetic_clips)
# the head pose's spread at head_amount 1 (radians of yaw; 1.22 degrees per clip on average over 20 held-out
# sentences): estimate_controls divides by it
_UNIT_YAW_STD = float(np.deg2rad(1.2))


@dataclass
class Utterance:
    """One synthetic sentence: what was said and how, its speech (mono [N]) and its phonemes at the same rate."""

    text: str
    voice: str
    speed_wpm: int
    pitch: int
    speech: Waveform
    events: list[PhonemeEvent]


@dataclass
class MotionClip:
    """A clip to learn from.

    Attributes:
        id: a name for logs.
        samples: mono speech float32 [N] at ``sample_rate``.
        sample_rate: Hz.
        motion: raw motion float32 [F, D] (columns :data:`~avdiff.video.motion.FIELDS`) at ``fps``.
        controls: (blinks per minute, head amount) of the clip.
        events: the phonemes of synthetic speech (None for video).
        blink_starts: when its blinks began (s from the clip's first frame, ascending; the first may be before the
            clip: the truth knows the last blink before it). None: read from the motion's eyelids
            (:func:`~avdiff.models.motion.blink_onsets`).
        pitch_samples: the speech a model with pitch rows reads the F0 from, when not ``samples`` (float32 [N]: the
            same speech with a new intonation, heard only as the F0; :func:`synthetic_clips`).
    """

    id: str
    samples: torch.Tensor
    sample_rate: int
    motion: np.ndarray
    controls: tuple[float, float]
    events: list[PhonemeEvent] | None = field(default=None, repr=False)
    blink_starts: np.ndarray | None = field(default=None, repr=False)
    pitch_samples: torch.Tensor | None = field(default=None, repr=False)

    def seconds_since_blink(self, frame: int, fps: FpsLike) -> float:
        """Seconds from the start of the last blink that began at or before ``frame`` to that frame. Before the
        first blink known, the time from the clip's start plus half the clip's mean gap (``30 / rate``: where a
        random moment falls between blinks, on average)."""
        starts = self.blink_starts
        if starts is None:
            eyes = (self.motion[:, FIELDS.index("eye_left")] + self.motion[:, FIELDS.index("eye_right")]) / 2
            starts = blink_onsets(eyes) / float(parse_fps(fps))
        t = frame / float(parse_fps(fps))
        before = np.asarray(starts)[np.asarray(starts) <= t + 1e-9]
        if len(before):
            return float(t - before[-1])
        return float(t + 30.0 / max(self.controls[0], 1.0))


def _utterance_cache(cache_dir: Path, key: dict) -> Path:
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir / f"utt_{digest}.npz"


def speak_cached(
    text: str, voice: str, speed_wpm: int, pitch: int, sample_rate: int, cache_dir: str | os.PathLike | None = None
) -> tuple[Waveform, list[PhonemeEvent]]:
    """:func:`~avdiff.audio.phonemes.speak_with_phonemes`, kept in ``cache_dir`` (an .npz per utterance, written
    atomically) when one is given. The cache key holds the espeak-ng version
    (:func:`~avdiff.audio.phonemes.espeak_version`) with the text and settings, so speech made by another espeak-ng
    is made again rather than served."""
    key = {
        "text": text,
        "voice": voice,
        "speed": speed_wpm,
        "pitch": pitch,
        "sr": sample_rate,
        "espeak": espeak_version(),
    }
    path = _utterance_cache(Path(cache_dir), key) if cache_dir is not None else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            events = [PhonemeEvent(str(p), int(a), int(b), int(c)) for p, (a, b, c) in zip(z["phonemes"], z["spans"])]
            return Waveform(torch.from_numpy(z["samples"])[None], sample_rate), events
    speech, events = speak_with_phonemes(text, voice=voice, speed_wpm=speed_wpm, pitch=pitch, sample_rate=sample_rate)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.partial.npz")
        np.savez(
            tmp,
            samples=speech.samples[0].numpy(),
            phonemes=np.array([e.phoneme for e in events]),
            spans=np.array([(e.start_sample, e.end_sample, e.closure_sample) for e in events], np.int64),
        )
        os.replace(tmp, path)
    return speech, events


def synthetic_utterances(
    split: str,
    count: int,
    seed: int = 0,
    voices: Sequence[str] | None = None,
    sample_rate: int = 16000,
    speed_range: tuple[int, int] = (130, 200),
    pitch_range: tuple[int, int] = (30, 70),
    cache_dir: str | os.PathLike | None = None,
    progress_bar: bool = False,
) -> list[Utterance]:
    """``count`` espeak-ng utterances of the sentences of ``split`` (``"train"``, ``"test"``, ``"all"``).

    Utterance ``k`` draws its sentence, voice (from ``voices``, default all of :data:`~avdiff.data.synthetic.VOICES`),
    speed (wpm) and pitch from ``np.random.default_rng([seed, k])``, so the first utterances do not change when more
    are asked for.

    Raises:
        ValueError: ``count`` < 0 or no voices.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    voices = list(VOICES if voices is None else voices)
    if not voices:
        raise ValueError("voices must name at least one espeak-ng voice")
    pool = sentences(split)
    out = []
    for k in tqdm(range(count), desc=f"speech {split}", unit="utt", disable=not progress_bar):
        rng = np.random.default_rng([seed, k])
        text = pool[int(rng.integers(len(pool)))]
        voice = voices[int(rng.integers(len(voices)))]
        speed = int(rng.integers(speed_range[0], speed_range[1] + 1))
        pitch = int(rng.integers(pitch_range[0], pitch_range[1] + 1))
        speech, events = speak_cached(text, voice, speed, pitch, sample_rate, cache_dir)
        out.append(Utterance(text, voice, speed, pitch, speech, events))
    return out


def check_intonation(share: float, semitones: float, heard: str) -> None:
    """The new-intonation settings of :func:`synthetic_clips` (and of the motion recipe's task, checked when it loads).

    Raises:
        ValueError: ``share`` outside [0, 1], ``semitones`` negative or not finite, or ``heard`` not one of
            :data:`INTONATION_HEARD`.
    """
    if not 0 <= share <= 1 or not 0 <= semitones < float("inf"):
        raise ValueError(
            f"intonation_share must be in [0, 1] and intonation_semitones >= 0, got {share!r} and {semitones!r}"
        )
    if heard not in INTONATION_HEARD:
        raise ValueError(f"intonation_heard must be one of {INTONATION_HEARD}, got {heard!r}")


def synthetic_clips(
    utterances: Sequence[Utterance],
    fps: FpsLike,
    variants: int = 1,
    seed: int = 0,
    controls: tuple | None = None,
    intonation_share: float = 0.0,
    intonation_semitones: float = 2.0,
    intonation_heard: str = "speech",
) -> list[MotionClip]:
    """``variants`` motion truths per utterance, each drawn from ``np.random.default_rng([seed, k, v])`` with a random
    blink rate (:data:`BLINK_RANGE`) and head amount (0 with :data:`STILL_SHARE`, else :data:`HEAD_RANGE`), unless
    ``controls`` = (blinks per minute, head amount) fixes them.

    With ``intonation_share`` > 0, that share of the clips (drawn from ``np.random.default_rng([seed, k, v, 1])``, so
    the other draws do not change) speaks with a new intonation (:func:`~avdiff.audio.intonation.random_intonation`,
    a contour of ``intonation_semitones`` standard deviation), and its truth is built from that speech: the head then
    turns with an F0 that the words do not wholly predict (and its lean and nods follow the new speech's loudness).
    ``intonation_heard`` says where a model hears it: ``"speech"``, the clip's speech is the new one; ``"pitch"``, the
    clip keeps the original speech (its log-mel as espeak-ng made it, free of the resynthesis) and only its pitch rows
    are read from the new one (:attr:`MotionClip.pitch_samples`); the truth's lean and nods still follow the new
    speech's loudness, which PSOLA keeps close to the original's.

    Raises:
        ValueError: ``variants`` < 1, or the intonation settings as :func:`check_intonation` refuses them.
    """
    if variants < 1:
        raise ValueError(f"variants must be >= 1, got {variants}")
    check_intonation(intonation_share, intonation_semitones, intonation_heard)
    out = []
    for k, u in enumerate(utterances):
        for v in range(variants):
            rng = np.random.default_rng([seed, k, v])
            if controls is None:
                blink = float(rng.uniform(*BLINK_RANGE))
                head = 0.0 if rng.uniform() < STILL_SHARE else float(rng.uniform(*HEAD_RANGE))
            else:
                blink, head = float(controls[0]), float(controls[1])
            speech, retoned = u.speech, False
            if intonation_share > 0:
                rng_tone = np.random.default_rng([seed, k, v, 1])
                if rng_tone.uniform() < intonation_share:
                    speech, retoned = random_intonation(speech, rng_tone, intonation_semitones), True
            truth, blinks = motion_truth_with_blinks(
                u.events, speech, fps, rng, head_amount=head, blink_rate_per_min=blink
            )
            heard, pitch = speech.samples[0], None
            if retoned and intonation_heard == "pitch":  # random_intonation's speech is mono float32, as espeak's
                heard, pitch = u.speech.samples[0], speech.samples[0]
            out.append(
                MotionClip(f"synth_{k}_{v}", heard, speech.sample_rate, truth.as_array(), (blink, head), u.events,
                           np.array([b[0] for b in blinks]), pitch)
            )  # fmt: skip
    return out


def estimate_controls(motion: Motion, fps: FpsLike) -> tuple[float, float]:
    """(blinks per minute, head amount) of a measured motion: blinks are the rises of the mean eyelid closure
    through 0.5; the head amount is the yaw's spread over the truth's at amount 1 (1.2 degrees)."""
    eyes = (np.nan_to_num(motion.eye_left) + np.nan_to_num(motion.eye_right)) / 2
    shut = eyes >= 0.5
    blinks = int(np.count_nonzero(shut[1:] & ~shut[:-1])) + int(shut[0]) if len(shut) else 0
    minutes = len(motion) / float(parse_fps(fps)) / 60
    rate = blinks / minutes if minutes > 0 else 0.0
    head = float(np.nanstd(motion.yaw)) / _UNIT_YAW_STD if len(motion) > 1 else 0.0
    return float(rate), float(head)


def resample_motion(motion: np.ndarray, fps_from: FpsLike, fps_to: FpsLike, num_frames: int) -> np.ndarray:
    """Raw motion [F, D] at ``fps_from`` -> [num_frames, D] at ``fps_to``, linearly in time (edges held)."""
    src = np.arange(len(motion)) / float(parse_fps(fps_from))
    dst = np.arange(num_frames) / float(parse_fps(fps_to))
    return np.stack([np.interp(dst, src, motion[:, i]) for i in range(motion.shape[1])], axis=1).astype(np.float32)


def data_folder_clips(
    data_dir: str | os.PathLike,
    fps: FpsLike,
    sample_rate: int,
    split: str | None = None,
    limit: int | None = None,
) -> list[MotionClip]:
    """The clips of a DATA folder that have a motion track, at ``fps`` (motion resampled in time when the clip's rate
    differs) and ``sample_rate``.

    Raises:
        FileNotFoundError: no index, or no clip (of ``split``) with ``motion``.
    """
    data_dir = Path(data_dir)
    if not (data_dir / "index.jsonl").is_file():
        raise FileNotFoundError(f"{str(data_dir)!r} is not a DATA folder (no index.jsonl)")
    records = [r for r in read_index(data_dir) if r.motion and (split is None or r.split == split)]
    if limit is not None:
        records = records[:limit]
    if not records:
        raise FileNotFoundError(
            f"{str(data_dir)!r} has no clips with a motion track" + (f" of split {split!r}" if split else "")
            + "; `avdiff prepare` writes them"
        )  # fmt: skip
    out: list[MotionClip] = []
    for r in records:
        motion = Motion.load(data_dir / r.motion)
        if motion.missing().all():
            logger.warning("clip %s: no frame has a face; skipped", r.id)
            continue
        motion = motion.interpolate_missing()
        # the generator's jaw is the chin's drop from a closed mouth; a clip rendered from a photo with parted lips
        # ("motion" style synthetic clips) keeps it against the photo's own opening, which its record gives
        reference_open = float(r.source.get("reference_open", 0.0))
        if reference_open:
            motion = motion.replace(jaw=motion.jaw + JAW_PER_OPEN * reference_open)
        audio = load_audio(str(data_dir / r.video), sample_rate=sample_rate, mono=True)
        n = FrameClock(fps, sample_rate).num_frames(audio.samples.shape[-1])
        raw = resample_motion(motion.as_array(), r.fps, fps, n)
        out.append(MotionClip(r.id, audio.samples[0], sample_rate, raw, estimate_controls(motion, r.fps)))
    if not out:
        raise FileNotFoundError(f"{str(data_dir)!r}: none of its {len(records)} motion tracks has a frame with a face")
    return out


class MotionWindows(Dataset):
    """Training items of ``K + T`` frames cut from clips, every ``stride`` frames.

    Item: ``{"audio": float32 [K + T + A, R, W] (log-mel per frame, and the pitch rows of a model with them; the
    model's clock, ``model.audio_frames`` from the window's frame ``-K``: past, window and the frames ahead, silence
    past the clip's end), "past": [K, D] raw motion,
    "window": [T, D] raw motion, "controls": [C]}``: the clip's controls, and for a model with ``blink_clock`` the
    seconds since the last blink began at the window's first frame (:meth:`MotionClip.seconds_since_blink`). Frames before a clip's start are the reference
    (:func:`~avdiff.models.motion.neutral_motion`); a window never runs past a clip's end (shorter clips give no item).

    Args:
        clips: the clips (all at ``fps``).
        model: gives the window sizes, the log-mel and the frame clock.
        fps: the clips' frame rate.
        stride: frames between consecutive window starts.

    Raises:
        ValueError: no clip as long as a window, or ``stride`` < 1.
    """

    def __init__(self, clips: Sequence[MotionClip], model: MotionDenoiser, fps: FpsLike, stride: int = 4):
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.T, self.K = model.window_frames, model.past_frames
        self.clock = model.frame_clock(fps)
        self.model = model
        self.mels, self.motions, self.controls, self.clocks, items = [], [], [], [], []
        with torch.no_grad():
            for c in clips:
                if c.sample_rate != model.sample_rate:
                    raise ValueError(f"clip {c.id} is at {c.sample_rate} Hz, the model at {model.sample_rate} Hz")
                if len(c.motion) < self.T:
                    continue
                k = len(self.mels)
                pitch = None if c.pitch_samples is None else c.pitch_samples[None]
                self.mels.append(model.mel_features(c.samples[None], pitch)[0].cpu())
                padded = np.concatenate([neutral_motion(self.K), c.motion.astype(np.float32)])
                self.motions.append(torch.from_numpy(padded))
                starts = range(0, len(c.motion) - self.T + 1, stride)
                self.controls.append(torch.tensor(c.controls, dtype=torch.float32))
                self.clocks.append({s: c.seconds_since_blink(s, fps) for s in starts})
                items.extend((k, s) for s in starts)
        if not items:
            raise ValueError(f"no clip is as long as a window of {self.T} frames")
        self.items = torch.tensor(items, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k, s = self.items[i].tolist()
        with torch.no_grad():
            audio = self.model.frame_windows(self.mels[k][None], self.clock, s - self.K, self.model.audio_frames)[0]
        motion = self.motions[k][s : s + self.K + self.T]  # padded by K: frame s - K is row s
        rate, head = self.controls[k].tolist()
        controls = torch.tensor(self.model.controls(rate, head, self.clocks[k][s]), dtype=torch.float32)
        return {"audio": audio, "past": motion[: self.K], "window": motion[self.K :], "controls": controls}


def field_statistics(clips: Sequence[MotionClip], floor: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """Per-field mean and std [D] of the clips' raw motion (std at least ``floor``, so a constant field is kept as
    it is rather than blown up)."""
    if not clips:
        raise ValueError("no clips to take statistics of")
    allm = np.concatenate([c.motion for c in clips]).astype(np.float64)
    if allm.shape[1] != len(FIELDS):
        raise ValueError(f"motion must have {len(FIELDS)} columns, got {allm.shape[1]}")
    return allm.mean(axis=0), np.maximum(allm.std(axis=0), floor)
