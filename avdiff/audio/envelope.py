"""Per-video-frame speech loudness: the audio side of lip-sync scoring.

:func:`speech_envelope` gives each video frame the RMS loudness of exactly the audio samples that
:class:`~avdiff.audio.clock.FrameClock` assigns to it, in dB below the loudest frame of the clip, mapped linearly
onto [0, 1]. Talking mouths open with loudness, so this is what mouth openness is correlated with in
:mod:`avdiff.metrics.lipsync`.
"""

from __future__ import annotations

import logging

import numpy as np

from avdiff.audio.clock import FpsLike, FrameClock
from avdiff.audio.io import Waveform

logger = logging.getLogger(__name__)


def frame_power(waveform: Waveform, fps: FpsLike = 25) -> np.ndarray:
    """Mean square of the mono signal over each video frame's samples, float64 [F].

    ``F = FrameClock(fps, sample_rate).num_frames(num_samples)``. Frame ``i`` averages the samples
    ``clock.sample_range(i)``; the last frame, which may run past the end of the audio, averages the samples it has.
    Computed from a cumulative sum of squares at the clock's frame boundaries (no loop over frames).
    """
    if not isinstance(waveform, Waveform):
        raise TypeError(f"waveform must be a Waveform, got {type(waveform).__name__}")
    clock = FrameClock(fps, waveform.sample_rate)
    x = waveform.to_mono().samples[0]  # channels that cancel in the mean: the loudest one (Waveform.to_mono)
    x = x.detach().cpu().numpy().astype(np.float64)
    n = x.shape[0]
    num_frames = clock.num_frames(n)
    if num_frames == 0:
        return np.zeros(0, dtype=np.float64)
    bounds = np.minimum(clock.step_starts(num_frames, hop_length=1).numpy(), n)  # [F + 1] sample boundaries
    cumsum = np.concatenate([[0.0], np.cumsum(x * x)])  # cumsum[j] = sum of x[:j] ** 2
    energy = cumsum[bounds[1:]] - cumsum[bounds[:-1]]
    counts = bounds[1:] - bounds[:-1]  # >= 1 for every frame, since num_frames is ceil(n * fps / sr)
    return np.maximum(energy, 0.0) / np.maximum(counts, 1)


def speech_envelope(
    waveform: Waveform,
    fps: FpsLike = 25,
    *,
    floor_db: float = 40.0,
    smooth_frames: float = 0.0,
) -> np.ndarray:
    """Per-video-frame loudness of speech, in [0, 1].

    For each frame, the RMS of the mono signal over exactly that frame's samples (see :func:`frame_power`), in dB
    relative to the loudest frame of the clip, mapped linearly from ``[-floor_db, 0]`` dB to ``[0, 1]`` and clipped:
    the loudest frame is 1, frames ``floor_db`` or more below it are 0, digital silence is 0. An all-silent clip gives
    all zeros.

    Args:
        waveform: audio, any number of channels (averaged to mono) at any rate.
        fps: video frame rate (25, 29.97, "30000/1001", a Fraction).
        floor_db: dynamic range in dB that maps onto [0, 1]; > 0.
        smooth_frames: standard deviation, in frames, of a gaussian smoothing applied after the mapping; 0 for none.

    Returns:
        float32 array [F], ``F = FrameClock(fps, waveform.sample_rate).num_frames(waveform.num_samples)``.
    """
    if not np.isfinite(floor_db) or floor_db <= 0:
        raise ValueError(f"floor_db must be a positive number of dB, got {floor_db!r}")
    if not np.isfinite(smooth_frames) or smooth_frames < 0:
        raise ValueError(f"smooth_frames must be >= 0 frames, got {smooth_frames!r}")
    power = frame_power(waveform, fps)
    peak = float(power.max()) if power.size else 0.0
    if peak <= 0.0:
        return np.zeros(power.shape, dtype=np.float32)
    ratio = power / peak
    db = 10.0 * np.log10(ratio, out=np.full_like(ratio, -np.inf), where=ratio > 0)  # silence -> -inf dB -> 0
    env = np.clip((db + floor_db) / floor_db, 0.0, 1.0)
    if smooth_frames > 0 and env.size > 1:
        from scipy.ndimage import gaussian_filter1d

        env = gaussian_filter1d(env, sigma=float(smooth_frames), mode="nearest")
    return env.astype(np.float32)


def voice_activity(envelope: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """Frames where the speech envelope is above ``threshold``: bool [F] (NaN frames are inactive).

    Args:
        envelope: [F] values in [0, 1], e.g. from :func:`speech_envelope`.
        threshold: activity threshold in envelope units, in [0, 1]. 0.2 is 8 dB above the floor at ``floor_db=40``.
    """
    if not np.isfinite(threshold) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    env = np.asarray(envelope, dtype=np.float64)
    if env.ndim != 1:
        raise ValueError(f"envelope must be 1-D [F], got shape {env.shape}")
    with np.errstate(invalid="ignore"):
        return env > threshold
