"""The demo's music tab through gradio_client: plan on the beats, render the (edited) table with the song, scores as
`avdiff eval beats` prints them; bad inputs get one sentence."""

from __future__ import annotations

import json
import math

import gradio as gr
import gradio_client
import pytest

from avdiff.bench.visualize import make_keyframes, make_song
from avdiff.cli import main
from avdiff.demo import build_app
from avdiff.demo.tabs import MusicTab
from avdiff.video import read_video

from demo_server import serving

pytestmark = pytest.mark.slow  # the music tab served and driven through gradio_client


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("music")
    return make_song(folder / "song.wav", 6.0), make_keyframes(folder / "keys", 64)


@pytest.fixture(scope="module")
def app():
    return build_app(bundled=False, tabs=[MusicTab])


@pytest.fixture(scope="module")
def url(app):
    with serving(app) as url:
        yield url


def test_plan_then_render_through_the_named_endpoints(url, media, capsys):
    song, keys = media
    client = gradio_client.Client(url, verbose=False)
    files = [gradio_client.handle_file(str(p)) for p in keys]
    table, plot, info = client.predict(
        gradio_client.handle_file(str(song)), files, "beats", 4, ["subject", "pulse"], "25", api_name="/plan"
    )
    rows = table["data"]
    assert table["headers"] == ["start_s", "end_s", "start", "end", "pattern"] and len(rows) >= 2
    assert (
        rows[0][:1] == [0] and rows[0][2] == "image:astronaut.png" and [r[4] for r in rows[:2]] == ["subject", "pulse"]
    )
    assert "128.0 BPM" in info and plot
    rows[0][4] = "color"  # the table as edited is what is rendered
    video, summary, scores = client.predict(
        gradio_client.handle_file(str(song)),
        files,
        {"headers": table["headers"], "data": rows},
        "beats",
        "25",
        64,
        api_name="/render",
    )
    clip = read_video(video)
    assert clip.num_frames == math.ceil(6.0 * 25) and clip.audio is not None and clip.frames.shape[1] == 64
    assert main(["eval", "beats", video, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in printed.items() if k != "video"} == scores
    assert (
        scores["scored"]
        and f"| hit rate (beats with a visual peak within 1 frame) | {scores['hit_rate']:.3f} |" in summary
    )


class Recorder:
    def __call__(self, *args, **kwargs):
        pass


def test_bad_inputs_get_one_sentence(app, media, tmp_path):
    tab = app.avdiff_tabs[0]
    song, keys = media
    images = [str(p) for p in keys]
    (tmp_path / "bad.png").write_bytes(b"not an image")
    cases = [
        (lambda: tab.plan(None, images, "beats", 8, ["subject"], "25"), "Give a song first"),
        (lambda: tab.plan(str(song), None, "beats", 8, ["subject"], "25"), "Give keyframe images or prompts first"),
        (
            lambda: tab.plan(str(song), [str(tmp_path / "bad.png")], "beats", 8, [], "25"),
            "The image bad.png: cannot be read",
        ),
        (lambda: tab.plan(str(song), images, "beats", 8, [], "abc"), "The frame rate must be"),
        (lambda: tab.plan(str(song), images, "loudness", 8, [], "25"), "This request cannot be run: curve source"),
        (
            lambda: tab.render(str(song), images, None, "beats", "25", 64, progress=Recorder()),
            "Plan the timeline first",
        ),
        (
            lambda: tab.render(
                str(song),
                images,
                {"data": [[0, 3, "image:astronaut.png", "image:coffee.png", "subject"]]},
                "beats",
                "25",
                64,
                progress=Recorder(),
            ),
            "The timeline cannot be used: the timeline ends at 3 s",
        ),
        (
            lambda: tab.render(
                str(song),
                images,
                {"data": [[0, 6, "image:astronaut.png", "image:gone.png", "subject"]]},
                "beats",
                "25",
                64,
                progress=Recorder(),
            ),
            "Row 1: image:gone.png is not one of the uploaded images (astronaut.png, ",
        ),
        (
            lambda: tab.plan(str(song), images, "beats", 8, [], "25", "a lake"),
            "Give keyframe images or prompts, not both",
        ),
        (lambda: tab.plan(str(song), None, "beats", 8, [], "25", "x" * 301), "A prompt is 301 characters long"),
        (
            lambda: tab.render(
                str(song),
                None,
                {"data": [[0, 6, "a lake", "a car", "subject"]]},
                "beats",
                "25",
                64,
                progress=Recorder(),
            ),
            "no text-to-video model to render them",
        ),
    ]
    for call, sentence in cases:
        with pytest.raises(gr.Error) as e:
            call()
        assert sentence in e.value.message, (sentence, e.value.message)


def test_prompts_are_planned_and_rendered_by_the_chosen_text_to_video_model(media, tmp_path_factory):
    """Keyframes from prompts (a saved random-weight tiny text-to-video pipeline given as --model): the table holds
    the prompts, the video is at the model's size, and asking for an unknown model is one sentence."""
    from avdiff.pipelines import TextToVideoPipeline

    song, _ = media
    folder = tmp_path_factory.mktemp("t2v")
    TextToVideoPipeline.from_preset("tiny", seed=0).save_pretrained(folder)
    app = build_app(models={"scenes": str(folder)}, bundled=False, tabs=[MusicTab])
    with serving(app) as url:
        client = gradio_client.Client(url, verbose=False)
        table, _, info = client.predict(
            gradio_client.handle_file(str(song)),
            [],
            "beats",
            4,
            ["subject"],
            "25",
            "a campfire by day\n\n  a lake at night  ",
            api_name="/plan",
        )
        rows = table["data"]
        assert [rows[0][2], rows[0][3]] == ["a campfire by day", "a lake at night"] and "BPM" in info
        video, summary, scores = client.predict(
            gradio_client.handle_file(str(song)), [], table, "beats", "25", 256, "user:scenes", api_name="/render"
        )
        clip = read_video(video)
        assert clip.num_frames == math.ceil(6.0 * 25) and clip.frames.shape[1:3] == (64, 64) and clip.audio is not None
        with pytest.raises(gradio_client.exceptions.AppError, match="Choose a text-to-video model"):
            client.predict(
                gradio_client.handle_file(str(song)), [], table, "beats", "25", 64, "bundled:nope", api_name="/render"
            )
