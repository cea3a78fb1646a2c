"""The arguments of :class:`~avdiff.pipelines.BeatVisualizerPipeline`: checked before any work, turned into the
pipeline's own types, and the keyframe images read with one-line errors.

Every check raises a ValueError that names the argument and its value (a :class:`TimelineError` for a timeline that
cannot be rendered), so ``avdiff visualize`` and the demo print it as one line.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from avdiff.audio.clock import parse_fps
from avdiff.audio.curves import CurveSpec
from avdiff.audio.rhythm import Rhythm
from avdiff.pipelines.output import MAX_OUTPUT_SIDE
from avdiff.video.image import load_image
from avdiff.video.writer import check_output_path
from avdiff.visualize.keyframes import INTERPOLATIONS, KeyframeSource
from avdiff.visualize.patterns import PatternSettings
from avdiff.visualize.timeline import PATTERNS, Timeline, TimelineError

logger = logging.getLogger(__name__)

OUTPUT_TYPES = ("np", "pt", "pil")
CALLBACK_TENSOR_INPUTS = ["frame"]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_inputs(source: KeyframeSource, audio, timeline, images, prompts, beats_per_interval, patterns, curve: CurveSpec,
                 pulse: CurveSpec, effects: PatternSettings, fps, height, width, interpolation, batch_size,
                 output_type, callback_on_step_end_tensor_inputs, max_duration_s, output_path,
                 rhythm) -> None:  # fmt: skip
    """Raise a ValueError naming the argument and its value for anything that cannot work. The audio, the images and
    the timeline file are read by the pipeline right after, still before any frame is made.

    Args: those of :meth:`BeatVisualizerPipeline.__call__` (``curve``, ``pulse`` and ``effects`` already parsed by
    :func:`curve_spec` and :func:`pattern_settings`), and the keyframe ``source`` (for its pixel multiple).
    """
    if audio is None:
        raise ValueError("audio must be a song (a path, bytes, an array or a Waveform), got None")
    given = [name for name, value in (("timeline", timeline), ("images", images), ("prompts", prompts))
             if value is not None]  # fmt: skip
    if len(given) != 1:
        raise ValueError(f"give exactly one of timeline, images and prompts, got {given or 'none'}")
    if images is not None and (isinstance(images, (str, bytes, os.PathLike)) or not list(images)):
        raise ValueError(f"images must be a non-empty list, got {images!r}")
    if prompts is not None:
        if isinstance(prompts, str) or not list(prompts) or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise ValueError(f"prompts must be a non-empty list of non-empty strings, got {prompts!r}")
        if not getattr(source, "renders_prompts", False):
            raise ValueError(f"prompts need a source that renders them (PromptKeyframes over a text-to-video model); "
                             f"this pipeline's source is {source.name!r}")  # fmt: skip
    if timeline is not None and not isinstance(timeline, (Timeline, str, os.PathLike)):
        raise ValueError(f"timeline must be a Timeline or a JSON file, got {type(timeline).__name__}")
    if not _is_int(beats_per_interval) or beats_per_interval < 1:
        raise ValueError(f"beats_per_interval must be an integer >= 1, got {beats_per_interval!r}")
    if isinstance(patterns, str) or not list(patterns) or any(p not in PATTERNS for p in patterns):
        raise ValueError(f"patterns must be a list of {PATTERNS}, got {patterns!r}")
    curve.check()
    pulse.check()
    effects.check()
    parse_fps(fps)
    m = source.pixel_multiple
    for name, side in (("height", height), ("width", width)):
        if side is None:
            continue
        if not _is_int(side) or not 16 <= side <= MAX_OUTPUT_SIDE or side % m:
            raise ValueError(f"{name} must be a multiple of {m} px in [16, {MAX_OUTPUT_SIDE}], got {side!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
    unknown = [k for k in callback_on_step_end_tensor_inputs or [] if k not in CALLBACK_TENSOR_INPUTS]
    if unknown:
        raise ValueError(f"callback_on_step_end_tensor_inputs must be among {CALLBACK_TENSOR_INPUTS}, got {unknown}")
    if max_duration_s is not None and not (isinstance(max_duration_s, (int, float)) and max_duration_s > 0):
        raise ValueError(f"max_duration_s must be positive (or None), got {max_duration_s!r}")
    if rhythm is not None and not isinstance(rhythm, Rhythm):
        raise ValueError(f"rhythm must be an avdiff.audio.rhythm.Rhythm or None, got {type(rhythm).__name__}")
    if rhythm is not None and Fraction(rhythm.fps).limit_denominator(1001) != parse_fps(fps):
        raise ValueError(f"rhythm was analysed at {rhythm.fps:g} fps, the video is at {float(parse_fps(fps)):g} "
                         "fps; analyse it at the video's rate")  # fmt: skip
    if output_path is not None:
        inputs = {"audio": audio}
        if isinstance(timeline, (str, os.PathLike)):
            inputs["timeline"] = timeline
        for k, image in enumerate(images or []):
            inputs[f"image {k + 1}"] = image
        check_output_path(output_path, inputs)


def check_timeline_keys(timeline: Timeline, source: KeyframeSource) -> None:
    """A TimelineError naming the first interval (by its label) with a prompt when ``source`` cannot render prompts (keyframe-images
    mode: give image files, or a :class:`~avdiff.visualize.prompt_keyframes.PromptKeyframes` source)."""
    prompts = timeline.prompts()
    if prompts and not getattr(source, "renders_prompts", False):
        k = next(i for i, iv in enumerate(timeline) if isinstance(iv.start, str) or isinstance(iv.end, str))
        raise TimelineError(f"{timeline.labels[k]} has the prompt {prompts[0]!r}, but keyframe-images mode takes "
                            "images only; give image files, or a text-to-video source for prompts")  # fmt: skip


def curve_spec(value) -> CurveSpec:
    """A :class:`CurveSpec` from itself, a source name or a dict of its fields; a ValueError otherwise."""
    if isinstance(value, CurveSpec):
        return value
    if isinstance(value, str):
        return CurveSpec(source=value)
    if isinstance(value, dict):
        try:
            return CurveSpec(**value)
        except TypeError as e:
            raise ValueError(f"curve options: {e}") from None
    raise ValueError(f"curve must be a source name, a CurveSpec or a dict of its fields, got {value!r}")


def pattern_settings(value) -> PatternSettings:
    """:class:`PatternSettings` from itself, None (the defaults) or a dict of its fields; a ValueError otherwise."""
    if value is None:
        return PatternSettings()
    if isinstance(value, PatternSettings):
        return value
    if isinstance(value, dict):
        try:
            return PatternSettings(**value)
        except TypeError as e:
            raise ValueError(f"effects: {e}") from None
    raise ValueError(f"effects must be PatternSettings or a dict of its fields, got {value!r}")


def load_images(images: list) -> dict:
    """``{key: uint8 [H, W, 3]}`` (:func:`image_key`) for the images given (paths, PIL images or arrays); a
    ValueError names the one that cannot be read."""
    return {image_key(image, k): read_image(image, f"images[{k}]") for k, image in enumerate(images)}


def image_key(image, k: int) -> Path:
    """An image's key in the timeline: its path, or ``image K`` for one given as pixels."""
    return Path(image) if isinstance(image, (str, os.PathLike)) else Path(f"image {k + 1}")


def load_timeline_images(timeline: Timeline) -> dict:
    """``{path: uint8 [H, W, 3]}`` for every image of the timeline."""
    return {path: read_image(path, f"the timeline's image {str(path)!r}") for path in timeline.images()}


def read_image(image, name: str) -> np.ndarray:
    """One keyframe image as uint8 [H, W, 3]; a ValueError starting with ``name`` when it is missing, unreadable, or
    not 8 to 8192 px on a side."""
    try:
        rgb = load_image(image)
    except FileNotFoundError as e:
        raise ValueError(f"{name}: no such file") from e
    except (OSError, ValueError, SyntaxError, TypeError) as e:
        raise ValueError(f"{name}: cannot be read as an image ({e})") from e
    h, w = rgb.shape[:2]
    if min(h, w) < 8 or max(h, w) > 8192:
        raise ValueError(f"{name}: {w}x{h} px; keyframe images must be 8 to 8192 px on a side")
    return rgb


def apply_callback(callback, pipe, index: int, t: float, frame: np.ndarray, inputs: list[str]) -> np.ndarray:
    """Run ``callback_on_step_end`` on one frame (uint8 [H, W, 3]); the frame it returns (same shape, uint8)
    replaces it. A ValueError for a frame of another shape or dtype."""
    tensors = {"frame": torch.from_numpy(frame)}
    returned = callback(pipe, index, t, {k: tensors[k] for k in inputs})
    new = (returned or {}).get("frame")
    if new is None:
        return frame
    new = new.detach().cpu().numpy() if isinstance(new, torch.Tensor) else np.asarray(new)
    if new.shape != frame.shape or new.dtype != np.uint8:
        raise ValueError(f"callback_on_step_end returned a frame of shape {new.shape} and dtype {new.dtype}; expected "
                         f"{frame.shape} uint8")  # fmt: skip
    return new
