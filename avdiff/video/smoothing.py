"""Temporal smoothing of face landmarks, so crops aligned on them do not jitter."""

from __future__ import annotations

import logging

import numpy as np
from scipy.ndimage import gaussian_filter1d

from avdiff.video.align import _check_landmarks

logger = logging.getLogger(__name__)


def smooth_landmarks(landmarks: np.ndarray, sigma_frames: float = 1.5) -> np.ndarray:
    """Smooth landmarks over time with a Gaussian, so crops aligned on them do not jitter.

    Frames without a face (any NaN) are first filled by linear interpolation between the nearest frames with a
    face (held constant before the first and after the last one). All-NaN input is returned as is.

    Args:
        landmarks: [F, 478, 2] px (any number of points works).
        sigma_frames: standard deviation of the Gaussian in frames; 0 only fills the missing frames.

    Returns:
        float32 [F, 478, 2], a new array.
    """
    pts = _check_landmarks(landmarks, "landmarks", frames=True, any_points=True).astype(np.float64)
    if not sigma_frames >= 0:
        raise ValueError(f"sigma_frames must be >= 0, got {sigma_frames!r}")
    valid = np.isfinite(pts).all(axis=(1, 2))
    if not valid.any():
        return pts.astype(np.float32)
    if not valid.all():
        pts = _fill_missing(pts, valid)
    if sigma_frames > 0 and len(pts) > 1:
        pts = gaussian_filter1d(pts, sigma_frames, axis=0, mode="nearest")
    return pts.astype(np.float32)


def one_euro_landmarks(
    landmarks: np.ndarray,
    fps: float,
    min_cutoff_hz: float = 1.0,
    beta: float = 0.02,
    d_cutoff_hz: float = 1.0,
) -> np.ndarray:
    """Causal One-Euro filter (Casiez et al., CHI 2012) on landmarks: steady when still, little lag when moving.

    Unlike :func:`smooth_landmarks` it looks only at past frames, so it works on a live stream. The cutoff of each
    point adapts to its speed: ``min_cutoff_hz + beta * |speed in px/s|``. Missing frames are filled first as in
    :func:`smooth_landmarks`.

    Args:
        landmarks: [F, 478, 2] px.
        fps: frames per second.
        min_cutoff_hz: cutoff when still (lower: steadier).
        beta: how fast the cutoff rises with speed, per px/s (higher: less lag).
        d_cutoff_hz: cutoff of the speed estimate.

    Returns:
        float32 [F, 478, 2].
    """
    pts = smooth_landmarks(landmarks, sigma_frames=0).astype(np.float64)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    if not (min_cutoff_hz > 0 and d_cutoff_hz > 0 and beta >= 0):
        raise ValueError(
            f"need min_cutoff_hz > 0, d_cutoff_hz > 0, beta >= 0; got {min_cutoff_hz}, {d_cutoff_hz}, {beta}"
        )
    if len(pts) == 0 or not np.isfinite(pts).all():
        return pts.astype(np.float32)

    def alpha(cutoff):
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau * fps)

    out = np.empty_like(pts)
    out[0] = pts[0]
    speed = np.zeros(pts.shape[1:])
    a_d = alpha(d_cutoff_hz)
    for t in range(1, len(pts)):
        raw_speed = (pts[t] - out[t - 1]) * fps
        speed = speed + a_d * (raw_speed - speed)
        norm_speed = np.linalg.norm(speed, axis=-1, keepdims=True)
        a = alpha(min_cutoff_hz + beta * norm_speed)
        out[t] = out[t - 1] + a * (pts[t] - out[t - 1])
    return out.astype(np.float32)


def _fill_missing(pts: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation over time of the invalid frames of [F, N, 2], from the valid ones."""
    t = np.arange(len(pts))
    good = np.flatnonzero(valid)
    flat = pts.reshape(len(pts), -1)
    filled = np.empty_like(flat)
    for k in range(flat.shape[1]):
        filled[:, k] = np.interp(t, good, flat[good, k])
    return filled.reshape(pts.shape)
