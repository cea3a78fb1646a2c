"""F0 by YIN: a known intonation read to a fraction of a semitone on low and high voices, as an independent
tracker (pyin) reads espeak-ng's voices, and bad input refused."""

import librosa
import numpy as np
import pytest

from avdiff.audio import pitch
from avdiff.audio.phonemes import speak_with_phonemes
from avdiff.audio.pitch import speech_f0

RATE = 16000


def vowel(base_hz: float, seconds: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """A vowel whose F0 rises and falls 2 semitones around ``base_hz``, its harmonics under formants at 700 and
    1200 Hz (so at 300 Hz the second and fourth harmonics are louder than the first); (samples, F0 at each sample)."""
    s = np.arange(int(RATE * seconds)) / RATE
    f0 = base_hz * 2 ** (2 * np.sin(2 * np.pi * 0.8 * s) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    gain = lambda f: np.exp(-(((f - 700) / 200) ** 2)) + np.exp(-(((f - 1200) / 250) ** 2))  # noqa: E731
    samples = sum(np.sin(k * phase) * (gain(k * f0) + 0.05 / k) for k in range(1, 30))
    return samples.astype(np.float32), f0


@pytest.mark.parametrize("base_hz", [110.0, 220.0, 300.0])
def test_a_known_intonation_is_read_to_a_tenth_of_a_semitone_without_octave_slips(base_hz):
    samples, f0 = vowel(base_hz)
    times, measured = speech_f0(samples, RATE)
    assert len(times) == 1 + len(samples) // 160 and times[1] == pytest.approx(0.01)
    inner = (times > 0.1) & (times < 2.9)
    error = 12 * np.abs(np.log2(measured[inner] / np.interp(times[inner] * RATE, np.arange(len(f0)), f0)))
    # torchaudio's detect_pitch_frequency, which the motion truth used before, slipped an octave (12 semitones) on
    # more than a tenth of the 300 Hz steps
    assert np.percentile(error, 99) < 0.1


@pytest.mark.requires_espeak
@pytest.mark.parametrize("voice", ["en-us+f3", "en-gb+m5"])
def test_espeaks_voices_intonation_is_read_as_pyin_reads_it(voice):
    speech, _ = speak_with_phonemes(
        "Lucky Lucy lost her lovely lemon locket.", voice=voice, pitch=60, sample_rate=RATE
    )
    x = speech.samples.numpy().reshape(-1)
    _, yin = speech_f0(x, RATE)
    pyin, voiced, _ = librosa.pyin(x, fmin=60, fmax=400, sr=RATE, frame_length=1024, hop_length=160)
    n = min(len(yin), len(pyin))
    voiced = voiced[:n] & np.isfinite(pyin[:n])
    assert voiced.sum() > 50
    a, b = np.log2(yin[:n][voiced]), np.log2(pyin[:n][voiced])
    assert np.corrcoef(a, b)[0, 1] > 0.95
    assert np.percentile(np.abs(a - b) * 12, 95) < 1.0  # semitones: no octave slips


def test_bad_input_is_refused_and_a_clip_shorter_than_a_window_has_no_f0():
    samples, _ = vowel(150.0, seconds=0.5)
    with pytest.raises(ValueError, match=r"mono \[N\]"):
        speech_f0(np.stack([samples, samples]), RATE)
    with pytest.raises(ValueError, match="fmin < fmax"):
        speech_f0(samples, RATE, fmin=300, fmax=100)
    with pytest.raises(ValueError, match="sample_rate / 4"):
        speech_f0(samples, RATE, fmax=5000)
    times, f0 = speech_f0(samples[:500], RATE)  # 31 ms: under the 64 ms window
    assert times.size == 0 and f0.size == 0


@pytest.mark.parametrize("seconds", [5.0, 5.005, 4.3, 4.2])  # the last block: 11, 11, 11 and 1 steps
def test_a_long_clip_read_in_blocks_has_the_f0_of_one_call(monkeypatch, seconds):
    """The blocks (here 0.7 s each) cut their windows as one centred call does, zeros beyond both ends included."""
    samples = vowel(150.0, seconds)[0] * np.linspace(0.2, 1.0, int(RATE * seconds), dtype=np.float32)
    frame = 1024  # the window speech_f0 picks at 16 kHz and 60 Hz
    whole = librosa.yin(samples, fmin=60.0, fmax=400.0, sr=RATE, frame_length=frame, hop_length=160, center=True)
    monkeypatch.setattr(pitch, "BLOCK_STEPS", 70)
    _, blocked = speech_f0(samples, RATE)
    assert len(blocked) == len(whole) == 1 + len(samples) // 160
    np.testing.assert_array_equal(blocked, whole)
