"""Silent and near-empty speech: one policy (avdiff.audio.silence), said by the pipelines (a logged warning and
``output.warnings``), by ``avdiff talk`` (stderr) and by the demo (on the page), and never scored as lip sync."""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from avdiff.audio.io import Waveform, save_audio
from avdiff.bench.talk import speech_like
from avdiff.cli import main
from avdiff.demo import build_app
from avdiff.metrics.lipsync import lipsync_scores, score_video
from avdiff.pipelines import TalkingHeadPipeline, WarpBaselinePipeline
from avdiff.video import read_video

pytestmark = pytest.mark.usefixtures("one_thread")

SILENT = "The speech is silent: the mouth will not move"
SHORT = "too short to show speech"


def noise(seconds: float, dbfs: float, sample_rate: int = 16000) -> Waveform:
    """White noise whose RMS is ``dbfs`` (a quiet room)."""
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(int(seconds * sample_rate)).astype(np.float32))
    return Waveform(x[None] * 10 ** (dbfs / 20), sample_rate)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("silence")


@pytest.fixture(scope="module")
def photo(folder) -> Path:
    path = folder / "face.png"
    Image.fromarray(skimage.data.astronaut()).save(path)
    return path


@pytest.fixture(scope="module")
def silence(folder) -> Path:
    """2 s of digital silence, a wav file."""
    return save_audio(folder / "silence.wav", Waveform(torch.zeros(1, 32000), 16000))


@pytest.fixture(scope="module")
def silent_video(folder, photo, silence) -> Path:
    out = folder / "silent.mp4"
    assert main(["talk", "--baseline", "--image", str(photo), "--audio", str(silence), "--out", str(out)]) == 0
    return out


def test_the_policy_measures_the_loudest_moment_in_dbfs():
    from avdiff.audio.silence import MIN_SPEECH_S, SILENCE_DBFS, is_silent, peak_level_dbfs, speech_warnings

    assert peak_level_dbfs(Waveform(torch.zeros(1, 16000), 16000)) == -np.inf
    assert peak_level_dbfs(noise(1.0, -20.0)) == pytest.approx(-20.0, abs=1.5)
    assert is_silent(noise(1.0, SILENCE_DBFS - 10)) and not is_silent(noise(1.0, SILENCE_DBFS + 10))
    quiet_then_word = torch.cat([noise(2.0, -80.0).samples, speech_like(0.3).samples], dim=1)
    assert not is_silent(Waveform(quiet_then_word, 16000))  # one word in a quiet room is speech
    assert speech_warnings(speech_like(2.0)) == []
    assert speech_warnings(speech_like(MIN_SPEECH_S * 0.4))[0].startswith("The speech is only 0.20 s long")


@pytest.mark.slow
def test_the_warp_baseline_warns_about_silence_and_near_empty_speech(caplog):
    pipe = WarpBaselinePipeline()
    pipe.set_progress_bar_config(disable=True)
    with caplog.at_level(logging.WARNING):
        out = pipe(skimage.data.astronaut(), Waveform(torch.zeros(1, 32000), 16000))
    assert out.num_frames == 50 and len(out.warnings) == 1 and out.warnings[0].startswith(SILENT)
    assert "<Waveform: 1x32000 @ 16000 Hz>: the speech is silent: the mouth will not move" in caplog.text
    out = pipe(skimage.data.astronaut(), noise(2.0, -75.0))  # near-silence: the envelope would make it move
    assert out.warnings[0].startswith(SILENT) and "dBFS, below the -60 dBFS of silence" in out.warnings[0]
    out = pipe(skimage.data.astronaut(), speech_like(0.2))
    assert len(out.warnings) == 1 and SHORT in out.warnings[0]
    assert pipe(skimage.data.astronaut(), speech_like(1.0)).warnings == []


@pytest.mark.slow
def test_the_diffusion_pipeline_warns_the_same_way(caplog):
    pipe = TalkingHeadPipeline.from_preset("tiny", seed=0)
    pipe.set_progress_bar_config(disable=True)
    with caplog.at_level(logging.WARNING):
        out = pipe(
            skimage.data.astronaut(),
            Waveform(torch.zeros(1, 3200), 16000),
            num_inference_steps=1,
            chunk_frames=8,
            generator=torch.Generator().manual_seed(0),
        )
    assert out.num_frames == 5
    assert [w.split(":")[0] for w in out.warnings] == [
        "The speech is silent",
        "The speech is only 0.20 s long (under 0.5 s)",
    ]
    assert "the speech is silent" in caplog.text and "the speech is only 0.20 s long" in caplog.text


@pytest.mark.slow
def test_cli_talk_prints_the_warning_to_stderr_once(silent_video, photo, silence, folder, capsys, caplog):
    assert silent_video.is_file()  # made: a still face is what silence looks like
    out = folder / "again.mp4"
    with caplog.at_level(logging.WARNING):
        assert main(["talk", "--baseline", "--image", str(photo), "--audio", str(silence), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"avdiff: warning: --audio {str(silence)!r}: {SILENT}" in captured.err
    assert "warning" not in captured.out and out.is_file()
    assert "silent" not in caplog.text  # said by the command, not logged a second time by the pipeline
    assert not logging.getLogger("avdiff.audio.silence").filters  # held back during the call only


@pytest.mark.slow
def test_silence_is_not_scored_as_lip_sync(silent_video):
    result = score_video(read_video(silent_video))
    assert not result.scored and result.r_envelope is None and result.offset_frames is None
    assert result.reason.startswith("the audio is silent (digital silence") and result.valid_frames == 50
    assert result.interior.reason == result.reason
    flat = lipsync_scores(np.random.default_rng(0).random(50), np.zeros(50))  # no envelope: no r, not r = 0
    assert not flat.scored and "flat" in flat.reason


@pytest.mark.slow
def test_the_demo_shows_the_warning_beside_the_score(folder, photo, silence):
    tab = build_app(bundled=False).avdiff_tabs[0]
    args = [str(photo), str(silence), "warp", 2, 2.0, 1.5, 0, "25", 8, 2]
    _, summary, scores, _ = tab.talk(*args, progress=lambda *a, **k: None)
    assert summary.startswith(f"**Warning:** {SILENT}")
    assert "no score: the audio is silent" in summary and "+0.000" not in summary and "in sync" not in summary
    assert scores["scored"] is False and scores["warnings"][0].startswith(SILENT)
    assert "syncnet" not in scores and "SyncNet is not run" in scores["syncnet_reason"]  # nor by the SyncNet
    assert str(folder) not in summary  # no server path on the page
    short = save_audio(folder / "short.wav", speech_like(0.2))
    _, summary, _, _ = tab.talk(*(args[:1] + [str(short)] + args[2:]), progress=lambda *a, **k: None)
    assert "**Warning:** The speech is only 0.20 s long" in summary
    with pytest.raises(gr.Error):  # a missing input is still an error, not a warning
        tab.talk(*(args[:1] + [None] + args[2:]), progress=lambda *a, **k: None)
