"""Speech synthesis with espeak-ng, and the per-frame speech envelope."""

from __future__ import annotations

import shutil
from fractions import Fraction

import numpy as np
import pytest
import torch

from avdiff.audio import tts
from avdiff.audio.clock import FrameClock
from avdiff.audio.envelope import frame_power, speech_envelope, voice_activity
from avdiff.audio.io import Waveform
from avdiff.audio.tts import EspeakNotFoundError, SpeechSynthesisError, espeak_available, list_voices, speak

needs_espeak = pytest.mark.requires_espeak  # skipped with one reason when espeak-ng is missing (conftest.py)

SENTENCE = "The quick brown fox jumps over the lazy dog."


# --- espeak-ng ------------------------------------------------------------------------------------------------------


@needs_espeak
def test_speak_returns_mono_waveform_at_requested_rate():
    for rate in (16000, 24000):
        wav = speak("Hello there.", sample_rate=rate)
        assert isinstance(wav, Waveform)
        assert wav.sample_rate == rate
        assert wav.samples.shape[0] == 1 and wav.samples.dtype == torch.float32
        assert 0.4 < wav.duration_s < 3.0
    # the same speech at two rates lasts the same time (to within the resampler's rounding)
    assert speak("Hello there.", sample_rate=16000).duration_s == pytest.approx(wav.duration_s, abs=1e-3)


@pytest.mark.slow
@needs_espeak
def test_speak_is_deterministic():
    a = speak(SENTENCE, voice="en-us+f3", speed_wpm=170, pitch=60)
    b = speak(SENTENCE, voice="en-us+f3", speed_wpm=170, pitch=60)
    assert torch.equal(a.samples, b.samples)
    assert not torch.equal(speak(SENTENCE).samples[:, :1000], speak(SENTENCE, voice="en-us+f3").samples[:, :1000])


@pytest.mark.slow
@needs_espeak
def test_duration_grows_with_text_and_falls_with_speed():
    short = speak("Hello.").duration_s
    medium = speak("Hello, how are you today?").duration_s
    long = speak("Hello, how are you today? I hope the weather is pleasant where you are.").duration_s
    assert short < medium < long
    slow, normal, fast = (speak(SENTENCE, speed_wpm=s).duration_s for s in (100, 160, 300))
    assert slow > normal > fast
    assert slow / fast > 2.0  # 3x the rate: well over twice as short
    assert speak(SENTENCE, gap_ms=200).duration_s > normal + 1.0  # 8 word gaps of 200 ms


def _median_f0(wav: Waveform) -> float:
    import librosa

    y = wav.samples[0].numpy().astype(np.float64)
    f0 = librosa.yin(y, fmin=60, fmax=500, sr=wav.sample_rate, frame_length=1024)
    env = speech_envelope(wav, 100)  # 10 ms frames
    voiced = voice_activity(env, 0.7)[: len(f0)]
    return float(np.median(f0[: len(voiced)][voiced]))


@pytest.mark.slow
@needs_espeak
def test_speech_has_voiced_energy_at_a_speaking_pitch():
    wav = speak(SENTENCE)
    x = wav.samples[0].numpy()
    assert 0.05 < np.abs(x).max() <= 1.0
    env = speech_envelope(wav, 25)
    active = voice_activity(env, 0.5)
    assert 0.4 < active.mean() < 0.98, "speech is loud most of the time, with pauses"
    # voiced frames are periodic: a strong autocorrelation peak at a pitch period of 2.5..12 ms (80..400 Hz)
    loudest = int(np.argmax(frame_power(wav, 25)))
    start, stop = FrameClock(25, wav.sample_rate).sample_range(loudest)
    seg = x[start:stop] - x[start:stop].mean()
    ac = np.correlate(seg, seg, mode="full")[len(seg) - 1 :]
    lags = np.arange(wav.sample_rate // 400, wav.sample_rate // 80)
    assert ac[lags].max() / ac[0] > 0.5
    f0 = _median_f0(wav)
    assert 80 < f0 < 250
    assert _median_f0(speak(SENTENCE, pitch=90)) > f0 * 1.2 > _median_f0(speak(SENTENCE, pitch=10)) * 1.2


@needs_espeak
def test_voice_variants_and_voice_list():
    voices = list_voices("en")
    assert "en-us" in voices and "en-gb" in voices
    assert all(v == "en" or v.startswith("en-") for v in voices)
    assert "de" in list_voices("de")
    assert speak("Hi.", voice="en-gb+m3").num_samples > 0


@needs_espeak
def test_speak_errors():
    for text in ("", "   \n\t"):
        with pytest.raises(ValueError, match="text"):
            speak(text)
    with pytest.raises(SpeechSynthesisError, match="'xx-nonexistent'"):
        speak("Hello.", voice="xx-nonexistent")
    with pytest.raises(SpeechSynthesisError, match="variant 'nope'"):
        speak("Hello.", voice="en-us+nope")  # espeak-ng itself would silently ignore it
    with pytest.raises(ValueError, match="speed_wpm.*1000"):
        speak("Hello.", speed_wpm=1000)
    with pytest.raises(ValueError, match="speed_wpm.*79"):
        speak("Hello.", speed_wpm=79)
    with pytest.raises(ValueError, match="pitch.*100"):
        speak("Hello.", pitch=100)
    with pytest.raises(ValueError, match="gap_ms"):
        speak("Hello.", gap_ms=-10)
    assert speak("-v is not an option here").duration_s > 0.5  # text goes in on stdin


def test_missing_espeak_raises_with_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no espeak-ng on PATH
    assert shutil.which("espeak-ng") is None
    assert not espeak_available()
    with pytest.raises(EspeakNotFoundError, match="apt-get install espeak-ng") as info:
        speak("Hello.")
    assert isinstance(info.value, SpeechSynthesisError) and "not installed" in str(info.value)
    with pytest.raises(EspeakNotFoundError):
        tts.list_voices()


# --- speech envelope ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fps", [25, Fraction(30000, 1001)])
@pytest.mark.parametrize("num_samples", [16000, 16001, 12345, 1])
def test_envelope_length_is_the_clocks_frame_count(fps, num_samples):
    wav = Waveform(torch.randn(1, num_samples) * 0.1, 16000)
    env = speech_envelope(wav, fps)
    assert env.dtype == np.float32 and env.shape == (FrameClock(fps, 16000).num_frames(num_samples),)
    assert env.max() == pytest.approx(1.0)  # the loudest frame
    assert (env >= 0).all() and (env <= 1).all()


def test_envelope_of_silence_is_zero_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = speech_envelope(Waveform(torch.zeros(2, 48000), 48000), 25, smooth_frames=2.0)
    assert env.shape == (25,) and not env.any()


def test_tone_burst_gives_one_inside_and_zero_outside():
    sr, fps = 16000, 25
    clock = FrameClock(fps, sr)
    x = torch.zeros(sr * 2)
    start, stop = clock.sample_range(10)[0], clock.sample_range(19)[1]  # frames 10..19 inclusive
    t = torch.arange(stop - start, dtype=torch.float64) / sr
    x[start:stop] = (0.5 * torch.sin(2 * torch.pi * 440 * t)).float()
    env = speech_envelope(Waveform(x[None], sr), fps)
    assert env.shape == (50,)
    assert (env[10:20] > 0.99).all()
    assert (env[:10] == 0).all() and (env[20:] == 0).all()
    assert voice_activity(env).nonzero()[0].tolist() == list(range(10, 20))
    # smoothing spreads the burst over its neighbours, keeps the range
    smooth = speech_envelope(Waveform(x[None], sr), fps, smooth_frames=2.0)
    assert 0 < smooth[8] < smooth[12] <= 1 and smooth[40] < 1e-3


@pytest.mark.parametrize("fps,sr", [(25, 16000), (Fraction(30000, 1001), 48000), (Fraction(24000, 1001), 44100)])
def test_envelope_respects_frame_boundaries_to_the_sample(fps, sr):
    clock = FrameClock(fps, sr)
    n = clock.num_samples(60) - 7  # the last frame is cut short
    for frame in (5, 17, 33):
        lo, hi = clock.sample_range(frame)
        for sample, inside in ((lo, frame), (hi - 1, frame), (lo - 1, frame - 1), (hi, frame + 1)):
            x = torch.zeros(1, n)
            x[0, sample] = 1.0
            env = speech_envelope(Waveform(x, sr), fps)
            assert env.nonzero()[0].tolist() == [inside], (frame, sample)
    # and the values match a direct per-frame computation with the clock's sample ranges
    x = torch.randn(1, n, generator=torch.Generator().manual_seed(1)) * torch.linspace(0, 1, n) ** 2
    power = frame_power(Waveform(x, sr), fps)
    direct = [float((x[0, slice(*clock.sample_range(i))].double() ** 2).mean()) for i in range(clock.num_frames(n))]
    np.testing.assert_allclose(power, direct, rtol=1e-9)


def test_envelope_db_mapping_and_argument_checks():
    sr = 16000
    a = torch.full((1, 640), 0.5)
    x = torch.cat([a, a * 0.1, a * 0.01, a * 0.001], dim=1)  # 0, -20, -40, -60 dB frames at 25 fps
    np.testing.assert_allclose(speech_envelope(Waveform(x, sr), 25), [1.0, 0.5, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(speech_envelope(Waveform(x, sr), 25, floor_db=80), [1.0, 0.75, 0.5, 0.25], atol=1e-6)
    with pytest.raises(ValueError, match="floor_db"):
        speech_envelope(Waveform(x, sr), 25, floor_db=0)
    with pytest.raises(ValueError, match="smooth_frames"):
        speech_envelope(Waveform(x, sr), 25, smooth_frames=-1)
    with pytest.raises(ValueError, match="threshold"):
        voice_activity(np.zeros(3), 1.5)
    assert voice_activity(np.array([0.1, np.nan, 0.9])).tolist() == [False, False, True]


@needs_espeak
def test_envelope_of_speech_rises_and_falls():
    wav = speak(SENTENCE, sample_rate=16000)
    env = speech_envelope(wav, 25, smooth_frames=1.0)
    assert len(env) == FrameClock(25, 16000).num_frames(wav.num_samples)
    active = voice_activity(env, 0.5)
    onsets = np.flatnonzero(active[1:] & ~active[:-1])
    assert len(onsets) >= 3, "several syllable groups separated by dips"
