"""Procedural sounds of the scene world, each with a loudness that follows a given curve.

One synthesizer per sound: ``crackle`` (a campfire), ``waves`` (a lake), ``rain``, ``birdsong``, ``thunder``,
``engine`` (a car), ``bell`` and ``wind`` (in grass). Each makes a *texture* (noise shaped and filtered, impulses,
chirps, harmonics, partials), flattens its short-term loudness to a constant (divided by its RMS over a sliding
window of one video frame, with a floor so silences are not blown up), and multiplies it by the loudness curve. So the
RMS of the sound over each video frame follows the curve: ``frame_rms ≈ level * curve`` (the tests check r >= 0.95).

:func:`scene_sound` takes the curve per video frame (at ``fps``) or per sample (``fps=None``);
:func:`random_envelope` draws curves of a few families (steady, rising, falling, smooth, pulsing, bursts). Everything
is deterministic under ``seed``.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import signal
from scipy.ndimage import uniform_filter1d

logger = logging.getLogger(__name__)

SOUNDS = ("crackle", "waves", "rain", "birdsong", "thunder", "engine", "bell", "wind")
ENVELOPE_KINDS = ("steady", "rising", "falling", "smooth", "pulsing", "bursts")
LEVEL_RMS = 0.1  # RMS of a sound at loudness 1


# --- loudness curves -------------------------------------------------------------------------------------------


def random_envelope(
    rng: np.random.Generator, num_frames: int, kind: str | None = None, low: float = 0.15
) -> np.ndarray:
    """A loudness curve float32 [num_frames] in [low, 1] (one value per video frame).

    Kinds: ``steady`` (a level with a little wobble), ``rising``, ``falling``, ``smooth`` (a random smooth curve),
    ``pulsing`` (a sine of 3 to 7 frames' period), ``bursts`` (sudden onsets that decay, like thunder). ``kind=None``
    draws one. The curve's maximum is 1 except for ``steady``, whose level is drawn in [0.5, 0.95].
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not 0.0 <= low < 1.0:
        raise ValueError(f"low must be in [0, 1), got {low}")
    kind = kind or str(rng.choice(ENVELOPE_KINDS))
    t = np.linspace(0.0, 1.0, num_frames)
    if kind == "steady":
        level = rng.uniform(0.5, 0.95)
        curve = level + 0.04 * rng.standard_normal(num_frames)
        return np.clip(curve, low, 1.0).astype(np.float32)
    if kind == "rising":
        curve = t ** rng.uniform(0.6, 1.8)
    elif kind == "falling":
        curve = (1 - t) ** rng.uniform(0.6, 1.8)
    elif kind == "smooth":
        curve = sum(rng.normal() * np.cos(np.pi * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 4))
    elif kind == "pulsing":
        period = rng.uniform(3.0, 7.0)
        curve = 0.5 + 0.5 * np.sin(2 * np.pi * np.arange(num_frames) / period + rng.uniform(0, 2 * np.pi))
    elif kind == "bursts":
        curve = np.zeros(num_frames)
        for start in rng.choice(num_frames, size=min(num_frames, int(rng.integers(1, 4))), replace=False):
            decay = rng.uniform(1.0, 3.0)
            k = np.arange(num_frames) - start
            curve += np.where(k >= 0, rng.uniform(0.7, 1.0) * np.exp(-np.maximum(k, 0) / decay), 0.0)
    else:
        raise ValueError(f"unknown envelope kind {kind!r}; kinds: {list(ENVELOPE_KINDS)}")
    curve = np.asarray(curve, np.float64)
    span = curve.max() - curve.min()
    curve = (curve - curve.min()) / span if span > 1e-9 else np.ones(num_frames)
    return (low + (1 - low) * curve).astype(np.float32)


def curve_to_samples(curve: np.ndarray, num_samples: int, fps: float, sample_rate: int) -> np.ndarray:
    """A per-frame curve [F] -> per-sample [num_samples]: linear between frame centres ``(i + 0.5) / fps``, held
    flat before the first centre and after the last."""
    curve = np.asarray(curve, np.float64)
    centres = (np.arange(len(curve)) + 0.5) / fps
    times = (np.arange(num_samples) + 0.5) / sample_rate
    return np.interp(times, centres, curve)


# --- textures ---------------------------------------------------------------------------------------------------


def _sos(kind: str, freq, sample_rate: int, order: int = 2):
    return signal.butter(order, freq, btype=kind, fs=sample_rate, output="sos")


def _crackle(rng, n, sr):
    bed = signal.sosfilt(_sos("lowpass", rng.uniform(250, 600), sr), rng.standard_normal(n))  # the fire's roar
    pops = np.zeros(n)
    for start in rng.integers(0, n, rng.poisson(rng.uniform(45, 90) * n / sr)):
        length = int(sr * rng.uniform(0.002, 0.012))
        t = np.arange(length) / sr
        burst = rng.standard_normal(length) * np.exp(-t / rng.uniform(0.0008, 0.003))
        end = min(n, start + length)
        pops[start:end] += rng.uniform(1.0, 3.0) * burst[: end - start]
    pops = signal.sosfilt(_sos("bandpass", (300, rng.uniform(3000, 5000)), sr), pops)  # woody pops, not hiss
    return bed / bed.std() + 2.0 * pops / max(pops.std(), 1e-9)


def _waves(rng, n, sr):
    body = signal.sosfilt(_sos("lowpass", rng.uniform(350, 700), sr, 4), rng.standard_normal(n))
    wash = signal.sosfilt(_sos("bandpass", (1200, rng.uniform(2800, 4500)), sr), rng.standard_normal(n))
    t = np.arange(n) / sr
    swash = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.6, 1.2) * t + rng.uniform(0, 2 * np.pi))
    return body / body.std() + 0.6 * swash * wash / wash.std()


def _rain(rng, n, sr):
    out = 0.6 * signal.sosfilt(_sos("highpass", rng.uniform(1200, 2200), sr), rng.standard_normal(n))
    for start in rng.integers(0, n, rng.poisson(rng.uniform(250, 500) * n / sr)):
        length = int(sr * 0.004)
        t = np.arange(length) / sr
        ping = np.sin(2 * np.pi * rng.uniform(2500, 6000) * t) * np.exp(-t / 0.0012)
        end = min(n, start + length)
        out[start:end] += rng.uniform(0.5, 2.0) * ping[: end - start]
    return out


def _birdsong(rng, n, sr):
    out = 0.01 * rng.standard_normal(n)
    for _bird in range(int(rng.integers(2, 4))):
        base = rng.uniform(2500, 5000)
        pos = int(rng.integers(0, int(0.1 * sr)))
        while pos < n:
            for _ in range(int(rng.integers(3, 9))):  # a trill
                length = int(sr * rng.uniform(0.03, 0.08))
                t = np.arange(length) / sr
                f0, f1 = base * rng.uniform(0.8, 1.25), base * rng.uniform(0.8, 1.25)
                freq = f0 + (f1 - f0) * t / t[-1] + 300 * np.sin(2 * np.pi * rng.uniform(20, 60) * t)
                chirp = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.hanning(length)
                end = min(n, pos + length)
                out[pos:end] += rng.uniform(0.5, 1.0) * chirp[: end - pos]
                pos += int(sr * rng.uniform(0.045, 0.09))
                if pos >= n:
                    break
            pos += int(sr * rng.uniform(0.03, 0.12))
    return out


def _thunder(rng, n, sr):
    brown = signal.lfilter([1.0], [1.0, -0.995], rng.standard_normal(n))
    rumble = signal.sosfilt(_sos("lowpass", rng.uniform(90, 160), sr, 4), brown)
    out = rumble / rumble.std()
    for start in rng.integers(0, n, int(rng.integers(2, 5))):
        length = int(sr * rng.uniform(0.15, 0.4))
        t = np.arange(length) / sr
        crack = signal.sosfilt(_sos("lowpass", 1800, sr), rng.standard_normal(length)) * np.exp(
            -t / rng.uniform(0.03, 0.09)
        )
        end = min(n, start + length)
        out[start:end] += 2.5 * crack[: end - start] / max(crack.std(), 1e-9)
    return out


def _engine(rng, n, sr):
    t = np.arange(n) / sr
    f0 = rng.uniform(28, 55) * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    harmonics = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k**0.8 for k in range(1, 25))
    firing = (0.5 + 0.5 * np.cos(phase)) ** 4  # combustion noise pulses once per cycle
    noise = signal.sosfilt(_sos("lowpass", 1800, sr), rng.standard_normal(n)) * firing
    out = harmonics / harmonics.std() + 0.8 * noise / max(noise.std(), 1e-9)
    return signal.sosfilt(_sos("lowpass", rng.uniform(1500, 3000), sr), out)


def _bell(rng, n, sr):
    f0 = rng.uniform(420, 900)
    partials = [(1.0, 1.0), (2.0, 0.6), (2.76, 0.5), (5.40, 0.3), (8.93, 0.15)]
    decay = rng.uniform(0.5, 0.9)
    period = rng.uniform(0.3, 0.55)
    pre = sr  # the bell has been ringing for a second when the clip starts
    out = np.zeros(n + pre)
    start = int(rng.integers(0, int(period * sr)))
    while start < n + pre:
        t = np.arange(n + pre - start) / sr
        strike = sum(
            a * np.sin(2 * np.pi * f0 * r * t + rng.uniform(0, 2 * np.pi)) * np.exp(-t * r**0.5 / decay)
            for r, a in partials
            if f0 * r < sr / 2
        )
        out[start:] += strike
        start += int(sr * period * rng.uniform(0.9, 1.1))
    return out[pre:]


def _wind(rng, n, sr):
    nperseg = 512
    _, _, spec = signal.stft(rng.standard_normal(n), fs=sr, nperseg=nperseg)
    freqs = np.fft.rfftfreq(nperseg, 1 / sr)[:, None]  # (K, 1)
    frames = spec.shape[1]
    t = np.linspace(0, 1, frames)[None, :]
    centre = np.exp(
        np.log(rng.uniform(300, 500))
        + np.log(rng.uniform(2.0, 3.0))
        * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t + rng.uniform(0, 2 * np.pi)))
    )
    resonance = np.exp(-0.5 * (np.log(np.maximum(freqs, 1.0) / centre) / 0.18) ** 2)
    broad = 0.25 / (1 + (freqs / 400.0) ** 2)
    _, out = signal.istft(spec * (resonance + broad), fs=sr, nperseg=nperseg)
    out = np.asarray(out[:n], np.float64)
    return np.pad(out, (0, n - len(out)))


_TEXTURES = {
    "crackle": _crackle,
    "waves": _waves,
    "rain": _rain,
    "birdsong": _birdsong,
    "thunder": _thunder,
    "engine": _engine,
    "bell": _bell,
    "wind": _wind,
}


def texture(
    name: str, num_samples: int, sample_rate: int = 16000, seed: int | np.random.Generator = 0, window_s: float = 0.125
) -> np.ndarray:
    """A sound's texture at constant short-term loudness: float64 [num_samples] with RMS 1 over every window.

    The raw texture is divided by its RMS over a centred sliding window of ``window_s`` (floored at 0.3 of the
    whole clip's RMS, so gaps stay gaps), soft-limited at 4 (``4 tanh(x / 4)``) and scaled to RMS 1.
    """
    if name not in _TEXTURES:
        raise ValueError(f"unknown scene sound {name!r}; sounds: {list(SOUNDS)}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    raw = np.asarray(_TEXTURES[name](rng, num_samples, sample_rate), np.float64)
    window = max(1, int(round(window_s * sample_rate)))
    local = np.sqrt(uniform_filter1d(raw * raw, window, mode="reflect"))
    flat = raw / np.maximum(local, 0.3 * np.sqrt(np.mean(raw * raw)) + 1e-12)
    flat = 4.0 * np.tanh(flat / 4.0)  # soft limit at 4x the local RMS: no lone click dominates its frame
    return flat / max(np.sqrt(np.mean(flat * flat)), 1e-12)


def scene_sound(
    name: str,
    envelope: np.ndarray,
    *,
    fps: float | None = 8.0,
    sample_rate: int = 16000,
    seed: int | np.random.Generator = 0,
    level: float = LEVEL_RMS,
) -> np.ndarray:
    """One scene sound whose loudness follows ``envelope``.

    Args:
        name: one of :data:`SOUNDS`.
        envelope: loudness curve >= 0 (1 = ``level``): per video frame at ``fps`` ([F], the sound lasts F / fps
            seconds), or per sample when ``fps`` is None ([S]).
        fps: the curve's frame rate, or None for a per-sample curve.
        sample_rate: Hz.
        seed: an int or a numpy Generator; the same seed gives the same samples.
        level: RMS of the sound where the curve is 1.

    Returns:
        float32 [S] mono samples. Over each video frame, RMS ≈ ``level * envelope[frame]``.

    Raises:
        ValueError: unknown name, an empty or negative or non-finite curve.
    """
    env = np.asarray(envelope, np.float64)
    if env.ndim != 1 or env.size == 0:
        raise ValueError(f"envelope must be a non-empty 1-D curve, got shape {env.shape}")
    if not np.all(np.isfinite(env)) or env.min() < 0:
        raise ValueError("envelope must be finite and >= 0")
    if fps is None:
        num_samples, per_sample = env.size, env
    else:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        num_samples = int(round(env.size * sample_rate / fps))
        per_sample = curve_to_samples(env, num_samples, fps, sample_rate)
    flat = texture(name, num_samples, sample_rate, seed)
    return (level * flat * per_sample).astype(np.float32)


def mix(tracks: list[np.ndarray], peak: float = 0.95) -> tuple[np.ndarray, float]:
    """Sum equal-length tracks; scale the sum down (never up) so its peak is at most ``peak``.

    Returns (mix float32 [S], the gain applied, <= 1). An empty list is an error (there is no length)."""
    if not tracks:
        raise ValueError("mix needs at least one track")
    total = np.sum(np.stack([np.asarray(t, np.float64) for t in tracks]), axis=0)
    top = float(np.abs(total).max())
    gain = min(1.0, peak / top) if top > 0 else 1.0
    return (total * gain).astype(np.float32), gain
