"""AudioStream: a long song read block by block gives exactly what load_audio gives, with the same errors, and the
video writer muxes a file's audio without holding it."""

from __future__ import annotations

import numpy as np
import pytest
import soxr
import torch

from avdiff.audio.io import AudioLoadError, AudioStream, Waveform, load_audio, save_audio
from avdiff.audio.synth import drum_track
from avdiff.video import read_video, write_video
from avdiff.video.writer import VideoWriter

from conftest import tone
from media import riff_wav


@pytest.fixture(scope="module")
def stereo() -> Waveform:
    """4 s of drums at 44.1 kHz, the right channel a quieter, delayed copy."""
    left = drum_track(120, duration_s=4.0, sample_rate=44100).waveform.samples[0]
    return Waveform(torch.stack([left, 0.5 * torch.roll(left, 300)]), 44100)


@pytest.mark.slow
@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "m4a"])
def test_blocks_join_into_what_load_audio_gives(tmp_path, stereo, ext):
    path = save_audio(tmp_path / f"s.{ext}", stereo)
    stream = AudioStream(path)
    whole = load_audio(path, mono=False)
    assert (stream.sample_rate, stream.num_channels, stream.num_samples) == (44100, 2, whole.num_samples)
    blocks = list(stream.blocks(block_samples=5000))
    assert all(b.shape[1] <= 5000 and b.dtype == np.float32 for b in blocks) and len(blocks) > 30
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), whole.samples.numpy())  # codec padding dropped
    mono = np.concatenate(list(stream.blocks(mono=True, block_samples=3000)), axis=1)
    np.testing.assert_array_equal(mono, load_audio(path, mono=True).samples.numpy())
    down = np.concatenate(list(stream.blocks(sample_rate=22050, mono=True, block_samples=4096)), axis=1)
    assert down.shape == (1, round(whole.num_samples / 2))
    whole_mono = load_audio(path, mono=True).samples.numpy()
    np.testing.assert_allclose(down[0], soxr.resample(whole_mono[0], 44100, 22050, quality="HQ"), atol=1e-6)


def test_in_memory_sources_and_the_opposite_phase_rule(stereo, caplog):
    anti = Waveform(torch.stack([stereo.samples[0], -0.9 * stereo.samples[0]]), 44100)
    stream = AudioStream(anti)
    with caplog.at_level("WARNING"):
        mono = np.concatenate(list(stream.blocks(mono=True, block_samples=7000)), axis=1)
        list(stream.blocks(mono=True))
    np.testing.assert_array_equal(mono, anti.to_mono().samples.numpy())  # the loudest channel, not silence
    assert caplog.text.count("opposite phase") == 2  # once here, once by to_mono; not once per read
    array = AudioStream(stereo.samples.numpy(), source_sample_rate=44100)
    assert array.num_samples == stereo.num_samples and AudioStream(array).info == array.info


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.wav", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "junk.mp3", b"\x00" * 500), "FFmpeg cannot open|not audio|corrupt"),
        (lambda d: _write(d / "cut.wav", save_audio(d / "full.wav", tone(2.0)).read_bytes()[:20000]), "truncated"),
        (
            lambda d: _write(d / "nan.wav", riff_wav(np.array([0.1, np.nan, np.inf, 0.2] * 2000, np.float32), 16000)),
            "2000 samples are NaN|4000 samples are NaN",
        ),
        (lambda d: _write(d / "empty.wav", riff_wav(np.zeros(0), 16000)), "zero length|truncated|not audio|corrupt"),
    ],
)
def test_errors_are_load_audios(tmp_path, make, message):
    source = make(tmp_path)
    with pytest.raises(AudioLoadError, match=message) as streamed:
        AudioStream(source)
    with pytest.raises(AudioLoadError) as loaded:
        load_audio(source)
    assert streamed.value.reason == loaded.value.reason


def test_too_long_is_refused_on_the_scan(tmp_path):
    path = save_audio(tmp_path / "long.flac", tone(3.0))
    with pytest.raises(AudioLoadError, match="longer than max_duration_s=2"):
        AudioStream(path, max_duration_s=2.0)
    with pytest.raises(AudioLoadError, match="longer than max_duration_s=2"):
        AudioStream(AudioStream(path), max_duration_s=2.0)


@pytest.mark.slow
def test_the_writer_muxes_a_files_audio_block_by_block_fitted_to_the_video(tmp_path, stereo, monkeypatch):
    path = save_audio(tmp_path / "song.flac", stereo)
    frames = np.zeros((75, 32, 32, 3), np.uint8)  # 3 s at 25 fps: the 4 s song is cut to 3 s
    loads = []
    monkeypatch.setattr("avdiff.audio.io.load_audio", lambda *a, **k: loads.append(a))
    clip = read_video(write_video(tmp_path / "v.mp4", frames, 25, str(path)))
    assert loads == []  # the file was never loaded whole
    assert clip.audio.sample_rate == 44100 and clip.audio.num_channels == 2
    assert clip.audio.num_samples == 3 * 44100
    head = stereo.samples[:, 44100:88200]
    ratio = clip.audio.samples[:, 44100:88200].pow(2).mean(dim=1) / head.pow(2).mean(dim=1)
    assert torch.all((ratio > 0.8) & (ratio < 1.25))  # both channels, at their own levels
    longer = read_video(write_video(tmp_path / "w.mp4", np.zeros((125, 32, 32, 3), np.uint8), 25, str(path)))
    assert longer.audio.num_samples == 5 * 44100 and longer.audio.samples[:, -22050:].abs().max() < 1e-3  # padded
    with pytest.raises(AudioLoadError, match="no such file"):
        VideoWriter(tmp_path / "x.mp4", 25, tmp_path / "missing.wav")  # checked before any frame


def _write(path, data: bytes):
    path.write_bytes(data)
    return path
