"""Audio-reactive curves: one value per video frame, from the one clock, that say how far a visual moves.

Two kinds of curve, both plain float32 arrays ``[F]`` (``F = rhythm.num_frames``, frame ``f`` shown at ``f / fps``):

* the **envelope** ``e(f)`` in [0, 1]: how strongly the music hits at frame ``f``. It drives emphasis pulses (a zoom
  or a flash on each beat);
* the **position** ``t(f)`` in [0, 1], across each interval of a timeline: how far the picture has moved from the
  interval's start keyframe to its end keyframe. It is the envelope accumulated and normalised over the interval,
  stable-diffusion-videos' ``get_timesteps_arr`` (the cumulative percussive energy) generalised to every source:
  ``t(f) = sum(e(a+1 .. f)) / sum(e(a+1 .. b))`` for the interval ``[a, b)`` (frame ``b``, the next interval's first,
  included in the total: the interval ends one step short of its end keyframe, and the next one starts there).
  A quiet interval (no energy at all) moves linearly.

Sources (:data:`SOURCES`), as the audio-reactive tools people use (ComfyUI's audio nodes, Deforum, Parseq) offer them:

* ``"percussive"``: the energy of the percussive part (HPSS), stable-diffusion-videos' choice;
* ``"beats"``: a step on every beat, or every ``every``-th beat counted from the first downbeat (``every=4``: on the
  bars), each step eased over ``ease_s`` seconds (``ease``: ``"out"`` starts fast, so the change peaks on the beat's
  own frame; ``"in_out"`` is a smooth S; ``"none"`` is a cut). Each beat lands on the frame nearest its time;
* ``"onsets"``: the onset strength (spectral flux): every note attack;
* ``"bands"``: the magnitude in one band (``band``: ``"low"`` kicks and bass, ``"mid"``, ``"high"`` hats and cymbals);
* ``"rms"``: loudness;
* ``"linear"``: a constant envelope, a linear position: the control with no music in it.

Shaping, applied to the envelope in this order: ``gain`` (multiply, then clip to 1), ``threshold`` (values under it
become 0, the rest are rescaled to [0, 1]), ``attack_s`` / ``release_s`` (a one-pole envelope follower: rises with
time constant ``attack_s``, falls with ``release_s``; 0 follows at once), and for the position ``smooth``, a blend with
the linear ramp (stable-diffusion-videos' ``smooth``: 0 all music, 1 linear).

The **control** ``m(f)`` in [0, 1] of an audio-aligned scene (:func:`control_curve`), one curve per sound: the
source signal (:data:`CONTROL_SIGNALS`: ``"rms"``, ``"onsets"``, ``"percussive"``, as above) normalised to [0, 1]
by its maximum over the sound (all zeros for silence), smoothed by a centred moving average over
``2 * round(smoothing_s * fps / 2) + 1`` frames (edges repeat the end values; ``smoothing_s = 0``: none; the values are
not renormalised, so smoothing also lowers the peaks), and 0 past the end of the sound (a shorter sound among
several). Its levels (:func:`quantize`) are ``q(f) = round(m(f) * (levels - 1))``, integers in ``0 .. levels - 1``:
frames with the same level vector over the sounds are rendered once by the scene pipeline.

Everything here is plain data in, plain data out: a :class:`~avdiff.audio.rhythm.Rhythm` (or its arrays) or a
:class:`~avdiff.audio.io.Waveform`, and numbers, giving numpy arrays. :func:`plot_curves` and :func:`plot_control`
draw them for a look before rendering.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.ndimage import uniform_filter1d

from avdiff.audio.clock import FpsLike, FrameClock, as_fraction_fps
from avdiff.audio.io import Waveform, as_stream
from avdiff.audio.onsets import per_frame, step_features
from avdiff.audio.rhythm import Rhythm

logger = logging.getLogger(__name__)

SOURCES = ("percussive", "beats", "onsets", "bands", "rms", "linear")
BANDS = ("low", "mid", "high")
EASINGS = ("out", "in_out", "none")
# The sources that can drive a scene's control curve, and the spellings still accepted for them.
CONTROL_SIGNALS = ("rms", "onsets", "percussive")
DEPRECATED_SIGNALS = {"onset": "onsets"}
DEFAULT_LEVELS = 16


@dataclass(frozen=True)
class CurveSpec:
    """How to make a curve (see the module docstring). Every field has a checked range (:meth:`check`).

    Attributes:
        source: one of :data:`SOURCES`.
        every: ``"beats"``: a step every ``every`` beats (>= 1), counted from the first downbeat when there is one.
        band: ``"bands"``: ``"low"``, ``"mid"`` or ``"high"``.
        ease: ``"beats"``: the shape of each step (:data:`EASINGS`).
        ease_s: ``"beats"``: the length of each step, seconds (>= 0; a step is at least one frame).
        gain: envelope gain (> 0).
        threshold: envelope threshold in [0, 1).
        attack_s, release_s: envelope follower time constants, seconds (>= 0).
        smooth: the position's blend with linear, in [0, 1].
    """

    source: str = "beats"
    every: int = 1
    band: str = "low"
    ease: str = "out"
    ease_s: float = 0.1
    gain: float = 1.0
    threshold: float = 0.0
    attack_s: float = 0.0
    release_s: float = 0.0
    smooth: float = 0.0

    def check(self) -> CurveSpec:
        """Raise a ValueError naming the field and its value for anything out of range; returns self."""
        if self.source not in SOURCES:
            raise ValueError(f"curve source must be one of {SOURCES}, got {self.source!r}")
        if not isinstance(self.every, int) or isinstance(self.every, bool) or self.every < 1:
            raise ValueError(f"every must be an integer >= 1 (a step every N beats), got {self.every!r}")
        if self.band not in BANDS:
            raise ValueError(f"band must be one of {BANDS}, got {self.band!r}")
        if self.ease not in EASINGS:
            raise ValueError(f"ease must be one of {EASINGS}, got {self.ease!r}")
        checks = [
            ("ease_s", self.ease_s, 0, math.inf, True),
            ("gain", self.gain, 0, math.inf, False),
            ("threshold", self.threshold, 0, 1, True),
            ("attack_s", self.attack_s, 0, math.inf, True),
            ("release_s", self.release_s, 0, math.inf, True),
            ("smooth", self.smooth, 0, 1, True),
        ]
        for name, value, lo, hi, lo_ok in checks:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            ok = ok and (value >= lo if lo_ok else value > lo) and (value < hi if name == "threshold" else value <= hi)
            if not ok:
                bound = f"{'>=' if lo_ok else '>'} {lo}" + (
                    f" and {'<' if name == 'threshold' else '<='} {hi}" if hi != math.inf else ""
                )
                raise ValueError(f"{name} must be a number {bound}, got {value!r}")
        return self

    def with_(self, **changes) -> CurveSpec:
        """A copy with some fields changed (checked)."""
        return replace(self, **changes).check()

    def to_dict(self) -> dict:
        return asdict(self)


def source_signal(rhythm: Rhythm, spec: CurveSpec) -> np.ndarray:
    """The raw per-frame signal of ``spec.source``, float64 [F] in [0, 1] (beats: 1 on each step's frame)."""
    F = rhythm.num_frames
    if spec.source == "linear":
        return np.ones(F)
    if spec.source == "beats":
        out = np.zeros(F)
        frames = step_frames(rhythm, spec.every)
        out[frames[(frames >= 0) & (frames < F)]] = 1.0
        return out
    if spec.source == "bands":
        return np.asarray(rhythm.bands[BANDS.index(spec.band)], dtype=np.float64)
    name = {"percussive": "percussive", "onsets": "onset_strength", "rms": "rms"}[spec.source]
    return np.asarray(getattr(rhythm, name), dtype=np.float64)


def step_frames(rhythm: Rhythm, every: int = 1) -> np.ndarray:
    """The frames of every ``every``-th beat (from the first downbeat when there is one, else the first beat): the
    frame nearest each beat's time, int64 [S]."""
    beats = np.asarray(rhythm.beat_times_s, dtype=np.float64)
    if len(beats) == 0:
        return np.zeros(0, dtype=np.int64)
    start = 0
    if every > 1 and len(rhythm.downbeat_times_s):
        start = int(np.argmin(np.abs(beats - rhythm.downbeat_times_s[0])))
        start %= every  # the grid runs through the first downbeat, back to the song's start
    return np.round(beats[start::every] * rhythm.fps).astype(np.int64)


def curve_envelope(rhythm: Rhythm, spec: CurveSpec | None = None, **fields) -> np.ndarray:
    """The shaped envelope ``e(f)``, float32 [F] in [0, 1]: the source signal through gain, threshold and the
    attack/release follower (for ``"beats"``, each step's impulse; give ``release_s`` for a decaying pulse).

    Args:
        rhythm: the analysis (:func:`~avdiff.audio.rhythm.analyze_rhythm`).
        spec: the curve; or give its fields as keywords (``source="onsets", gain=2``).
    """
    spec = (spec or CurveSpec()).with_(**fields) if fields else (spec or CurveSpec()).check()
    x = np.clip(source_signal(rhythm, spec) * spec.gain, 0.0, 1.0)
    if spec.threshold > 0:
        x = np.maximum(0.0, x - spec.threshold) / (1.0 - spec.threshold)
    x = follow(x, rhythm.fps, spec.attack_s, spec.release_s)
    return x.astype(np.float32)


def follow(x: np.ndarray, fps: float, attack_s: float, release_s: float) -> np.ndarray:
    """A one-pole envelope follower: ``y`` moves towards ``x`` by ``1 - exp(-1 / (tau * fps))`` per frame, with
    ``tau = attack_s`` when rising and ``release_s`` when falling (0: at once). float64 [F]."""
    if attack_s == 0 and release_s == 0:
        return np.asarray(x, dtype=np.float64)
    up = 1.0 if attack_s == 0 else 1.0 - math.exp(-1.0 / (attack_s * fps))
    down = 1.0 if release_s == 0 else 1.0 - math.exp(-1.0 / (release_s * fps))
    y = np.empty(len(x))
    level = 0.0
    for i, v in enumerate(x):
        level += (up if v > level else down) * (v - level)
        y[i] = level
    return y


def curve_position(
    rhythm: Rhythm, edges: np.ndarray | list[int], spec: CurveSpec | None = None, **fields
) -> np.ndarray:
    """The position ``t(f)`` across each interval, float32 [F] in [0, 1): 0 on each interval's first frame, rising
    with the music towards 1 at the next interval's first frame (see the module docstring).

    Args:
        rhythm: the analysis.
        edges: the intervals' first frames and the end, int [K + 1], from 0 to ``F`` (``Timeline.frame_edges``).
        spec: the curve; or give its fields as keywords.
    """
    spec = (spec or CurveSpec()).with_(**fields) if fields else (spec or CurveSpec()).check()
    F = rhythm.num_frames
    edges = np.asarray(edges, dtype=np.int64)
    if edges.ndim != 1 or len(edges) < 2 or edges[0] != 0 or edges[-1] != F or np.any(np.diff(edges) <= 0):
        raise ValueError(f"edges must rise strictly from 0 to the {F} frames, got {edges.tolist()[:8]}...")
    envelope = curve_envelope(rhythm, spec).astype(np.float64)
    out = np.empty(F, dtype=np.float64)
    for a, b in zip(edges[:-1], edges[1:]):
        ramp = _cumulative(np.ones(F), a, b)  # linear: k / (b - a), or k / (b - a - 1) in the last interval
        if spec.source == "beats":
            part = _eased_steps(envelope, a, b, spec, rhythm.fps)
        else:
            part = _cumulative(envelope, a, b)
        out[a:b] = (1.0 - spec.smooth) * (ramp if part is None else part) + spec.smooth * ramp
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _cumulative(envelope: np.ndarray, a: int, b: int) -> np.ndarray | None:
    """``sum(e(a+1 .. f)) / sum(e(a+1 .. b))`` for ``f`` in ``[a, b)``; frame ``b`` counts when it exists (it is the
    next interval's first), so the last interval reaches 1 on its last frame. None when the total is 0."""
    n = b - a
    increments = envelope[a + 1 : b + 1]
    total = increments.sum()
    if not total > 0:
        return None if n > 1 or len(increments) else np.zeros(1)
    return np.concatenate([[0.0], np.cumsum(increments)[: n - 1]]) / total


def _eased_steps(envelope: np.ndarray, a: int, b: int, spec: CurveSpec, fps: float) -> np.ndarray | None:
    """Position over ``[a, b)`` for the beats source: one step of ``1 / S`` per step frame in ``(a, b]`` (S of them),
    each eased over ``ease_s`` seconds from its own frame; None without steps."""
    n = b - a
    hits = np.flatnonzero(envelope[a + 1 : b + 1] > 0) + 1  # offsets of the step frames in (a, b]
    if len(hits) == 0:
        return None
    length = max(1, int(round(spec.ease_s * fps))) if spec.ease != "none" else 1
    t = np.arange(n, dtype=np.float64)
    part = np.zeros(n)
    for h in hits:
        u = np.clip((t - h + 1) / length, 0.0, 1.0)  # reaches 1 on the step's last frame
        part += _ease(u, spec.ease) * envelope[a + h]
    return part / envelope[a + hits].sum()


def _ease(u: np.ndarray, kind: str) -> np.ndarray:
    if kind == "out":  # cubic ease-out: most of the step on its first frame
        return 1.0 - (1.0 - u) ** 3
    if kind == "in_out":  # smoothstep
        return u * u * (3.0 - 2.0 * u)
    return (u >= 1.0).astype(np.float64)


# --- the control of an audio-aligned scene ------------------------------------------------------------------------


def control_signal(signal: object) -> str:
    """``signal`` checked against :data:`CONTROL_SIGNALS`; an old spelling (``"onset"``) gives the new one with a
    FutureWarning. ValueError naming ``signal`` otherwise."""
    if isinstance(signal, str) and signal in DEPRECATED_SIGNALS:
        new = DEPRECATED_SIGNALS[signal]
        warnings.warn(
            f"signal={signal!r} is deprecated and will be removed; use signal={new!r}", FutureWarning, stacklevel=3
        )
        return new
    if not isinstance(signal, str) or signal not in CONTROL_SIGNALS:
        raise ValueError(f"signal must be one of {CONTROL_SIGNALS}, got {signal!r}")
    return signal


def smoothing_frames(smoothing_s: float, fps: FpsLike) -> int:
    """The moving average's width in frames: ``2 * round(smoothing_s * fps / 2) + 1`` (odd, so it is centred)."""
    return 2 * int(round(float(smoothing_s) * float(as_fraction_fps(fps)) / 2)) + 1


def control_curve(
    waveform: Waveform, fps: FpsLike, signal: str = "rms", smoothing_s: float = 0.0, num_frames: int | None = None
) -> np.ndarray:
    """The control ``m(f)`` of one sound (see the module docstring): float32 [F] in [0, 1].

    Args:
        waveform: the sound (any rate and channels).
        fps: the video frame rate.
        signal: one of :data:`CONTROL_SIGNALS`.
        smoothing_s: the moving average's span, seconds (>= 0).
        num_frames: F; default ``FrameClock(fps, sr).num_frames(N)`` of this sound. Longer: zeros after its end.
    """
    signal = control_signal(signal)
    own = FrameClock(fps, waveform.sample_rate).num_frames(waveform.num_samples)
    num_frames = own if num_frames is None else int(num_frames)
    feats = step_features(as_stream(waveform))  # the per-step features analyze_rhythm reads, without beat tracking
    starts = FrameClock(fps, feats.sample_rate).step_starts(own, feats.hop_length).numpy()
    values, reduce = {
        "onsets": (feats.flux, np.maximum),
        "rms": (feats.rms, None),
        "percussive": (feats.percussive, None),
    }[signal]
    raw = per_frame(values, starts, reduce).astype(np.float64)  # = source_signal(analyze_rhythm(waveform, fps), ...)
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


# --- plotting -----------------------------------------------------------------------------------------------------


def plot_curves(
    rhythm: Rhythm,
    position: np.ndarray | None = None,
    envelope: np.ndarray | None = None,
    edges: np.ndarray | list[int] | None = None,
    *,
    title: str | None = None,
    width_px: int = 1000,
    height_px: int = 320,
    max_seconds: float | None = None,
) -> np.ndarray:
    """A picture of the curves against time, with the beats (thin grey) and downbeats (dark) marked and the
    intervals shaded: uint8 [H, W, 3] (matplotlib, drawn off-screen).

    Args:
        rhythm: the analysis (beats, downbeats, fps).
        position: ``t(f)`` [F] (drawn as a solid line), or None.
        envelope: ``e(f)`` [F] (drawn filled), or None.
        edges: the intervals' frame edges (alternate intervals shaded), or None.
        title: a title line.
        width_px, height_px: the image's size.
        max_seconds: draw only the first this many seconds (None: all).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fps = rhythm.fps
    F = rhythm.num_frames
    end_s = F / fps if max_seconds is None else min(F / fps, max_seconds)
    shown = max(1, int(math.ceil(end_s * fps)))
    times = np.arange(shown) / fps
    dpi = 100
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    if edges is not None:
        edges = np.asarray(edges)
        for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
            if k % 2 and a / fps < end_s:
                ax.axvspan(a / fps, min(b, shown) / fps, color="#e8eef7", lw=0)
    beats = rhythm.beat_times_s[rhythm.beat_times_s <= end_s]
    for t in beats:
        ax.axvline(t, color="#bbbbbb", lw=0.6)
    for t in rhythm.downbeat_times_s[rhythm.downbeat_times_s <= end_s]:
        ax.axvline(t, color="#555555", lw=1.2)
    if envelope is not None:
        ax.fill_between(times, 0, np.asarray(envelope)[:shown], color="#f2a541", alpha=0.6, lw=0, label="envelope")
    if position is not None:
        ax.plot(times, np.asarray(position)[:shown], color="#1f5fbf", lw=1.6, label="position t(f)")
    ax.set_xlim(0, end_s)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("time (s)")
    beat_note = f"{len(rhythm.beat_times_s)} beats ({rhythm.tempo_bpm:.1f} BPM)"
    if len(rhythm.downbeat_times_s):
        beat_note += f", {len(rhythm.downbeat_times_s)} downbeats ({rhythm.beats_per_bar}/4)"
    ax.set_title(f"{title + ': ' if title else ''}{beat_note}", fontsize=10)
    if position is not None or envelope is not None:
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def plot_control(
    control: np.ndarray,
    fps: FpsLike,
    labels: list[str],
    levels: np.ndarray | None = None,
    num_levels: int | None = None,
    *,
    width_px: int = 900,
    height_px: int = 260,
) -> np.ndarray:
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
            ax.step(
                times,
                np.asarray(levels[k]) / (num_levels - 1),
                where="mid",
                color=color,
                lw=0.8,
                ls="--",
                alpha=0.7,
                label=f"{label}: level",
            )
    ax.set_xlim(0, max(times[-1], 1e-3) if len(times) else 1)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("control")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
