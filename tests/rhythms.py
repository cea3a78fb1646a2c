"""A Rhythm from plain arrays, for the tests of the curves and the timeline (no audio analysed)."""

from __future__ import annotations

import numpy as np

from avdiff.audio.rhythm import Rhythm


def rhythm_of(num_frames: int, fps: float = 25.0, beats_s=(), downbeats_s=(), **per_frame) -> Rhythm:
    """A Rhythm built from plain arrays (every per-frame envelope zero unless given)."""
    zeros = np.zeros(num_frames, np.float32)
    return Rhythm(
        tempo_bpm=120.0,
        beat_times_s=np.asarray(beats_s, float),
        onset_times_s=np.zeros(0),
        fps=fps,
        onset_strength=per_frame.get("onset_strength", zeros),
        rms=per_frame.get("rms", zeros),
        percussive=per_frame.get("percussive", zeros),
        downbeat_times_s=np.asarray(downbeats_s, float),
        bands=per_frame.get("bands", np.zeros((3, num_frames), np.float32)),
    )
