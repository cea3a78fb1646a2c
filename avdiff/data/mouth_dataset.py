"""Mouth crops to train the mouth painter on: synthetic talking faces whose mouths show teeth and tongue.

:func:`synthetic_mouth_clips` makes a :class:`MouthClip` per (photo, utterance): the utterance's motion truth
(:func:`~avdiff.data.motion_truth.motion_truth`, its blinks and head motion drawn per clip) moves the photo through the
:class:`~avdiff.video.render.FaceRenderer`, and inside each frame's inner-lip contour the teeth and tongue are drawn
from the phonemes (:func:`~avdiff.data.mouth_truth.toothed_frames`). What the painter sees is a square around the mouth
(:func:`avdiff.video.mouth_crop.mouth_crops`, the geometry the pipeline paints with), so a clip keeps only its crops:
the truth, the renderer's own version (the model-free baseline), the hole's mask and the photo's own mouth as the
reference, with its speech. The crops are cut at the size the painter paints that photo's mouth at (``size``: a fixed
side, or the painter's :meth:`~avdiff.models.mouth_painter.MouthPainter.paint_size` of the square's native side), so a
painter with a range of sizes learns every mouth at its native scale, as it will paint it.

:func:`data_folder_mouth_clips` makes the same from real footage: every clip of a DATA folder with a landmark track
(``avdiff prepare`` writes one), its frames being the truth, the hole the inside of each frame's tracked inner lips
(:func:`avdiff.video.mouth_crop.lip_interior`), the reference its most closed mouth.

:class:`MouthWindows` cuts the clips into training items of ``frames`` consecutive crops, with the speech windows of
those frames as the painter's speech encoder reads them. Windows in which the mouth never opens hold nothing to paint
and are left out. Windows of clips cut at different sizes cannot share a batch: :attr:`MouthWindows.batch_groups`
gives each window's size, and the trainer batches within a size.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from avdiff.audio.clock import FpsLike, FrameClock, parse_fps
from avdiff.audio.io import load_audio
from avdiff.data.format import read_index
from avdiff.data.motion_dataset import Utterance
from avdiff.data.motion_truth import motion_truth
from avdiff.data.mouth_truth import toothed_frames
from avdiff.models.mouth_painter import MouthPainter
from avdiff.video.face import INNER_LIPS, detect_face
from avdiff.video.motion import face_frame
from avdiff.video.mouth_crop import MouthCrop, lip_interior, mouth_crops, mouth_width, reference_crop
from avdiff.video.reader import read_video
from avdiff.video.render import EDGE_SOFTNESS, FaceRenderer

logger = logging.getLogger(__name__)

MIN_HOLE = 0.01  # a window whose largest hole covers less than this share of the crop has nothing to paint
HEAD_RANGE = (0.0, 1.2)  # head amounts drawn for the clips' motion truths

CropSize = int | Callable[[float], int]  # a crop's side in px, or a function of the square's native side giving it


def crop_size(size: CropSize, native_side: float) -> int:
    """The side to cut a square of ``native_side`` frame pixels at: ``size`` itself, or ``size(native_side)``."""
    return int(size(native_side)) if callable(size) else int(size)


@dataclass
class MouthClip:
    """One clip's mouth crops.

    Attributes:
        id: a name for logs.
        crops: uint8 [F, S, S, 3], the truth (teeth and tongue drawn).
        rendered: uint8 [F, S, S, 3], the same frames as the renderer made them (its dark cavity in the holes): the
            model-free baseline; None for real footage.
        holes: float32 [F, S, S] in [0, 1], the inside of the inner lips in each crop (what is painted).
        reference: uint8 [S, S, 3], the photo's own mouth (cut at its own mouth, at the clip's scale).
        samples: mono speech float32 [N] at ``sample_rate``.
        sample_rate: Hz.
    """

    id: str
    crops: np.ndarray
    rendered: np.ndarray | None
    holes: np.ndarray
    reference: np.ndarray
    samples: torch.Tensor
    sample_rate: int


def render_mouth_clip(
    clip_id: str,
    renderer: FaceRenderer,
    utterance: Utterance,
    fps: FpsLike,
    size: CropSize,
    crop_scale: float,
    rng: np.random.Generator,
) -> MouthClip:
    """The :class:`MouthClip` of ``utterance`` said by ``renderer``'s photo (see the module doc), its crops cut at
    ``size`` (:data:`CropSize`); ``rng`` draws the motion truth's blinks, head amount and random sway."""
    speech = utterance.speech
    motion = motion_truth(
        utterance.events,
        speech,
        fps,
        rng,
        head_amount=float(rng.uniform(*HEAD_RANGE)),
        reference_open=renderer.aperture,
    )
    width = mouth_width(renderer.reference)
    size = crop_size(size, crop_scale * width)
    reference = reference_crop(renderer.photo, renderer.reference, crop_scale, size)
    truth, rendered, holes = [], [], []
    for toothed, frame, interior, landmarks in toothed_frames(
        renderer, motion, utterance.events, fps, speech.sample_rate
    ):
        crop: MouthCrop = mouth_crops(landmarks[INNER_LIPS][None], width, crop_scale, size)[0]
        rendered.append(crop.cut(frame))
        truth.append(crop.cut(toothed))
        holes.append(crop.cut(interior))
    return MouthClip(
        clip_id,
        np.stack(truth),
        np.stack(rendered),
        np.clip(np.stack(holes), 0, 1).astype(np.float32),
        reference,
        speech.samples[0].float(),
        speech.sample_rate,
    )


def synthetic_mouth_clips(
    photos: Sequence[np.ndarray],
    utterances: Sequence[Utterance],
    fps: FpsLike,
    size: CropSize,
    crop_scale: float,
    seed: int = 0,
    progress_bar: bool = False,
) -> list[MouthClip]:
    """A :class:`MouthClip` per utterance, utterance ``k`` said by photo ``k % len(photos)`` with a motion truth
    drawn from ``np.random.default_rng([seed, k])``, cut at ``size`` (:data:`CropSize`).

    Raises:
        ValueError: no photos; NoFaceError: a photo without a face.
    """
    if not photos:
        raise ValueError("synthetic_mouth_clips needs at least one photo")
    renderers: dict[int, FaceRenderer] = {}
    clips = []
    for k, utt in enumerate(tqdm(utterances, desc="mouth clips", unit="clip", disable=not progress_bar)):
        p = k % len(photos)
        if p not in renderers:
            renderers[p] = FaceRenderer(photos[p], detect_face(photos[p]))
        rng = np.random.default_rng([seed, k])
        clips.append(render_mouth_clip(f"mouth_{k:04d}", renderers[p], utt, fps, size, crop_scale, rng))
    return clips


def data_folder_mouth_clips(
    data_dir: str | os.PathLike,
    fps: FpsLike,
    size: CropSize,
    crop_scale: float,
    sample_rate: int = 16000,
    split: str | None = None,
    limit: int | None = None,
) -> list[MouthClip]:
    """A :class:`MouthClip` per clip of a DATA folder with a landmark track (see the module doc). Frames without a
    face (NaN landmarks) get an empty hole, so nothing is learnt there; clips at another frame rate than ``fps``, or
    whose face is never found, are skipped with a warning. Crops are cut at ``size`` (:data:`CropSize`) of the
    square's native side (``crop_scale`` times the clip's median mouth width).

    Raises:
        FileNotFoundError: no index, or no usable clip (of ``split``) with landmarks.
    """
    data_dir = Path(data_dir)
    if not (data_dir / "index.jsonl").is_file():
        raise FileNotFoundError(f"{str(data_dir)!r} is not a DATA folder (no index.jsonl)")
    records = [r for r in read_index(data_dir) if r.landmarks and (split is None or r.split == split)]
    records = records[:limit] if limit is not None else records
    out = []
    for r in records:
        if parse_fps(r.fps) != parse_fps(fps):
            logger.warning("clip %s: %s fps, not %s; skipped", r.id, r.fps, fps)
            continue
        points = np.load(data_dir / r.landmarks).astype(np.float64)  # [F, 478, 2]
        found = np.isfinite(points).all(axis=(1, 2))
        if not found.any():
            logger.warning("clip %s: no frame has a face; skipped", r.id)
            continue
        frames = read_video(data_dir / r.video, with_audio=False).frames.numpy()
        speech = load_audio(str(data_dir / r.video), sample_rate=sample_rate, mono=True)
        n = min(len(frames), len(points), FrameClock(fps, sample_rate).num_frames(speech.samples.shape[-1]))
        frames, points, found = frames[:n], points[:n], found[:n]
        filled = np.where(found[:, None, None], points, points[found][0])  # faceless frames: crops anywhere
        lips = filled[:, INNER_LIPS]
        widths = np.hypot(*(lips[:, 10] - lips[:, 0]).T)
        width = float(np.median(widths[found]))
        crops = mouth_crops(lips, width, crop_scale, crop_size(size, crop_scale * width))
        softness = EDGE_SOFTNESS * float(np.nanmedian(face_frame(points[found])[3]))
        truth, holes = [], []
        for f in range(n):
            hole = np.zeros(frames.shape[1:3], np.float32)
            if found[f]:
                alpha, (y0, y1, x0, x1) = lip_interior(lips[f], frames.shape[1:3], softness)
                hole[y0:y1, x0:x1] = alpha
            truth.append(crops[f].cut(frames[f]))
            holes.append(crops[f].cut(hole))
        openness = np.array([h.sum() for h in holes])
        shut = int(np.argmin(np.where(found, openness, np.inf)))
        out.append(
            MouthClip(
                r.id,
                np.stack(truth),
                None,
                np.clip(np.stack(holes), 0, 1),
                truth[shut],
                speech.samples[0].float(),
                sample_rate,
            )  # fmt: skip
        )
    if not out:
        raise FileNotFoundError(
            f"{str(data_dir)!r} has no usable clip with a landmark track" + (f" of split {split!r}" if split else "")
            + "; `avdiff prepare` writes them"
        )  # fmt: skip
    logger.info("mouth clips from %s: %d", data_dir, len(out))
    return out


class MouthWindows(Dataset):
    """Training items of ``frames`` consecutive crops of the clips, a window every ``stride`` frames, leaving out
    windows where the mouth never opens (the largest hole under :data:`MIN_HOLE` of the crop).

    Each item: ``crops`` uint8 [L, S, S, 3], ``holes`` float32 [L, S, S], ``reference`` uint8 [S, S, 3] and
    ``audio`` float32 [L, n_mels, W] (the painter's speech encoder's log-mel windows of those frames). ``S`` is the
    item's clip's crop size; :attr:`batch_groups` holds it per item (the trainer batches items of one group).

    Raises:
        ValueError: no clips, ``frames`` or ``stride`` < 1, or no window with an open mouth.
    """

    def __init__(self, clips: Sequence[MouthClip], painter: MouthPainter, fps: FpsLike, frames: int, stride: int = 4):
        if not clips:
            raise ValueError("MouthWindows needs at least one clip")
        if frames < 1 or stride < 1:
            raise ValueError(f"frames and stride must be >= 1, got {frames} and {stride}")
        self.clips, self.frames = list(clips), int(frames)
        encoder = painter.speech_encoder
        clock = encoder.frame_clock(fps)
        self.windows: list[torch.Tensor] = []
        self.index: list[tuple[int, int]] = []
        with torch.no_grad():
            for c, clip in enumerate(self.clips):
                if clip.sample_rate != encoder.sample_rate:
                    raise ValueError(
                        f"clip {clip.id} is at {clip.sample_rate} Hz, the painter at {encoder.sample_rate}"
                    )
                features = encoder.features(clip.samples[None])
                n = len(clip.crops)
                self.windows.append(encoder.frame_windows(features, clock, 0, n)[0].float())
                open_share = clip.holes.reshape(n, -1).mean(axis=1)
                for start in range(0, max(n - self.frames, 0) + 1, stride):
                    if n >= self.frames and open_share[start : start + self.frames].max() >= MIN_HOLE:
                        self.index.append((c, start))
        if not self.index:
            raise ValueError(f"no window of {frames} frames with an open mouth in {len(self.clips)} clips")

    def __len__(self) -> int:
        return len(self.index)

    @property
    def batch_groups(self) -> list[int]:
        """Each item's crop size ``S``: items of different sizes cannot be stacked into one batch."""
        return [self.clips[c].crops.shape[1] for c, _ in self.index]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        c, start = self.index[i]
        clip, stop = self.clips[c], start + self.frames
        return {
            "crops": torch.from_numpy(clip.crops[start:stop]),
            "holes": torch.from_numpy(clip.holes[start:stop]),
            "reference": torch.from_numpy(clip.reference),
            "audio": self.windows[c][start:stop],
        }


__all__ = [
    "CropSize",
    "MouthClip",
    "MouthWindows",
    "crop_size",
    "data_folder_mouth_clips",
    "render_mouth_clip",
    "synthetic_mouth_clips",
]
