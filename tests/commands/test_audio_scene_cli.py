"""``avdiff scene`` and ``avdiff bench scene``: arguments checked before any work, one-line errors, a smoke run."""

from __future__ import annotations

import numpy as np
import pytest

import avdiff.commands.scene as scene_cmd
from avdiff.audio.io import save_audio
from avdiff.bench.audio_scene import stepped_sound
from avdiff.cli import main
from avdiff.demo.examples import example_files

PROMPT = "a campfire beside a lake at night"


@pytest.fixture(scope="module")
def sound(tmp_path_factory):
    return save_audio(tmp_path_factory.mktemp("scene") / "crackle.wav", stepped_sound(1.5))


def test_arguments_are_checked_before_any_work(sound, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(scene_cmd, "load_pipeline", lambda *a, **k: pytest.fail("work began before the checks"))
    out = str(tmp_path / "v.mp4")
    base = ["scene", "--prompt", PROMPT, "--audio", str(sound)]
    cases = [
        (["--out", str(sound)], f"--out '{sound}' is the --audio"),
        (["--out", str(tmp_path)], "is a folder"),
        (["--out", out, "--word", "volcano"], "--word 'volcano' is not a word of the prompt"),
        (["--out", out, "--word", "camp"], "--word 'camp' is not a word of the prompt"),
        (["--out", out, "--word", "lake", "--word", "night"], "--word is given 2 time(s) for 1 --audio"),
        (["--out", out, "--image", str(tmp_path / "none.png")], "--image"),
        (["--out", out, "--strength", "-1"], "--strength must be a number >= 0"),
        (["--out", out, "--levels", "1"], "--levels must be >= 2"),
        (["--out", out, "--steps", "0"], "--steps must be >= 1"),
        (["--out", out, "--chunk-frames", "0"], "--chunk-frames must be >= 1"),
        (["--out", out, "--guidance", "0.5"], "--guidance must be a number >= 1"),
        (["--out", out, "--fps", "1e9"], "--fps must be between 1 and 120"),
        (["--out", out, "--plot", str(sound)], f"--plot '{sound}' is the --audio"),
        (["--out", out, "--plot", str(tmp_path)], "is a folder"),
    ]
    for args, message in cases:
        assert main(base + args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("avdiff: error: ") and message in err and err.count("\n") == 1, (args, err)
    assert main(["scene", "--prompt", PROMPT, "--audio", str(tmp_path / "gone.wav"), "--out", out]) == 2
    assert "--audio" in capsys.readouterr().err and not (tmp_path / "v.mp4").exists()


def test_a_prompt_that_names_no_object_is_refused_before_the_model_loads(sound, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(scene_cmd, "load_pipeline", lambda *a, **k: pytest.fail("work began before the checks"))
    out = str(tmp_path / "v.mp4")
    assert main(["scene", "--prompt", "on the left at night", "--audio", str(sound), "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("avdiff: error: --prompt 'on the left at night' names no object") and "--word" in err
    assert err.count("\n") == 1 and not (tmp_path / "v.mp4").exists()


def test_a_missing_bundled_model_is_one_line(sound, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(scene_cmd, "DEFAULT_MODEL", "no-such-scene-model")
    assert main(["scene", "--prompt", PROMPT, "--audio", str(sound), "--out", str(tmp_path / "v.mp4")]) == 2
    err = capsys.readouterr().err
    assert "the bundled scene model no-such-scene-model is not installed" in err and err.count("\n") == 1


@pytest.mark.slow
def test_a_smoke_run_writes_the_scene_with_its_sound(sound, tmp_path, capsys):
    from avdiff.video.reader import VideoReader

    out = tmp_path / "scene.mp4"
    assert (
        main(
            [
                "scene",
                "--prompt",
                PROMPT,
                "--audio",
                str(sound),
                "--word",
                "campfire",
                "--preset",
                "tiny",
                "--steps",
                "3",
                "--strength",
                "4",
                "--out",
                str(out),
                "--plot",
                str(tmp_path / "c.png"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "drives 'campfire' (given)" in text and "12 frames at 8 fps" in text
    with VideoReader(out) as video:
        frames = np.stack(list(video))
        assert abs(video.audio.duration_s - 1.5) < 0.05
    assert len(frames) == 12 and len({f.tobytes() for f in frames}) > 1  # the sound moved the picture
    from PIL import Image

    plot = np.asarray(Image.open(tmp_path / "c.png").convert("RGB"))
    assert plot.shape == (260, 900, 3) and (np.abs(plot.astype(int) - [217, 72, 15]).sum(-1) < 40).sum() > 100


@pytest.mark.slow
def test_bench_scene_reports_naive_against_shared(capsys):
    assert main(["bench", "scene", "--seconds", "2", "--steps", "1", "--durations", "2"]) == 0
    text = capsys.readouterr().out
    assert "naive_s/s" in text and "shared/naive" in text and "peak_vs_first" in text
    assert main(["bench", "scene", "--seconds", "0"]) == 2


@pytest.mark.slow
def test_a_sound_that_matches_no_object_of_the_prompt_says_so(tmp_path, capsys):
    """The demo's example speech under a campfire prompt (it chose "left" before places left the candidates)."""
    speech = example_files()[1]
    assert (
        main(
            [
                "scene",
                "--prompt",
                "a campfire on the left beside a lake at night",
                "--audio",
                str(speech),
                "--preset",
                "tiny",
                "--steps",
                "2",
                "--levels",
                "2",
                "--out",
                str(tmp_path / "s.mp4"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert f"{speech}: matches no object of the prompt (best score " in text and "name its word with --word" in text
    assert "drives 'left'" not in text and "left " not in text.split("chosen (")[1], text
