"""The Gradio demo without a browser: the model registry, every bad input's sentence, progress through the
pipeline's callback, the named endpoints through gradio_client, concurrency, cleanup, and ``avdiff demo``."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import gradio as gr
import gradio_client
import numpy as np
import pytest
import skimage.data
from PIL import Image

from avdiff.audio.io import Waveform, load_audio, save_audio
from avdiff.cli import main
from avdiff.demo import build_app
from avdiff.demo.context import Limits
from avdiff.demo.models import ModelRegistry, ModelSpecError, parse_model_specs
from avdiff.demo.preview import OTHER_COLOR, USED_COLOR
from avdiff.demo.scores import format_lipsync
from avdiff.metrics.lipsync import LipSyncResult, describe_offset
from avdiff.metrics.syncnet_scores import SyncScores
from avdiff.pipelines.talking_head.pipeline_talking_head import plan_chunks
from avdiff.video import read_video, write_video

from demo_server import example_inputs, free_port, serving
from media import riff_wav

AVDIFF = Path(sys.executable).with_name("avdiff")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """The random ``tiny`` talking-head pipeline saved as a user's model folder."""
    from avdiff.pipelines import TalkingHeadPipeline

    path = tmp_path_factory.mktemp("models") / "tiny"
    TalkingHeadPipeline.from_preset("tiny", seed=0).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    return example_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def short_speech(inputs) -> Path:
    """The first second of the example speech."""
    wav = load_audio(inputs[1], sample_rate=16000)
    return save_audio(inputs[1].with_name("one_second.wav"), Waveform(wav.samples[:, :16000], 16000))


@pytest.fixture(scope="module")
def app(tiny_model):
    return build_app(models={"tiny model!": str(tiny_model)}, bundled=False)


@pytest.fixture(scope="module")
def url(app):
    with serving(app) as url:
        yield url


class Recorder:
    """Stands in for gr.Progress: records ``(progress, desc)``."""

    def __init__(self):
        self.calls = []

    def __call__(self, progress, desc=None, total=None, unit="steps"):
        self.calls.append((progress, desc))


def talk_args(photo, speech, model="warp", steps=2, seed=0, fps="25", chunk_frames=8, motion_frames=2):
    return [
        str(photo) if photo else None,
        str(speech) if speech else None,
        model,
        steps,
        2.0,
        1.5,
        seed,
        fps,
        chunk_frames,
        motion_frames,
    ]


# --- models ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_registry_offers_user_models_then_bundled_then_warp_and_never_the_tiny_preset(
    tiny_model, tmp_path, monkeypatch
):
    import avdiff.bundled
    import avdiff.demo.models

    shipped = [m.name for m in avdiff.bundled.available(kind="talking-head")]
    assert shipped == ["talking-head-motion", "talking-head-tiny"]  # what ships
    registry = ModelRegistry()
    assert registry.default("talking-head").key == "bundled:talking-head-motion"  # avdiff talk's default, first
    assert [e.key for e in registry.choices("talking-head")][1:] == ["bundled:talking-head-tiny", "warp"]
    assert registry.default("talking-head").is_motion and not registry.get("bundled:talking-head-tiny").is_motion
    (tmp_path / "pkg" / "demo_model").mkdir(parents=True)
    (tmp_path / "pkg" / "demo_model" / "model_index.json").write_text((tiny_model / "model_index.json").read_text())
    (tmp_path / "pkg" / "not_a_model").mkdir()
    monkeypatch.setattr(avdiff.bundled.resources, "files", lambda name: tmp_path / "pkg")
    bundled = avdiff.bundled.available(kind="talking-head")
    assert [(m.name, m.kind) for m in bundled] == [("demo_model", "talking-head")]
    monkeypatch.setattr(avdiff.demo.models, "available", lambda: bundled)

    registry = ModelRegistry({"my model/v2": str(tiny_model)})
    keys = [e.key for e in registry.choices("talking-head")]
    assert keys == ["user:my_model_v2", "bundled:demo_model", "warp"]
    assert registry.default("talking-head").key == "user:my_model_v2"
    assert not any("tiny" == e.name for e in registry.entries.values())
    assert ModelRegistry(bundled=False).default("talking-head").key == "warp"
    assert str(tiny_model) in registry.describe() and "bundled with avdiff" in registry.get("bundled:demo_model").label


@pytest.mark.slow
def test_registry_rejects_what_is_not_a_saved_pipeline(tiny_model, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSpecError, match="no model_index.json"):
        ModelRegistry({"x": str(tmp_path / "empty")})
    with pytest.raises(ModelSpecError, match="no such folder"):
        ModelRegistry({"x": str(tmp_path / "missing")})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    with pytest.raises(ModelSpecError, match="not a pipeline avdiff knows"):
        ModelRegistry({"x": str(tmp_path / "other")})
    with pytest.raises(ModelSpecError, match="no letters or digits"):
        ModelRegistry({"//": str(tiny_model)})
    with pytest.raises(ModelSpecError, match="same once made safe"):
        ModelRegistry({"a b": str(tiny_model), "a/b": str(tiny_model)})
    with pytest.raises(ModelSpecError, match="expected NAME=PATH"):
        parse_model_specs(["runs/x"])


def test_cli_demo_rejects_a_bad_model_before_serving(tmp_path, capsys):
    assert main(["demo", "--model", f"mine={tmp_path}", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("avdiff: error: --model mine=") and "not a saved pipeline folder" in err
    assert len(err.splitlines()) == 1


@pytest.mark.slow
def test_cli_demo_serves_the_app_and_prints_its_url():
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen(
        [str(AVDIFF), "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines = []
    try:
        deadline = time.time() + 180
        for line in proc.stdout:
            lines.append(line)
            if "avdiff demo: serving on" in line or time.time() > deadline:
                break
        assert f"serving on http://127.0.0.1:{port}" in "".join(lines), "".join(lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:
            assert r.status == 200 and b"avdiff" in r.read()
    finally:
        proc.terminate()
        proc.wait(timeout=60)


# --- bad input: one sentence each -------------------------------------------------------------------------------


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD_INPUTS = {
    "corrupt audio": (
        "photo",
        lambda d, s: _write(d / "corrupt.wav", b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(300)),
        "The audio file cannot be read: it is not audio, or it is corrupt or truncated.",
    ),
    "random bytes as audio": (
        "photo",
        lambda d, s: _write(d / "noise.mp3", np.random.default_rng(0).bytes(4000)),
        "The audio file cannot be read: it is not audio, or it is corrupt or truncated.",
    ),
    "empty audio file": ("photo", lambda d, s: _write(d / "empty.wav", b""), "The audio file is empty."),
    "audio without samples": (
        "photo",
        lambda d, s: _write(d / "zero.wav", riff_wav(np.zeros(0), 16000)),
        "The audio file is empty: it holds no samples.",
    ),
    "NaN samples": (
        "photo",
        lambda d, s: _write(d / "nan.wav", riff_wav(np.r_[np.zeros(800), [np.nan] * 3], 16000)),
        "The audio holds 3 NaN or infinite samples; it is broken and cannot be used.",
    ),
    "audio over the limit": ("photo", lambda d, s: s, "The audio is 3.2 s long; this app takes at most 3 s."),
    "video without sound": (
        "photo",
        lambda d, s: write_video(d / "silent.mp4", np.zeros((5, 32, 32, 3), np.uint8), 25),
        "The file is a video without a sound track; give one with sound.",
    ),
    "no audio": ("photo", lambda d, s: None, "Give speech first: upload an audio file or record with the microphone."),
}
BAD_IMAGES = {
    "unreadable image": (
        lambda d, p: _write(d / "x.png", b"this is not an image"),
        "The image cannot be read: it is not an image file, or it is corrupt or truncated.",
    ),
    "truncated image": (
        lambda d, p: _write(d / "cut.png", p.read_bytes()[: p.stat().st_size // 2]),
        "The image cannot be read: it is not an image file, or it is corrupt or truncated.",
    ),
    "image over the size limit": (
        lambda d, p: _save(Image.new("RGB", (5000, 40)), d / "wide.png"),
        "The image is 5000×40 px; this app takes at most 4096 px on a side.",
    ),
    "image too small": (
        lambda d, p: _save(Image.new("RGB", (20, 20)), d / "small.png"),
        "The image is 20×20 px, too small to hold a face; use at least 32 px on a side.",
    ),
    "no face": (
        lambda d, p: _save(Image.fromarray(skimage.data.rocket()), d / "rocket.png"),
        "No face was found in the photo; use a photo with a clearly visible, roughly frontal face.",
    ),
    "no image": (lambda d, p: None, "Give a face photo first: upload one or take one with the webcam."),
}


def _save(im: Image.Image, path: Path) -> Path:
    im.save(path)
    return path


@pytest.fixture(scope="module")
def short_limit_tab():
    return build_app(max_audio_s=3, bundled=False).avdiff_tabs[0]


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_audio_gets_its_sentence(case, short_limit_tab, inputs, tmp_path):
    _, make, sentence = BAD_INPUTS[case]
    photo, speech = inputs
    with pytest.raises(gr.Error) as e:
        short_limit_tab.talk(*talk_args(photo, make(tmp_path, speech)), progress=Recorder())
    assert e.value.message == sentence


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_images_get_their_sentence_in_generation_and_preview(
    case, short_limit_tab, inputs, short_speech, tmp_path
):
    make, sentence = BAD_IMAGES[case]
    photo, short = inputs[0], short_speech
    image = make(tmp_path, photo)
    requests = short_limit_tab.ctx.cache_dir / "avdiff-requests"
    before = set(requests.glob("*")) if requests.exists() else set()
    with pytest.raises(gr.Error) as e:
        short_limit_tab.talk(*talk_args(image, short), progress=Recorder())
    assert e.value.message == sentence
    assert (set(requests.glob("*")) if requests.exists() else set()) <= before  # nothing half-done is left
    preview, info = short_limit_tab.detect_face(str(image) if image else None)
    if image is not None:
        assert sentence in info
        assert (preview is None) == (case != "no face")  # the photo without a face is shown as it is


@pytest.mark.parametrize(
    "fps, model, message",
    [
        (
            "abc",
            "warp",
            "The frame rate must be a number of frames per second up to 60, such as 25 or 30000/1001; got 'abc'.",
        ),
        ("0", "warp", "The frame rate must be"),
        ("1000", "warp", "The frame rate must be"),
        ("25", "nope", "There is no talking-head model 'nope' here; choose one of warp."),
    ],
)
def test_bad_settings_get_their_sentence(fps, model, message, short_limit_tab, inputs, short_speech):
    with pytest.raises(gr.Error) as e:
        short_limit_tab.talk(*talk_args(inputs[0], short_speech, model=model, fps=fps), progress=Recorder())
    assert e.value.message.startswith(message)


def test_face_preview_draws_the_face_and_says_which_is_used(short_limit_tab, inputs, tmp_path):
    photo, _ = inputs
    preview, info = short_limit_tab.detect_face(str(photo))
    original = np.asarray(Image.open(photo).convert("RGB"))
    assert info == "1 face found (green); it is the one animated."
    changed = np.any(preview != original, axis=2)
    ys, xs = np.nonzero(changed)
    assert 0.001 < changed.mean() < 0.2  # box and landmarks, not a repainted photo
    assert 150 < xs.mean() < 300 and 50 < ys.mean() < 250  # on the astronaut's face
    face = original[20:230, 130:320]  # as tests/video/test_face.py: the face, and a 0.7x copy on the right
    small = np.asarray(Image.fromarray(face).resize((133, 147), Image.Resampling.LANCZOS))
    two = np.full((260, 480, 3), 200, np.uint8)
    two[10:220, 10:200], two[40:187, 260:393] = face, small
    _save(Image.fromarray(two), tmp_path / "two.png")
    preview, info = short_limit_tab.detect_face(str(tmp_path / "two.png"))
    assert info.startswith("2 faces found; the largest (green, number 1) is animated")
    green = np.all(preview == USED_COLOR, axis=2)
    orange = np.all(preview == OTHER_COLOR, axis=2)
    assert np.nonzero(green)[1].mean() < 220 < np.nonzero(orange)[1].mean()  # green on the larger, left face
    big = np.asarray(Image.fromarray(original).resize((2048, 2048)))
    _save(Image.fromarray(big), tmp_path / "big.png")
    preview, info = short_limit_tab.detect_face(str(tmp_path / "big.png"))
    assert preview.shape == (1024, 1024, 3) and "scaled to 1024×1024 px" in info


def test_no_score_is_shown_as_no_score():
    inner = LipSyncResult(r_envelope=None, offset_frames=None, r_at_offset=None, num_frames=40, valid_frames=0)
    empty = LipSyncResult(
        r_envelope=None, offset_frames=None, r_at_offset=None, num_frames=40, valid_frames=2, interior=inner
    )
    text = format_lipsync(empty, 25, "test")
    assert "no score: only 2 of 40 frames show a face with the speech" in text
    assert "no score: only 0 of 40" in text and "None" not in text
    reasoned = LipSyncResult(
        r_envelope=None,
        offset_frames=None,
        r_at_offset=None,
        num_frames=40,
        valid_frames=0,
        reason="no face found in any frame",
    )
    assert "no score: no face found in any frame" in format_lipsync(reasoned, 25, "test")
    # the SyncNet's rows: its reason when it could not read the video, its numbers when it could
    scored = LipSyncResult(r_envelope=0.5, offset_frames=0, r_at_offset=0.5, num_frames=40, valid_frames=40)
    text = format_lipsync(scored, 25, "test", syncnet="avdiff/syncnet-motion", sync_reason="no face in frame 3")
    assert "| SyncNet offset (avdiff/syncnet-motion) | no score: no face in frame 3 |" in text
    sync = SyncScores(lse_d=0.7, lse_c=0.6, offset_frames=-2, dist_at_zero=0.8)
    text = format_lipsync(scored, 25, "test", syncnet="avdiff/syncnet-motion", sync=sync, sync_fps=25.0)
    assert f"| SyncNet offset (avdiff/syncnet-motion) | {describe_offset(-2, 25.0)} |" in text
    assert "| 0.600 / 0.700 |" in text and "`avdiff eval lipsync --syncnet avdiff/syncnet-motion`" in text
    assert "SyncNet" not in format_lipsync(scored, 25, "test")
    with pytest.raises(ValueError, match="sync_fps"):
        format_lipsync(scored, 25, "test", syncnet="avdiff/syncnet-motion", sync=sync)
    still = LipSyncResult(r_envelope=0.0, offset_frames=None, r_at_offset=None, num_frames=40, valid_frames=40)
    assert "| best offset | none: the mouth does not move, so it has no timing |" in format_lipsync(still, 25, "test")


@pytest.mark.slow
def test_settings_the_model_refuses_get_the_pipelines_sentence(app, inputs, short_speech):
    tab = app.avdiff_tabs[0]
    with pytest.raises(gr.Error) as e:
        tab.talk(
            *talk_args(inputs[0], short_speech, model="user:tiny_model", chunk_frames=8, motion_frames=8),
            progress=Recorder(),
        )
    assert e.value.message == (
        "This request cannot be run: motion_frames must be an integer in [0, chunk_frames=8), got 8."
    )
    with pytest.raises(gr.Error) as e:
        tab.talk(*talk_args(inputs[0], short_speech, model="user:tiny_model", steps=2.5), progress=Recorder())
    assert e.value.message == "The steps must be a whole number, got 2.5."


# --- progress and controls reach the pipeline -------------------------------------------------------------------


@pytest.mark.slow
def test_progress_follows_every_step_of_every_chunk(app, inputs, short_speech):
    tab = app.avdiff_tabs[0]
    progress = Recorder()
    video, _, scores, motion = tab.talk(
        *talk_args(inputs[0], short_speech, model="user:tiny_model", steps=2, chunk_frames=8, motion_frames=2),
        progress=progress,
    )
    chunks = plan_chunks(25, 8, 2)
    steps = [(p, d) for p, d in progress.calls if d.startswith("chunk")]
    expected = [f"chunk {k + 1} of {len(chunks)}, step {i + 1} of 2" for k in range(len(chunks)) for i in range(2)]
    assert [d for _, d in steps] == expected
    assert [p for p, _ in steps] == [(j + 1, 2 * len(chunks)) for j in range(2 * len(chunks))]
    assert progress.calls[-1][1].startswith("scoring lip sync")
    assert read_video(video).num_frames == 25 and scores["model"] == "user:tiny_model"
    assert motion is None and tab.show_motion(motion)["visible"] is False  # a pixel model has no motion to plot
    shutil.rmtree(Path(video).parent)  # called outside a server, nothing else removes it


@pytest.mark.slow
def test_the_bundled_motion_model_renders_the_photo_at_its_size_frame_by_frame(inputs, short_speech):
    from PIL import Image

    tab = build_app(bundled=True).avdiff_tabs[0]
    progress = Recorder()
    args = talk_args(inputs[0], short_speech, model="bundled:talking-head-motion", steps=2)
    video, summary, scores, state = tab.talk(*args, 15.0, 1.0, True, progress=progress)  # a still head
    clip = read_video(video)
    frames = [d for _, d in progress.calls if d.startswith("frame")]
    assert len(frames) == clip.num_frames == 25 and frames[0].startswith("frame 1:")
    width, height = Image.open(inputs[0]).size
    assert clip.frames.shape[1:3] == (height, width) and scores["model"] == "bundled:talking-head-motion"
    assert "talking-head-motion" in summary
    motion, fps = state
    assert len(motion) == 25 and fps == "25" and not motion.yaw.any()  # the still-head switch reached the pipeline
    plot = tab.show_motion(state)
    assert plot["visible"] and plot["value"].ndim == 3 and plot["value"].shape[2] == 3
    with pytest.raises(gr.Error):
        tab.talk(*args, "often", 1.0, False, progress=Recorder())
    shutil.rmtree(Path(video).parent)


@pytest.mark.slow
def test_warm_loads_and_runs_the_default_model_and_the_syncnet_and_leaves_no_file(tmp_path, monkeypatch):
    from avdiff.demo.tabs import talking_head as talking_head_tab

    app = build_app(bundled=True)
    assert app.avdiff_context.workers.spec.warm == ("avdiff.demo.tabs.talking_head:TalkingHeadTab",)  # only it warms
    tab, registry = app.avdiff_tabs[0], app.avdiff_context.models
    default = registry.default("talking-head")
    assert default.is_motion and not registry.is_loaded(default.key)
    talking_head_tab.sync_expert.cache_clear()
    made = []
    score_file = talking_head_tab.score_file
    monkeypatch.setattr(
        talking_head_tab, "score_file", lambda path: made.append((Path(path), read_video(path))) or score_file(path)
    )
    cache = Path(app.avdiff_context.cache_dir)
    videos = set(cache.glob("**/*.mp4"))  # Gradio's cache folder may hold other apps' files
    tab.warm()
    assert registry.is_loaded(default.key) and talking_head_tab.sync_expert.cache_info().currsize == 1
    ((path, clip),) = made
    assert path.parent.name.startswith("warm-") and cache in path.parents  # a request folder of the app's cache
    assert clip.num_frames == 25 and clip.frames.shape[1:3] == (512, 512)  # the example's first second, its size
    assert not list(cache.glob("**/warm-*")) and set(cache.glob("**/*.mp4")) == videos  # its request folder is gone


# --- the served app -------------------------------------------------------------------------------------------------


def same_numbers(a, b, tol: float = 1e-5) -> bool:
    """``a == b``, floats within ``tol`` (the page's worker and the command are two processes: the SyncNet's mean
    distances, rounded to 6 places, can differ in the last one); keys, offsets and flags exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_numbers(a[k], b[k], tol) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_numbers(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return not isinstance(a, bool) and not isinstance(b, bool) and math.isclose(a, b, rel_tol=0, abs_tol=tol)
    return a == b


@pytest.mark.slow
def test_talk_endpoint_scores_exactly_what_eval_lipsync_prints(url, inputs, capsys):
    client = gradio_client.Client(url, verbose=False)
    photo, speech = inputs
    video, summary, scores = client.predict(
        *[gradio_client.handle_file(str(p)) for p in inputs], "warp", 20, 2.0, 1.5, 0, "25", 16, 2, api_name="/talk"
    )
    clip = read_video(video)
    speech_s = load_audio(speech).duration_s
    assert clip.audio is not None and abs(clip.duration_s - speech_s) <= 1 / 25
    assert abs(clip.audio.duration_s - speech_s) <= 1 / 25
    assert clip.num_frames == math.ceil(speech_s * 25)
    assert main(["eval", "lipsync", video, "--syncnet", "avdiff/syncnet-motion", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert "syncnet" in printed  # the page's SyncNet numbers are the command's, as are the loudness ones
    page = {k: scores[k] for k in printed if k not in ("video", "fps")}
    command = {k: v for k, v in printed.items() if k not in ("video", "fps")}
    assert same_numbers(page, command), (page, command)
    assert (
        f"| SyncNet offset (avdiff/syncnet-motion) | {describe_offset(printed['syncnet']['offset_frames'], 25)} |"
        in summary
    )
    assert scores["r_envelope"] > 0.5  # the warp baseline moves the mouth with the speech
    assert f"| r at offset 0: mouth openness vs speech envelope | {printed['r_envelope']:+.3f} |" in summary
    preview, info = client.predict(gradio_client.handle_file(str(photo)), api_name="/detect_face")
    assert info.startswith("1 face found") and Path(preview).is_file()


@pytest.mark.slow
def test_diffusion_controls_reach_the_pipeline_through_the_app(url, inputs, tmp_path):
    client = gradio_client.Client(url, verbose=False)
    photo, speech = inputs
    short = save_audio(tmp_path / "s.wav", Waveform(load_audio(speech, sample_rate=16000).samples[:, :12000], 16000))
    files = [gradio_client.handle_file(str(p)) for p in (photo, short)]
    clips = {}
    for seed, fps in [(0, "25"), (1, "25"), (0, "30000/1001")]:
        video, _, scores = client.predict(*files, "user:tiny_model", 2, 2.0, 1.5, seed, fps, 8, 2, api_name="/talk")
        clips[seed, fps] = read_video(video)
        assert scores["model"] == "user:tiny_model"
    assert clips[0, "25"].num_frames == math.ceil(0.75 * 25)
    assert clips[0, "30000/1001"].num_frames == math.ceil(0.75 * 30000 / 1001)
    assert str(clips[0, "30000/1001"].fps) == "30000/1001"
    a, b = clips[0, "25"].frames.numpy().astype(int), clips[1, "25"].frames.numpy().astype(int)
    assert np.abs(a - b).mean() > 0.5  # the seed draws the noise


@pytest.mark.slow
def test_two_requests_at_once_get_their_own_files_and_a_bad_one_breaks_nothing(url, app, inputs, tmp_path):
    client = gradio_client.Client(url, verbose=False, download_files=False)
    files = [gradio_client.handle_file(str(p)) for p in inputs]
    jobs = [client.submit(*files, "warp", 20, 2.0, 1.5, 0, fps, 16, 2, api_name="/talk") for fps in ("25", "30")]
    results = [job.result(timeout=300) for job in jobs]
    paths = [Path(r[0]["path"]) for r in results]
    assert paths[0] != paths[1] and paths[0].parent != paths[1].parent
    requests_dir = app.avdiff_context.cache_dir / "avdiff-requests"
    assert all(p.parent.parent == requests_dir and p.is_file() for p in paths)
    assert [read_video(p).fps for p in paths] == [25, 30]  # each request got its own settings

    corrupt = _write(tmp_path / "bad.wav", b"RIFF" + bytes(100))
    with pytest.raises(gradio_client.exceptions.AppError, match="The audio file cannot be read"):
        client.predict(
            files[0], gradio_client.handle_file(str(corrupt)), "warp", 20, 2.0, 1.5, 0, "25", 16, 2, api_name="/talk"
        )
    again = client.predict(*files, "warp", 20, 2.0, 1.5, 0, "25", 16, 2, api_name="/talk")
    assert Path(again[0]["path"]).is_file()


@pytest.mark.slow
def test_uploads_over_the_limit_are_refused_and_outputs_are_deleted_by_the_cache_schedule(inputs, tmp_path):
    import httpx

    # outputs older than 10 s are deleted, checked every 2 s: long enough for the file to still be there when the
    # request returns on a loaded machine (at (1, 1) it was sometimes gone already), short enough to wait for
    app = build_app(bundled=False, delete_cache=(2, 10), limits=Limits(max_file_size="1mb"))
    with serving(app) as url:
        upload = f"{url.rstrip('/')}/gradio_api/upload"
        big = httpx.post(upload, files={"files": ("big.wav", bytes(2_000_000))}, timeout=60)
        small = httpx.post(upload, files={"files": ("small.wav", bytes(1000))}, timeout=60)
        assert big.status_code == 413 and small.status_code == 200

        client = gradio_client.Client(url, verbose=False, download_files=False)
        files = [gradio_client.handle_file(str(p)) for p in inputs]
        out = client.predict(*files, "warp", 20, 2.0, 1.5, 0, "25", 16, 2, api_name="/talk")[0]
        path = Path(out["path"])
        assert path.is_file()
        deadline = time.time() + 90
        while path.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert not path.exists()


@pytest.mark.slow
def test_choosing_the_motion_model_shows_its_controls_and_defaults():
    tab = build_app(bundled=True).avdiff_tabs[0]
    diffusion, pixel, motion, steps, guidance, info, *_ = tab.select_model("bundled:talking-head-motion")
    assert diffusion["visible"] and not pixel["visible"] and motion["visible"]
    assert (steps["value"], guidance["value"]) == (10, 2.0)
    assert "moves the photo itself" in info
    diffusion, pixel, motion, steps, *_ = tab.select_model("bundled:talking-head-tiny")
    assert diffusion["visible"] and pixel["visible"] and not motion["visible"] and steps["value"] == 20
    diffusion, pixel, *_ = tab.select_model("warp")
    assert not diffusion["visible"]
