"""Every output of a command is checked before any work, against the inputs and each other, and a plot's format is
checked before the render (avdiff.video.outputs.check_outputs, used by visualize, scene, talk, generate, eval)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import avdiff.commands.generate as generate_cmd
import avdiff.commands.scene as scene_cmd
import avdiff.data.prepare as prepare_package
import avdiff.evaluation.talking_head as talking_head_metrics
import avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer as bv
from avdiff.audio.io import save_audio
from avdiff.bench.audio_scene import stepped_sound
from avdiff.bench.visualize import make_keyframes, make_song
from avdiff.cli import main


def no_work(*args, **kwargs):
    pytest.fail("work began before the outputs were checked")


@pytest.fixture(scope="module")
def song_and_keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outputs")
    keys = folder / "keys"
    make_keyframes(keys, 48)
    return make_song(folder / "song.wav", 2.0), keys


def refused(args: list[str], capsys) -> str:
    assert main(args) == 2, args
    err = capsys.readouterr().err
    assert err.startswith("avdiff: error: ") and err.count("\n") == 1, err
    return err


def test_visualize_refuses_a_timeline_written_over_its_video_before_any_work(
    song_and_keys, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(bv, "analyze_rhythm", no_work)
    song, keys = song_and_keys
    out = tmp_path / "v.mp4"
    base = ["visualize", "--audio", str(song), "--images", str(keys), "--out", str(out)]
    err = refused(base + ["--save-timeline", str(out)], capsys)
    assert f"--save-timeline '{out}' and --out '{out}' are the same file" in err
    err = refused(base + ["--save-timeline", str(tmp_path / "sub" / ".." / "v.mp4")], capsys)  # the same, spelt apart
    assert "are the same file" in err
    err = refused(base + ["--save-timeline", str(tmp_path / "t.png"), "--plot", str(tmp_path / "t.png")], capsys)
    assert "--plot" in err and "--save-timeline" in err and "are the same file" in err
    os.symlink(tmp_path / "elsewhere.mp4", tmp_path / "link.json")  # a dangling link to where --out will be
    err = refused(
        [
            "visualize",
            "--audio",
            str(song),
            "--images",
            str(keys),
            "--out",
            str(tmp_path / "elsewhere.mp4"),
            "--save-timeline",
            str(tmp_path / "link.json"),
        ],
        capsys,
    )
    assert "are the same file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json"]  # nothing written


@pytest.mark.parametrize(
    "name, message",
    [
        ("curve.xyz", "a picture cannot be written as '.xyz'"),
        ("curve", "a picture cannot be written without an extension"),
        ("curve.mp4", "a picture cannot be written as '.mp4'"),
    ],
)
def test_visualize_checks_the_plot_format_before_the_render(
    song_and_keys, tmp_path, capsys, monkeypatch, name, message
):
    monkeypatch.setattr(bv, "analyze_rhythm", no_work)
    song, keys = song_and_keys
    err = refused(
        [
            "visualize",
            "--audio",
            str(song),
            "--images",
            str(keys),
            "--out",
            str(tmp_path / "v.mp4"),
            "--plot",
            str(tmp_path / name),
        ],
        capsys,
    )
    assert f"--plot '{tmp_path / name}': {message}; give a name ending in .png, .jpg" in err
    assert list(tmp_path.iterdir()) == []


def test_scene_checks_its_plot_against_the_video_and_its_format_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(scene_cmd, "load_pipeline", no_work)
    sound = save_audio(tmp_path / "crackle.wav", stepped_sound(1.0))
    out = tmp_path / "v.mp4"
    base = ["scene", "--prompt", "a campfire beside a lake", "--audio", str(sound), "--out", str(out)]
    assert "a picture cannot be written as '.mp4'" in refused(base + ["--plot", str(out)], capsys)
    os.symlink(out, tmp_path / "plot.png")  # a link to where the video will be: a picture written over it
    assert "are the same file" in refused(base + ["--plot", str(tmp_path / "plot.png")], capsys)
    assert "a picture cannot be written as '.svgz'" in refused(base + ["--plot", str(tmp_path / "c.svgz")], capsys)
    assert "is a folder; give a file name such as" in refused(base + ["--plot", str(tmp_path)], capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crackle.wav", "plot.png"]


def test_generate_checks_its_output_folder_before_loading_the_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(generate_cmd, "load", no_work)
    data = tmp_path / "scenes"
    data.mkdir()
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    base = ["generate", "--preset", "tiny", "--captions", str(data)]
    assert f"--out '{a_file}' is a file; give a folder" in refused(base + ["--out", str(a_file)], capsys)
    assert f"is the --captions '{data}'" in refused(base + ["--out", str(data)], capsys)
    folder_png = tmp_path / "frame.png"
    folder_png.mkdir()
    one = ["generate", "--preset", "tiny", "--prompt", "a cat", "--frames", "1", "--out", str(folder_png)]
    assert f"--out '{folder_png}' is a folder; give a file name such as" in refused(one, capsys)
    assert a_file.read_text() == "keep me"


def test_eval_talking_head_checks_its_output_folder_before_any_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(talking_head_metrics, "evaluate_talking_heads", no_work)
    data = tmp_path / "data"
    data.mkdir()
    report = tmp_path / "report.md"
    report.write_text("an earlier report")
    base = ["eval", "talking-head", "--data", str(data), "--baselines", "still"]
    assert f"--out '{report}' is a file; give a folder" in refused(base + ["--out", str(report)], capsys)
    assert f"is the --data '{data}'" in refused(base + ["--out", str(data)], capsys)
    assert report.read_text() == "an earlier report"


@pytest.mark.slow
def test_prepare_checks_its_output_folder_before_any_video(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(prepare_package, "prepare_videos", no_work)
    videos, vae = tmp_path / "videos", tmp_path / "vae"
    videos.mkdir()
    vae.mkdir()
    a_file = tmp_path / "data.txt"
    a_file.write_text("keep me")
    base = ["prepare", "--videos", str(videos), "--no-progress"]
    assert f"--out '{a_file}' is a file; give a folder" in refused(base + ["--out", str(a_file)], capsys)
    assert f"is the --latents '{vae}'" in refused(base + ["--latents", str(vae), "--out", str(vae)], capsys)
    assert a_file.read_text() == "keep me"


def test_check_outputs_names_each_problem():
    from avdiff.video.outputs import OutputFile, check_outputs, picture_format

    assert picture_format("a/curve.PNG") == "PNG" and picture_format("c.jpg") == "JPEG"
    assert check_outputs({"--out": "v.mp4", "--plot": OutputFile(None, "picture")}) == {"--out": Path("v.mp4")}
    with pytest.raises(ValueError, match="kind must be one of"):
        OutputFile("x", "movie")
    with pytest.raises(ValueError, match="--json 'r.json' and --out 'r.json' are the same file"):
        check_outputs({"--out": OutputFile("r.json", "file"), "--json": OutputFile("r.json", "file")})
