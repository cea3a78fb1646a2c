"""Read DATA clips back: frames, speech, aligned face crops, and per-frame audio windows through the one clock.

A DATA folder (:mod:`avdiff.data.format`) holds synthetic clips (whole frames, ``aligned=False``) and prepared clips
(aligned face crops, ``aligned=True``). :func:`load_clip` decodes one; :func:`aligned_crops` gives aligned face crops
of any clip (tracking and aligning the face the way ``avdiff prepare`` does when the clip is not aligned yet).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from avdiff.audio.clock import FrameClock
from avdiff.audio.io import Waveform
from avdiff.data.format import ClipRecord, read_index
from avdiff.data.prepare import face_track
from avdiff.video.reader import read_video

logger = logging.getLogger(__name__)


@dataclass
class ClipData:
    """One decoded DATA clip.

    Attributes:
        record: its index record.
        frames: uint8 [F, H, W, 3] at ``record.fps``.
        audio: mono speech at ``record.sample_rate`` Hz, exactly ``F`` frames long by the clock (zero-padded or
            trimmed).
        landmarks: float32 [F, 478, 2] in the frames' px, or None when the clip has none stored.
    """

    record: ClipRecord
    frames: np.ndarray
    audio: Waveform
    landmarks: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(len(self.frames))


def select_records(
    data_dir: str | os.PathLike, split: str | None = None, limit: int | None = None
) -> list[ClipRecord]:
    """The index records of a DATA folder, optionally of one ``split`` and at most ``limit`` of them, in index order.

    Raises:
        FileNotFoundError: the folder has no ``index.jsonl``, or no clip matches.
    """
    data_dir = Path(data_dir)
    if not (data_dir / "index.jsonl").is_file():
        raise FileNotFoundError(
            f"{str(data_dir)!r} is not a DATA folder (no index.jsonl); make one with "
            "`avdiff prepare` or `avdiff synth`"
        )
    records = [r for r in read_index(data_dir) if split is None or r.split == split]
    if limit is not None:
        records = records[:limit]
    if not records:
        raise FileNotFoundError(f"{str(data_dir)!r} has no clips" + (f" of split {split!r}" if split else ""))
    return records


def load_clip(data_dir: str | os.PathLike, record: ClipRecord) -> ClipData:
    """Decode a clip of a DATA folder: frames, speech fitted to the frames by the clock, and stored landmarks.

    Raises:
        VideoError: the video cannot be read.
        ValueError: the video has no audio track.
    """
    data_dir = Path(data_dir)
    clip = read_video(data_dir / record.video)
    if clip.audio is None:
        raise ValueError(f"clip {record.id!r} ({record.video}) has no readable audio track")
    frames = clip.frames.numpy()
    audio = clip.audio.to_mono().resample(record.sample_rate)
    n = FrameClock(clip.fps, record.sample_rate).num_samples(len(frames))
    samples = torch.nn.functional.pad(audio.samples[:, :n], (0, max(0, n - audio.num_samples)))
    landmarks = np.load(data_dir / record.landmarks).astype(np.float32) if record.landmarks else None
    return ClipData(record, frames, Waveform(samples, record.sample_rate), landmarks)


def aligned_crops(clip: ClipData, size: int, smooth_sigma: float = 1.5) -> np.ndarray:
    """Aligned face crops uint8 [F, size, size, 3] of a clip.

    A prepared clip (``aligned=True``) already is one: it is only resized when its side differs from ``size``. Any
    other clip has its face tracked and aligned as ``avdiff prepare`` does (:func:`avdiff.data.prepare.face_track`).

    Raises:
        NoFaceError: an unaligned clip shows no face.
    """
    if clip.record.aligned:
        return resize_crops(clip.frames, size)

    return face_track(clip.frames, size, smooth_sigma).crops


def resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
    """Square aligned crops uint8 [F, S, S, 3] -> [F, size, size, 3] (area averaging down, cubic up).

    Raises:
        ValueError: the frames are not square (so not aligned crops).
    """
    if crops.ndim != 4 or crops.shape[1] != crops.shape[2]:
        raise ValueError(f"aligned crops must be square [F, S, S, 3], got {crops.shape}")
    if crops.shape[1] == size:
        return crops
    interp = cv2.INTER_AREA if crops.shape[1] > size else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in crops])
