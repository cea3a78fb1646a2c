"""The intervals of a music-visualization timeline: :class:`Interval`, its keyframes' written forms, and the checks
that make a list of intervals a :class:`~avdiff.visualize.timeline.Timeline`.

An interval (Generative Disco, Liu et al., CHI 2024) is a stretch of the song ``(start_s, end_s)`` whose frames move
from a start keyframe to an end one by a design pattern (:data:`PATTERNS`): a transition or a hold. A keyframe is a
prompt (``str``) or an image file (``pathlib.Path``); :func:`parse_key` reads its written forms and
:func:`format_key` writes its one-line one. :func:`check_rows` (and :func:`check_intervals`) checks a list of them:
each with finite times, a known pattern and real keyframes; sorted by their start; touching; ending with the song.
:class:`TimelineError` (a ValueError) names every bad interval with its field, in one message.

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
END_TOLERANCE_S = 0.5  # a timeline may end this far past the song (a re-encoded copy of it) and is cut there

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
    """The intervals, checked (see :func:`check_rows`), in order of their start, fitted to ``duration_s`` when given.

    Raises:
        TimelineError: naming every bad interval (1-based) with its field and reason.
    """
    return check_rows(intervals, duration_s)[0]


def check_rows(intervals, duration_s: float | None = None, labels: list[str] | None = None,
               problems: list[str] | None = None) -> tuple[list[Interval], list[str]]:  # fmt: skip
    """Check intervals and put them in order; ``(intervals, labels)`` with each interval's label beside it.

    * Each interval's fields are checked (finite times, ``end_s > start_s``, real keyframes, a known pattern); every
      bad one is named, in one error.
    * Intervals out of order are sorted by their start (stably), with a log line naming the new order.
    * They must then start at 0 and touch: each gap and each overlap is named, in one error.
    * With ``duration_s`` (the song's length): an interval that starts at or after the song's end is refused, and so
      is a timeline whose end is more than :data:`END_TOLERANCE_S` past the song's end (it would be cut without a
      word) or before it (the song would end on no picture). Within the tolerance, the last interval is cut to the
      song's end exactly.

    Args:
        intervals: :class:`Interval` s.
        duration_s: the song's length in seconds, or None.
        labels: how the user knows each interval, for the messages (``"row 3"`` of a table; default
            ``"interval K"``, 1-based, in the order given).
        problems: problems found earlier (rows that did not parse), reported in the same error.

    Raises:
        TimelineError: every problem, ``"; "``-separated, each starting with its interval's label.
    """
    intervals = list(intervals)
    labels = list(labels) if labels is not None else [f"interval {k + 1}" for k in range(len(intervals))]
    if len(labels) != len(intervals):
        raise ValueError(f"labels must name each of the {len(intervals)} intervals, got {len(labels)}")
    problems = list(problems or [])
    if not intervals and not problems:
        raise TimelineError("a timeline needs at least one interval")
    for iv, where in zip(intervals, labels):
        problems += _field_problems(iv, where)
    if problems:
        raise TimelineError("; ".join(problems))
    order = sorted(range(len(intervals)), key=lambda k: intervals[k].start_s)
    if order != list(range(len(intervals))):
        logger.info("the intervals were not in order: sorted by their start (%s)", ", ".join(labels[k] for k in order))
        intervals, labels = [intervals[k] for k in order], [labels[k] for k in order]
    if abs(intervals[0].start_s) > EDGE_TOLERANCE_S:
        problems.append(f"{labels[0]} starts at {intervals[0].start_s:g} s; the timeline must start at 0")
    for k in range(1, len(intervals)):
        prev, cur = intervals[k - 1], intervals[k]
        gap = cur.start_s - prev.end_s
        if gap > EDGE_TOLERANCE_S:
            problems.append(f"{labels[k]} starts at {cur.start_s:g} s, {gap:.3f} s after {labels[k - 1]} ends "
                            f"({prev.end_s:g} s): intervals must touch, with no gaps")  # fmt: skip
        elif gap < -EDGE_TOLERANCE_S:
            problems.append(f"{labels[k]} starts at {cur.start_s:g} s, inside {labels[k - 1]} ({prev.start_s:g}-"
                            f"{prev.end_s:g} s): intervals must not overlap")  # fmt: skip
    if problems:
        raise TimelineError("; ".join(problems))
    intervals = [intervals[0]] + [replace(cur, start_s=prev.end_s) for prev, cur in zip(intervals, intervals[1:])]
    if duration_s is not None:
        intervals = _fit_to_song(intervals, labels, duration_s)
    return intervals, labels


def _field_problems(iv: object, where: str) -> list[str]:
    if not isinstance(iv, Interval):
        return [f"{where}: expected an Interval, got {type(iv).__name__}"]
    out = []
    times_ok = True
    for name in ("start_s", "end_s"):
        value = getattr(iv, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            out.append(f"{where}: {name} must be a finite number of seconds, got {value!r}")
            times_ok = False
    if times_ok and not iv.end_s > iv.start_s:
        out.append(f"{where}: end_s ({iv.end_s:g}) must be after start_s ({iv.start_s:g})")
    for name in ("start", "end"):
        key = getattr(iv, name)
        if not isinstance(key, (str, Path)) or (isinstance(key, str) and not key.strip()):
            out.append(f"{where}: {name} must be a prompt (str) or an image (pathlib.Path), got {key!r}")
    if iv.pattern not in PATTERNS:
        out.append(f"{where}: pattern must be one of {', '.join(PATTERNS)}, got {iv.pattern!r}")
    return out


def _fit_to_song(intervals: list[Interval], labels: list[str], duration_s: float) -> list[Interval]:
    """The ordered, touching intervals checked against the song's end (see :func:`check_rows`)."""
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
        raise TimelineError(f"duration_s must be a positive number of seconds, got {duration_s!r}")
    problems = [f"{where} starts at {iv.start_s:g} s, after the song ends ({duration_s:.3f} s)"
                for iv, where in zip(intervals, labels) if iv.start_s >= duration_s - EDGE_TOLERANCE_S]  # fmt: skip
    end = intervals[-1].end_s
    if end > duration_s + END_TOLERANCE_S and intervals[-1].start_s < duration_s - EDGE_TOLERANCE_S:
        problems.append(f"{labels[-1]} ends at {end:g} s, {end - duration_s:.3f} s after the song ends "
                        f"({duration_s:.3f} s); the timeline must end with the song")  # fmt: skip
    if problems:
        raise TimelineError("; ".join(problems))
    if end < duration_s - 1e-3:
        raise TimelineError(f"the timeline ends at {end:g} s, before the song ends ({duration_s:.3f} s); it must "
                            "cover the whole song")  # fmt: skip
    if end != duration_s:
        logger.info("the timeline ends at %.3f s, the song at %.3f s: the last interval ends with the song", end,
                    duration_s)  # fmt: skip
    return intervals[:-1] + [replace(intervals[-1], end_s=float(duration_s))]
