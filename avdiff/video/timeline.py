"""What a container says about time and orientation, applied: frame timestamps, display matrices, stream start times.

These are the rules :class:`avdiff.video.reader.VideoReader` decodes by, kept apart so each can be tested alone.

* **Frames on a constant-rate grid.** Output frame ``i`` is shown at ``i / fps`` seconds after the first decoded
  frame. It is the source frame nearest to that time, except over a gap in the timestamps (variable frame rate,
  dropped frames): a source frame's reach ends half a nominal source period before the next frame's timestamp, so the
  previous frame is *held* over the gap, as a player shows it, and the next frame appears on time. A constant-rate
  source at the grid's rate passes through one to one; 30 fps to 25 skips one frame in six; 50 to 25 drops every
  other one. The last frame is held for one nominal source period (less a quarter period, so that a last timestamp
  a millisecond late does not add a frame).
* **Display matrix.** Phones store frames sideways and say how to show them with a 3x3 display matrix (stream or
  frame side data; ``ffmpeg -metadata:s:v rotate=N`` writes one). :func:`display_transform` reads it the way
  FFmpeg's own ``autorotate`` does (``fftools``: ``get_rotation`` then ``transpose``/``hflip``/``vflip``), so frames
  come out as players show them, for 90, 180 and 270 degrees and mirrored matrices alike.
* **Start times.** Audio and video streams may start at different times (a camera that starts recording sound late,
  an edit). :func:`audio_on_timeline` shifts the audio so that its sample 0 is at the first video frame.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from fractions import Fraction

import numpy as np
import torch

from avdiff.audio.io import Waveform

logger = logging.getLogger(__name__)

# Transforms of the picture, by FFmpeg's names (the ``transpose`` filter's directions, ``hflip``, ``vflip``).
TRANSFORMS = ("none", "clock", "cclock", "clock_flip", "cclock_flip", "hflip", "vflip", "rotate180")


def display_rotation(matrix: np.ndarray) -> float:
    """The counter-clockwise rotation in degrees of a display matrix (FFmpeg's ``av_display_rotation_get``).

    Args:
        matrix: int32 [9], the 16.16 fixed-point display matrix as FFmpeg stores it.

    Returns:
        Degrees in (-180, 180]; NaN for a degenerate matrix.
    """
    m = np.asarray(matrix, dtype=np.float64) / 65536.0
    scale0, scale1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if scale0 == 0 or scale1 == 0:
        return float("nan")
    return -math.degrees(math.atan2(m[1] / scale1, m[0] / scale0))


def display_transform(matrix: np.ndarray | bytes | None) -> str:
    """The picture transform a display matrix asks for, decided as FFmpeg's ``autorotate`` decides it.

    Args:
        matrix: int32 [9] (or its 36 raw bytes, as PyAV's frame side data holds it), or None.

    Returns:
        One of :data:`TRANSFORMS`. An angle that is not a multiple of 90 degrees gives ``"none"`` with a warning.
    """
    if matrix is None:
        return "none"
    if isinstance(matrix, (bytes, bytearray, memoryview)):
        matrix = np.frombuffer(bytes(matrix), dtype="<i4")
    m = np.asarray(matrix, dtype=np.int64)
    if m.shape != (9,):
        logger.warning("ignoring a display matrix of %d values (expected 9)", m.size)
        return "none"
    rotation = display_rotation(m)
    if math.isnan(rotation):
        return "none"
    theta = -round(rotation)  # clockwise degrees, as fftools' get_rotation
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    if abs(theta - 90) < 1:
        return "cclock_flip" if m[3] > 0 else "clock"
    if abs(theta - 180) < 1:
        h, v = m[0] < 0, m[4] < 0
        return "rotate180" if h and v else "hflip" if h else "vflip" if v else "none"
    if abs(theta - 270) < 1:
        return "clock_flip" if m[3] < 0 else "cclock"
    if abs(theta) < 1:
        return "vflip" if m[4] < 0 else "none"
    logger.warning(
        "the display matrix rotates by %.1f degrees, not a multiple of 90; frames are left as stored", theta
    )
    return "none"


def apply_transform(image: np.ndarray, transform: str) -> np.ndarray:
    """Apply a :data:`TRANSFORMS` entry to an image [H, W, C]; the result is contiguous."""
    if transform == "none":
        return image
    if transform == "clock":  # 90 degrees clockwise
        out = np.rot90(image, -1)
    elif transform == "cclock":  # 90 degrees counter-clockwise
        out = np.rot90(image, 1)
    elif transform == "cclock_flip":  # transpose: counter-clockwise and flipped vertically
        out = image.transpose(1, 0, 2)
    elif transform == "clock_flip":  # clockwise and flipped vertically: the anti-transpose
        out = np.rot90(image, -1)[::-1]
    elif transform == "hflip":
        out = image[:, ::-1]
    elif transform == "vflip":
        out = image[::-1]
    elif transform == "rotate180":
        out = image[::-1, ::-1]
    else:
        raise ValueError(f"unknown transform {transform!r}; expected one of {TRANSFORMS}")
    return np.ascontiguousarray(out)


def transform_degrees(transform: str) -> int:
    """The clockwise turn, in degrees, that a transform makes (mirroring aside)."""
    return {"clock": 90, "clock_flip": 90, "cclock": 270, "cclock_flip": 270, "rotate180": 180}.get(transform, 0)


def place_on_grid(
    frames: Iterable[tuple[float | None, np.ndarray]],
    fps: Fraction,
    source_period_s: float,
    max_frames: int | None = None,
    stats: dict | None = None,
) -> Iterator[np.ndarray]:
    """Put timestamped frames on a constant-rate grid (the rule in this module's docstring).

    Args:
        frames: ``(time_s, image)`` in decoding order; a time of None means "one nominal period after the last".
        fps: the grid's rate.
        source_period_s: the source's nominal frame period (1 / its nominal rate), seconds.
        max_frames: stop after this many output frames.
        stats: when given, filled with ``held`` (output frames that repeat a source frame beyond its own period, over
            gaps), ``dropped`` (source frames never shown) and ``source_frames``.

    Yields:
        The images, one per grid point ``i / fps`` (``i = 0, 1, ...``), measured from the first frame's time.
    """
    period = Fraction(1) / Fraction(fps)
    stats = stats if stats is not None else {}
    stats.update(held=0, dropped=0, source_frames=0)
    prev, prev_t, t0, last, i = None, 0.0, None, 0.0, 0
    shown = 0  # output frames the previous source frame got
    for t, image in frames:
        stats["source_frames"] += 1
        if t is None:
            t = last + source_period_s if t0 is not None else 0.0
        if t0 is None:
            t0 = t
        last = t
        t = t - t0
        if prev is not None:
            if t <= prev_t:  # a repeated or backward timestamp: the later frame replaces the earlier one
                stats["dropped"] += shown == 0
                prev = image
                continue
            boundary = max((prev_t + t) / 2, t - source_period_s / 2)
            while float(i * period) < boundary - 1e-6:
                if max_frames is not None and i >= max_frames:
                    return
                if float(i * period) >= prev_t + source_period_s - 1e-6:
                    stats["held"] += 1
                yield prev
                i, shown = i + 1, shown + 1
            stats["dropped"] += shown == 0
        prev, prev_t, shown = image, t, 0
    if prev is not None:  # the last frame lasts one nominal period (a quarter period of slack absorbs jitter)
        end = prev_t + source_period_s - min(float(period), source_period_s) / 4
        while float(i * period) < end:
            if max_frames is not None and i >= max_frames:
                return
            yield prev
            i += 1


def resample_frames(frames: np.ndarray, fps: float | Fraction, target_fps: float | Fraction) -> np.ndarray:
    """Frames [F, ...] at a constant ``fps`` -> frames at ``target_fps``, each the nearest-in-time source frame.

    The in-memory counterpart of :func:`place_on_grid` for frames already on a constant-rate grid.
    """
    fps = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    target = Fraction(target_fps).limit_denominator(1001) if not isinstance(target_fps, Fraction) else target_fps
    if fps == target:
        return frames
    n_src = len(frames)
    n_out = math.ceil(n_src * target / fps - 1e-6)
    src_t = np.arange(n_src) / float(fps)
    out_t = np.arange(n_out) / float(target)
    index = np.clip(np.searchsorted((src_t[:-1] + src_t[1:]) / 2, out_t - 1e-6, side="left"), 0, n_src - 1)
    return frames[index]


def stream_start_s(stream) -> float:
    """A PyAV stream's start time in seconds (0 when the container does not say)."""
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def audio_on_timeline(audio: Waveform, offset_s: float, name: str = "") -> Waveform:
    """Shift ``audio`` so that its sample 0 is at the first video frame.

    Args:
        audio: the decoded track [C, N].
        offset_s: when the audio starts, in seconds after the first video frame (negative: before it).

    Returns:
        Silence prepended for a late start; the samples before the video trimmed for an early one.
    """
    shift = round(offset_s * audio.sample_rate)
    if shift > 0:
        audio = Waveform(torch.nn.functional.pad(audio.samples, (shift, 0)), audio.sample_rate)
    elif shift < 0:
        audio = Waveform(audio.samples[:, -shift:], audio.sample_rate)
    if shift:
        logger.info("%s: the audio starts %+.3f s from the video; placed on the video's time line", name, offset_s)
    return audio
