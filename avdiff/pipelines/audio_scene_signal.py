"""The control signal of an audio-aligned scene: one value per video frame per sound, in [0, 1], and its levels.

``m_k(f)`` for sound ``k`` and video frame ``f``:

1. the per-frame envelope of :func:`avdiff.audio.rhythm.analyze_rhythm` (the one frame clock: frame ``f`` owns the
   analysis steps whose centres fall in its samples): ``"rms"`` loudness, ``"onset"`` the onset strength (spectral
   flux, the strongest in the frame), ``"percussive"`` the energy of the percussive (HPSS) part;
2. normalised to [0, 1] by its maximum over the sound (all zeros for silence);
3. smoothed by a centred moving average over ``2 * round(smoothing_s * fps / 2) + 1`` frames (edges repeat the
   end values; ``smoothing_s = 0``: none). A wider window gives more coherent, less responsive control; the values
   stay in [0, 1] and are not renormalised, so smoothing also lowers the peaks;
4. frames past the end of a sound (a shorter sound among several) are 0.

Levels: ``q_k(f) = round(m_k(f) * (levels - 1))``, an integer in ``0 .. levels - 1``. Frames with the same level
vector ``(q_1(f), .., q_K(f))`` are rendered once (:mod:`avdiff.pipelines.audio_scene`), and the scale a level gives
is ``1 + strength * q / (levels - 1)``.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.ndimage import uniform_filter1d

from avdiff.audio.clock import FpsLike, FrameClock, as_fraction_fps
from avdiff.audio.io import Waveform
from avdiff.audio.rhythm import analyze_rhythm

logger = logging.getLogger(__name__)

SIGNALS = ("rms", "onset", "percussive")
DEFAULT_LEVELS = 16
_RHYTHM_FIELD = {"rms": "rms", "onset": "onset_strength", "percussive": "percussive"}


def smoothing_frames(smoothing_s: float, fps: FpsLike) -> int:
    """The moving average's width in frames: ``2 * round(smoothing_s * fps / 2) + 1`` (odd, so it is centred)."""
    return 2 * int(round(float(smoothing_s) * float(as_fraction_fps(fps)) / 2)) + 1


def control_curve(waveform: Waveform, fps: FpsLike, signal: str = "rms", smoothing_s: float = 0.0,
                  num_frames: int | None = None) -> np.ndarray:  # fmt: skip
    """``m(f)`` of one sound (see the module docstring): float32 [F] in [0, 1].

    Args:
        waveform: the sound (any rate and channels).
        fps: the video frame rate.
        signal: one of :data:`SIGNALS`.
        smoothing_s: the moving average's span, seconds (>= 0).
        num_frames: F; default ``FrameClock(fps, sr).num_frames(N)`` of this sound. Longer: zeros after its end.
    """
    if signal not in SIGNALS:
        raise ValueError(f"signal must be one of {SIGNALS}, got {signal!r}")
    own = FrameClock(fps, waveform.sample_rate).num_frames(waveform.num_samples)
    num_frames = own if num_frames is None else int(num_frames)
    rhythm = analyze_rhythm(waveform, fps)
    raw = np.asarray(getattr(rhythm, _RHYTHM_FIELD[signal]), dtype=np.float64)[:own]
    top = raw.max() if raw.size else 0.0
    curve = raw / top if top > 0 else np.zeros_like(raw)
    width = smoothing_frames(smoothing_s, fps)
    if width > 1 and curve.size:
        curve = uniform_filter1d(curve, size=width, mode="nearest")
    out = np.zeros(num_frames, dtype=np.float64)
    out[: min(num_frames, curve.size)] = curve[:num_frames]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def quantize(curves: np.ndarray, levels: int = DEFAULT_LEVELS) -> np.ndarray:
    """Curves float [K, F] in [0, 1] -> levels int64 [K, F] in ``0 .. levels - 1`` (rounded to nearest)."""
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels!r}")
    return np.rint(np.clip(curves, 0.0, 1.0) * (levels - 1)).astype(np.int64)


def plan_units(levels: np.ndarray, chunk_frames: int = 1, share: bool = True) -> tuple[list[np.ndarray], np.ndarray]:
    """What to denoise: the frames cut into chunks of ``chunk_frames`` (the last may be shorter), each a *unit* of
    level vectors int64 [n, K]; unit 0 is always the base frame (one all-zero vector).

    With ``share``, equal units (the same level vectors in the same order) are denoised once: with ``chunk_frames=1``
    a unit is one frame's level vector, so the cost is the number of distinct level vectors, whatever the length.

    Args:
        levels: int [K, F].

    Returns:
        (the units, in order of first appearance; each chunk's unit index, int64 [ceil(F / chunk_frames)]).
    """
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames!r}")
    k, f = levels.shape
    units = [np.zeros((1, k), np.int64)]
    seen = {(units[0].shape, units[0].tobytes()): 0}
    chunk_unit = []
    for start in range(0, f, chunk_frames):
        unit = np.ascontiguousarray(levels[:, start : start + chunk_frames].T, dtype=np.int64)  # (n, K)
        key = (unit.shape, unit.tobytes())
        if not share or key not in seen:
            seen[key] = len(units)
            units.append(unit)
        chunk_unit.append(seen[key])
    return units, np.asarray(chunk_unit, dtype=np.int64)


def plot_control(control: np.ndarray, fps: FpsLike, labels: list[str], levels: np.ndarray | None = None,
                 num_levels: int | None = None, *, width_px: int = 900,
                 height_px: int = 260) -> np.ndarray:  # fmt: skip
    """A picture of the control curves against time: uint8 [H, W, 3] (matplotlib, drawn off-screen).

    Args:
        control: ``m_k(f)`` float [K, F] in [0, 1].
        fps: the video frame rate (frame ``f`` at ``f / fps`` s).
        labels: one label per curve (the word the sound drives).
        levels, num_levels: the quantized levels int [K, F] and their count, drawn as steps (or None).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    control = np.atleast_2d(np.asarray(control, dtype=np.float64))
    if len(labels) != len(control):
        raise ValueError(f"labels must name each of the {len(control)} curves, got {len(labels)}")
    times = np.arange(control.shape[1]) / float(as_fraction_fps(fps))
    fig = Figure(figsize=(width_px / 100, height_px / 100), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    colors = ["#d9480f", "#1f5fbf", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d"]
    for k, (curve, label) in enumerate(zip(control, labels)):
        color = colors[k % len(colors)]
        ax.plot(times, curve, color=color, lw=1.6, label=f"{label}: m(f)")
        if levels is not None and num_levels:
            ax.step(times, np.asarray(levels[k]) / (num_levels - 1), where="mid", color=color, lw=0.8, ls="--",
                    alpha=0.7, label=f"{label}: level")  # fmt: skip
    ax.set_xlim(0, max(times[-1], 1e-3) if len(times) else 1)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("control")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
