"""`avdiff visualize` and `avdiff bench visualize`: arguments checked before any work, the video and its timeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

import avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer as bv
from avdiff.bench.visualize import make_keyframes, make_song
from avdiff.cli import main
from avdiff.video import read_video


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_visualize")
    song = make_song(folder / "song.wav", 6.0)
    keys = folder / "keys"
    make_keyframes(keys, 48)
    (keys / "notes.txt").write_text("not an image: ignored")
    return song, keys


@pytest.mark.slow
def test_images_to_a_video_with_its_timeline_and_plot(inputs, tmp_path, capsys):
    song, keys = inputs
    out, timeline, plot = tmp_path / "v.mp4", tmp_path / "t.json", tmp_path / "curve.png"
    assert (
        main(
            [
                "visualize",
                "--audio",
                str(song),
                "--images",
                str(keys),
                "--out",
                str(out),
                "--fps",
                "25",
                "--size",
                "48x32",
                "--beats-per-interval",
                "4",
                "--patterns",
                "subject,pulse",
                "--save-timeline",
                str(timeline),
                "--plot",
                str(plot),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out} (150 frames at 25 fps;") and "downbeats" in printed
    clip = read_video(out)
    assert clip.num_frames == 150 and clip.frames.shape[1:] == (32, 48, 3) and clip.audio is not None
    data = json.loads(timeline.read_text())
    assert [iv["pattern"] for iv in data["intervals"]][:2] == ["subject", "pulse"]
    assert data["intervals"][0]["start"] == {"image": "astronaut.png"} or "astronaut" in str(data["intervals"][0])
    from PIL import Image

    assert Image.open(plot).size == (1000, 320)
    again, replayed = tmp_path / "again.mp4", tmp_path / "t2.json"
    assert (
        main(
            [
                "visualize",
                "--audio",
                str(song),
                "--timeline",
                str(timeline),
                "--out",
                str(again),
                "--fps",
                "25",
                "--size",
                "48x32",
                "--save-timeline",
                str(replayed),
            ]
        )
        == 0
    )
    assert json.loads(replayed.read_text()) == json.loads(timeline.read_text())  # the timeline as given
    # the same frames up to x264's rounding (the pipeline's frames are compared exactly in test_beat_visualizer.py;
    # two encodes of them in one pytest process were seen to differ by 1-2 grey levels per frame at 48x32)
    diff = np.abs(np.asarray(read_video(again).frames, dtype=int) - np.asarray(clip.frames, dtype=int))
    assert diff.mean(axis=(1, 2, 3)).max() < 4.0


@pytest.mark.slow
def test_plan_only_writes_a_timeline_that_timeline_reads_back(inputs, tmp_path, capsys, monkeypatch):
    song, keys = inputs
    base = ["visualize", "--audio", str(song), "--fps", "25"]
    planned, plot = tmp_path / "plan.json", tmp_path / "plan.png"
    with monkeypatch.context() as m:
        m.setattr(bv.BeatVisualizerPipeline, "make_keyframes", lambda *a, **k: pytest.fail("--plan-only rendered"))
        assert (
            main(
                base
                + [
                    "--images",
                    str(keys),
                    "--beats-per-interval",
                    "4",
                    "--patterns",
                    "subject,pulse",
                    "--plan-only",
                    "--save-timeline",
                    str(planned),
                    "--plot",
                    str(plot),
                ]
            )
            == 0
        )
        printed = capsys.readouterr().out
        assert printed.startswith(f"wrote {planned} and {plot} (planned 150 frames at 25 fps;")
        assert "nothing rendered" in printed and plot.exists() and not list(tmp_path.glob("*.mp4"))
        replanned = tmp_path / "replanned.json"  # read back by --timeline, planned again: the same timeline
        assert main(base + ["--timeline", str(planned), "--plan-only", "--save-timeline", str(replanned)]) == 0
        assert json.loads(replanned.read_text()) == json.loads(planned.read_text())
        prompts = tmp_path / "prompts.json"  # prompts are laid on the beats without loading any model
        assert (
            main(
                base
                + [
                    "--prompts",
                    "a cat; a dog",
                    "--model",
                    str(tmp_path / "no-model"),
                    "--plan-only",
                    "--save-timeline",
                    str(prompts),
                ]
            )
            == 0
        )
        assert {json.dumps(iv["start"]) for iv in json.loads(prompts.read_text())["intervals"]} <= {
            '"a cat"',
            '"a dog"',
        }
    capsys.readouterr()
    out, rendered = tmp_path / "v.mp4", tmp_path / "rendered.json"  # the render of the plan keeps it as planned
    assert (
        main(
            base + ["--timeline", str(planned), "--out", str(out), "--size", "48x32", "--save-timeline", str(rendered)]
        )
        == 0
    )
    assert json.loads(rendered.read_text()) == json.loads(planned.read_text()) and read_video(out).num_frames == 150
    capsys.readouterr()
    for args, message in [
        (["--images", str(keys), "--plan-only"], "--plan-only writes only --save-timeline"),
        (
            ["--images", str(keys), "--plan-only", "--save-timeline", str(tmp_path / "t.json"), "--out", str(out)],
            "--plan-only renders nothing: drop --out",
        ),
        (["--images", str(keys)], "--out is required (or --plan-only with --save-timeline T.json)"),
    ]:
        assert main(base + args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("avdiff: error: ") and message in err and err.count("\n") == 1, (args, err)


@pytest.mark.slow
def test_arguments_are_checked_before_any_work(inputs, tmp_path, capsys, monkeypatch):
    song, keys = inputs
    monkeypatch.setattr(bv, "analyze_rhythm", lambda *a, **k: pytest.fail("work began before the checks"))
    empty = tmp_path / "empty"
    empty.mkdir()
    prompts_timeline = tmp_path / "p.json"
    prompts_timeline.write_text(json.dumps([{"start_s": 0, "end_s": 6, "start": "a cat", "end": "a dog"}]))
    base = ["visualize", "--audio", str(song)]
    cases = [
        (["--images", str(keys), "--out", str(song)], f"--out '{song}' is the --audio"),
        (["--images", str(keys), "--out", str(keys / "coffee.png")], "is the --images"),
        (["--images", str(keys), "--out", str(tmp_path)], "is a folder"),
        (["--images", str(keys), "--out", str(tmp_path / "v.avi")], "the output is an mp4 video"),
        (["--images", str(empty), "--out", str(tmp_path / "v.mp4")], "the folder holds no images"),
        (["--images", str(tmp_path / "nope"), "--out", str(tmp_path / "v.mp4")], "no such file or folder"),
        (["--prompts", " ; ", "--out", str(tmp_path / "v.mp4")], "--prompts ' ; ': no prompt"),
        (["--prompts", "a cat", "--out", str(tmp_path / "v.mp4"), "--steps", "0"], "--steps must be >= 1"),
        (["--prompts", "a cat", "--out", str(tmp_path / "v.mp4"), "--guidance", "0.5"], "--guidance must be >= 1"),
        (["--prompts", "a cat", "--out", str(tmp_path / "v.mp4"), "--seed", str(2**64)], "--seed must be from 0 to"),
        (
            ["--prompts", "a cat", "--out", str(tmp_path / "v.mp4"), "--model", "talking-head-tiny"],
            "holds a TalkingHeadPipeline, not a text-to-video pipeline",
        ),
        (
            ["--timeline", str(prompts_timeline), "--out", str(tmp_path / "v.mp4"), "--model", str(empty)],
            f"--model '{empty}' cannot be loaded as a text-to-video model",
        ),
        (["--timeline", str(tmp_path / "none.json"), "--out", str(tmp_path / "v.mp4")], "no such file"),
        (
            ["--images", str(keys), "--out", str(tmp_path / "v.mp4"), "--size", "big"],
            "--size 'big': expected WIDTHxHEIGHT",
        ),
        (
            ["--images", str(keys), "--out", str(tmp_path / "v.mp4"), "--patterns", "zoom"],
            "--patterns 'zoom': choose among",
        ),
        (["--images", str(keys), "--out", str(tmp_path / "v.mp4"), "--fps", "1e9"], "--fps must be between 1 and 120"),
        (["--images", str(keys), "--out", str(tmp_path / "v.mp4"), "--every", "0"], "curve options: every must be"),
        (
            ["--images", str(keys), "--out", str(tmp_path / "v.mp4"), "--smooth", "2"],
            "smooth must be a number >= 0 and <= 1",
        ),
        (
            ["--images", str(keys), "--out", str(tmp_path / "v.mp4"), "--plot", str(song)],
            f"--plot '{song}' is the --audio",
        ),
        (["--images", str(keys), "--out", str(tmp_path / "v.mp4"), "--max-duration", "0"], "--max-duration must be"),
    ]
    for args, message in cases:
        assert main(base + args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("avdiff: error: ") and message in err and err.count("\n") == 1, (args, err)
    assert (
        main(
            [
                "visualize",
                "--audio",
                str(tmp_path / "gone.wav"),
                "--images",
                str(keys),
                "--out",
                str(tmp_path / "v.mp4"),
            ]
        )
        == 2
    )
    assert "--audio" in capsys.readouterr().err and not (tmp_path / "v.mp4").exists()


def test_a_corrupt_song_is_one_line(inputs, tmp_path, capsys):
    _, keys = inputs
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVE" + bytes(200))
    assert main(["visualize", "--audio", str(bad), "--images", str(keys), "--out", str(tmp_path / "v.mp4")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("avdiff: error: cannot load audio from") and not (tmp_path / "v.mp4").exists()


@pytest.mark.slow
def test_bench_visualize_reports_ratios_against_its_baseline(t2v_folder, capsys):
    assert (
        main(
            [
                "bench",
                "visualize",
                "--seconds",
                "4",
                "--durations",
                "4",
                "--size",
                "32",
                "--model",
                str(t2v_folder),
                "--steps",
                "1",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    for row in (
        "keyframes + latent",
        "prompts, latent in-betweens",
        "prompts, diffusion walk, curve beats",
        "prompts, diffusion walk, curve linear",
    ):
        assert row in text
    rows = [line.rsplit(maxsplit=6) for line in text.splitlines() if line.startswith("prompts")]
    made = {source.strip(): int(made) for source, px, frames, made, *_ in rows}
    assert {px for _, px, *_ in rows} == {"64"}  # the model's size, whatever --size the image rows use
    # the linear curve moves t every frame: more in-betweens than the beats curve, which holds it between beats
    assert made["prompts, diffusion walk, curve linear"] > made["prompts, diffusion walk, curve beats"] > 0
    assert "encode (baseline)" in text and "analysis (baseline)" in text and "images (keyframe images, pixel)" in text
    assert "vs_encode" in text and "peak_vs_first" in text


@pytest.fixture(scope="module")
def t2v_folder(tmp_path_factory):
    """A saved random-weight tiny text-to-video pipeline (the bundled scene model is tested in
    test_bundled_scene_model.py)."""
    from avdiff.pipelines import TextToVideoPipeline

    folder = tmp_path_factory.mktemp("t2v")
    TextToVideoPipeline.from_preset("tiny", seed=0).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_prompts_through_a_saved_text_to_video_model(inputs, t2v_folder, tmp_path, capsys):
    """``--prompts`` renders keyframes with ``--model``; the frame count follows the one clock."""
    song, _ = inputs
    model = t2v_folder
    out, timeline = tmp_path / "p.mp4", tmp_path / "p.json"
    assert (
        main(
            [
                "visualize",
                "--audio",
                str(song),
                "--prompts",
                "a campfire by day; a lake at night",
                "--model",
                str(model),
                "--steps",
                "2",
                "--fps",
                "8",
                "--beats-per-interval",
                "4",
                "--save-timeline",
                str(timeline),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith(f"wrote {out} (48 frames at 8 fps;")
    clip = read_video(out)
    assert clip.num_frames == 48 and clip.frames.shape[1:] == (64, 64, 3)
    keys = {json.dumps(iv["start"]) for iv in json.loads(timeline.read_text())["intervals"]}
    assert keys == {'"a campfire by day"', '"a lake at night"'}


def test_an_unknown_device_is_named_before_the_model_loads(inputs, tmp_path, capsys):
    song, _ = inputs
    argv = ["visualize", "--audio", str(song), "--prompts", "a campfire; a lake", "--device", "gpu"]
    assert main([*argv, "--model", str(tmp_path / "no_such_model"), "--out", str(tmp_path / "v.mp4")]) == 2
    err = capsys.readouterr().err
    assert "--device: unknown device 'gpu'" in err and "cannot be loaded" not in err
    assert not (tmp_path / "v.mp4").exists()
