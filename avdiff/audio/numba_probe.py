"""The child process of :mod:`avdiff.audio.numba_cache`: ``python -m avdiff.audio.numba_probe`` runs avdiff's rhythm
analysis and its F0 tracker, and with them every librosa kernel avdiff uses, on 8 s of a 120 BPM click track and 1 s
of a 150 Hz voice, and checks the beats and the pitch.

On a cold cache this compiles the kernels into it; on a warm one it loads and runs them. Exit status 0: the kernels
work; a signal (a crash in a kernel) or 1 (wrong beats: a kernel that runs another signature's code) means a broken
cache. Run only under :mod:`avdiff.audio.numba_cache`'s lock.
"""

from __future__ import annotations

import sys

import numpy as np

from avdiff.audio.pitch import speech_f0
from avdiff.audio.rhythm import analyze_rhythm
from avdiff.audio.synth import click_track

PROBE_BPM = 120.0
PROBE_F0_HZ = 150.0


def probe() -> str | None:
    """Analyse 8 s of clicks at 120 BPM and 1 s of a 150 Hz voice; None when tempo, beats, onsets and F0 are right,
    else what is wrong (a phrase)."""
    track = click_track(PROBE_BPM, duration_s=8.0)
    rhythm = analyze_rhythm(track.waveform, 25)
    if abs(rhythm.tempo_bpm - PROBE_BPM) > 3:
        return f"tempo {rhythm.tempo_bpm:.1f} BPM on clicks at {PROBE_BPM:g}"
    found, true = len(rhythm.beat_times_s), len(track.beat_times_s)
    if found < true - 3 or len(rhythm.onset_times_s) < true - 3:
        return f"{found} beats and {len(rhythm.onset_times_s)} onsets in {true} clicks"
    rate = 16000
    phase = 2 * np.pi * PROBE_F0_HZ * np.arange(rate) / rate
    _, f0 = speech_f0(sum(np.sin(k * phase) / k for k in range(1, 6)), rate)
    median = float(np.median(f0)) if f0.size else float("nan")
    if not abs(median - PROBE_F0_HZ) <= 3:  # NaN (no F0 at all) fails too
        return f"F0 {median:.1f} Hz for a {PROBE_F0_HZ:g} Hz voice"
    return None


def main() -> int:
    problem = probe()
    if problem is not None:
        print(f"librosa's kernels give wrong results: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
