"""Issue 13: media and arguments as users have them. Every input is built here (``tests/realworld.py``) from the
astronaut photo and espeak-ng speech with two pauses, with the ffmpeg command-line tool, the way users' files come.

Each case checks the right answer (the clip is in sync: offset 0 and a high r), or a clear error where there is none.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from avdiff.audio.io import load_audio
from avdiff.cli import main
from avdiff.video.reader import read_video

from realworld import RealWorld, drum_wav, tools_missing

pytestmark = pytest.mark.skipif(tools_missing() is not None, reason=tools_missing() or "")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> RealWorld:
    torch.set_num_threads(1)
    return RealWorld(tmp_path_factory.mktemp("realworld"))


def lipsync(capsys, video, *extra) -> tuple[int, dict]:
    code = main(["eval", "lipsync", str(video), "--json", *map(str, extra)])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_the_reference_clip_is_in_sync(media, capsys):
    code, out = lipsync(capsys, media.talk_ref_mp4)
    assert code == 0 and out["offset_frames"] == 0 and out["r_envelope"] > 0.8
    assert out["face_choice"] == "only" and out["valid_frames"] == out["num_frames"]


# 1. Variable frame rate --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_variable_frame_rate_is_read_on_its_timestamps(media, capsys):
    # 30 frames dropped from the middle, timestamps kept: it plays in sync. Read as constant-rate it gave offset +4
    # (r 0.37); on its timestamps the 30 missing frames are the previous one held, and the rest is in sync.
    clip = read_video(media.vfr_mp4, with_audio=False)
    assert clip.fps == 25 and clip.num_frames == read_video(media.talk_ref_mp4, with_audio=False).num_frames
    code, out = lipsync(capsys, media.vfr_mp4)
    assert code == 0 and out["fps"] == "25" and out["offset_frames"] == 0 and out["r_envelope"] > 0.7


# 2. Rotation metadata -----------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("degrees", [180, 270])
def test_rotated_files_are_read_upright(media, capsys, degrees):
    # stored turned, shown upright by players; read upside down, 180 gave r -0.02 and offset +13
    upright = read_video(media.talk_ref_mp4, max_frames=1, with_audio=False).frames[0].numpy().astype(int)
    turned = read_video(media.rotated_mp4(degrees), max_frames=1, with_audio=False).frames[0].numpy().astype(int)
    assert turned.shape == upright.shape and np.abs(turned - upright).mean() < 3
    code, out = lipsync(capsys, media.rotated_mp4(degrees))
    assert code == 0 and out["offset_frames"] == 0 and out["r_envelope"] > 0.8


# 3. Small faces, and no score from nothing --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_small_face_is_found_tracked_and_scored(media, capsys):
    from avdiff.video.face import detect_face

    face = detect_face(media.small_face_png)  # ~100 px in 1280x720: the short-range detector misses it
    x0, y0, x1, y1 = face.box
    assert 80 < max(x1 - x0, y1 - y0) < 130 and 700 < x0 < x1 < 1212
    code, out = lipsync(capsys, media.small_face_mp4)  # before: 0 of 289 frames valid, r 0.0, offset 0, exit 0
    assert code == 0 and out["valid_frames"] >= 0.95 * out["num_frames"]
    assert out["offset_frames"] == 0 and out["r_envelope"] > 0.8


@pytest.mark.slow
def test_prepare_reports_a_small_face_as_too_small_not_missing(media, tmp_path):
    from avdiff.data.prepare import PrepareConfig, prepare_videos

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "small.mp4").symlink_to(media.small_face_mp4)
    config = PrepareConfig(size=64, segment_s=4, min_segment_s=2, min_face_px=128)
    report = prepare_videos(videos, tmp_path / "DATA", config, workers=1, progress_bar=False)
    (entry,) = report.files
    assert (entry.status, entry.reason) == ("dropped", "face_too_small"), entry.detail
    assert all(80 < s.face_px < 128 for s in entry.segments if s.reason == "face_too_small")


@pytest.mark.slow
def test_talk_animates_a_small_face_in_a_large_photo(media, tmp_path, capsys):
    out = tmp_path / "small_talk.mp4"
    assert (
        main(
            [
                "talk",
                "--baseline",
                "--image",
                str(media.small_face_png),
                "--audio",
                str(media.speech16k_wav),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith(f"wrote {out} (289 frames at 25 fps)")
    clip = read_video(out, with_audio=False)
    assert clip.frames.shape[1:] == (720, 1280, 3)
    code, report = lipsync(capsys, out)
    assert code == 0 and report["offset_frames"] == 0 and report["r_envelope"] > 0.8


# 4. Several faces ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_with_two_faces_the_one_that_speaks_is_scored(media, capsys):
    # the talking face (left, 360 px) and a larger still copy (right, 400 px); before: the still one, r -0.035, +13
    code, out = lipsync(capsys, media.two_faces_mp4)
    assert code == 0 and out["face_choice"] == "speaks" and out["face_index"] == 0 and len(out["faces"]) == 2
    assert out["offset_frames"] == 0 and out["r_envelope"] > 0.7
    left, right = out["faces"]
    assert left["box"][2] < right["box"][0]  # indexed from the left; the box is reported
    assert (right["box"][2] - right["box"][0]) > (left["box"][2] - left["box"][0])  # the still face is the larger
    assert left["follows"] > right["follows"] + 0.3
    code, named = lipsync(capsys, media.two_faces_mp4, "--face", 1)  # a face the user names is scored as asked
    assert code == 0 and named["face_index"] == 1 and named["face_choice"] == "index"
    assert named["r_at_offset"] < out["r_at_offset"] - 0.3
    box = ",".join(str(v) for v in left["box"])
    code, by_box = lipsync(capsys, media.two_faces_mp4, "--face-box", box)
    assert code == 0 and by_box["face_index"] == 0 and by_box["face_choice"] == "box"
    assert main(["eval", "lipsync", str(media.two_faces_mp4), "--face", "5"]) == 2
    assert "2 face(s)" in capsys.readouterr().err


# 5. Stereo in opposite phase ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_stereo_in_opposite_phase_still_drives_the_mouth(media, tmp_path, capsys):
    # the mean of the channels is silence: before, talk --baseline made a still face with -91 dB audio
    out = tmp_path / "anti.mp4"
    assert (
        main(
            [
                "talk",
                "--baseline",
                "--image",
                str(media.face_png),
                "--audio",
                str(media.anti_phase_wav),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    audio = read_video(out).audio
    assert audio.num_channels == 2  # the audio as given
    level = 10 * math.log10(float(load_audio(out, mono=True).samples.pow(2).mean()))
    assert level > -40
    code, report = lipsync(capsys, out)
    assert code == 0 and report["offset_frames"] == 0 and report["r_envelope"] > 0.8


def test_analyze_finds_the_tempo_of_a_drum_track_in_opposite_phase(tmp_path, capsys):
    path = drum_wav(tmp_path / "anti_drums.wav", bpm=120, seconds=12, anti_phase=True)
    assert main(["analyze", str(path)]) == 0  # before: tempo 0
    assert json.loads(capsys.readouterr().out)["tempo_bpm"] == pytest.approx(120, rel=0.02)


# 8. The user's audio, as given --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_video_carries_the_audio_at_its_own_rate_and_channels(media, tmp_path):
    out = tmp_path / "hifi.mp4"
    assert (
        main(
            [
                "talk",
                "--baseline",
                "--image",
                str(media.face_png),
                "--audio",
                str(media.speech44k_stereo_wav),
                "--out",
                str(out),
            ]
        )
        == 0
    )  # before: 16 kHz mono
    audio = read_video(out).audio
    given = load_audio(media.speech44k_stereo_wav, mono=False)
    assert audio.sample_rate == 44100 and audio.num_channels == 2
    rms, want = audio.samples.pow(2).mean(dim=1).sqrt(), given.samples.pow(2).mean(dim=1).sqrt()
    assert torch.allclose(rms, want, rtol=0.1)  # the right channel is still 0.6 of the left


# 9. Arguments checked before any work, inputs never overwritten ----------------------------------------------------


def test_talk_refuses_an_output_that_is_an_input_or_a_folder_before_any_work(media, tmp_path, capsys, monkeypatch):
    from avdiff.pipelines.talking_head import WarpBaselinePipeline

    def no_work(*args, **kwargs):
        raise AssertionError("the generation started")

    monkeypatch.setattr(WarpBaselinePipeline, "__call__", no_work)
    speech = tmp_path / "s.wav"
    speech.write_bytes(media.speech16k_wav.read_bytes())
    before = speech.read_bytes()
    (tmp_path / "alias.mp4").hardlink_to(speech)
    base = ["talk", "--baseline", "--image", str(media.face_png), "--audio", str(speech)]
    for out, message in [
        (speech, "is the --audio"),
        (tmp_path / "alias.mp4", "is the --audio"),
        (tmp_path, "is a folder"),
        (media.face_png, "is the --image"),
    ]:
        assert main([*base, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("avdiff: error: --out") and message in err and err.count("\n") == 1
    assert speech.read_bytes() == before


@pytest.mark.parametrize("command", ["talk", "analyze"])
@pytest.mark.parametrize(
    "fps, message", [("1e9", "between 1 and 120"), ("0.001", "between 1 and 120"), ("1/0", "a frame rate such as")]
)
def test_fps_is_checked_at_the_interface_and_the_value_given_is_named(media, tmp_path, capsys, command, fps, message):
    if command == "talk":
        args = [
            "talk",
            "--baseline",
            "--image",
            str(media.face_png),
            "--audio",
            str(media.speech16k_wav),
            "--out",
            str(tmp_path / "o.mp4"),
        ]
    else:
        args = ["analyze", str(media.speech16k_wav)]
    assert main([*args, "--fps", fps]) == 2
    err = capsys.readouterr().err
    assert err == f"avdiff: error: --fps must be {message}" + err.split(message, 1)[1] and f"got '{fps}'" in err
    assert not (tmp_path / "o.mp4").exists()


def test_durations_are_checked_and_documented(media, tmp_path, capsys):
    from avdiff.cli import build_parser

    assert main(["analyze", str(media.speech16k_wav), "--max-duration", "-1"]) == 2
    assert "--max-duration must be a positive number of seconds, got -1" in capsys.readouterr().err
    out = tmp_path / "o.mp4"
    assert (
        main(
            [
                "talk",
                "--baseline",
                "--image",
                str(media.face_png),
                "--audio",
                str(media.speech16k_wav),
                "--out",
                str(out),
                "--max-duration",
                "5",
            ]
        )
        == 2
    )
    assert "longer than --max-duration 5 s" in capsys.readouterr().err and not out.exists()
    talk = next(
        a
        for a in build_parser()._subparsers._group_actions[0].choices["talk"]._actions
        if "--max-duration" in a.option_strings
    )
    assert talk.default == 600 and "default 600" in talk.help


@pytest.mark.slow
def test_a_float_image_in_0_255_is_taken_by_its_range(media):
    import skimage.data

    from avdiff.pipelines.talking_head import WarpBaselinePipeline

    pipe = WarpBaselinePipeline()
    pipe.set_progress_bar_config(disable=True)
    speech = load_audio(media.speech16k_wav).slice_s(0.0, 1.0)
    photo = skimage.data.astronaut()
    as_uint8 = pipe(photo, speech).frames
    as_float = pipe(photo.astype(np.float64), speech).frames  # 0..255 in float64: before, clipped to 1 -> no face
    assert np.array_equal(as_float, as_uint8)
    assert np.array_equal(pipe(photo / 255.0, speech).frames, as_uint8)
    with pytest.raises(ValueError, match=r"span \[-1, 255\]"):
        pipe(np.where(photo > 0, photo, -1).astype(np.float32), speech)


@pytest.mark.slow
def test_a_two_frame_clip_gets_no_verdict(media, tmp_path, capsys):
    from realworld import ffmpeg

    short = tmp_path / "two_frames.mp4"
    ffmpeg("-i", str(media.talk_ref_mp4), "-t", "0.08", str(short))
    assert main(["eval", "lipsync", str(short)]) == 2  # before: a warning, then "in sync"
    err = capsys.readouterr().err
    assert "no lip-sync score" in err and "only 2 of 2 frames" in err
    code, out = lipsync(capsys, short)
    assert code == 2 and out["scored"] is False and out["offset_frames"] is None and out["r_envelope"] is None
