"""``avdiff bench rhythm``: beats on the right metrical level, on generated tracks whose beats are known.

Each track is a drum groove of :func:`avdiff.audio.synth.groove_track` (40 s: two 20 s sections, or one tempo):
tempo changes in both directions between 60 and 180 BPM, grooves with the kick on every beat, on 1 and 3 (rock),
under louder off-beat hi-hats, pushed off the beat (syncopated), swung eighths, and quiet endings. Three trackers
read the same audio:

* ``avdiff``: :func:`avdiff.audio.rhythm.analyze_rhythm`;
* ``librosa``: ``librosa.beat.beat_track`` with its defaults (one tempo for the track);
* ``tempogram DP``: librosa's dynamic-programming tracker along the local tempo of each tempogram column
  (``librosa.feature.tempo(aggregate=None)``), which follows a tempo change but not the metrical level.

Scores: the beat F-measure at ±70 ms (``mir_eval.beat.f_measure``, the first 5 s skipped as ``trim_beats`` does),
and the share of sections on the right level: a section is, when the median interval of the beats found inside it
(2 s in from either end) gives its tempo within 5 %.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import librosa
import numpy as np

from avdiff._extras import require
from avdiff.audio.rhythm import analyze_rhythm
from avdiff.audio.synth import SynthTrack, groove_track
from avdiff.bench.timing import format_table

mir_eval = require("mir_eval", "eval", "avdiff bench rhythm")  # its beat F-measure

logger = logging.getLogger(__name__)

SAMPLE_RATE = 22050
LEVEL_TOLERANCE = 0.05  # a section is on the right level when its tempo is within 5 %
EDGE_S = 2.0  # seconds left out at either end of a section when its tempo is measured
TRACKERS = ("avdiff", "librosa", "tempogram DP")


@dataclass(frozen=True)
class RhythmCase:
    """One benchmark track: ``sections`` ``[(bpm, seconds), ...]``, the groove, its swing and a quiet ending."""

    name: str
    sections: tuple[tuple[float, float], ...]
    groove: str
    swing: float = 0.5
    quiet_end_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return float(sum(length for _, length in self.sections))

    def make(self) -> SynthTrack:
        return groove_track(
            list(self.sections),
            self.duration_s,
            self.groove,
            swing=self.swing,
            quiet_end_s=self.quiet_end_s,
            sample_rate=SAMPLE_RATE,
        )


CASES = (
    RhythmCase("kick on every beat, 90 -> 130", ((90, 20), (130, 20)), "four_on_the_floor"),
    RhythmCase("kick on every beat, 130 -> 90", ((130, 20), (90, 20)), "four_on_the_floor"),
    RhythmCase("rock, 60 -> 95", ((60, 20), (95, 20)), "rock"),
    RhythmCase("rock, 120 -> 180", ((120, 20), (180, 20)), "rock"),
    RhythmCase("rock, 180 -> 120", ((180, 20), (120, 20)), "rock"),
    RhythmCase("off-beat hi-hats, 100 -> 150", ((100, 20), (150, 20)), "offbeat"),
    RhythmCase("off-beat hi-hats, 170 -> 110", ((170, 20), (110, 20)), "offbeat"),
    RhythmCase("syncopated, 110 -> 75", ((110, 20), (75, 20)), "syncopated"),
    RhythmCase("syncopated, 85 -> 125", ((85, 20), (125, 20)), "syncopated"),
    RhythmCase("swing rock, 100", ((100, 40),), "rock", swing=2 / 3),
    RhythmCase("swing, kick on every beat, 75 -> 110", ((75, 20), (110, 20)), "four_on_the_floor", swing=2 / 3),
    RhythmCase("rock, 128, quiet ending (-24 dB, 10 s)", ((128, 40),), "rock", quiet_end_s=10.0),
    RhythmCase("off-beat hi-hats, 160 -> 115, quiet ending", ((160, 20), (115, 20)), "offbeat", quiet_end_s=10.0),
)


def librosa_beats(track: SynthTrack) -> np.ndarray:
    """librosa's own tracker with its defaults: beat times (s) [B]."""
    y = track.waveform.samples[0].numpy()
    _, times = librosa.beat.beat_track(y=y, sr=track.waveform.sample_rate, units="time")
    return np.asarray(times, dtype=np.float64)


def tempogram_dp_beats(track: SynthTrack) -> np.ndarray:
    """librosa's dynamic-programming tracker along the per-frame tempo of its tempogram: beat times (s) [B]."""
    y, sr = track.waveform.samples[0].numpy(), track.waveform.sample_rate
    envelope = librosa.onset.onset_strength(y=y, sr=sr)
    local = librosa.feature.tempo(onset_envelope=envelope, sr=sr, aggregate=None)
    _, times = librosa.beat.beat_track(onset_envelope=envelope, sr=sr, bpm=local, units="time")
    return np.asarray(times, dtype=np.float64)


def avdiff_beats(track: SynthTrack) -> np.ndarray:
    """:func:`~avdiff.audio.rhythm.analyze_rhythm`'s beats (s) [B]."""
    return analyze_rhythm(track.waveform, fps=25).beat_times_s


def beat_f_measure(reference: np.ndarray, estimated: np.ndarray) -> float:
    """mir_eval's beat F-measure at ±70 ms, the first 5 s of both skipped."""
    return float(
        mir_eval.beat.f_measure(mir_eval.beat.trim_beats(reference), mir_eval.beat.trim_beats(estimated), 0.07)
    )


def section_levels(case: RhythmCase, estimated: np.ndarray) -> list[float]:
    """The tempo each section is tracked at, as a multiple of its true tempo (1.0: the right level; 2.0 double
    time; nan: fewer than three beats inside it), one per section."""
    ratios, start = [], 0.0
    for bpm, length in case.sections:
        inside = estimated[(estimated >= start + EDGE_S) & (estimated < start + length - EDGE_S)]
        ratios.append(float(60.0 / np.median(np.diff(inside)) / bpm) if len(inside) >= 3 else float("nan"))
        start += length
    return ratios


def on_level(ratio: float) -> bool:
    """Whether a section tracked at ``ratio`` times its true tempo is on the right level (within 5 %)."""
    return bool(abs(ratio - 1.0) <= LEVEL_TOLERANCE)


def run_rhythm_bench(cases: tuple[RhythmCase, ...] = CASES) -> list[dict]:
    """One row per track and tracker: ``{"track", "tracker", "F", "levels", "on_level", "sections"}``; ``levels``
    the tracked tempo of each section over its true tempo, ``on_level`` how many sections are on the right level."""
    trackers = {"avdiff": avdiff_beats, "librosa": librosa_beats, "tempogram DP": tempogram_dp_beats}
    rows = []
    for case in cases:
        track = case.make()
        for name, tracker in trackers.items():
            beats = tracker(track)
            levels = section_levels(case, beats)
            rows.append(
                {
                    "track": case.name,
                    "tracker": name,
                    "F": beat_f_measure(track.beat_times_s, beats),
                    "levels": levels,
                    "on_level": sum(on_level(r) for r in levels),
                    "sections": len(levels),
                }
            )
            logger.info("%s, %s: F %.3f, levels %s", case.name, name, rows[-1]["F"], levels)
    return rows


def format_rows(rows: list[dict]) -> str:
    """One line per track: F and the sections on the right level for each tracker, then a total line."""
    table = []
    for track in dict.fromkeys(r["track"] for r in rows):
        line = {"track": track}
        for r in (r for r in rows if r["track"] == track):
            line[f"{r['tracker']} F"] = f"{r['F']:.3f}"
            line[f"{r['tracker']} level"] = f"{r['on_level']}/{r['sections']}"
        table.append(line)
    total = {"track": "all tracks (mean F, sections on the level)"}
    for name in TRACKERS:
        mine = [r for r in rows if r["tracker"] == name]
        total[f"{name} F"] = f"{np.mean([r['F'] for r in mine]):.3f}"
        total[f"{name} level"] = f"{sum(r['on_level'] for r in mine)}/{sum(r['sections'] for r in mine)}"
    table.append(total)
    columns = ["track"] + [f"{name} {what}" for name in TRACKERS for what in ("F", "level")]
    return format_table(table, columns)


def main(cases: tuple[RhythmCase, ...] = CASES) -> str:
    """The benchmark's table as text (see the module docstring)."""
    rows = run_rhythm_bench(cases)
    header = (
        f"avdiff bench rhythm: {len(cases)} generated drum tracks of 40 s; beat F-measure (±70 ms, mir_eval, "
        f"first 5 s skipped) and the sections tracked at their true tempo (±{LEVEL_TOLERANCE:.0%})"
    )
    return header + "\n" + format_rows(rows)
