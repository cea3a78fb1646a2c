"""Downbeats: which beat starts each bar, from how strongly the beats are accented.

Bars are heard because their first beat is marked: a louder kick, a crash cymbal, a new bass note. Each beat gets an
accent, the sum of two robust z-scores measured within ±2 analysis steps (±23 ms) of it: the loudness-weighted onset
strength (``loud`` of :mod:`avdiff.audio.onsets`) and the log of the low-band power (kick and bass). For a meter of
``M`` beats, bar position ``p`` gathers the beats ``p, p + M, p + 2M ...``; the downbeat position is the one whose
accents are highest, and how far it stands out is the smallest Welch t statistic of its accents against any other
position's. 4/4 is assumed; 3/4 is taken only
when its best position stands out clearly more (``t`` 1.5 times 4/4's and at least :data:`MIN_CONFIDENCE`). With no
position standing out from every other one (``t`` below :data:`MIN_CONFIDENCE`, or fewer than four bars) no downbeats are reported:
:func:`avdiff.pipelines.beat_visualizer.timeline.Timeline.from_beats` then lays its grid on the beats alone.

This is an accent model, not a trained downbeat tracker (madmom's RNNs are): one bar phase per tempo section (a beat
missed or added at a tempo change shifts no bar after it), no changes of meter, no pickup bars after the start.
``pytest tests/audio/test_rhythm.py -k downbeat`` measures it on generated drum tracks whose bars begin with an accent
(:func:`avdiff.audio.synth.drum_track` with ``accent``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

METERS = (4, 3)  # beats per bar, the assumed one first
MIN_CONFIDENCE = 3.0  # Welch t of the downbeat position's accents against the others'
MIN_BARS = 4
REACH_STEPS = 2


@dataclass
class Bars:
    """Downbeats found in a beat sequence.

    Attributes:
        downbeat_times_s: float64 [D], a subset of the beats; empty when none stands out.
        beats_per_bar: the meter (4 unless 3/4 was measured).
        phase: the index of the first downbeat among the beats (-1 with none).
        confidence: Welch's t of the downbeat position's accents against the other positions' (0 with too few
            beats).
    """

    downbeat_times_s: np.ndarray
    beats_per_bar: int
    phase: int
    confidence: float


def beat_accents(beat_times_s: np.ndarray, loud: np.ndarray, low_power: np.ndarray, steps_per_s: float) -> np.ndarray:
    """The accent of each beat, float64 [B]: robust z-score of the peak loudness-weighted onset strength plus that of
    the peak log low-band power, both within ±2 steps of the beat.

    Args:
        beat_times_s: [B] seconds.
        loud: per-step loudness-weighted onset strength [T].
        low_power: per-step low-band mel power [T].
        steps_per_s: analysis steps per second.
    """
    if len(beat_times_s) == 0:
        return np.zeros(0)
    steps = np.clip(np.round(np.asarray(beat_times_s) * steps_per_s).astype(int), 0, len(loud) - 1)
    window = np.arange(-REACH_STEPS, REACH_STEPS + 1)
    idx = np.clip(steps[:, None] + window[None, :], 0, len(loud) - 1)  # [B, 5]
    onset = np.asarray(loud, dtype=np.float64)[idx].max(axis=1)
    low = np.log10(np.asarray(low_power, dtype=np.float64)[idx].max(axis=1) + 1e-10)
    return _robust_z(onset) + _robust_z(low)


def find_downbeats(
    beat_times_s: np.ndarray,
    loud: np.ndarray,
    low_power: np.ndarray,
    steps_per_s: float,
    sections_s: list[tuple[float, float]] | None = None,
) -> Bars:
    """The downbeats among ``beat_times_s`` (see the module docstring).

    ``sections_s``: ``[(start, stop), ...]`` seconds, the tempo sections; each gets its own bar phase (a beat
    missed or added where the tempo changes then shifts no bar after it), and the confidence is measured on the
    bars of all sections together. A section of fewer than 16 beats joins the one before it (the first, the one
    after it). None: one section, one phase for the whole track.
    """
    beats = np.asarray(beat_times_s, dtype=np.float64)
    accents = beat_accents(beats, loud, low_power, steps_per_s)
    groups = _section_groups(beats, sections_s)
    best = {meter: _sections_best_phase(accents, groups, meter) for meter in METERS}
    meter = 4
    if best[3][1] >= MIN_CONFIDENCE and best[3][1] > 1.5 * best[4][1]:
        meter = 3
    starts, confidence = best[meter]
    if confidence < MIN_CONFIDENCE:
        logger.info(
            "no downbeats: no bar position stands out (t = %.1f for 4/4, %.1f for 3/4)", best[4][1], best[3][1]
        )
        return Bars(np.zeros(0), meter, -1, confidence)
    index = np.concatenate([np.arange(a + phase, b, meter) for (a, b), phase in zip(groups, starts)])
    logger.info("downbeats: %d/4 bars, first at beat %d (t = %.1f)", meter, int(index[0]), confidence)
    return Bars(beats[index], meter, int(index[0]), confidence)


def _section_groups(beats: np.ndarray, sections_s: list[tuple[float, float]] | None) -> list[tuple[int, int]]:
    """Beat index ranges ``[(first, stop), ...]`` tiling the beats, one per section of at least ``4 * MIN_BARS``
    beats (a shorter one joins its neighbour)."""
    if not sections_s or len(sections_s) < 2:
        return [(0, len(beats))]
    cuts = [int(np.searchsorted(beats, start)) for start, _ in sections_s[1:]]
    bounds = [0, *cuts, len(beats)]
    groups = [(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    merged: list[tuple[int, int]] = []
    for a, b in groups:
        if merged and (b - a < 4 * MIN_BARS or merged[-1][1] - merged[-1][0] < 4 * MIN_BARS):
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def _sections_best_phase(accents: np.ndarray, groups: list[tuple[int, int]], meter: int) -> tuple[list[int], float]:
    """Each group's bar phase (its position with the highest mean accent), and the smallest Welch t of the accents
    on the bars' first beats against those of any other position, over all groups' bars together."""
    if len(groups) == 1:
        phase, t = _best_phase(accents, meter)
        return [phase], t
    phases = [_best_phase(accents[a:b], meter)[0] for a, b in groups]
    if len(accents) < meter * MIN_BARS:
        return phases, 0.0
    position = np.concatenate([(np.arange(b - a) - phase) % meter for (a, b), phase in zip(groups, phases)])
    on = accents[position == 0]
    return phases, float(min(_welch_t(on, accents[position == q]) for q in range(1, meter)))


def _best_phase(accents: np.ndarray, meter: int) -> tuple[int, float]:
    """``(phase, t)``: the bar position with the highest mean accent, and the smallest Welch t of its accents against
    any other position's (a downbeat must stand out from every other beat of the bar, not only on average: with kicks
    on 1 and 3 alike, 1 does not stand out from 3)."""
    if len(accents) < meter * MIN_BARS:
        return 0, 0.0
    groups = [accents[phase::meter] for phase in range(meter)]
    phase = int(np.argmax([g.mean() for g in groups]))
    on = groups[phase]
    t = min(_welch_t(on, g) for q, g in enumerate(groups) if q != phase)
    return phase, float(t)


def _welch_t(a: np.ndarray, b: np.ndarray) -> float:
    spread = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return float((a.mean() - b.mean()) / max(spread, 1e-9))


def _robust_z(x: np.ndarray) -> np.ndarray:
    """``(x - median) / (1.4826 MAD)``; zeros when ``x`` does not vary."""
    med = np.median(x)
    mad = 1.4826 * np.median(np.abs(x - med))
    if mad <= 1e-12:
        spread = x.std()
        return (x - med) / spread if spread > 1e-12 else np.zeros_like(x)
    return (x - med) / mad
