"""A new intonation by PSOLA: the F0 moves by the contour asked for and nothing else does (length, timing, loudness),
seeded, and bad input refused or passed through unchanged."""

import numpy as np
import pytest
import torch

from avdiff.audio.intonation import contour_at, random_contour, random_intonation, reintonate
from avdiff.audio.io import Waveform
from avdiff.audio.pitch import speech_f0

RATE = 16000


def vowel(base_hz: float = 120.0, seconds: float = 2.0) -> Waveform:
    """A steady vowel at ``base_hz``: harmonics under formants at 700 and 1200 Hz, a pause in the middle."""
    s = np.arange(int(RATE * seconds)) / RATE
    phase = 2 * np.pi * base_hz * s
    gain = lambda f: np.exp(-(((f - 700) / 200) ** 2)) + np.exp(-(((f - 1200) / 250) ** 2))  # noqa: E731
    samples = sum(np.sin(k * phase) * (gain(k * base_hz) + 0.05 / k) for k in range(1, 30))
    samples = 0.3 * samples / np.abs(samples).max()
    samples[int(0.9 * RATE) : int(1.1 * RATE)] = 0.0
    return Waveform(torch.from_numpy(samples.astype(np.float32)), RATE)


def envelope(w: Waveform) -> np.ndarray:
    return w.samples[0].numpy().reshape(-1, 160).std(axis=1)


def test_the_f0_moves_by_the_contour_and_the_timing_does_not():
    speech = vowel()
    contour = random_contour(np.random.default_rng(0))
    out = reintonate(speech, contour, 2.0)
    assert out.samples.shape == speech.samples.shape and out.sample_rate == RATE
    times, before = speech_f0(speech.samples[0].numpy(), RATE)
    _, after = speech_f0(out.samples[0].numpy(), RATE)
    voiced = ((times > 0.1) & (times < 0.85)) | ((times > 1.15) & (times < 1.9))
    moved = 12 * np.log2(after[voiced] / before[voiced])
    asked = contour_at(times[voiced], contour, 2.0)
    assert asked.std() > 1.0  # the check has a contour to follow
    assert np.median(np.abs(moved - asked)) < 0.15
    assert np.corrcoef(moved, asked)[0, 1] > 0.98
    # the pause stays where it was, to a few ms, and the vowel keeps its loudness
    env, env_in = envelope(out), envelope(speech)
    assert env[92:108].max() < 0.01 and env[[87, 113]].min() > 0.5 * env_in[[87, 113]].min()
    assert np.median(env[20:80]) == pytest.approx(np.median(env_in[20:80]), rel=0.15)


def test_a_flat_contour_keeps_the_f0_and_a_seed_gives_the_same_speech():
    speech = vowel(200.0)
    flat = reintonate(speech, random_contour(np.random.default_rng(1)), 0.0)
    times, before = speech_f0(speech.samples[0].numpy(), RATE)
    _, after = speech_f0(flat.samples[0].numpy(), RATE)
    voiced = (times > 0.1) & (times < 0.85)
    assert np.median(np.abs(12 * np.log2(after[voiced] / before[voiced]))) < 0.05
    a = random_intonation(speech, np.random.default_rng(3))
    b = random_intonation(speech, np.random.default_rng(3))
    c = random_intonation(speech, np.random.default_rng(4))
    assert torch.equal(a.samples, b.samples)
    assert not torch.allclose(a.samples, c.samples, atol=1e-3)


def test_speech_without_a_voice_or_too_short_comes_back_unchanged_and_bad_input_is_refused():
    contour = random_contour(np.random.default_rng(0))
    noise = Waveform(torch.from_numpy(np.random.default_rng(0).normal(0, 0.01, RATE).astype(np.float32)), RATE)
    assert torch.equal(reintonate(noise, contour, 2.0).samples, noise.samples)
    short = Waveform(vowel().samples[:, :400], RATE)
    assert torch.equal(reintonate(short, contour, 2.0).samples, short.samples)
    with pytest.raises(ValueError, match="semitones"):
        reintonate(vowel(), contour, -1.0)
    with pytest.raises(ValueError, match="semitones"):
        reintonate(vowel(), contour, float("nan"))
    with pytest.raises(ValueError, match="not finite"):
        reintonate(Waveform(torch.full((1, RATE), float("nan")), RATE), contour, 2.0)
    stereo = Waveform(vowel().samples.repeat(2, 1), RATE)  # averaged, as the motion truth hears it
    assert reintonate(stereo, contour, 2.0).samples.shape == (1, 2 * RATE)
