"""``avdiff talk`` and ``avdiff eval lipsync`` as a user meets them with the model-free warp baseline: flags the baseline
does not take are refused before any work, a photo without a face is named, SIGTERM removes the half-written video,
and a clip too short to score is said once."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import skimage.data
from PIL import Image

from avdiff.audio.io import save_audio
from avdiff.bench.talk import speech_like
from avdiff.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("talk_cli")
    Image.fromarray(skimage.data.astronaut()).save(path / "face.png")
    Image.fromarray(skimage.data.coffee()).save(path / "coffee.png")
    save_audio(path / "speech.wav", speech_like(1.0))
    return path


def talk(folder: Path, *flags: str, image: str = "face.png", out: str = "out.mp4") -> list[str]:
    return ["talk", "--image", str(folder / image), "--audio", str(folder / "speech.wav"), "--out", str(folder / out),
            *flags]  # fmt: skip


def test_the_baseline_refuses_the_models_flags_before_any_work(folder, capsys):
    flag_sets = (
        ["--paint-mouth"],
        ["--steps", "5", "--expressiveness", "3"],
        ["--audio-guidance", "2"],
        ["--head-motion", "0"],
    )  # fmt: skip (a flag given as 0 is given)
    for flags in flag_sets:
        assert main(talk(folder, "--baseline", *flags)) == 2
        err = capsys.readouterr().err
        assert f"{', '.join(f for f in flags if f.startswith('--'))}: not a setting of the mouth-warp baseline" in err
    assert not (folder / "out.mp4").exists()
    assert main(talk(folder, "--baseline", "--fps", "30")) == 0  # what it does take
    (folder / "out.mp4").unlink()


def test_a_photo_without_a_face_is_named_with_its_size(folder, capsys):
    assert main(talk(folder, "--baseline", image="coffee.png")) == 2
    err = capsys.readouterr().err
    assert f"--image {str(folder / 'coffee.png')!r}: no face found in the image (600x400 px)" in err
    assert not (folder / "out.mp4").exists()


def test_sigterm_removes_the_half_written_video(folder, tmp_path):
    save_audio(tmp_path / "long.wav", speech_like(120.0))
    out = tmp_path / "long.mp4"
    argv = [sys.executable, "-m", "avdiff.cli", "talk", "--baseline", "--image", str(folder / "face.png"), "--audio",
            str(tmp_path / "long.wav"), "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".long.*.partial.mp4")):  # the video is being written
            assert proc.poll() is None and time.monotonic() < deadline, "the command ended or never began writing"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM and "avdiff: terminated" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.wav"]  # no partial file, no video


def test_a_clip_too_short_to_score_is_said_once(folder, tmp_path, capsys, caplog):
    save_audio(tmp_path / "short.wav", speech_like(0.3))
    short = ["talk", "--baseline", "--image", str(folder / "face.png"), "--audio", str(tmp_path / "short.wav")]
    assert main([*short, "--out", str(tmp_path / "short.mp4")]) == 0
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main(["eval", "lipsync", str(tmp_path / "short.mp4")]) == 2
    said = [r for r in caplog.records if "lip sync cannot be scored" in r.getMessage()]
    assert len(said) == 1 and "frames" in said[0].getMessage()
    assert "avdiff: error:" in capsys.readouterr().err


def test_the_flag_table_names_the_parsers_own_flags_and_the_pipelines_arguments():
    """talk.py's one table (flag -> attribute, argument, model kind) names the parser's own attributes and
    arguments the pipelines take (generation_kwargs still maps them by hand)."""
    import argparse
    import inspect

    from avdiff.cli import build_parser
    from avdiff.commands import talk
    from avdiff.pipelines.talking_head import MotionTalkingHeadPipeline, TalkingHeadPipeline

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    dests = {flag: a.dest for a in sub.choices["talk"]._actions for flag in a.option_strings}
    takes = {kind: set(inspect.signature(cls.__call__).parameters)
             for kind, cls in (("motion", MotionTalkingHeadPipeline), ("pixel", TalkingHeadPipeline))}  # fmt: skip
    for flag, (attr, argument, kind) in talk._MODEL_FLAGS.items():
        assert dests[flag] == attr and argument in takes[kind], flag
