"""The intervals of a music-visualization timeline: :class:`Interval`, its keyframes' written forms, and the checks
that make a list of intervals a :class:`~avdiff.visualize.timeline.Timeline`.

An interval (Generative Disco, Liu et al., CHI 2024) is a stretch of the song ``(start_s, end_s)`` whose frames move
from a start keyframe to an end one by a design pattern (:data:`PATTERNS`): a transition or a hold. A keyframe is a
prompt (``str``) or an image file (``pathlib.Path``); :func:`parse_key` reads its written forms and
:func:`format_key` writes its one-line one. :func:`check_intervals` checks a list of them: ordered, touching, each
with a known pattern and real keyframes, cut at the song's end; :class:`TimelineError` (a ValueError) names the
interval and the field.

Everything here is re-exported by :mod:`avdiff.visualize.timeline`, its public home.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

logger = logging.getLogger(__name__)

TRANSITIONS = ("subject", "color", "style", "time")
HOLDS = ("drift", "pulse")
PATTERNS = TRANSITIONS + HOLDS
IMAGE_PREFIX = "image:"
PROMPT_PREFIX = "prompt:"  # marks a prompt that would otherwise read as another form ("prompt:image: a cat")
EDGE_TOLERANCE_S = 1e-6

Key = str | Path  # a prompt, or an image file


class TimelineError(ValueError):
    """A timeline that cannot be used; the message names the file (if any), the interval and the field."""


@dataclass(frozen=True)
class Interval:
    """One interval of the song.

    Attributes:
        start_s, end_s: where it starts and ends in the song, seconds.
        start, end: its keyframes: a prompt (``str``) or an image file (``Path``).
        pattern: how its frames move (:data:`PATTERNS`): a transition, ``"subject"`` (start -> end), ``"color"``
            (with a hue turn timed to the beats), ``"style"`` (a stylised look blended in), ``"time"`` (day ->
            night); or a hold, ``"drift"`` (the start keyframe with a slow drift) or ``"pulse"`` (the start keyframe
            with a zoom and a flash on each beat).
    """

    start_s: float
    end_s: float
    start: Key
    end: Key
    pattern: str = "subject"

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def is_hold(self) -> bool:
        return self.pattern in HOLDS


def parse_key(value: object, base: Path | None = None, where: str = "keyframe") -> Key:
    """A keyframe from its written forms: a prompt string (``"prompt:TEXT"`` for one that starts with ``image:``);
    ``"image:PATH"`` or ``{"image": PATH}`` for an image (relative to ``base``); ``{"prompt": TEXT}``; a ``Path``.
    TimelineError for anything else or an empty one."""
    if isinstance(value, Path):
        return value
    if isinstance(value, dict) and len(value) == 1 and set(value) <= {"image", "prompt"}:
        (kind, text), = value.items()
        if not isinstance(text, str) or not text.strip():
            raise TimelineError(f"{where}: {kind!r} must be a non-empty string, got {text!r}")
        return _image(text, base) if kind == "image" else text.strip()
    if isinstance(value, str):
        text = value.strip()
        if text.lower().startswith(PROMPT_PREFIX):
            prompt = text[len(PROMPT_PREFIX) :].strip()
            if not prompt:
                raise TimelineError(f"{where}: {value!r} has no prompt text")
            return prompt
        if text.lower().startswith(IMAGE_PREFIX):
            path = text[len(IMAGE_PREFIX) :].strip()
            if not path:
                raise TimelineError(f"{where}: {value!r} names no image file")
            return _image(path, base)
        if not text:
            raise TimelineError(f"{where}: a keyframe must be a prompt or an image, got an empty string")
        return text
    raise TimelineError(f"{where}: a keyframe must be a prompt string, \"image:PATH\" or {{\"image\": PATH}}, got "
                        f"{value!r}")  # fmt: skip


def _image(path: str, base: Path | None) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() or base is None else base / p


def format_key(key: Key) -> str:
    """The one-line text form of a keyframe, which :func:`parse_key` reads back: the prompt (``"prompt:TEXT"`` when it
    starts with ``image:`` or ``prompt:``), or ``"image:PATH"``."""
    if isinstance(key, Path):
        return f"{IMAGE_PREFIX}{key}"
    return f"{PROMPT_PREFIX}{key}" if is_ambiguous_prompt(key) else key


def is_ambiguous_prompt(text: str) -> bool:
    """Whether a prompt would read as another written form (it starts with ``image:`` or ``prompt:``)."""
    return text.lower().startswith((IMAGE_PREFIX, PROMPT_PREFIX))



def check_intervals(intervals, duration_s: float | None = None) -> list[Interval]:
    """The intervals, checked (see :class:`~avdiff.visualize.timeline.Timeline`), cut at ``duration_s`` when given.

    Raises:
        TimelineError: naming the interval (1-based), the field and the reason.
    """
    intervals = list(intervals)
    if not intervals:
        raise TimelineError("a timeline needs at least one interval")
    for k, iv in enumerate(intervals):
        where = f"interval {k + 1}"
        if not isinstance(iv, Interval):
            raise TimelineError(f"{where}: expected an Interval, got {type(iv).__name__}")
        for name in ("start_s", "end_s"):
            value = getattr(iv, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TimelineError(f"{where}: {name} must be a finite number of seconds, got {value!r}")
        if not iv.end_s > iv.start_s:
            raise TimelineError(f"{where}: end_s ({iv.end_s:g}) must be after start_s ({iv.start_s:g})")
        for name in ("start", "end"):
            key = getattr(iv, name)
            if not isinstance(key, (str, Path)) or (isinstance(key, str) and not key.strip()):
                raise TimelineError(f"{where}: {name} must be a prompt (str) or an image (pathlib.Path), got {key!r}")
        if iv.pattern not in PATTERNS:
            raise TimelineError(f"{where}: pattern must be one of {', '.join(PATTERNS)}, got {iv.pattern!r}")
    if abs(intervals[0].start_s) > EDGE_TOLERANCE_S:
        raise TimelineError(f"interval 1 starts at {intervals[0].start_s:g} s; the timeline must start at 0")
    for k in range(1, len(intervals)):
        gap = intervals[k].start_s - intervals[k - 1].end_s
        if gap > EDGE_TOLERANCE_S:
            raise TimelineError(f"interval {k + 1} starts at {intervals[k].start_s:g} s, {gap:.3f} s after interval "
                                f"{k} ends ({intervals[k - 1].end_s:g} s): intervals must touch, with no gaps")
        if gap < -EDGE_TOLERANCE_S:
            order = "before interval" if intervals[k].start_s < intervals[k - 1].start_s else "inside interval"
            raise TimelineError(f"interval {k + 1} starts at {intervals[k].start_s:g} s, {order} {k} "
                                f"({intervals[k - 1].start_s:g}-{intervals[k - 1].end_s:g} s): intervals must be in "
                                "order and must not overlap")  # fmt: skip
        intervals[k] = replace(intervals[k], start_s=intervals[k - 1].end_s)  # snapped: exactly touching
    if duration_s is not None:
        if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
            raise TimelineError(f"duration_s must be a positive number of seconds, got {duration_s!r}")
        if intervals[-1].end_s < duration_s - 1e-3:
            raise TimelineError(f"the timeline ends at {intervals[-1].end_s:g} s, before the song ends "
                                f"({duration_s:.3f} s); it must cover the whole song")  # fmt: skip
        kept = [iv for iv in intervals if iv.start_s < duration_s - EDGE_TOLERANCE_S]
        if len(kept) < len(intervals) or kept[-1].end_s > duration_s:
            logger.info("the timeline runs to %.3f s, past the song's end (%.3f s): cut there", intervals[-1].end_s,
                        duration_s)  # fmt: skip
        intervals = kept[:-1] + [replace(kept[-1], end_s=float(duration_s))]
    return intervals
