from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

import avdiff.video.writer as vio
from avdiff.audio import FrameClock
from avdiff.video import VideoError, read_video, write_video
from conftest import tone


def moving_square(num_frames: int, size: int = 64) -> np.ndarray:
    """uint8 [F, size, size, 3]: a white square moving right on dark gray, so frames differ."""
    frames = np.full((num_frames, size, size, 3), 40, np.uint8)
    for i in range(num_frames):
        x = (i * 2) % (size - 16)
        frames[i, 24:40, x : x + 16] = 255
    return frames


@pytest.mark.parametrize("fps, sample_rate", [(25, 16000), ("30000/1001", 48000), (24, 44100), (60, 22050)])
def test_round_trip_of_3_s_with_audio(tmp_path, fps, sample_rate):
    clock = FrameClock(fps, sample_rate)
    n = clock.num_frames(3 * sample_rate)
    frames = moving_square(n)
    path = write_video(tmp_path / "clip.mp4", frames, fps, tone(3.0, sample_rate))
    clip = read_video(path)
    assert clip.num_frames == n and clip.fps == clock.fps
    assert clip.frames.shape == (n, 64, 64, 3) and clip.frames.dtype == torch.uint8
    assert abs(clip.audio.duration_s - clip.duration_s) <= 1 / float(clock.fps)
    assert clip.audio.sample_rate == sample_rate
    # H.264 at crf 18 is close to the input; the moving square stays where it was drawn
    err = np.abs(clip.frames.numpy().astype(int) - frames.astype(int)).mean()
    assert err < 3.0


def test_audio_is_fitted_to_the_video_length(tmp_path):
    # 2 s of video, 5 s of audio: the audio is cut to 2 s; with 1 s of audio it is padded with silence
    for seconds in (5.0, 1.0):
        clip = read_video(write_video(tmp_path / "v.mp4", moving_square(50), 25, tone(seconds, 16000)))
        assert abs(clip.audio.duration_s - 2.0) <= 1 / 25
    tail = clip.audio.samples[0, 16000 + 2000 :]
    assert tail.abs().max() < 0.02  # the padded second is silent


def test_frame_inputs_torch_pil_and_odd_sizes(tmp_path):
    frames = moving_square(10, size=33)[:, :, :31]  # 33 x 31: odd sizes are padded to even
    for given in (torch.from_numpy(frames), [Image.fromarray(f) for f in frames]):
        clip = read_video(write_video(tmp_path / "odd.mp4", given, 10))
        assert clip.frames.shape == (10, 34, 32, 3) and clip.audio is None


@pytest.mark.parametrize(
    "frames, match",
    [
        (np.zeros((4, 16, 16, 3), np.float32), "uint8"),
        (np.zeros((16, 16, 3), np.uint8), r"\[F, H, W, 3\]"),
        (np.zeros((0, 16, 16, 3), np.uint8), "no frames"),
        ([], "empty"),
        ([Image.new("RGB", (8, 8)), Image.new("RGB", (10, 8))], "one size"),
    ],
)
def test_bad_frames_are_refused_and_nothing_is_written(tmp_path, frames, match):
    with pytest.raises(ValueError, match=match):
        write_video(tmp_path / "bad.mp4", frames, 25)
    assert list(tmp_path.iterdir()) == []


def test_a_failure_mid_write_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"previous good file")

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(vio, "_fit_audio", explode)  # fails after the container was opened
    with pytest.raises(RuntimeError, match="disk full"):
        write_video(target, moving_square(5), 25, tone(1.0))
    assert target.read_bytes() == b"previous good file"  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # and no partial file is left


def test_read_errors(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        read_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(VideoError, match="junk.mp4"):
        read_video(junk)


def test_max_frames_and_exact_ntsc_rate(tmp_path):
    path = write_video(tmp_path / "ntsc.mp4", moving_square(30), Fraction(30000, 1001))
    clip = read_video(path, max_frames=12)
    assert clip.num_frames == 12 and clip.fps == Fraction(30000, 1001)
