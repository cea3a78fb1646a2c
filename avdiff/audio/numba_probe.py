"""The child process of :mod:`avdiff.audio.numba_cache`: ``python -m avdiff.audio.numba_probe`` runs avdiff's rhythm
analysis, and with it every librosa kernel avdiff uses, on 8 s of a 120 BPM click track, and checks the beats.

On a cold cache this compiles the kernels into it; on a warm one it loads and runs them. Exit status 0: the kernels
work; a signal (a crash in a kernel) or 1 (wrong beats: a kernel that runs another signature's code) means a broken
cache. Run only under :mod:`avdiff.audio.numba_cache`'s lock.
"""

from __future__ import annotations

import sys

from avdiff.audio.rhythm import analyze_rhythm
from avdiff.audio.synth import click_track

PROBE_BPM = 120.0


def probe() -> str | None:
    """Analyse 8 s of clicks at 120 BPM; None when tempo, beats and onsets are right, else what is wrong (a phrase)."""
    track = click_track(PROBE_BPM, duration_s=8.0)
    rhythm = analyze_rhythm(track.waveform, 25)
    if abs(rhythm.tempo_bpm - PROBE_BPM) > 3:
        return f"tempo {rhythm.tempo_bpm:.1f} BPM on clicks at {PROBE_BPM:g}"
    found, true = len(rhythm.beat_times_s), len(track.beat_times_s)
    if found < true - 3 or len(rhythm.onset_times_s) < true - 3:
        return f"{found} beats and {len(rhythm.onset_times_s)} onsets in {true} clicks"
    return None


def main() -> int:
    problem = probe()
    if problem is not None:
        print(f"librosa's kernels give wrong results: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
