import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from avdiff import __version__
from avdiff.audio import save_audio
from avdiff.audio.synth import click_track
from avdiff.cli import main

AVDIFF = Path(sys.executable).with_name("avdiff")


def test_console_script_help_and_version():
    assert AVDIFF.exists(), "the avdiff console script is installed next to python"
    out = subprocess.run([str(AVDIFF), "--help"], capture_output=True, text=True, check=True).stdout
    assert "analyze" in out and "bench" in out
    out = subprocess.run([str(AVDIFF), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"avdiff {__version__}"


def test_analyze_128_bpm_click_track(tmp_path, capsys):
    track = click_track(128, duration_s=20.0, sample_rate=44100)
    path = save_audio(tmp_path / "clicks.wav", track.waveform)
    assert main(["analyze", str(path), "--fps", "25"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tempo_bpm"] == pytest.approx(128, rel=0.02)
    import mir_eval

    f = mir_eval.beat.f_measure(
        mir_eval.beat.trim_beats(track.beat_times_s),
        mir_eval.beat.trim_beats(__import__("numpy").array(out["beat_times_s"])),
    )
    assert f >= 0.9
    assert out["num_frames"] == 500 and "rms" not in out


def test_analyze_per_frame_and_ntsc_fps(tmp_path, capsys):
    path = save_audio(tmp_path / "clicks.flac", click_track(100, duration_s=6.0).waveform)
    assert main(["analyze", str(path), "--fps", "30000/1001", "--per-frame"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["rms"]) == out["num_frames"] == 180  # ceil(6 * 29.97)


@pytest.mark.slow
def test_analyze_errors_are_one_line_and_exit_2(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    missing = tmp_path / "nothing.mp3"
    res = subprocess.run([str(AVDIFF), "analyze", str(missing)], capture_output=True, text=True, env=env)
    assert res.returncode == 2
    assert res.stderr.strip() == f"avdiff: error: cannot load audio from {str(missing)!r}: no such file"
    assert "Traceback" not in res.stderr


def test_no_command_prints_help(capsys):
    assert main([]) == 1
    assert "usage: avdiff" in capsys.readouterr().out


@pytest.mark.parametrize(
    "fps, message",
    [
        ("1e9", "between 1 and 120"),
        ("0.001", "between 1 and 120"),
        ("1/0", "a frame rate such as"),
        ("abc", "a frame rate such as"),
    ],
)
def test_analyze_checks_fps_and_duration_before_reading_the_audio(tmp_path, capsys, fps, message):
    path = save_audio(tmp_path / "clicks.wav", click_track(120, duration_s=2.0).waveform)
    assert main(["analyze", str(path), "--fps", fps]) == 2
    assert (
        capsys.readouterr().err
        == f"avdiff: error: --fps must be {message}"
        + (" 25, 29.97 or 30000/1001" if "such as" in message else " frames per second")
        + f", got {fps!r}\n"
    )
    for value in ("-1", "0", "nan"):
        assert main(["analyze", str(path), "--max-duration", value]) == 2
        assert "--max-duration must be a positive number of seconds" in capsys.readouterr().err


def test_help_lists_every_command_and_job(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # argparse wraps (and hyphen-breaks) help lines to the terminal
    from avdiff.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    jobs = list(train._subparsers._group_actions[0].choices)
    assert {"align", "syncnet", "talking-head"} <= set(jobs)
    with pytest.raises(SystemExit):
        main(["--help"])
    top = " ".join(capsys.readouterr().out.split())  # argparse wraps long help lines
    assert f"train a model ({', '.join(jobs)})" in top  # every job, named in the top help
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert all(job in text for job in jobs)
    with pytest.raises(SystemExit):
        main(["talk", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--max-duration S" in text and "default 600" in text and "from 1 to 120" in text


@pytest.mark.parametrize(
    "argv, printed, said",
    [
        (["batch", "talk", "--columns"], "0 left", ""),
        (["batch", "talk"], "2 in the group", "--manifest and --out are required"),
    ],
    ids=["finished", "failed"],
)
def test_a_finished_command_leaves_its_process_group_and_a_failed_one_does_not_wait(tmp_path, argv, printed, said):
    """Under a launcher a command joins a process group. A finished one leaves it before the process exits, since a
    gloo group left to the interpreter's teardown can abort a finished process (pytorch/pytorch#190489); one that
    fails does not wait to leave (its peers may be inside a collective): it reports its error and returns its code."""
    code = (
        "import torch.distributed as dist\n"
        "from avdiff.cli import main\n"
        f"dist.init_process_group('gloo', init_method='file://{tmp_path / 'store'}', rank=0, world_size=1)\n"
        f"print(main({argv!r}), 'in the group' if dist.is_initialized() else 'left')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert said in done.stderr
    assert done.stdout.strip().splitlines()[-1] == printed


def test_the_talk_flags_defaults_are_the_pipelines_own():
    """`avdiff talk --help` names the defaults without importing the pipelines; they must be the pipelines' own."""
    import inspect

    from avdiff.commands.talk import MOTION_DEFAULTS, PIXEL_DEFAULTS
    from avdiff.pipelines import MotionTalkingHeadPipeline, TalkingHeadPipeline
    from avdiff.pipelines.talking_head.mouth_painting import MOUTH_STEPS

    motion = inspect.signature(MotionTalkingHeadPipeline.__call__).parameters
    pixel = inspect.signature(TalkingHeadPipeline.__call__).parameters
    assert motion["mouth_steps"].default is None and MOTION_DEFAULTS["mouth_steps"] == MOUTH_STEPS
    assert {k: motion[k].default for k in MOTION_DEFAULTS if k != "mouth_steps"} == {
        k: v for k, v in MOTION_DEFAULTS.items() if k != "mouth_steps"
    }
    assert {k: pixel[k].default for k in PIXEL_DEFAULTS} == PIXEL_DEFAULTS
