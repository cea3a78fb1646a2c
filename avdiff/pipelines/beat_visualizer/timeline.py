"""The timeline of a music visualization: intervals of the song, each moving from a start keyframe to an end one.

Generative Disco (Liu et al., CHI 2024) builds a music video from intervals: each has a start and an end, a prompt or
an image, and the frames between them move in time with the music, by a design pattern: a transition (a shift in
colour, subject, style or time of day) or a hold (emphasis and consistency). :class:`Timeline` is that list:

* intervals ``(start_s, end_s, start, end, pattern)``, where ``start`` and ``end`` are a prompt (``str``) or an image
  (``pathlib.Path``); ``pattern`` one of :data:`PATTERNS`;
* checked: ordered, touching (each starts where the last ended: no gaps, no overlaps), from 0 to the song's end,
  each at least one video frame long; :class:`TimelineError` (a ValueError) names the interval and the field;
* saved to and loaded from JSON (prompts as strings, images as ``{"image": "path"}`` relative to the JSON file);
* made from the beats: :meth:`Timeline.from_beats` puts the edges on the beat grid, on downbeats where the analysis
  finds them, and adjacent intervals share keyframes (the end of one is the start of the next).

The frames of an interval come from the one clock: interval ``k`` owns frames ``[round(start_s * fps),
round(end_s * fps))`` (:meth:`Timeline.frame_edges`), so the intervals tile the video's frames exactly, and a beat on
an edge falls on that edge's frame.

An interval is a stretch of the song ``(start_s, end_s)`` whose frames move from a start keyframe to an end one by a
design pattern (:data:`PATTERNS`). A keyframe is a prompt (``str``) or an image file (``pathlib.Path``);
:func:`parse_key` reads its written forms and :func:`format_key` writes its one-line one. :func:`check_rows` (and
:func:`check_intervals`) checks a list of intervals: each with finite times, a known pattern and real keyframes; sorted
by their start; touching; ending with the song. :class:`TimelineError` (a ValueError) names every bad interval with its
field, in one message.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from avdiff.audio.clock import FpsLike, as_fraction_fps
from avdiff.user_files import read_json

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
        ((kind, text),) = value.items()
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
    raise TimelineError(
        f'{where}: a keyframe must be a prompt string, "image:PATH" or {{"image": PATH}}, got {value!r}'
    )


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


def check_rows(
    intervals, duration_s: float | None = None, labels: list[str] | None = None, problems: list[str] | None = None
) -> tuple[list[Interval], list[str]]:
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
            problems.append(
                f"{labels[k]} starts at {cur.start_s:g} s, {gap:.3f} s after {labels[k - 1]} ends "
                f"({prev.end_s:g} s): intervals must touch, with no gaps"
            )
        elif gap < -EDGE_TOLERANCE_S:
            problems.append(
                f"{labels[k]} starts at {cur.start_s:g} s, inside {labels[k - 1]} ({prev.start_s:g}-"
                f"{prev.end_s:g} s): intervals must not overlap"
            )
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
    problems = [
        f"{where} starts at {iv.start_s:g} s, after the song ends ({duration_s:.3f} s)"
        for iv, where in zip(intervals, labels)
        if iv.start_s >= duration_s - EDGE_TOLERANCE_S
    ]
    end = intervals[-1].end_s
    if end > duration_s + END_TOLERANCE_S and intervals[-1].start_s < duration_s - EDGE_TOLERANCE_S:
        problems.append(
            f"{labels[-1]} ends at {end:g} s, {end - duration_s:.3f} s after the song ends "
            f"({duration_s:.3f} s); the timeline must end with the song"
        )
    if problems:
        raise TimelineError("; ".join(problems))
    if end < duration_s - 1e-3:
        raise TimelineError(
            f"the timeline ends at {end:g} s, before the song ends ({duration_s:.3f} s); it must cover the whole song"
        )
    if end != duration_s:
        logger.info(
            "the timeline ends at %.3f s, the song at %.3f s: the last interval ends with the song", end, duration_s
        )
    return intervals[:-1] + [replace(intervals[-1], end_s=float(duration_s))]


FORMAT_VERSION = 1


class Timeline:
    """Intervals that tile a song (see the module docstring).

    Args:
        intervals: the intervals; sorted by their start when they are not in order (with a log line).
        duration_s: the song's length; when given, the timeline must end with it (within
            :data:`~END_TOLERANCE_S`, where the last interval is cut to it); an interval
            that starts after it is refused.
        labels: how the user knows each interval in the messages (default ``"interval K"``, 1-based, as given).

    Raises:
        TimelineError: naming every bad interval (by its label) with its reason, in one message.

    Example::

        tl = Timeline([Interval(0, 8, "a city at dusk", "a city at night"),
                       Interval(8, 16, "a city at night", Path("neon.png"), "color")])
        tl.save("song.timeline.json"); Timeline.load("song.timeline.json")
        tl = Timeline.from_beats(analyze_rhythm("song.mp3"), ["a forest", Path("sea.jpg")], beats_per_interval=8)
    """

    def __init__(
        self,
        intervals: list[Interval] | tuple[Interval, ...],
        duration_s: float | None = None,
        labels: list[str] | None = None,
    ):
        intervals, labels = check_rows(intervals, duration_s, labels)
        self.intervals = tuple(intervals)
        self.labels = tuple(labels)  # how the user knows each interval ("row 3", "interval 2"), kept through sorting

    def __len__(self) -> int:
        return len(self.intervals)

    def __iter__(self):
        return iter(self.intervals)

    def __getitem__(self, k: int) -> Interval:
        return self.intervals[k]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Timeline) and self.intervals == other.intervals

    def __repr__(self) -> str:
        return f"Timeline({len(self)} intervals, {self.end_s:.2f} s, keyframes {len(self.keyframes())})"

    @property
    def end_s(self) -> float:
        return self.intervals[-1].end_s

    def keyframes(self) -> list[Key]:
        """The distinct keyframes, in order of first appearance."""
        seen: dict[Key, None] = {}
        for iv in self.intervals:
            seen.setdefault(iv.start)
            seen.setdefault(iv.end)
        return list(seen)

    def prompts(self) -> list[str]:
        return [k for k in self.keyframes() if isinstance(k, str)]

    def images(self) -> list[Path]:
        return [k for k in self.keyframes() if isinstance(k, Path)]

    def frame_edges(self, fps: FpsLike, num_frames: int) -> np.ndarray:
        """The first frame of each interval and the end: int64 [K + 1], ``0`` to ``num_frames``. Interval ``k`` owns
        frames ``[round(start_s * fps), round(end_s * fps))``; the last runs to ``num_frames``.

        Raises:
            TimelineError: an interval shorter than one frame at this rate, or a timeline that ends before the last
                frame starts.
        """
        rate = as_fraction_fps(fps)
        edges = [round(Fraction(iv.start_s) * rate) for iv in self.intervals] + [num_frames]
        if round(Fraction(self.end_s) * rate) < num_frames - 1:
            raise TimelineError(
                f"the timeline ends at {self.end_s:.3f} s, before the video's last frame "
                f"({num_frames} frames at {float(rate):g} fps: {float(num_frames / rate):.3f} s)"
            )
        edges = np.asarray(edges, dtype=np.int64)
        short = np.flatnonzero(np.diff(edges) <= 0)
        if len(short):
            k = int(short[0])
            iv = self.intervals[k]
            raise TimelineError(
                f"{self.labels[k]} ({iv.start_s:.3f}-{iv.end_s:.3f} s) is shorter than one frame at "
                f"{float(rate):g} fps"
            )
        return edges

    # --- JSON -----------------------------------------------------------------------------------------------------

    def to_dict(self, base: Path | None = None) -> dict:
        """``{"version": 1, "intervals": [{"start_s", "end_s", "start", "end", "pattern"}, ...]}``; images as
        ``{"image": path}``, relative to ``base`` when they are inside it."""

        def key(k: Key):
            if isinstance(k, str):
                return {"prompt": k} if is_ambiguous_prompt(k) else k
            path = Path(os.path.abspath(k))
            if base is not None and path.is_relative_to(base):
                path = path.relative_to(base)
            return {"image": str(path)}

        return {
            "version": FORMAT_VERSION,
            "intervals": [
                {
                    "start_s": iv.start_s,
                    "end_s": iv.end_s,
                    "start": key(iv.start),
                    "end": key(iv.end),
                    "pattern": iv.pattern,
                }
                for iv in self.intervals
            ],
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the timeline as JSON (atomically; image paths relative to the file's folder)."""
        path = Path(path)
        if path.is_dir():
            raise TimelineError(f"{str(path)!r} is a folder; give a file name such as song.timeline.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial")
        tmp.write_text(json.dumps(self.to_dict(path.parent.resolve()), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def from_dict(
        cls, data: object, base: Path | None = None, source: str = "the timeline", duration_s: float | None = None
    ) -> Timeline:
        """A timeline from its JSON form (see :meth:`to_dict`); image paths relative to ``base``."""
        if isinstance(data, list):
            data = {"intervals": data}
        if not isinstance(data, dict) or not isinstance(data.get("intervals"), list):
            raise TimelineError(f'{source}: expected an object with an "intervals" list, got {type(data).__name__}')
        version = data.get("version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise TimelineError(f"{source}: version {version!r} is not one this avdiff reads ({FORMAT_VERSION})")
        intervals, labels, problems = [], [], []
        for k, item in enumerate(data["intervals"]):
            where = f"interval {k + 1}"
            try:
                if not isinstance(item, dict):
                    raise TimelineError(f"{where}: expected an object, got {item!r}")
                missing = [f for f in ("start_s", "end_s", "start", "end") if f not in item]
                if missing:
                    raise TimelineError(f"{where}: missing {', '.join(missing)}")
                unknown = sorted(set(item) - {"start_s", "end_s", "start", "end", "pattern"})
                if unknown:
                    raise TimelineError(f"{where}: unknown field(s) {', '.join(unknown)}")
                times = []
                for name in ("start_s", "end_s"):
                    value = item[name]
                    if isinstance(value, bool) or not isinstance(value, (int, float)):
                        raise TimelineError(f"{where}: {name} must be a number of seconds, got {value!r}")
                    times.append(float(value))
                intervals.append(
                    Interval(
                        times[0],
                        times[1],
                        parse_key(item["start"], base, f"{where}: start"),
                        parse_key(item["end"], base, f"{where}: end"),
                        item.get("pattern", "subject"),
                    )
                )
                labels.append(where)
            except TimelineError as e:  # every bad interval is named, in one message
                problems.append(str(e))
        try:
            if problems:  # raises, naming the intervals that did not parse and every other bad one
                check_rows(intervals, None, labels, problems)
            return cls(intervals, duration_s, labels)
        except TimelineError as e:
            raise TimelineError(f"{source}: {e}") from None

    @classmethod
    def load(cls, path: str | os.PathLike, duration_s: float | None = None) -> Timeline:
        """Read a timeline JSON file; image paths are relative to its folder.

        Raises:
            TimelineError: a missing or unreadable file, bad JSON (with its line and column), or a bad timeline.
        """
        path = Path(path)
        name = repr(str(path))
        if not path.exists():
            raise TimelineError(f"{name}: no such file")
        if path.is_dir():
            raise TimelineError(f"{name}: is a folder, not a timeline JSON file")
        try:
            data = read_json(path)  # a byte-order mark (Notepad's UTF-8) is accepted
        except UnicodeDecodeError as e:
            raise TimelineError(f"{name}: not a text file ({e.reason})") from None
        except json.JSONDecodeError as e:
            raise TimelineError(f"{name}: not JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
        return cls.from_dict(data, path.resolve().parent, name, duration_s)

    # --- tables (the demo edits the timeline as one) -------------------------------------------------------------

    COLUMNS = ("start_s", "end_s", "start", "end", "pattern")

    def rows(self) -> list[list]:
        """One row per interval: ``[start_s, end_s, start, end, pattern]``, keyframes in their text form."""
        return [
            [round(iv.start_s, 3), round(iv.end_s, 3), format_key(iv.start), format_key(iv.end), iv.pattern]
            for iv in self.intervals
        ]

    @classmethod
    def from_rows(cls, rows: list[list], base: Path | None = None, duration_s: float | None = None) -> Timeline:
        """A timeline from table rows (:meth:`rows`); blank rows are skipped, rows out of order are sorted by their
        start. TimelineError names every bad row, counted from 1 as the table shows them (blank rows included)."""
        intervals, labels, problems = [], [], []
        for k, row in enumerate(rows):
            where = f"row {k + 1}"
            cells = ["" if c is None or (isinstance(c, float) and math.isnan(c)) else c for c in list(row)]
            if all(str(c).strip() == "" for c in cells):
                continue
            if len(cells) < 4:
                problems.append(f"{where}: expected start_s, end_s, start, end and pattern, got {row!r}")
                continue
            found = []
            times = []
            for name, cell in zip(("start_s", "end_s"), cells[:2]):
                try:
                    times.append(float(cell))
                except (TypeError, ValueError):
                    found.append(f"{where}: {name} must be a number of seconds, got {cell!r}")
            keys = []
            for name, cell in zip(("start", "end"), cells[2:4]):
                try:
                    keys.append(parse_key(cell, base, f"{where}: {name}"))
                except TimelineError as e:
                    found.append(str(e))
            if found:
                problems += found
                continue
            pattern = str(cells[4]).strip() if len(cells) > 4 and str(cells[4]).strip() else "subject"
            intervals.append(Interval(times[0], times[1], keys[0], keys[1], pattern))
            labels.append(where)
        if problems:  # raises, naming the rows that did not parse and every other bad one
            check_rows(intervals, None, labels, problems)
        return cls(intervals, duration_s, labels)

    # --- made from the music --------------------------------------------------------------------------------------

    @classmethod
    def from_beats(
        cls,
        rhythm,
        keyframes: list[Key] | tuple[Key, ...],
        beats_per_interval: int = 8,
        patterns: list[str] | tuple[str, ...] = ("subject",),
        duration_s: float | None = None,
    ) -> Timeline:
        """Intervals of ``beats_per_interval`` beats, their edges on the beat grid (on downbeats where the analysis
        found them and ``beats_per_interval`` is a whole number of bars), cycling through ``keyframes``.

        Interval ``i`` goes from ``keyframes[i % n]`` to ``keyframes[(i + 1) % n]``, so adjacent intervals share a
        keyframe, and its pattern is ``patterns[i % len(patterns)]``. The lead-in before the first edge and the tail
        after the last join their neighbours when shorter than half an interval. Without beats (silence) the song is
        cut into ``max(1, n - 1)`` equal intervals.

        Args:
            rhythm: :func:`~avdiff.audio.rhythm.analyze_rhythm`'s result.
            keyframes: prompts (``str``) and images (``Path``); one keyframe gives holds of it.
            beats_per_interval: beats per interval (>= 1); 8 is two 4/4 bars.
            patterns: the patterns to cycle through.
            duration_s: the song's length (default: its frames, ``num_frames / fps``).
        """
        keys = [parse_key(k, where=f"keyframe {i + 1}") for i, k in enumerate(keyframes)]
        if not keys:
            raise TimelineError("keyframes: give at least one prompt or image")
        if not isinstance(beats_per_interval, int) or isinstance(beats_per_interval, bool) or beats_per_interval < 1:
            raise TimelineError(f"beats_per_interval must be an integer >= 1, got {beats_per_interval!r}")
        patterns = list(patterns) or ["subject"]
        end = float(rhythm.num_frames / rhythm.fps) if duration_s is None else float(duration_s)
        beats = np.asarray(rhythm.beat_times_s, dtype=np.float64)
        beats = beats[(beats > 0) & (beats < end)]
        if len(beats) < 2:
            logger.warning("no beat grid (%d beats): the %.1f s are cut into equal intervals", len(beats), end)
            count = max(1, len(keys) - 1)
            edges = [end * k / count for k in range(count + 1)]
        else:
            anchor = 0
            meter = int(getattr(rhythm, "beats_per_bar", 4) or 4)
            downbeats = np.asarray(getattr(rhythm, "downbeat_times_s", np.zeros(0)))
            if len(downbeats) and beats_per_interval % meter == 0:
                anchor = int(np.argmin(np.abs(beats - downbeats[0]))) % beats_per_interval
            grid = beats[anchor::beats_per_interval]
            period = float(np.median(np.diff(beats))) * beats_per_interval
            edges = [0.0]
            for t in grid:
                if t - edges[-1] >= period / 2:
                    edges.append(float(t))
            if end - edges[-1] < period / 2 and len(edges) > 1:
                edges.pop()
            edges.append(end)
        n = len(keys)
        intervals = [
            Interval(a, b, keys[i % n], keys[(i + 1) % n] if n > 1 else keys[0], patterns[i % len(patterns)])
            for i, (a, b) in enumerate(zip(edges[:-1], edges[1:]))
        ]
        return cls(intervals, end)

    def with_duration(self, duration_s: float) -> Timeline:
        """The timeline checked against a song of ``duration_s``: it must end with the song (see ``Timeline``);
        the messages name the intervals by their labels (the table's rows, the file's intervals)."""
        return Timeline(self.intervals, duration_s, list(self.labels))
