"""Blinks in an eyelid-closure track (0 open ... 1 shut, per frame): where they are, how long, how often.

A blink is a run of frames with closure >= :data:`OPEN` (the lid visibly lowered) whose peak reaches :data:`SHUT`;
a run that never gets to :data:`SHUT` is a twitch, not counted. Its duration is the run's length (the lid's whole
fall and rise, as the truth's 100-400 ms are measured: :data:`avdiff.data.motion_truth.BLINK_S`).
"""

from __future__ import annotations

import logging

import numpy as np

from avdiff.audio.clock import FpsLike, parse_fps

logger = logging.getLogger(__name__)

OPEN = 0.1  # closure below this: the eye is open
SHUT = 0.5  # a run counts as a blink when its closure reaches this


def blink_events(closure: np.ndarray, fps: FpsLike) -> list[tuple[float, float]]:
    """The blinks of ``closure`` (module doc).

    Args:
        closure: eyelid closure float [F] (NaN counts as open).
        fps: its frame rate.

    Returns:
        ``[(start_s, duration_s)]`` in order, a start being the run's first frame's time.

    Raises:
        ValueError: ``closure`` is not 1-D.
    """
    closure = np.nan_to_num(np.asarray(closure, np.float64))
    if closure.ndim != 1:
        raise ValueError(f"closure must be 1-D (one value per frame), got shape {closure.shape}")
    rate = float(parse_fps(fps))
    lowered = np.concatenate([[False], closure >= OPEN, [False]])
    edges = np.flatnonzero(lowered[1:] != lowered[:-1])
    return [(a / rate, (b - a) / rate) for a, b in zip(edges[::2], edges[1::2]) if closure[a:b].max() >= SHUT]


def blink_stats(closure: np.ndarray, fps: FpsLike) -> dict[str, float]:
    """How a closure track blinks.

    Args:
        closure: eyelid closure float [F], F > 0.
        fps: its frame rate.

    Returns:
        ``{"blinks_per_min", "blink_s_min", "blink_s_mean", "blink_s_max" (NaN without a blink), "longest_open_s"
        (the longest stretch with no blink: from the start, between two blinks' ends and starts, or to the end),
        "blinks", "minutes"}``.

    Raises:
        ValueError: an empty or not 1-D track.
    """
    closure = np.asarray(closure)
    if closure.ndim != 1 or len(closure) == 0:
        raise ValueError(f"closure must be a non-empty 1-D track, got shape {closure.shape}")
    events = blink_events(closure, fps)
    total_s = len(closure) / float(parse_fps(fps))
    durations = np.array([d for _, d in events])
    bounds = [0.0] + [x for s, d in events for x in (s, s + d)] + [total_s]
    open_spans = np.array(bounds[1::2]) - np.array(bounds[0::2])
    nan = float("nan")
    return {
        "blinks_per_min": len(events) / (total_s / 60.0),
        "blink_s_min": float(durations.min()) if len(events) else nan,
        "blink_s_mean": float(durations.mean()) if len(events) else nan,
        "blink_s_max": float(durations.max()) if len(events) else nan,
        "longest_open_s": float(open_spans.max()),
        "blinks": float(len(events)),
        "minutes": total_s / 60.0,
    }
