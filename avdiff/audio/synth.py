"""Synthesized test signals with known ground truth: click tracks, drum grooves and tempo changes.

Used by the tests, ``avdiff bench audio`` and the rhythm evaluation. Every generator is deterministic under its
``seed`` and returns the audio together with the true beat times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from avdiff.audio.io import Waveform

logger = logging.getLogger(__name__)


@dataclass
class SynthTrack:
    """A generated track and its ground truth.

    Attributes:
        waveform: mono float32 [1, N].
        beat_times_s: true beat times in seconds, float64 [B].
        tempo_bpm: the tempo (the first section's, for a tempo change).
        downbeat_times_s: the first beat of each bar, float64 [D] (every 4th beat from the first unless told).
        beats_per_bar: the meter.
    """

    waveform: Waveform
    beat_times_s: np.ndarray
    tempo_bpm: float
    downbeat_times_s: np.ndarray | None = None
    beats_per_bar: int = 4

    def __post_init__(self):
        if self.downbeat_times_s is None:
            self.downbeat_times_s = self.beat_times_s[:: self.beats_per_bar]


def beat_grid(bpm: float | list[tuple[float, float]], duration_s: float, offset_s: float = 0.0) -> np.ndarray:
    """Beat times in seconds for a constant ``bpm``, or a list of ``(bpm, section_s)`` sections played in order."""
    sections = [(float(bpm), duration_s)] if np.isscalar(bpm) else list(bpm)
    times, t, section_start = [], offset_s, 0.0
    for tempo, length in sections:
        section_end = min(section_start + length, duration_s)
        while t < section_end - 1e-9:
            times.append(t)
            t += 60.0 / tempo
        section_start = section_end
    return np.asarray(times, dtype=np.float64)


def _place(out: np.ndarray, sound: np.ndarray, at_s: float, sample_rate: int, gain: float = 1.0) -> None:
    start = int(round(at_s * sample_rate))
    if start >= len(out):
        return
    n = min(len(sound), len(out) - start)
    out[start : start + n] += gain * sound[:n]


def _click(sample_rate: int, freq_hz: float = 1000.0, length_s: float = 0.03) -> np.ndarray:
    t = np.arange(int(length_s * sample_rate)) / sample_rate
    return np.sin(2 * np.pi * freq_hz * t) * np.exp(-t / 0.006)


def _kick(sample_rate: int) -> np.ndarray:
    t = np.arange(int(0.25 * sample_rate)) / sample_rate
    freq = 50.0 + 100.0 * np.exp(-t / 0.03)  # pitch sweep 150 -> 50 Hz
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    return np.sin(phase) * np.exp(-t / 0.08)


def _snare(sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.18 * sample_rate)) / sample_rate
    noise = rng.standard_normal(len(t)) * np.exp(-t / 0.04)
    tone = np.sin(2 * np.pi * 190.0 * t) * np.exp(-t / 0.05)
    return 0.6 * noise + 0.5 * tone


def _hihat(sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.05 * sample_rate)) / sample_rate
    noise = np.diff(rng.standard_normal(len(t) + 1))  # first difference: a cheap high-pass
    return 0.5 * noise * np.exp(-t / 0.012)


def _crash(sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A crash cymbal: bright noise with a long decay."""
    t = np.arange(int(1.2 * sample_rate)) / sample_rate
    noise = np.diff(rng.standard_normal(len(t) + 1))
    return 0.6 * noise * np.exp(-t / 0.35)


def _finish(out: np.ndarray, sample_rate: int, peak: float = 0.8) -> Waveform:
    out = out * (peak / max(1e-9, float(np.abs(out).max())))
    return Waveform(torch.from_numpy(out.astype(np.float32))[None], sample_rate)


def click_track(bpm: float, duration_s: float = 20.0, sample_rate: int = 22050, offset_s: float = 0.5) -> SynthTrack:
    """A metronome: a 1 kHz click on every beat (2 kHz on each bar's downbeat)."""
    beats = beat_grid(bpm, duration_s, offset_s)
    out = np.zeros(int(duration_s * sample_rate))
    low, high = _click(sample_rate), _click(sample_rate, 2000.0)
    for k, t in enumerate(beats):
        _place(out, high if k % 4 == 0 else low, t, sample_rate)
    return SynthTrack(_finish(out, sample_rate), beats, float(bpm))


def drum_track(
    bpm: float | list[tuple[float, float]],
    duration_s: float = 20.0,
    sample_rate: int = 22050,
    offset_s: float = 0.5,
    seed: int = 0,
    bass: bool = True,
    *,
    accent: float = 0.0,
    beats_per_bar: int = 4,
    pickup_beats: int = 0,
) -> SynthTrack:
    """A rock groove: kick on beats 1 and 3, snare on 2 and 4, hi-hat on every eighth note, and a bass line.

    ``bpm`` is a tempo or a list of ``(bpm, section_s)`` sections (a tempo change). The hi-hats sit between the
    beats, which is what tempts a tracker into doubling the tempo.

    Bars: ``beats_per_bar`` 4 (kick, snare, kick, snare) or 3 (kick, snare, snare); the first ``pickup_beats`` beats
    are the end of a bar before the first downbeat. ``accent`` > 0 marks every downbeat as drummers do: a crash
    cymbal (``0.5 * accent``) and a kick ``1 + accent`` times as loud. The bass plays one note per bar, from the
    downbeat. The defaults are the groove the rhythm tests have always used.
    """
    if beats_per_bar not in (3, 4):
        raise ValueError(f"beats_per_bar must be 3 or 4, got {beats_per_bar}")
    if not 0 <= pickup_beats < beats_per_bar:
        raise ValueError(f"pickup_beats must be in [0, {beats_per_bar}), got {pickup_beats}")
    rng = np.random.default_rng(seed)
    beats = beat_grid(bpm, duration_s, offset_s)
    out = np.zeros(int(duration_s * sample_rate))
    kick, snare, hat = _kick(sample_rate), _snare(sample_rate, rng), _hihat(sample_rate, rng)
    crash = _crash(sample_rate, rng) if accent > 0 else None
    for k, t in enumerate(beats):
        position = (k - pickup_beats) % beats_per_bar
        is_kick = position % 2 == 0 if beats_per_bar == 4 else position == 0
        gain = (1.0 + (accent if position == 0 else 0.0)) if is_kick else 0.8
        _place(out, kick if is_kick else snare, t, sample_rate, gain=gain)
        if crash is not None and position == 0:
            _place(out, crash, t, sample_rate, gain=0.5 * accent)
        _place(out, hat, t, sample_rate, gain=0.35)
        if k + 1 < len(beats):
            _place(out, hat, (t + beats[k + 1]) / 2, sample_rate, gain=0.3)
    downbeats = beats[pickup_beats::beats_per_bar]
    if bass:
        out += 0.15 * _bass_line(downbeats, len(out), sample_rate)
    first_bpm = float(bpm) if np.isscalar(bpm) else float(bpm[0][0])
    return SynthTrack(_finish(out, sample_rate), beats, first_bpm, downbeats, beats_per_bar)


def _bass_line(bars: np.ndarray, num_samples: int, sample_rate: int) -> np.ndarray:
    """A sustained bass note per bar from each downbeat in ``bars`` (root notes of a I-V-vi-IV progression in A)."""
    roots_hz = [55.0, 82.41, 92.5, 73.42]
    t = np.arange(num_samples) / sample_rate
    out = np.zeros(num_samples)
    for b, start in enumerate(bars):
        end = bars[b + 1] if b + 1 < len(bars) else num_samples / sample_rate
        sel = (t >= start) & (t < end)
        local = t[sel] - start
        out[sel] = np.sin(2 * np.pi * roots_hz[b % 4] * local) * np.minimum(1.0, local / 0.02)
    return out


# Grooves: (instrument, position in the bar in beats, gain). Positions between beats are eighths (x.5), shifted to
# two thirds of the beat when swung.
GROOVES: dict[str, tuple[tuple[str, float, float], ...]] = {
    # kick on every beat, a hi-hat on every off-beat eighth (house, disco)
    "four_on_the_floor": (*(("kick", b, 1.0) for b in range(4)), *(("hat", b + 0.5, 0.35) for b in range(4))),
    # kick on 1 and 3, snare on 2 and 4, hi-hats on every eighth (drum_track's groove)
    "rock": (
        ("kick", 0, 1.0),
        ("snare", 1, 0.8),
        ("kick", 2, 1.0),
        ("snare", 3, 0.8),
        *(("hat", b / 2, 0.35 if b % 2 == 0 else 0.3) for b in range(8)),
    ),
    # the off-beats loudest: an open hi-hat on every "and" above the kick on every beat, snare on 2 and 4
    "offbeat": (
        *(("kick", b, 0.8) for b in range(4)),
        ("snare", 1, 0.6),
        ("snare", 3, 0.6),
        *(("open_hat", b + 0.5, 1.0) for b in range(4)),
    ),
    # a kick pushed off the beat (1, the "and" of 2, 3), snare on 2 and 4, hi-hats on every eighth
    "syncopated": (
        ("kick", 0, 1.0),
        ("kick", 1.5, 0.9),
        ("kick", 2, 0.9),
        ("snare", 1, 0.8),
        ("snare", 3, 0.8),
        *(("hat", b / 2, 0.3) for b in range(8)),
    ),
}


def _open_hat(sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """An open hi-hat: bright noise, louder and longer than the closed one."""
    t = np.arange(int(0.2 * sample_rate)) / sample_rate
    noise = np.diff(rng.standard_normal(len(t) + 1))
    return 0.6 * noise * np.exp(-t / 0.06)


def groove_track(
    bpm: float | list[tuple[float, float]],
    duration_s: float = 20.0,
    groove: str = "rock",
    *,
    swing: float = 0.5,
    quiet_end_s: float = 0.0,
    quiet_db: float = -24.0,
    sample_rate: int = 22050,
    offset_s: float = 0.5,
    seed: int = 0,
) -> SynthTrack:
    """A drum groove from :data:`GROOVES` in 4/4, with a bass note per bar, at a tempo or a list of ``(bpm,
    section_s)`` sections.

    Args:
        bpm: a tempo, or ``[(bpm, section_s), ...]`` played in order (tempo changes).
        duration_s: length in seconds.
        groove: a key of :data:`GROOVES`.
        swing: where the eighth between two beats falls, as a share of the beat (0.5 straight, 2/3 triplet swing).
        quiet_end_s: the last seconds are played ``quiet_db`` quieter (a quiet ending; its beats are still beats).
        sample_rate, offset_s, seed: the rate, the first beat's time, the noise seed.

    Returns:
        A :class:`SynthTrack`: mono float32 [1, N] and the true beats and downbeats (every 4th beat from the first).

    Raises:
        ValueError: an unknown ``groove``, or ``swing`` outside (0, 1).
    """
    if groove not in GROOVES:
        raise ValueError(f"groove must be one of {sorted(GROOVES)}, got {groove!r}")
    if not 0.0 < swing < 1.0:
        raise ValueError(f"swing must be in (0, 1), got {swing}")
    rng = np.random.default_rng(seed)
    beats = beat_grid(bpm, duration_s, offset_s)
    out = np.zeros(int(duration_s * sample_rate))
    sounds = {
        "kick": _kick(sample_rate),
        "snare": _snare(sample_rate, rng),
        "hat": _hihat(sample_rate, rng),
        "open_hat": _open_hat(sample_rate, rng),
    }
    period = np.diff(beats, append=beats[-1] + (beats[-1] - beats[-2] if len(beats) > 1 else 0.5))
    for bar in range(0, len(beats), 4):
        for name, position, gain in GROOVES[groove]:
            k = bar + int(position)
            if k >= len(beats):
                continue
            frac = position - int(position)
            _place(out, sounds[name], beats[k] + (swing if frac else 0.0) * period[k], sample_rate, gain)
    downbeats = beats[::4]
    out += 0.15 * _bass_line(downbeats, len(out), sample_rate)
    if quiet_end_s > 0:
        start = int(max(0.0, duration_s - quiet_end_s) * sample_rate)
        out[start:] *= 10.0 ** (quiet_db / 20.0)
    first_bpm = float(bpm) if np.isscalar(bpm) else float(bpm[0][0])
    return SynthTrack(_finish(out, sample_rate), beats, first_bpm, downbeats, 4)
