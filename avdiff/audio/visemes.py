"""Visemes: the mouth shapes of phonemes, blended over time with coarticulation, per video frame.

Each espeak-ng phoneme mnemonic maps to a viseme class (:data:`PHONEME_VISEMES`, en-us set), each class to a target
mouth shape: four numbers in ``[0, 1]`` (:data:`MOUTH_PARAMETERS`):

* ``mouth_open``: jaw and lip opening (0 shut, 1 an open "ah");
* ``mouth_width``: lip-corner spread (0 pursed, 0.5 relaxed, 1 a wide "ee");
* ``mouth_round``: lip rounding and protrusion (1 for "oo" and "w");
* ``lip_closure``: how far the lips are pressed together (1 for p, b, m; 0 apart).

Classes: ``closed`` (p b m), ``labiodental`` (f v: lower lip to upper teeth), ``rounded`` (w, u, o, U, O, r),
``spread`` (i, e, I, E, j), ``open`` (a, A, V, @, 3), ``teeth`` (s z t d n l T D S Z tS dZ: tongue and teeth, lips
a little apart), ``neutral`` (k g N h: made behind the lips, which follow the neighbours) and ``rest`` (pauses).
Diphthongs move: ``aI`` is ``open`` then ``spread``, ``aU`` ``open`` then ``rounded``, ``OI`` ``rounded`` then
``spread``; each half gets half the phoneme's time.

Coarticulation follows the dominance model of Cohen, M. M. & Massaro, D. W. (1993), "Modeling coarticulation in
synthetic visual speech", in *Models and Techniques in Computer Animation*, Springer, pp. 139-156. Each segment
``s`` has, per mouth parameter, a target ``T_s`` and a dominance that is largest over the segment and decays away from
it::

    D_s(t) = alpha_s * exp(-(d_s(t) / tau) ** c)

where ``d_s(t)`` is the distance in seconds from ``t`` to the segment (0 inside it: a plateau, so a long vowel keeps
its shape in the middle), ``tau`` is :data:`ANTICIPATION_S` before the segment and :data:`CARRYOVER_S` after it, and
``c`` = :data:`DOMINANCE_POWER`. The parameter at ``t`` is the dominance-weighted mean ``sum_s D_s T_s / sum_s D_s``.
``alpha`` differs per class and per parameter (:data:`VISEME_DOMINANCE`): lip closure of p/b/m and f/v dominates
everything (the lips must meet, so they do, at every bilabial), rounding of u/o/w is strong and spreads to the
consonants around it (the "t" of "too" is rounded in anticipation), and ``neutral`` and ``rest`` are weak, so velars
and pauses take their neighbours' shapes. For a voiceless stop the segment starts at its closure
(:attr:`~avdiff.audio.phonemes.PhonemeEvent.closure_sample`), because the lips are shut through the silence before
the release.

A frame's value is the mean of the trajectory at :data:`POINTS_PER_FRAME` evenly spaced instants of the frame,
which covers samples ``[frame_start(k), frame_start(k + 1))`` of :class:`avdiff.audio.clock.FrameClock`, so frames
and events share the one clock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from avdiff.audio.clock import FpsLike, FrameClock
from avdiff.audio.phonemes import PhonemeEvent

logger = logging.getLogger(__name__)

MOUTH_PARAMETERS = ("mouth_open", "mouth_width", "mouth_round", "lip_closure")

# target (mouth_open, mouth_width, mouth_round, lip_closure) per viseme class
VISEME_TARGETS: dict[str, tuple[float, float, float, float]] = {
    "closed": (0.0, 0.45, 0.2, 1.0),
    "labiodental": (0.1, 0.5, 0.1, 0.6),
    "rounded": (0.3, 0.15, 1.0, 0.0),
    "spread": (0.3, 1.0, 0.0, 0.0),
    "open": (0.9, 0.6, 0.1, 0.0),
    "teeth": (0.2, 0.6, 0.2, 0.0),
    "neutral": (0.35, 0.5, 0.2, 0.0),
    "rest": (0.0, 0.5, 0.2, 0.9),
}

# dominance alpha per class, per parameter (mouth_open, mouth_width, mouth_round, lip_closure)
VISEME_DOMINANCE: dict[str, tuple[float, float, float, float]] = {
    "closed": (5.0, 1.0, 0.5, 5.0),
    "labiodental": (4.0, 1.0, 0.5, 4.0),
    "rounded": (1.0, 3.0, 3.0, 1.0),
    "spread": (1.0, 2.0, 1.0, 1.0),
    "open": (2.0, 1.0, 1.0, 1.0),
    "teeth": (1.0, 0.5, 0.2, 1.0),
    "neutral": (0.3, 0.2, 0.1, 0.3),
    "rest": (0.5, 0.3, 0.3, 0.5),
}

ANTICIPATION_S = 0.030  # dominance decay constant before a segment (lips move early toward what comes)
CARRYOVER_S = 0.020  # and after it
DOMINANCE_POWER = 2.0  # c in exp(-(d / tau) ** c)
REACH_S = 0.3  # beyond this distance a segment's dominance is taken as 0 (it is < 1e-4 of alpha there)
POINTS_PER_FRAME = 8

_CLASSES: dict[str, tuple[str, ...]] = {
    "closed": ("p", "b", "m", "m-", "p2"),
    "labiodental": ("f", "v"),
    "rounded": ("w", "u", "u:", "U", "o", "o:", "oU", "O", "O:", "O@", "o@", "U@", "r", "r-", "3:", "W"),
    "spread": ("i", "i:", "i@", "I", "I#", "I2", "e", "e:", "E", "E2", "e@", "eI", "j", "i@3"),
    "open": ("a", "a#", "A", "A:", "A@", "aa", "0", "V", "@", "@2", "@5", "@L", "3", "a2", "&"),
    "teeth": (
        ("s", "z", "t", "d", "n", "l", "T", "D", "S", "Z", "tS", "dZ", "t#", "d#", "t2", "d2", "n-", "l/", "L", "z#")
    ),
    "neutral": ("k", "g", "N", "h", "x", "?", "k-"),
    "rest": ("_", "_:", "_!", "_^_", "_;", "_|", ";", "|", "||"),
}
PHONEME_VISEMES: dict[str, str] = {phoneme: cls for cls, phonemes in _CLASSES.items() for phoneme in phonemes}
DIPHTHONGS: dict[str, tuple[str, str]] = {
    "aI": ("open", "spread"),
    "aI@": ("open", "spread"),
    "aI3": ("open", "spread"),
    "aU": ("open", "rounded"),
    "aU@": ("open", "rounded"),
    "OI": ("rounded", "spread"),
    "eI": ("spread", "spread"),
    "oU": ("rounded", "rounded"),
}


def viseme_of(phoneme: str) -> str:
    """The viseme class of an espeak-ng mnemonic (a diphthong: the class of its first half).

    Unknown mnemonics are looked up without their modifier characters (``"I#"`` -> ``"I"``, ``"u:"`` -> ``"u"``),
    then by their first letter; failing that they are ``"neutral"``.
    """
    if phoneme in DIPHTHONGS:
        return DIPHTHONGS[phoneme][0]
    if phoneme in PHONEME_VISEMES:
        return PHONEME_VISEMES[phoneme]
    stripped = phoneme.rstrip("0123456789#:;/-@")
    for key in (stripped, phoneme[:1]):
        if key in DIPHTHONGS:
            return DIPHTHONGS[key][0]
        if key in PHONEME_VISEMES:
            return PHONEME_VISEMES[key]
    if phoneme.startswith("_"):
        return "rest"
    logger.debug("no viseme for espeak-ng phoneme %r; using neutral", phoneme)
    return "neutral"


def _segments(events: Sequence[PhonemeEvent]) -> list[tuple[str, int, int]]:
    """``(viseme, start, end)`` in samples. A stop starts at its closure, and the phoneme before it ends there (the
    silent closure is in espeak-ng's span of the phoneme before); diphthongs split into two halves."""
    segments = []
    for i, e in enumerate(events):
        start = e.closure_sample
        end = events[i + 1].closure_sample if i + 1 < len(events) else e.end_sample
        end = max(end, start + 1)
        if e.phoneme in DIPHTHONGS:
            first, second = DIPHTHONGS[e.phoneme]
            middle = (start + end) // 2
            segments += [(first, start, middle), (second, middle, end)]
        else:
            segments.append((viseme_of(e.phoneme), start, end))
    return segments


def _check_events(events: Sequence[PhonemeEvent]) -> None:
    for i, e in enumerate(events):
        if not isinstance(e, PhonemeEvent):
            raise TypeError(f"events[{i}] must be a PhonemeEvent, got {type(e).__name__}")
        if not 0 <= e.start_sample < e.end_sample or e.closure_sample > e.start_sample or e.closure_sample < 0:
            raise ValueError(f"events[{i}] has an empty or negative span: {e}")
        if i and e.closure_sample < events[i - 1].start_sample:
            raise ValueError(f"events must be in time order; events[{i}] starts before events[{i - 1}]: {e}")


def viseme_track(
    events: Sequence[PhonemeEvent], num_frames: int, fps: FpsLike, sample_rate: int
) -> dict[str, np.ndarray]:
    """Per-frame mouth targets from phoneme events, with Cohen-Massaro coarticulation (see the module doc).

    Args:
        events: phonemes in time order, positions in samples at ``sample_rate`` (as
            :func:`avdiff.audio.phonemes.speak_with_phonemes` returns them).
        num_frames: frames to make, >= 0 (``FrameClock(fps, sample_rate).num_frames(num_samples)`` covers the audio).
            Frames past the last event take the shapes that decay from it, and ``rest`` where nothing reaches.
        fps: video frame rate (an int, a float, ``"30000/1001"`` or a Fraction).
        sample_rate: the events' sample rate in Hz.

    Returns:
        ``{parameter: float32 array [num_frames] in [0, 1]}`` for each name in :data:`MOUTH_PARAMETERS`.

    Raises:
        ValueError: ``num_frames`` < 0, a bad ``fps`` or ``sample_rate``, or events out of order or with empty spans.
        TypeError: an event that is not a :class:`~avdiff.audio.phonemes.PhonemeEvent`.
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 0:
        raise ValueError(f"num_frames must be an integer >= 0, got {num_frames!r}")
    clock = FrameClock(fps, sample_rate)
    events = list(events)
    _check_events(events)
    num_frames = int(num_frames)
    # instants: POINTS_PER_FRAME per frame, at the middles of equal parts of its sample range [F, P]
    bounds = np.array([clock.frame_start(k) for k in range(num_frames + 1)], dtype=np.float64)
    fractions = (np.arange(POINTS_PER_FRAME) + 0.5) / POINTS_PER_FRAME
    times = (bounds[:-1, None] + fractions[None, :] * np.diff(bounds)[:, None]).ravel() / sample_rate  # seconds
    weight = np.full((times.size, 4), 1e-6)  # a faint rest everywhere: defined where no segment reaches
    total = weight * np.asarray(VISEME_TARGETS["rest"])
    for viseme, start, end in _segments(events):
        t0, t1 = start / sample_rate, end / sample_rate
        lo, hi = np.searchsorted(times, [t0 - REACH_S, t1 + REACH_S])
        if lo >= hi:
            continue
        t = times[lo:hi]
        before = np.clip(t0 - t, 0.0, None) / ANTICIPATION_S
        after = np.clip(t - t1, 0.0, None) / CARRYOVER_S
        shape = np.exp(-((before + after) ** DOMINANCE_POWER))  # 1 inside the segment
        dominance = shape[:, None] * np.asarray(VISEME_DOMINANCE[viseme])[None, :]  # [T, 4]
        weight[lo:hi] += dominance
        total[lo:hi] += dominance * np.asarray(VISEME_TARGETS[viseme])[None, :]
    values = (total / weight).reshape(num_frames, POINTS_PER_FRAME, 4).mean(axis=1)
    values = np.clip(values, 0.0, 1.0).astype(np.float32)
    return {name: values[:, i].copy() for i, name in enumerate(MOUTH_PARAMETERS)}


def frames_of_event(event: PhonemeEvent, fps: FpsLike, sample_rate: int) -> range:
    """The frames that show any sample of ``event`` (frame ``k`` covers ``[frame_start(k), frame_start(k + 1))``)."""
    clock = FrameClock(fps, sample_rate)
    first = clock.frame_of_sample(event.start_sample)
    last = clock.frame_of_sample(event.end_sample - 1)
    return range(first, last + 1)


__all__ = [
    "DIPHTHONGS",
    "MOUTH_PARAMETERS",
    "PHONEME_VISEMES",
    "VISEME_DOMINANCE",
    "VISEME_TARGETS",
    "frames_of_event",
    "viseme_of",
    "viseme_track",
]
