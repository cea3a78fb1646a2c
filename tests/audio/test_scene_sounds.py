"""The scene sounds: deterministic per seed, loudness that follows the curve, and each sound its own character."""

import numpy as np
import pytest

from avdiff.audio.scene_sounds import (
    ENVELOPE_KINDS,
    LEVEL_RMS,
    SOUNDS,
    curve_to_samples,
    mix,
    random_envelope,
    scene_sound,
)

SR, FPS = 16000, 8


def frame_rms(x: np.ndarray, fps: int = FPS) -> np.ndarray:
    hop = SR // fps
    return np.sqrt((x[: len(x) // hop * hop].astype(np.float64).reshape(-1, hop) ** 2).mean(axis=1))


def centroid_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    return float((spectrum * freqs).sum() / spectrum.sum())


@pytest.mark.slow
@pytest.mark.parametrize("name", SOUNDS)
def test_each_sound_is_deterministic_per_seed_and_follows_its_loudness_curve(name):
    curves = [
        random_envelope(np.random.default_rng(k), 16, kind)
        for k, kind in enumerate(("rising", "falling", "smooth", "pulsing", "bursts"))
    ]
    for k, curve in enumerate(curves):
        x = scene_sound(name, curve, fps=FPS, seed=k)
        assert x.dtype == np.float32 and x.shape == (32000,)
        assert np.array_equal(x, scene_sound(name, curve, fps=FPS, seed=k))
        assert not np.array_equal(x, scene_sound(name, curve, fps=FPS, seed=k + 100))
        rms = frame_rms(x)
        r = np.corrcoef(rms, curve)[0, 1]
        assert r >= 0.9, (name, k, r)
        # the level is absolute: RMS ~ LEVEL_RMS * curve, not just correlated
        assert np.median(rms / (LEVEL_RMS * curve)) == pytest.approx(1.0, abs=0.2), name
        assert np.abs(x).max() < 1.0


def test_the_sounds_differ_where_they_should():
    flat = np.ones(16, np.float32)
    sounds = {name: scene_sound(name, flat, seed=3) for name in SOUNDS}
    c = {name: centroid_hz(x) for name, x in sounds.items()}
    assert c["thunder"] < 400 and c["engine"] < 800, c  # low rumble, low engine harmonics
    assert c["birdsong"] > 2000 and c["rain"] > 2000, c  # high chirps, hiss and drops
    assert c["thunder"] < c["waves"] < c["rain"]
    # the engine is periodic at its firing rate (28-55 Hz): a strong autocorrelation peak at one period
    x = sounds["engine"].astype(np.float64)
    ac = np.correlate(x[:8000], x[:8000], mode="full")[7999:]
    lag = SR // 55 + np.argmax(ac[SR // 55 : SR // 28 + 1])
    assert ac[lag] / ac[0] > 0.5

    # the bell is tonal: a few spectral peaks hold most of the energy; rain (noise) is not
    def top_share(y):
        p = np.sort(np.abs(np.fft.rfft(y)) ** 2)[::-1]
        return p[:200].sum() / p.sum()

    assert top_share(sounds["bell"]) > 0.5 > top_share(sounds["rain"])


def test_per_sample_curves_silence_and_bad_input():
    curve = np.linspace(0.0, 1.0, 16000)
    x = scene_sound("wind", curve, fps=None, seed=0)
    assert x.shape == (16000,)
    assert np.abs(x[:800]).max() < 0.02 < np.abs(x[-800:]).max()
    assert not np.any(scene_sound("rain", np.zeros(16), seed=0))
    with pytest.raises(ValueError, match="unknown scene sound"):
        scene_sound("trumpet", np.ones(16))
    with pytest.raises(ValueError, match="finite and >= 0"):
        scene_sound("rain", np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="non-empty"):
        scene_sound("rain", np.zeros(0))
    with pytest.raises(ValueError, match="fps"):
        scene_sound("rain", np.ones(4), fps=0)


def test_envelope_families_and_curve_interpolation():
    rng = np.random.default_rng(0)
    for kind in ENVELOPE_KINDS:
        e = random_envelope(rng, 16, kind, low=0.2)
        assert e.shape == (16,) and e.min() >= 0.2 - 1e-6 and e.max() <= 1.0 + 1e-6, kind
    rising, falling = random_envelope(rng, 16, "rising"), random_envelope(rng, 16, "falling")
    assert np.all(np.diff(rising) >= 0) and np.all(np.diff(falling) <= 0)
    with pytest.raises(ValueError, match="unknown envelope kind"):
        random_envelope(rng, 16, "wobbly")
    # linear between frame centres: the sample at frame i's centre has frame i's value
    s = curve_to_samples(np.array([0.0, 1.0]), 4000, FPS, SR)
    assert (
        s[999] == pytest.approx(0.0, abs=1e-3)
        and s[3000] == pytest.approx(1.0)
        and s[2000] == pytest.approx(0.5, abs=1e-3)
    )


def test_mix_only_scales_down():
    a, b = np.full(10, 0.7, np.float32), np.full(10, 0.6, np.float32)
    out, gain = mix([a, b])
    assert gain == pytest.approx(0.95 / 1.3) and np.abs(out).max() == pytest.approx(0.95)
    quiet, gain = mix([a * 0.1])
    assert gain == 1.0 and np.allclose(quiet, a * 0.1)
    with pytest.raises(ValueError, match="at least one"):
        mix([])
