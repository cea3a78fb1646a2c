"""A file with several audio tracks: the track marked default is read (not the first), ``audio_track`` /
``--audio-track`` picks another, the choice is logged in one line, and a track that does not exist is a clear error.

The file is made by ffmpeg as users' files are: track 0 is noise (or silence) with no disposition, track 1 is a 440 Hz
tone marked default (``-disposition:a:1 default -disposition:a:0 0``)."""

from __future__ import annotations

import logging
import shutil
import subprocess

import numpy as np
import pytest

from avdiff.audio import AudioLoadError, load_audio
from avdiff.audio.io import AudioStream
from avdiff.cli import main
from avdiff.data.prepare import PrepareConfig
from avdiff.data.prepare.segments import prepare_file
from avdiff.video import read_video

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program")

TONE_HZ = 440.0
LOG_LINE = "has 2 audio tracks; using track 1 (default)"


def two_track_file(path, first: str = "anoisesrc=duration=2.2:amplitude=0.3:seed=1") -> str:
    """A 2.2 s, 25 fps, 64 px mp4: audio track 0 = ``first`` (not default), audio track 1 = a tone (default)."""
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=c=gray:size=64x64:rate=25:duration=2.2",
            "-f",
            "lavfi",
            "-i",
            first,
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency={TONE_HZ:g}:duration=2.2:sample_rate=16000",
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-map",
            "2:a",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-ar",
            "16000",
            "-disposition:a:1",
            "default",
            "-disposition:a:0",
            "0",
            str(path),
        ],
        check=True,
    )
    return str(path)


@pytest.fixture(scope="module")
def two_tracks(tmp_path_factory):
    return two_track_file(tmp_path_factory.mktemp("tracks") / "two.mp4")


def is_tone(samples) -> bool:
    """True when the strongest frequency is the tone's and it dominates (noise spreads its energy everywhere)."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)[:16000]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    peak = np.fft.rfftfreq(len(x), 1 / 16000)[spectrum.argmax()]
    return abs(peak - TONE_HZ) < 5 and spectrum.max() > 20 * np.median(spectrum)


@pytest.mark.slow
def test_the_default_track_is_read_and_the_choice_is_logged(two_tracks, caplog):
    with caplog.at_level(logging.INFO):
        wav = load_audio(two_tracks, sample_rate=16000)
    assert is_tone(wav.samples)
    assert [r.getMessage() for r in caplog.records if "audio tracks" in r.getMessage()] == [
        f"{two_tracks!r} {LOG_LINE}"
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO):  # read block by block: checked once, logged once
        stream = AudioStream(two_tracks)
        blocks = np.concatenate(list(stream.blocks(sample_rate=16000, mono=True)), axis=1)
    assert is_tone(blocks)
    assert sum(LOG_LINE in r.getMessage() for r in caplog.records) == 1
    caplog.clear()
    with caplog.at_level(logging.INFO):
        clip = read_video(two_tracks)
    assert is_tone(clip.audio.to_mono().resample(16000).samples)
    assert sum(LOG_LINE in r.getMessage() for r in caplog.records) == 1


def test_audio_track_picks_the_other_track(two_tracks, caplog):
    with caplog.at_level(logging.INFO):
        assert not is_tone(load_audio(two_tracks, sample_rate=16000, audio_track=0).samples)
    assert "using track 0 (as asked)" in caplog.text
    assert is_tone(load_audio(two_tracks, sample_rate=16000, audio_track=1).samples)
    assert not is_tone(np.concatenate(list(AudioStream(two_tracks, audio_track=0).blocks(16000, True)), axis=1))
    assert not is_tone(read_video(two_tracks, audio_track=0).audio.resample(16000).samples)


@pytest.mark.parametrize("track", [2, -1])
def test_a_track_that_does_not_exist_is_a_clear_error(two_tracks, track):
    expected = rf"there is no audio track {track}: it has 2 audio tracks \(0 to 1\)"
    for read in (
        lambda: load_audio(two_tracks, audio_track=track),
        lambda: AudioStream(two_tracks, audio_track=track),
        lambda: read_video(two_tracks, audio_track=track),
    ):
        with pytest.raises(AudioLoadError, match=rf"cannot load audio from .*two\.mp4'?: {expected}$"):
            read()


@pytest.mark.slow
def test_eval_lipsync_scores_the_default_track_or_the_one_asked_for(two_tracks, monkeypatch, capsys):
    import avdiff.metrics.lipsync as lipsync

    heard = []

    def score_video(clip, *args, **kwargs):
        heard.append(is_tone(clip.audio.to_mono().resample(16000).samples))
        raise ValueError("stop here")

    monkeypatch.setattr(lipsync, "score_video", score_video)
    assert main(["eval", "lipsync", two_tracks]) == 2
    assert main(["eval", "lipsync", two_tracks, "--audio-track", "0"]) == 2
    assert heard == [True, False]
    assert main(["eval", "lipsync", two_tracks, "--audio-track", "3"]) == 2
    err = capsys.readouterr().err
    assert "there is no audio track 3: it has 2 audio tracks (0 to 1)" in err and heard == [True, False]


@pytest.mark.slow
def test_talk_and_visualize_hand_the_pipelines_the_track_asked_for(two_tracks, tmp_path, monkeypatch, capsys):
    from avdiff.bench.visualize import make_keyframes
    from avdiff.pipelines import BeatVisualizerPipeline
    from avdiff.pipelines.talking_head import WarpBaselinePipeline

    heard = []

    def record(self, *args, **kwargs):
        audio = args[1] if isinstance(self, WarpBaselinePipeline) else args[0]
        heard.append(is_tone(load_audio(AudioStream(audio).load(), sample_rate=16000).samples))
        raise ValueError("stop here")

    monkeypatch.setattr(WarpBaselinePipeline, "__call__", record)
    monkeypatch.setattr(BeatVisualizerPipeline, "__call__", record)
    keys = [str(p) for p in make_keyframes(tmp_path / "keys", 32)]
    talk = ["talk", "--baseline", "--image", keys[0], "--audio", two_tracks, "--out", str(tmp_path / "t.mp4")]
    show = ["visualize", "--audio", two_tracks, "--images", *keys, "--out", str(tmp_path / "v.mp4")]
    for command in (talk, show):
        assert main(command) == 2 and main([*command, "--audio-track", "0"]) == 2
    assert heard == [True, False, True, False]
    assert main([*talk, "--audio-track", "2"]) == 2 and main([*show, "--audio-track", "2"]) == 2
    assert capsys.readouterr().err.count("there is no audio track 2: it has 2 audio tracks (0 to 1)") == 2


@pytest.mark.slow
def test_prepare_reads_the_default_track_not_the_silent_first_one(tmp_path):
    path = two_track_file(tmp_path / "silent_first.mp4", first="anullsrc=channel_layout=mono:sample_rate=16000:d=2.2")
    config = PrepareConfig(segment_s=2.0, min_segment_s=1.0, min_face_px=0)
    result = prepare_file(path, "silent_first.mp4", tmp_path / "data", config)
    assert result.segments[0].reason == "no_face"  # the tone is heard; the gray frames show no face
    config.audio_track = 0
    result = prepare_file(path, "silent_first.mp4", tmp_path / "data", config)
    assert result.segments[0].reason == "silence"


@pytest.mark.parametrize(
    "command",
    [
        ["analyze", "AUDIO"],
        ["eval", "lipsync", "AUDIO"],
        ["prepare", "--videos", "D", "--out", "O"],
        ["talk", "--image", "I", "--audio", "AUDIO", "--out", "o.mp4"],
        ["visualize", "--audio", "AUDIO", "--images", "D", "--out", "o.mp4"],
    ],
)
def test_the_commands_that_read_audio_take_audio_track(command):
    from avdiff.cli import build_parser

    assert build_parser().parse_args([*command, "--audio-track", "1"]).audio_track == 1
    assert build_parser().parse_args(command).audio_track is None
