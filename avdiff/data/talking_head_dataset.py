"""Training items for the talking-head model: aligned face windows, motion frames, a reference frame and speech.

:class:`TalkingHeadDataset` reads a DATA folder (:mod:`avdiff.data.format`). Each clip is reduced once to what
training reads, and cached in ``DATA/cache/talking_head_<size>/<ID>.pt`` (``talking_head_<framing>_<size>`` for a framing other than ``"face"``) (an atomic ``torch.save``):

* ``crops``: aligned crops uint8 [F, S, S, 3] of the pipeline's framing (``"face"`` or ``"lower_face"``,
  :data:`avdiff.video.align.FRAMINGS`): unaligned clips, e.g. synthetic ones, are tracked with mediapipe, their
  landmarks smoothed over time and aligned with :func:`avdiff.video.align.align_frames`; prepared clips (face
  crops) are cut to the framing with :func:`avdiff.video.align.reframe_matrix`;
* ``mouth``: the mouth mask of each frame, uint8 [F, S, S] (255 = mouth), from the landmarks in crop px
  (:func:`avdiff.video.align.mouth_mask`); aligned clips without landmarks get the fixed lower-face mask;
* ``audio``: the speech, mono float32 [N] at 16 kHz, exactly ``F`` frames long by the clock.

With the space-to-depth codec the latents are an exact function of the crops, so caching crops is caching latents.

Item ``i`` is a fixed random draw from ``torch.Generator().manual_seed(seed * 1_000_003 + i)``, a function of ``i``
alone: whatever process, DataLoader worker or prefetch order fetches it, and whether a run was resumed, item ``i`` is
the same (the trainer's StepBatchSampler fixes which items a step sees, so a resumed run sees the same data).
An item is:

* ``frames`` uint8 [n, S, S, 3]: a window of ``window_frames`` consecutive frames ``[s, s + n)``;
* ``motion`` uint8 [m, S, S, 3]: the ``motion_frames`` frames just before it, ``[s - m, s)`` (zeros before the clip's
  start, where ``motion_valid`` [m] is False);
* ``reference`` uint8 [S, S, 3]: a frame of the same clip at least ``reference_gap`` frames away from ``[s - m, s + n)``
  (the farthest frame when the clip is too short for that);
* ``audio`` float32 [A]: the speech of frames ``[s - m - c, s + n + c)`` through the clock (``c`` =
  ``audio_context_frames``, zero-padded outside the clip), so frame ``s - m + j`` starts at sample
  ``clock.frame_start(c + j)`` of it (exactly, whenever a frame is a whole number of samples: 640 at 25 fps and 16 kHz);
* ``mouth`` uint8 [n, S, S] and ``motion_mouth`` uint8 [m, S, S]: the mouth masks of those frames;
* ``clip``, ``start``, ``reference_index``: int64 scalars (which clip, ``s``, the reference frame).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from avdiff.audio.clock import FrameClock
from avdiff.data.format import ClipRecord
from avdiff.data.prepare import face_track
from avdiff.data.video_dataset import load_clip, resize_crops, select_records
from avdiff.video.align import lower_face_mask, mouth_mask, reframe_matrix, transform_points, warp_to_crop

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
SAMPLE_RATE = 16000


def cache_path(data_dir: str | os.PathLike, record: ClipRecord, size: int, framing: str = "face") -> Path:
    """Where a clip's prepared crops, mouth masks and audio are cached."""
    folder = f"talking_head_{size}" if framing == "face" else f"talking_head_{framing}_{size}"
    return Path(data_dir) / "cache" / folder / f"{record.id}.pt"


def _mouth_masks(landmarks: np.ndarray, size: int, framing: str = "face") -> np.ndarray:
    """Mouth masks uint8 [F, size, size] from landmarks [F, 478, 2] in crop px (lower-face mask where NaN)."""

    fallback = (lower_face_mask(size, framing=framing) * 255).round().astype(np.uint8)
    out = np.empty((len(landmarks), size, size), dtype=np.uint8)
    for i, points in enumerate(landmarks):
        if np.isfinite(points).all():
            out[i] = (mouth_mask(points, (size, size)) * 255).round().astype(np.uint8)
        else:
            out[i] = fallback
    return out


def prepare_clip(
    data_dir: str | os.PathLike, record: ClipRecord, size: int, smooth_sigma: float = 1.5, framing: str = "face"
) -> dict:
    """Decode, align and mask one clip: ``{"crops", "mouth", "audio", "fps", ...}`` (see the module docstring)."""

    clip = load_clip(data_dir, record)
    if record.aligned:  # prepared face crops: cut the framing out of them
        matrix = reframe_matrix(size, "face", framing, source_size=clip.frames.shape[1])
        crops = (
            resize_crops(clip.frames, size)
            if framing == "face"
            else np.stack([warp_to_crop(f, matrix, size) for f in clip.frames])
        )
        if clip.landmarks is not None:
            mouth = _mouth_masks(transform_points(clip.landmarks, matrix), size, framing)
        else:
            fallback = (lower_face_mask(size, framing=framing) * 255).round().astype(np.uint8)
            mouth = np.broadcast_to(fallback, (len(crops), size, size))
    else:
        track = face_track(clip.frames, size, smooth_sigma, framing=framing)
        crops = track.crops
        mouth = _mouth_masks(track.landmarks, size, framing)
    audio = clip.audio.resample(SAMPLE_RATE).samples[0].float()
    n = FrameClock(clip.record.fps, SAMPLE_RATE).num_samples(len(crops))
    audio = torch.nn.functional.pad(audio[:n], (0, max(0, n - audio.numel())))
    return {
        "version": CACHE_VERSION,
        "id": record.id,
        "size": size,
        "framing": framing,
        "fps": float(record.fps),
        "sample_rate": SAMPLE_RATE,
        "crops": torch.from_numpy(np.ascontiguousarray(crops)),
        "mouth": torch.from_numpy(np.ascontiguousarray(mouth)),
        "audio": audio.contiguous(),
    }


def load_or_prepare_clip(
    data_dir: str | os.PathLike, record: ClipRecord, size: int, smooth_sigma: float = 1.5, framing: str = "face"
) -> dict:
    """The cached preparation of a clip, made (and written atomically) when missing or stale."""
    path = cache_path(data_dir, record, size, framing)
    if path.is_file():
        try:
            cached = torch.load(path, map_location="cpu", weights_only=True)
            if cached.get("version") == CACHE_VERSION and len(cached["crops"]) == len(cached["mouth"]):
                return cached
        except Exception as e:  # a damaged cache file is remade
            logger.warning("cache %s is unreadable (%s); remaking it", path, e)
    prepared = prepare_clip(data_dir, record, size, smooth_sigma, framing)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    torch.save(prepared, tmp)
    os.replace(tmp, path)
    return prepared


class TalkingHeadDataset(Dataset):
    """Talking-head training windows from a DATA folder (see the module docstring).

    Args:
        data_dir: the DATA folder.
        size: the aligned crop side, px (the pipeline's pixel size).
        window_frames: ``n``, the frames of a window (the frames a chunk generates).
        motion_frames: ``m``, the frames given before the window.
        audio_context_frames: ``c``, extra frames of speech on each side.
        reference_gap: the reference frame is at least this many frames from the motion frames and the window.
        items_per_clip: items per clip (``len = clips * items_per_clip``); each is a different random draw.
        seed: the seed of the draws.
        split, max_clips: which clips of the index (see :func:`avdiff.data.video_dataset.select_records`).
        progress_bar: show the preparation of uncached clips.
        framing: the crops' framing, the pipeline's (``"face"`` or ``"lower_face"``).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        size: int = 64,
        window_frames: int = 6,
        motion_frames: int = 2,
        audio_context_frames: int = 3,
        reference_gap: int = 4,
        items_per_clip: int = 256,
        seed: int = 0,
        split: str | None = None,
        max_clips: int | None = None,
        progress_bar: bool = False,
        framing: str = "face",
    ):
        if window_frames < 1 or motion_frames < 0 or audio_context_frames < 0 or reference_gap < 0:
            raise ValueError(
                f"need window_frames >= 1 and motion_frames, audio_context_frames, reference_gap >= 0; "
                f"got {window_frames}, {motion_frames}, {audio_context_frames}, {reference_gap}"
            )
        if items_per_clip < 1:
            raise ValueError(f"items_per_clip must be >= 1, got {items_per_clip}")
        self.data_dir, self.size = Path(data_dir), int(size)
        self.window_frames, self.motion_frames = int(window_frames), int(motion_frames)
        self.audio_context_frames, self.reference_gap = int(audio_context_frames), int(reference_gap)
        self.items_per_clip, self.seed = int(items_per_clip), int(seed)
        records = select_records(data_dir, split, max_clips)
        self.clips: list[dict] = []
        for record in tqdm(records, desc="preparing clips", unit="clip", disable=not progress_bar):
            clip = load_or_prepare_clip(data_dir, record, self.size, framing=framing)
            if len(clip["crops"]) < self.window_frames:
                logger.warning(
                    "clip %s has %d frames, fewer than a window of %d; skipped",
                    record.id,
                    len(clip["crops"]),
                    self.window_frames,
                )
                continue
            self.clips.append(clip)
        if not self.clips:
            raise ValueError(f"no clip of {str(data_dir)!r} has the {self.window_frames} frames of a window")
        fps = {c["fps"] for c in self.clips}
        if len(fps) != 1:
            raise ValueError(f"the clips have different frame rates {sorted(fps)}; use one rate per DATA folder")
        self.clock = FrameClock(fps.pop(), SAMPLE_RATE)
        span = self.window_frames + self.motion_frames + 2 * self.audio_context_frames
        self.audio_samples = int(self.clock.samples_per_frame * span + 1)  # a fixed length whatever the start

    def __len__(self) -> int:
        return len(self.clips) * self.items_per_clip

    @property
    def chunk_frames(self) -> int:
        """Frames of the UNet chunk an item makes: motion frames, then the window."""
        return self.motion_frames + self.window_frames

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(index))
        k = index % len(self.clips)
        clip = self.clips[k]
        num = len(clip["crops"])
        start = int(torch.randint(0, num - self.window_frames + 1, (), generator=g))
        return self.item(k, start, self.draw_reference(num, start, g))

    def draw_reference(self, num_frames: int, start: int, generator: torch.Generator | None = None) -> int:
        """A frame at least ``reference_gap`` away from ``[start - m, start + n)`` (the farthest when none is)."""
        lo, hi = start - self.motion_frames, start + self.window_frames  # the chunk's frames [lo, hi)
        frames = torch.arange(num_frames)
        distance = torch.maximum(lo - frames, frames - (hi - 1))  # > 0 outside the chunk
        allowed = torch.nonzero(distance >= max(1, self.reference_gap)).flatten()
        if len(allowed) == 0:
            return int(torch.argmax(distance))
        return int(allowed[torch.randint(0, len(allowed), (), generator=generator)])

    def item(self, clip_index: int, start: int, reference_index: int) -> dict[str, torch.Tensor]:
        """The item of clip ``clip_index`` with its window at ``start`` and the given reference frame."""
        clip = self.clips[clip_index]
        crops, mouth, audio = clip["crops"], clip["mouth"], clip["audio"]
        n, m, c = self.window_frames, self.motion_frames, self.audio_context_frames
        S = self.size
        motion = torch.zeros(m, S, S, 3, dtype=torch.uint8)
        motion_mouth = torch.zeros(m, S, S, dtype=torch.uint8)
        valid = torch.zeros(m, dtype=torch.bool)
        for j in range(m):
            f = start - m + j
            if f >= 0:
                motion[j], motion_mouth[j], valid[j] = crops[f], mouth[f], True
        a = self.clock.frame_start(start - m - c)
        segment = torch.zeros(self.audio_samples, dtype=torch.float32)
        lo, hi = max(a, 0), min(a + self.audio_samples, audio.numel())
        if hi > lo:
            segment[lo - a : hi - a] = audio[lo:hi]
        return {
            "frames": crops[start : start + n].clone(),
            "motion": motion,
            "motion_valid": valid,
            "reference": crops[reference_index].clone(),
            "audio": segment,
            "mouth": mouth[start : start + n].clone(),
            "motion_mouth": motion_mouth,
            "clip": torch.tensor(clip_index),
            "start": torch.tensor(start),
            "reference_index": torch.tensor(reference_index),
        }
