"""The scene DATA folder: write clips with their masks and sounds, and read them back.

::

    DIR/
      index.jsonl          one SceneRecord per line
      vocabulary.json      labels (index = label), sounding and silent words, colours, places, skies, held-out pairs
      clips/ID.mp4         64x64 H.264 (crf 12), 16 frames at 8 fps, with the mix of the objects' sounds (AAC, 16 kHz)
      clips/ID.masks.npy   uint8 [F, 64, 64] label per pixel
      clips/ID.sounds.npz  per sounding word "envelope_<word>" float32 [F] (its loudness, which its motion follows);
                           "mix_gain" (the scale applied to the sum of the tracks). The tracks themselves are not
                           stored: :func:`object_tracks` re-synthesizes them exactly from the record.

``avdiff synth scenes --n N --split train|test --seed S --out DIR`` calls :func:`make_scenes`.
"""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from avdiff.audio.io import Waveform
from avdiff.audio.scene_sounds import mix, scene_sound
from avdiff.data.format import save_npy
from avdiff.data.scenes.compose import SceneObject, SceneSpec, render_scene, sample_scene
from avdiff.data.scenes.vocabulary import (
    DURATION_S,
    FPS,
    NUM_FRAMES,
    SAMPLE_RATE,
    SIZE,
    SOUND_OF,
    label_of,
    vocabulary_json,
)
from avdiff.user_files import read_text
from avdiff.video.reader import read_video
from avdiff.video.writer import write_video

logger = logging.getLogger(__name__)

CRF = 12
_SPLIT_CODE = {"train": 0, "test": 1}
_INDEX_EVERY = 50  # clips between index rewrites, so an interrupted run keeps what it made


@dataclass
class SceneRecord:
    """One line of a scene folder's ``index.jsonl``. Paths are relative to the folder; ``objects`` holds
    :meth:`SceneObject.to_dict` dicts; ``seed`` re-renders the clip exactly (:func:`record_spec`)."""

    id: str
    video: str
    masks: str
    caption: str
    objects: list[dict]
    sky: str
    num_frames: int = NUM_FRAMES
    fps: float = float(FPS)
    size: int = SIZE
    split: str = "train"
    seed: int = 0
    sky_stated: bool = True
    sounds: str | None = None
    sample_rate: int = SAMPLE_RATE
    duration_s: float = DURATION_S
    extra: dict = field(default_factory=dict)

    @property
    def words(self) -> list[str]:
        return [o["word"] for o in self.objects]


def record_spec(record: SceneRecord) -> SceneSpec:
    """The :class:`SceneSpec` a record was rendered from."""
    return SceneSpec(
        [SceneObject.from_dict(o) for o in record.objects], record.sky, record.seed, record.sky_stated, record.caption
    )


def object_sounds(spec: SceneSpec, envelopes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each sounding object's track, float32 [S] (S = F / fps seconds at 16 kHz), following its envelope.
    Seeded by the scene's seed and the object's label."""
    return {
        w: scene_sound(
            SOUND_OF[w], env, fps=FPS, sample_rate=SAMPLE_RATE, seed=np.random.default_rng([spec.seed, 3, label_of(w)])
        )
        for w, env in envelopes.items()
    }


def make_scene_clip(out_dir: str | os.PathLike, clip_id: str, spec: SceneSpec, split: str) -> SceneRecord:
    """Render ``spec`` and write ``clips/ID.mp4``, ``clips/ID.masks.npy`` and ``clips/ID.sounds.npz``."""

    out_dir = Path(out_dir)
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    scene = render_scene(spec)
    tracks = object_sounds(spec, scene.envelopes)
    num_samples = int(round(NUM_FRAMES * SAMPLE_RATE / FPS))
    audio, gain = mix(list(tracks.values())) if tracks else (np.zeros(num_samples, np.float32), 1.0)
    video, masks, sounds = (f"clips/{clip_id}{ext}" for ext in (".mp4", ".masks.npy", ".sounds.npz"))
    save_npy(out_dir / masks, scene.masks)
    if tracks:
        arrays = {f"envelope_{w}": e for w, e in scene.envelopes.items()}
        _save_npz(out_dir / sounds, mix_gain=np.float32(gain), **arrays)
    write_video(out_dir / video, scene.frames, FPS, Waveform(torch.from_numpy(audio)[None], SAMPLE_RATE), crf=CRF)
    return SceneRecord(
        id=clip_id,
        video=video,
        masks=masks,
        caption=spec.caption,
        objects=[o.to_dict() for o in spec.objects],
        sky=spec.sky,
        split=split,
        seed=spec.seed,
        sky_stated=spec.sky_stated,
        sounds=sounds if tracks else None,
    )


def _save_npz(path: Path, **arrays) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)


def make_scenes(
    out_dir: str | os.PathLike, num_clips: int, split: str = "train", seed: int = 0, progress_bar: bool = True
) -> list[SceneRecord]:
    """Write ``num_clips`` scene clips of ``split`` and their index into ``out_dir``.

    Clip ``k`` comes from ``np.random.default_rng([seed, split, k])``, so the first clips do not change when more
    are asked for; clips already in the index are kept. Train clips hold no held-out pair, test clips at least one.

    Raises:
        ValueError: bad ``num_clips`` or ``split``, or ``out_dir`` holds another kind of DATA folder or a scene folder
            of a different vocabulary.
    """
    if not isinstance(num_clips, int) or num_clips < 1:
        raise ValueError(f"num_clips must be a positive integer, got {num_clips!r}")
    if split not in _SPLIT_CODE:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {str(out_dir)!r} is a file, not a folder")
    _check_vocabulary(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_text(out_dir / "vocabulary.json", json.dumps(vocabulary_json(), indent=2))
    existing = {r.id: r for r in read_scene_index(out_dir)}
    records = dict(existing)
    for k in tqdm(range(num_clips), desc=f"scenes {split}", unit="clip", disable=not progress_bar):
        clip_id = f"{split}_{seed:03d}_{k:05d}"
        if clip_id in records:
            continue
        rng = np.random.default_rng([seed, _SPLIT_CODE[split], k])
        records[clip_id] = make_scene_clip(out_dir, clip_id, sample_scene(rng, split), split)
        if len(records) % _INDEX_EVERY == 0:
            write_scene_index(out_dir, list(records.values()))
    write_scene_index(out_dir, list(records.values()))
    logger.info("%s: %d clips (%d new)", out_dir, len(records), len(records) - len(existing))
    return [records[f"{split}_{seed:03d}_{k:05d}"] for k in range(num_clips)]


def _check_vocabulary(out_dir: Path) -> None:
    vocab = out_dir / "vocabulary.json"
    if vocab.is_file():
        try:
            theirs = json.loads(vocab.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{vocab} is not valid JSON ({e}); write the scenes to a new folder") from e
        if theirs.get("labels") != vocabulary_json()["labels"]:
            raise ValueError(f"{vocab} has other labels than this avdiff's scenes; write to a new folder")
    elif (out_dir / "index.jsonl").is_file():
        raise ValueError(
            f"{out_dir} already holds a DATA folder that is not a scene folder (index.jsonl without "
            "vocabulary.json); write the scenes to a new folder"
        )


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_scene_index(data_dir: str | os.PathLike, records: list[SceneRecord]) -> None:
    """Write ``index.jsonl`` atomically, records sorted by id."""
    lines = [json.dumps(asdict(r)) + "\n" for r in sorted(records, key=lambda r: r.id)]
    _write_text(Path(data_dir) / "index.jsonl", "".join(lines))


def read_scene_index(data_dir: str | os.PathLike) -> list[SceneRecord]:
    """The records of a scene folder (empty when it has no index yet). Unknown keys go to ``extra``."""
    path = Path(data_dir) / "index.jsonl"
    if not path.exists():
        return []
    known = set(SceneRecord.__dataclass_fields__)
    records = []
    for n, line in enumerate(read_text(path).splitlines(), 1):  # a byte-order mark is accepted
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            extra = {k: raw.pop(k) for k in list(raw) if k not in known}
            record = SceneRecord(**raw)
            record.extra.update(extra)
        except (json.JSONDecodeError, TypeError) as e:
            raise ValueError(f"{path}:{n}: not a scene record ({e})") from e
        records.append(record)
    return records


def object_tracks(record: SceneRecord, envelopes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The record's sounding objects' tracks before mixing (float32 [S] each), re-synthesized exactly."""
    return object_sounds(record_spec(record), envelopes)


@dataclass
class SceneClip:
    """A decoded clip: frames uint8 [F, H, W, 3], masks uint8 [F, H, W], the mixed audio, and per sounding word its
    envelope float32 [F] and (with ``with_tracks``) its own track float32 [S]; empty dicts when the clip has no
    sounding object."""

    frames: np.ndarray
    masks: np.ndarray
    audio: Waveform | None
    envelopes: dict[str, np.ndarray]
    tracks: dict[str, np.ndarray]


def load_scene_clip(
    data_dir: str | os.PathLike, record: SceneRecord, with_audio: bool = True, with_tracks: bool = False
) -> SceneClip:
    """Decode a record's mp4 and load its masks and loudness envelopes (and re-synthesize the tracks)."""

    data_dir = Path(data_dir)
    clip = read_video(data_dir / record.video, with_audio=with_audio)
    masks_path = data_dir / record.masks
    if not masks_path.is_file():
        raise FileNotFoundError(f"{str(masks_path)!r}: the masks of clip {record.id!r} are missing")
    masks = np.load(masks_path)
    envelopes = {}
    if record.sounds:
        with np.load(data_dir / record.sounds) as npz:
            envelopes = {k[len("envelope_") :]: npz[k] for k in npz.files if k.startswith("envelope_")}
    tracks = object_tracks(record, envelopes) if with_tracks else {}
    return SceneClip(clip.frames.numpy(), masks, clip.audio, envelopes, tracks)
