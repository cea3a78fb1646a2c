import numpy as np
import pytest
import torch

from avdiff.audio import AudioLoadError, Waveform, load_audio, save_audio
from avdiff.video import write_video

from conftest import tone
from media import riff_wav, write_av_file


@pytest.fixture(scope="module")
def speechlike() -> Waveform:
    """1.5 s stereo at 44.1 kHz: a tone in one channel, a quieter tone in the other."""
    t = torch.arange(66150) / 44100
    return Waveform(
        torch.stack([0.5 * torch.sin(2 * torch.pi * 330 * t), 0.2 * torch.sin(2 * torch.pi * 660 * t)]), 44100
    )


@pytest.mark.slow
@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "ogg", "m4a"])
def test_audio_formats_round_trip(tmp_path, speechlike, ext):
    path = save_audio(tmp_path / f"a.{ext}", speechlike)
    wav = load_audio(path, mono=False)
    assert wav.samples.dtype == torch.float32 and wav.num_channels == 2
    assert wav.duration_s == pytest.approx(1.5, abs=0.03)
    if ext in ("wav", "flac"):  # lossless: sample-exact up to 16-bit quantisation
        torch.testing.assert_close(wav.samples, speechlike.samples, atol=1e-4, rtol=0)
    else:  # lossy: same energy per channel
        rms = wav.samples.pow(2).mean(dim=1).sqrt()
        assert rms[0] == pytest.approx(0.5 / 2**0.5, rel=0.1) and rms[1] == pytest.approx(0.2 / 2**0.5, rel=0.15)


@pytest.mark.parametrize("container", ["mp4", "mov", "webm"])
def test_audio_track_of_video_files(tmp_path, container):
    path = write_av_file(tmp_path / f"clip.{container}", tone(2.0, 48000))
    wav = load_audio(path, sample_rate=16000)
    assert wav.sample_rate == 16000 and wav.num_channels == 1
    assert wav.duration_s == pytest.approx(2.0, abs=0.03)
    assert wav.samples.pow(2).mean().sqrt() == pytest.approx(0.5 / 2**0.5, rel=0.1)  # RMS of the tone


def test_bytes_source(tmp_path, speechlike):
    data = save_audio(tmp_path / "a.flac", speechlike).read_bytes()
    wav = load_audio(data)
    assert wav.num_channels == 1 and wav.num_samples == 66150


def test_array_sources_and_resampling():
    x = np.sin(np.linspace(0, 200 * np.pi, 16000)).astype(np.float32)
    wav = load_audio(x, source_sample_rate=16000, sample_rate=8000)
    assert wav.samples.shape == (1, 8000) and wav.sample_rate == 8000
    pcm = (x * 32767).astype(np.int16)
    torch.testing.assert_close(
        load_audio(pcm, source_sample_rate=16000).samples[0], torch.from_numpy(x), atol=1e-4, rtol=0
    )
    stereo = torch.stack([torch.from_numpy(x), -torch.from_numpy(x)])
    # channels in opposite phase do not cancel to silence: the mono signal is the loudest channel (issue 13)
    torch.testing.assert_close(load_audio(stereo, source_sample_rate=16000, mono=True).samples[0], torch.from_numpy(x))
    assert load_audio(stereo, source_sample_rate=16000, mono=False).num_channels == 2


def test_resampling_keeps_a_tone_at_its_frequency():
    wav = load_audio(tone(1.0, 44100, freq_hz=1000).samples, source_sample_rate=44100, sample_rate=16000)
    spectrum = torch.fft.rfft(wav.samples[0]).abs()
    assert int(spectrum.argmax()) == 1000  # 1 Hz bins over 1 s


def test_silent_file_is_valid(tmp_path):
    path = save_audio(tmp_path / "silence.wav", Waveform(torch.zeros(1, 16000), 16000))
    wav = load_audio(path)
    assert wav.duration_s == 1.0 and wav.samples.abs().max() == 0


# --- every error names the source --------------------------------------------------------------------------------


def _expect_error(source, match, **kwargs):
    with pytest.raises(AudioLoadError, match=match) as info:
        load_audio(source, **kwargs)
    if isinstance(source, (str,)) or hasattr(source, "__fspath__"):
        assert str(source) in str(info.value)
    return info.value


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope.wav", "no such file")


def test_directory(tmp_path):
    _expect_error(tmp_path, "directory")


@pytest.mark.parametrize(
    "content", [b"hello world\n" * 50, bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8))]
)
def test_not_audio(tmp_path, content):
    path = tmp_path / "notes.wav"
    path.write_bytes(content)
    _expect_error(path, "not audio")


def test_image_is_not_audio(tmp_path):
    from PIL import Image

    path = tmp_path / "face.png"
    Image.new("RGB", (8, 8)).save(path)
    _expect_error(path, "not audio")


def test_video_without_audio_track(tmp_path):
    path = write_video(tmp_path / "mute.mp4", np.zeros((10, 16, 16, 3), np.uint8), 25)
    _expect_error(path, "video file with no audio track")


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "m4a"])
def test_truncated_file(tmp_path, ext):
    data = save_audio(tmp_path / f"full.{ext}", tone(2.0, 16000)).read_bytes()
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(data[: len(data) // 2])
    _expect_error(path, "truncated")


@pytest.mark.parametrize("ext", ["flac", "mp3", "m4a"])
def test_corrupt_file(tmp_path, ext):
    data = bytearray(save_audio(tmp_path / f"ok.{ext}", tone(2.0, 16000)).read_bytes())
    third = len(data) // 3
    data[third : 2 * third] = np.random.default_rng(0).integers(0, 256, third, dtype=np.uint8).tobytes()
    path = tmp_path / f"bad.{ext}"
    path.write_bytes(bytes(data))
    _expect_error(path, "corrupt|truncated")


def test_zero_length(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(riff_wav(np.zeros(0), 16000))
    _expect_error(path, "zero length|no audio|truncated|not audio|corrupt")
    _expect_error(np.zeros(0, np.float32), "zero length", source_sample_rate=16000)


def test_nan_and_inf_samples(tmp_path):
    x = np.sin(np.linspace(0, 100, 8000)).astype(np.float32)
    x[100], x[200] = np.nan, np.inf
    path = tmp_path / "nan.wav"
    path.write_bytes(riff_wav(x, 16000))
    err = _expect_error(path, "NaN or Inf")
    assert "2 samples" in err.reason
    _expect_error(torch.from_numpy(x), "NaN or Inf", source_sample_rate=16000)


def test_longer_than_max_duration(tmp_path):
    path = save_audio(tmp_path / "long.flac", tone(3.0, 16000))
    _expect_error(path, "longer than max_duration_s=2", max_duration_s=2.0)
    assert load_audio(path, max_duration_s=3.5).duration_s == pytest.approx(3.0)


def test_bad_arrays_are_explained():
    _expect_error(np.zeros((16000, 2), np.float32), r"\[N, C\]", source_sample_rate=16000)
    _expect_error(np.zeros((2, 2, 100), np.float32), r"\[C, N\]", source_sample_rate=16000)
    _expect_error(np.zeros(100, np.float32), "source_sample_rate")
    with pytest.raises(AudioLoadError, match="bytes"):
        load_audio(b"")


def test_channels_in_opposite_phase_do_not_cancel_to_silence(tmp_path, caplog):
    # sox -M speech.wav "|sox speech.wav -p vol -1" anti.wav: the mean of the two channels is exactly silence
    left = tone(2.0, 16000, 220.0).samples * torch.linspace(0.2, 1.0, 32000)
    anti = Waveform(torch.cat([left, -0.9 * left]), 16000)
    with caplog.at_level("WARNING", logger="avdiff.audio.io"):
        mono = anti.to_mono()
    assert torch.equal(mono.samples, left)  # the loudest channel, as it is
    assert "opposite phase" in caplog.text and "channel 0" in caplog.text
    loaded = load_audio(save_audio(tmp_path / "anti.wav", anti), mono=True)
    assert loaded.num_channels == 1 and float(loaded.samples.pow(2).mean()) > 0.5 * float(left.pow(2).mean())
    # ordinary stereo is averaged: identical channels, two unrelated ones (-3 dB), one silent channel (-6 dB)
    other = tone(2.0, 16000, 330.0).samples
    for right in (left, other, torch.zeros_like(left)):
        pair = Waveform(torch.cat([left, right]), 16000)
        assert torch.allclose(pair.to_mono().samples, (left + right) / 2)
    silent = Waveform(torch.zeros(2, 100), 16000)
    assert torch.equal(silent.to_mono().samples, torch.zeros(1, 100))
