"""Scene fidelity with known truth: does a frame (or clip) show what its prompt says, and does the right part move?

A segmenter trained on the scene world (:mod:`avdiff.models.segmenter`) labels every pixel of generated frames;
from its labels:

* **presence**: an object of the prompt is present when, on average over the frames, at least ``min_pixels`` pixels
  carry its label; **absence**: an object of the vocabulary that the prompt does not name is absent (a model that draws
  everything everywhere scores 1 on presence and low on absence);
* **place**: "on the left" holds when the object's segment's centroid lies in the left 40 % of the frame, "on the right"
  in the right 40 %, "in the middle" in the central 40 %;
* **motion**: the mean absolute change between consecutive frames inside the object's segment; sounding objects should
  move (above ``motion_threshold``) and silent ones hold (below it);
* :func:`segment_change`: per-frame change from a base frame inside a given segment versus per pixel elsewhere (the
  measure of the audio-scene job: the sounding element changes with the sound while the rest holds);
* :func:`segmentation_scores`: pixel accuracy and mean IoU of predicted against true labels.

Functions take frames as uint8 arrays [F, H, W, 3] (F = 1 for a keyframe) and a prompt (a caption string or a scene
record), never files. They are scored against the scene world of :mod:`avdiff.data.scenes` (its vocabulary and
captions), so they sit in ``evaluation``, above ``data``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from avdiff.data.scenes import load_scene_clip, parse_caption, read_scene_index
from avdiff.data.scenes.vocabulary import LABELS, OBJECTS, SOUNDING
from avdiff.models.segmenter import load_segmenter
from avdiff.video.reader import read_video

logger = logging.getLogger(__name__)

MIN_PIXELS = 10.0  # mean pixels per frame (of 64x64) for an object to count as present
MOTION_THRESHOLD = 0.01  # mean |change| per pixel per frame (0..1 scale) that separates moving from still
PLACE_BOUNDS = {"left": (0.0, 0.4), "centre": (0.3, 0.7), "right": (0.6, 1.0)}  # centroid x / width


def segmentation_scores(
    pred: np.ndarray, truth: np.ndarray, labels: list[str] | tuple[str, ...] = LABELS
) -> dict[str, float]:
    """Pixel accuracy and mean IoU of predicted labels against true ones (same shape, integer label maps).

    Mean IoU averages over the labels that occur in ``truth`` or ``pred`` (a label absent from both has no IoU).
    Also gives ``iou/<label>`` for each of them.

    Raises:
        ValueError: shapes differ or the maps are empty.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape or pred.size == 0:
        raise ValueError(
            f"pred and truth must be non-empty label maps of one shape, got {pred.shape} and {truth.shape}"
        )
    n = len(labels)
    confusion = np.bincount(truth.astype(np.int64).ravel() * n + pred.astype(np.int64).ravel(), minlength=n * n)
    confusion = confusion[: n * n].reshape(n, n)  # (true, predicted)
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    seen = union > 0
    iou = np.where(seen, tp / np.maximum(union, 1), np.nan)
    out = {"pixel_accuracy": float(tp.sum() / confusion.sum()), "mean_iou": float(np.nanmean(iou[seen]))}
    out.update({f"iou/{labels[k]}": float(iou[k]) for k in range(n) if seen[k]})
    return out


@dataclass
class ObjectFidelity:
    """One vocabulary object in one clip. ``pixels``: mean labelled pixels per frame; ``place``: the place the
    prompt states (None if none); ``place_holds``: None when unstated or absent; ``motion``: mean change per pixel
    per frame in its segment (None for one frame or an absent object); ``moves_as_it_should``: None likewise."""

    word: str
    in_prompt: bool
    present: bool
    pixels: float
    centroid_x: float | None = None
    place: str | None = None
    place_holds: bool | None = None
    motion: float | None = None
    moves_as_it_should: bool | None = None


@dataclass
class SceneFidelity:
    """Prompt fidelity of one clip or frame; the shares are None when there is nothing to count.

    Attributes:
        presence: share of the prompt's objects that are present.
        absence: share of the other vocabulary objects that are absent.
        place: share of the stated places that hold (among present objects).
        motion: share of present prompt objects that move if sounding and hold if silent (None for a keyframe).
        objects: per vocabulary object, an :class:`ObjectFidelity`.
    """

    presence: float | None
    absence: float | None
    place: float | None
    motion: float | None
    objects: dict[str, ObjectFidelity] = field(default_factory=dict)


def _prompt_objects(prompt) -> dict[str, str | None]:
    """word -> stated place (or None), from a caption string, a SceneRecord, or a record dict."""
    if isinstance(prompt, str):
        return {o["word"]: o["place"] for o in parse_caption(prompt).objects}
    objects = prompt.get("objects") if isinstance(prompt, dict) else getattr(prompt, "objects", None)
    if objects is None:
        raise TypeError(f"prompt must be a caption str, a SceneRecord or a record dict, got {type(prompt).__name__}")
    return {o["word"]: (o["place"] if o.get("place_stated", True) else None) for o in objects}


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise ValueError(f"frames must be uint8 [F, H, W, 3] with F >= 1, got {frames.dtype} {frames.shape}")
    return frames


def object_motion(frames: np.ndarray, labels: np.ndarray, label: int) -> float | None:
    """Mean absolute change between consecutive frames (0..1 per channel) over the pixels that carry ``label`` in
    either frame of each pair, averaged over pairs that have such pixels. None for one frame or no such pixels."""
    if len(frames) < 2:
        return None
    f = frames.astype(np.float32) / 255.0
    change = np.abs(f[1:] - f[:-1]).mean(axis=-1)  # (F-1, H, W)
    region = (labels[1:] == label) | (labels[:-1] == label)
    per_pair = [float(change[k][region[k]].mean()) for k in range(len(change)) if region[k].any()]
    return float(np.mean(per_pair)) if per_pair else None


def prompt_fidelity(
    frames: np.ndarray,
    prompt,
    segmenter=None,
    *,
    labels: np.ndarray | None = None,
    min_pixels: float = MIN_PIXELS,
    motion_threshold: float = MOTION_THRESHOLD,
) -> SceneFidelity:
    """How well frames show their prompt.

    Args:
        frames: uint8 [F, H, W, 3] (or one frame [H, W, 3]).
        prompt: a caption ("a red car on the left beside a lake at night"), a SceneRecord or a record dict.
        segmenter: a :class:`~avdiff.models.segmenter.SceneSegmenter` (or a bundled name / folder for
            :func:`~avdiff.models.segmenter.load_segmenter`); not needed when ``labels`` are given.
        labels: label maps uint8 [F, H, W] to use instead of the segmenter's (e.g. the true masks).
        min_pixels: mean pixels per frame for presence.
        motion_threshold: change per pixel per frame that counts as moving.

    Returns:
        A :class:`SceneFidelity`.
    """
    frames = _check_frames(frames)
    if labels is None:
        if segmenter is None:
            raise ValueError("give a segmenter or the label maps (labels=)")
        if isinstance(segmenter, str):
            segmenter = load_segmenter(segmenter)
        labels = segmenter.predict(frames)
    labels = np.asarray(labels)
    if labels.shape != frames.shape[:3]:
        raise ValueError(f"labels must be [F, H, W] = {frames.shape[:3]}, got {labels.shape}")
    wanted = _prompt_objects(prompt)
    unknown = set(wanted) - set(OBJECTS)
    if unknown:
        raise ValueError(f"the prompt names objects outside the scene vocabulary: {sorted(unknown)}")
    width = frames.shape[2]
    xs = np.arange(width, dtype=np.float64)
    result: dict[str, ObjectFidelity] = {}
    for word in OBJECTS:
        label = LABELS.index(word)
        mine = labels == label
        pixels = float(mine.sum()) / len(frames)
        present = pixels >= min_pixels
        obj = ObjectFidelity(word, word in wanted, present, pixels)
        if mine.any():
            obj.centroid_x = float((mine.sum(axis=(0, 1)) * xs).sum() / mine.sum())
        if word in wanted:
            obj.place = wanted[word]
            if present and obj.place is not None:
                low, high = PLACE_BOUNDS[obj.place]
                obj.place_holds = bool(low * width <= obj.centroid_x <= high * width)
            if present:
                obj.motion = object_motion(frames, labels, label)
                if obj.motion is not None:
                    obj.moves_as_it_should = (obj.motion > motion_threshold) == (word in SOUNDING)
        result[word] = obj

    def share(values: list[bool]) -> float | None:
        return float(np.mean(values)) if values else None

    in_prompt = [o for o in result.values() if o.in_prompt]
    return SceneFidelity(
        presence=share([o.present for o in in_prompt]),
        absence=share([not o.present for o in result.values() if not o.in_prompt]),
        place=share([o.place_holds for o in in_prompt if o.place_holds is not None]),
        motion=share([o.moves_as_it_should for o in in_prompt if o.moves_as_it_should is not None]),
        objects=result,
    )


def aggregate_fidelity(results: list[SceneFidelity]) -> dict[str, float | None]:
    """Pool clips' fidelity per object: presence = present prompt objects / prompt objects over all clips, and so on
    for absence, place and motion (None where nothing was counted), plus the mean motion of present sounding and
    silent prompt objects and the counts."""
    if not results:
        raise ValueError("no results to aggregate")
    objs = [o for r in results for o in r.objects.values()]
    prompt = [o for o in objs if o.in_prompt]
    placed = [o.place_holds for o in prompt if o.place_holds is not None]
    moved = [o.moves_as_it_should for o in prompt if o.moves_as_it_should is not None]
    others = [not o.present for o in objs if not o.in_prompt]

    def mean(values) -> float | None:
        return float(np.mean(values)) if len(values) else None

    return {
        "presence": mean([o.present for o in prompt]),
        "absence": mean(others),
        "place": mean(placed),
        "motion": mean(moved),
        "motion_sounding": mean([o.motion for o in prompt if o.motion is not None and o.word in SOUNDING]),
        "motion_silent": mean([o.motion for o in prompt if o.motion is not None and o.word not in SOUNDING]),
        "clips": float(len(results)),
        "prompt_objects": float(len(prompt)),
        "stated_places": float(len(placed)),
    }


@dataclass
class SegmentChange:
    """Per-frame change from a base frame (mean |difference| per pixel and channel, 0..1) inside a segment and per
    pixel elsewhere: ``inside`` and ``outside`` float64 [F]. ``ratio`` = mean inside / mean outside (inf when
    nothing changed elsewhere but something inside; nan when nothing changed at all)."""

    inside: np.ndarray
    outside: np.ndarray

    @property
    def ratio(self) -> float:
        inside, outside = float(self.inside.mean()), float(self.outside.mean())
        if outside > 0:
            return inside / outside
        return float("inf") if inside > 0 else float("nan")


def segment_change(frames: np.ndarray, base_frame: np.ndarray, mask: np.ndarray, dilate: int = 0) -> SegmentChange:
    """How much each frame differs from ``base_frame`` inside ``mask`` versus elsewhere.

    Args:
        frames: uint8 [F, H, W, 3].
        base_frame: uint8 [H, W, 3], e.g. the frame generated with no sound (AADiff's base pass).
        mask: bool [H, W], the object's segment (e.g. :func:`object_segment` on the base frame).
        dilate: grow the mask by this many pixels first (the sounding object may grow past its base outline).

    Raises:
        ValueError: shapes disagree, or the mask is empty or covers the whole frame.
    """
    frames = _check_frames(frames)
    base = np.asarray(base_frame)
    if base.shape != frames.shape[1:] or base.dtype != np.uint8:
        raise ValueError(f"base_frame must be uint8 {frames.shape[1:]}, got {base.dtype} {base.shape}")
    mask = np.asarray(mask, bool)
    if mask.shape != frames.shape[1:3]:
        raise ValueError(f"mask must be [H, W] = {frames.shape[1:3]}, got {mask.shape}")
    if dilate > 0:
        mask = cv2.dilate(mask.astype(np.uint8), np.ones((2 * dilate + 1, 2 * dilate + 1), np.uint8)) > 0
    if not mask.any():
        raise ValueError("the mask is empty: the object was not found in the frame")
    if mask.all():
        raise ValueError("the mask covers the whole frame: there is no elsewhere to compare with")
    diff = np.abs(frames.astype(np.float32) - base.astype(np.float32)).mean(axis=-1) / 255.0  # (F, H, W)
    return SegmentChange(diff[:, mask].mean(axis=1).astype(np.float64), diff[:, ~mask].mean(axis=1).astype(np.float64))


def object_segment(frame: np.ndarray, word: str, segmenter=None, labels: np.ndarray | None = None) -> np.ndarray:
    """bool [H, W]: the pixels of ``frame`` (uint8 [H, W, 3]) that the segmenter (or ``labels`` [H, W]) gives to
    ``word``'s label."""
    if word not in OBJECTS:
        raise ValueError(f"{word!r} is not a scene object; objects: {list(OBJECTS)}")
    if labels is None:
        if segmenter is None:
            raise ValueError("give a segmenter or the label map (labels=)")
        if isinstance(segmenter, str):
            segmenter = load_segmenter(segmenter)
        labels = segmenter.predict(_check_frames(frame))[0]
    return np.asarray(labels) == LABELS.index(word)


def score_scene_folder(
    data_dir: str | Path, segmenter, videos: str | Path | None = None, max_clips: int | None = None
) -> dict[str, dict]:
    """Prompt fidelity of a scene folder's clips (or of generated ``videos/ID.mp4``) against their records, with
    the shuffled-caption control and the true-mask reference (DATA's own clips only). Rows: ``segmenter``,
    ``shuffled`` and ``true_masks`` -> :func:`aggregate_fidelity` dicts."""
    records = read_scene_index(data_dir)
    if not records:
        raise FileNotFoundError(f"{str(data_dir)!r} holds no scene clips (no index.jsonl)")
    records = records[:max_clips] if max_clips else records
    if len(records) < 2:
        raise ValueError("the shuffled control needs at least 2 clips")
    rows: dict[str, list] = {"segmenter": [], "shuffled": [], "true_masks": []}
    for k, record in enumerate(records):
        clip = load_scene_clip(data_dir, record, with_audio=False)
        frames = clip.frames
        if videos is not None:
            path = Path(videos) / f"{record.id}.mp4"
            if not path.is_file():
                raise FileNotFoundError(f"no generated video {str(path)!r} for clip {record.id!r}")
            frames = read_video(path, with_audio=False).frames.numpy()
        labels = segmenter.predict(frames)
        other = records[(k + 1) % len(records)]
        rows["segmenter"].append(prompt_fidelity(frames, record, labels=labels))
        rows["shuffled"].append(prompt_fidelity(frames, other, labels=labels))
        if videos is None:
            rows["true_masks"].append(prompt_fidelity(frames, record, labels=clip.masks))
    return {name: aggregate_fidelity(results) for name, results in rows.items() if results}
