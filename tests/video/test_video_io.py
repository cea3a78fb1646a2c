import shutil
import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from PIL import Image

import avdiff.video.writer as vio
from avdiff.audio import FrameClock, Waveform
from avdiff.video import VideoError, read_video, write_video
from avdiff.video.reader import VideoReader
from avdiff.video.timeline import apply_transform, audio_on_timeline, display_transform, place_on_grid, resample_frames
from avdiff.video.writer import VideoWriter, check_output_path

from conftest import tone


def moving_square(num_frames: int, size: int = 64) -> np.ndarray:
    """uint8 [F, size, size, 3]: a white square moving right on dark gray, so frames differ."""
    frames = np.full((num_frames, size, size, 3), 40, np.uint8)
    for i in range(num_frames):
        x = (i * 2) % (size - 16)
        frames[i, 24:40, x : x + 16] = 255
    return frames


@pytest.mark.slow
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


@pytest.mark.slow
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

    monkeypatch.setattr(vio.AudioFrameEncoder, "push", explode)  # fails after the container was opened
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


# --- what the container says about time and orientation (issue 13: the one decoder) -------------------------------


def numbered_video(path, fps: int, n: int, fmt: str = "mp4") -> None:
    """Frame j is filled with grey level 4 * j (an asymmetric mark in the corner shows rotation)."""
    with av.open(str(path), "w", format=fmt) as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = 32, 48, "yuv420p"
        v.options = {"crf": "0"}
        for j in range(n):
            frame = np.full((48, 32, 3), 4 * j, np.uint8)
            frame[:8, :8] = 255
            out.mux(v.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(v.encode(None))


def levels(frames) -> list[int]:
    return [round(float(np.asarray(f)[20:40, 10:20].mean()) / 4) for f in frames]


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program")


def test_decoding_at_25fps_takes_the_nearest_frame_in_time(tmp_path):
    numbered_video(tmp_path / "v30.mp4", 30, 30)
    clip = read_video(tmp_path / "v30.mp4", fps=25)
    expected = resample_frames(np.arange(30), 30, 25).tolist()
    assert clip.num_frames == 25 and clip.fps == 25
    assert levels(clip.frames) == expected and expected[:7] == [0, 1, 2, 4, 5, 6, 7]
    numbered_video(tmp_path / "v25.mp4", 25, 10)
    assert levels(read_video(tmp_path / "v25.mp4", fps=25).frames) == list(range(10))
    numbered_video(tmp_path / "v25.h264", 25, 10, fmt="h264")  # a raw stream: no timestamps, the rate is used
    assert levels(read_video(tmp_path / "v25.h264", fps=25).frames) == list(range(10))
    with VideoReader(tmp_path / "v30.mp4", fps=25) as video:  # the streaming core gives the same frames
        assert levels(video) == expected and video.source_rate == 30 and (video.width, video.height) == (32, 48)


@needs_ffmpeg
def test_variable_frame_rate_holds_the_previous_frame_over_a_gap(tmp_path):
    # frames 10..19 dropped with their timestamps kept (as ffmpeg's select does): a player shows frame 9 over the gap
    numbered_video(tmp_path / "v.mp4", 25, 50)
    ffmpeg(
        "-i",
        str(tmp_path / "v.mp4"),
        "-vf",
        "select='not(between(n,10,19))'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        "-crf",
        "0",
        str(tmp_path / "vfr.mp4"),
    )
    with av.open(str(tmp_path / "vfr.mp4")) as c:
        average = c.streams.video[0].average_rate
    assert average < 24  # the average over the gap is not the rate the frames were made at
    with VideoReader(tmp_path / "vfr.mp4") as video:
        assert video.fps == 25  # the nominal rate
        got = levels(video)
        assert video.stats == {"held": 10, "dropped": 0, "source_frames": 40}
    assert got == list(range(10)) + [9] * 10 + list(range(20, 50))


def test_frames_are_put_on_the_grid_by_their_timestamps():
    def times(ts):
        return [(t, t) for t in ts]  # the image is its own timestamp

    period = 1 / 25
    regular = list(place_on_grid(times([i * period for i in range(5)]), Fraction(25), period))
    assert regular == [i * period for i in range(5)]
    jittered = list(place_on_grid(times([0, 0.041, 0.079, 0.121]), Fraction(25), period))
    assert jittered == [0, 0.041, 0.079, 0.121]
    gap = list(place_on_grid(times([0, 0.04, 0.2, 0.24]), Fraction(25), period))  # 3 frames missing
    assert gap == [0, 0.04, 0.04, 0.04, 0.04, 0.2, 0.24]
    offset = list(place_on_grid(times([5.0, 5.04, 5.08]), Fraction(25), period))  # the first frame is time 0
    assert offset == [5.0, 5.04, 5.08]
    half = list(place_on_grid(times([i / 50 for i in range(10)]), Fraction(25), 1 / 50))  # 50 -> 25 fps
    assert half == [i / 50 for i in range(0, 10, 2)]


MATRICES = {  # display matrices (16.16 fixed point) and the transform FFmpeg's autorotate makes of them
    "cclock": [0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30],  # what ffmpeg writes for rotate=90 (ffprobe: rotation 90)
    "clock": [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30],  # ... for rotate=270 (ffprobe: rotation -90)
    "rotate180": [-65536, 0, 0, 0, -65536, 0, 0, 0, 1 << 30],
    "hflip": [-65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30],
    "vflip": [65536, 0, 0, 0, -65536, 0, 0, 0, 1 << 30],
    "none": [65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30],
}


def test_display_matrices_are_read_as_ffmpeg_autorotate_reads_them():
    for name, matrix in MATRICES.items():
        assert display_transform(np.array(matrix, np.int32)) == name
        assert display_transform(np.array(matrix, "<i4").tobytes()) == name
    image = np.arange(2 * 3 * 1).reshape(2, 3, 1)  # [[0 1 2], [3 4 5]]
    assert apply_transform(image, "cclock")[..., 0].tolist() == [[2, 5], [1, 4], [0, 3]]
    assert apply_transform(image, "clock")[..., 0].tolist() == [[3, 0], [4, 1], [5, 2]]
    assert apply_transform(image, "rotate180")[..., 0].tolist() == [[5, 4, 3], [2, 1, 0]]
    assert apply_transform(image, "hflip")[..., 0].tolist() == [[2, 1, 0], [5, 4, 3]]
    assert display_transform(None) == "none"


@pytest.mark.slow
@needs_ffmpeg
@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotation_metadata_is_applied_as_players_apply_it(tmp_path, degrees):
    numbered_video(tmp_path / "v.mp4", 25, 3)
    ffmpeg(
        "-i", str(tmp_path / "v.mp4"), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(tmp_path / "r.mp4")
    )
    plain, clip = read_video(tmp_path / "v.mp4"), read_video(tmp_path / "r.mp4")
    reference = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(tmp_path / "r.mp4"),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        check=True,
        capture_output=True,
    ).stdout
    upright = np.frombuffer(reference, np.uint8).reshape(clip.frames.shape[1:])  # FFmpeg's own autorotation
    assert plain.frames.shape[1:] == (48, 32, 3)
    assert clip.frames.shape[1:] == ((48, 32, 3) if degrees == 180 else (32, 48, 3))
    assert np.abs(clip.frames[0].numpy().astype(int) - upright.astype(int)).max() <= 2
    assert clip.transform != "none" and levels([np.rot90(f) for f in clip.frames]) == [0, 1, 2]


def test_audio_is_placed_on_the_video_timeline_either_way():
    audio = tone(1.0, 16000)
    late = audio_on_timeline(audio, 0.1)  # the audio stream starts 0.1 s after the video
    early = audio_on_timeline(audio, -0.1)  # ... or before it
    assert torch.equal(late.samples[:, :1600], torch.zeros(1, 1600)) and torch.equal(
        late.samples[:, 1600:], audio.samples
    )
    assert torch.equal(early.samples, audio.samples[:, 1600:])


def test_the_audio_keeps_its_rate_and_channels(tmp_path):
    # what the user gave: 44.1 kHz stereo whose channels differ; a rate AAC lacks goes to the next one it has
    stereo = Waveform(torch.stack([tone(1.0, 44100).samples[0], 0.2 * tone(1.0, 44100, 660.0).samples[0]]), 44100)
    clip = read_video(write_video(tmp_path / "s.mp4", moving_square(25), 25, stereo))
    assert clip.audio.sample_rate == 44100 and clip.audio.num_channels == 2
    rms = clip.audio.samples.pow(2).mean(dim=1).sqrt()
    assert rms[0] == pytest.approx(0.5 / 2**0.5, rel=0.1) and rms[1] == pytest.approx(0.1 / 2**0.5, rel=0.15)
    odd = read_video(write_video(tmp_path / "o.mp4", moving_square(25), 25, tone(1.0, 22000)))
    assert odd.audio.sample_rate == 22050


def test_the_writer_streams_frames_and_refuses_what_it_cannot_write(tmp_path):
    with VideoWriter(tmp_path / "g.mp4", 25, tone(1.0)) as out:
        for frame in moving_square(25):  # one at a time, never an array of the whole video
            out.write(frame)
    assert out.num_frames == 25 and read_video(tmp_path / "g.mp4").num_frames == 25
    assert read_video(write_video(tmp_path / "gen.mp4", (f for f in moving_square(7)), 25)).num_frames == 7
    with pytest.raises(VideoError, match="is a folder"):
        VideoWriter(tmp_path, 25)
    with pytest.raises(ValueError, match="one size"):
        with VideoWriter(tmp_path / "sizes.mp4", 25) as out:
            out.write(moving_square(1, 64)[0])
            out.write(moving_square(1, 32)[0])
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "none.mp4", iter([]), 25)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.mp4", "gen.mp4"]


def test_an_output_path_is_checked_before_any_work(tmp_path):
    source = tmp_path / "speech.wav"
    source.write_bytes(b"RIFF")
    (tmp_path / "hard.mp4").hardlink_to(source)
    (tmp_path / "soft.mp4").symlink_to(source)
    inputs = {"audio": str(source)}
    for target, message in [
        (source, "is the audio"),
        (tmp_path / "hard.mp4", "is the audio"),
        (tmp_path / "soft.mp4", "is the audio"),
        (tmp_path / "sub" / ".." / "speech.wav", "is the audio"),
        (tmp_path, "is a folder"),
        (tmp_path / "out.wav", "mp4"),
        (source / "x.mp4", "cannot write"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_output_path(target, inputs)
    assert check_output_path(tmp_path / "new" / "out.mp4", inputs) == tmp_path / "new" / "out.mp4"
    assert source.read_bytes() == b"RIFF"
