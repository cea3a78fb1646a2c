"""The demo's package-level parts that need no server: the shipped examples, the limits it checks, and the registry
serving every job's bundled models (talking head, and the scene model for the music and scene tabs)."""

from __future__ import annotations

import gradio as gr
import pytest
from PIL import Image

from avdiff.audio.io import load_audio
from avdiff.demo import build_app
from avdiff.demo.context import Limits
from avdiff.demo.models import ModelRegistry


def test_examples_ship_in_the_package():
    from avdiff.demo.examples import EXAMPLE_TEXT, example_files, example_speech_bytes

    assert 10_000 < len(example_speech_bytes()) < 100_000
    photo, speech = example_files()
    wav = load_audio(speech)
    assert 2.5 < wav.duration_s < 4 and wav.samples.abs().max() > 0.1 and EXAMPLE_TEXT.startswith("The quick")
    assert Image.open(photo).size == (512, 512)


def test_limits_are_checked():
    with pytest.raises(ValueError, match="max_audio_s"):
        build_app(max_audio_s=0, bundled=False)
    with pytest.raises(ValueError, match="min_image_side"):
        Limits(max_output_side=8000)


def test_the_registry_serves_the_bundled_scene_model_to_the_music_and_scene_tabs():
    registry = ModelRegistry()
    assert [e.key for e in registry.choices("text-to-video")] == ["bundled:scene-tiny"]
    talking = [e.key for e in registry.choices("talking-head")]  # each tab sees its own job's models
    assert talking == [
        "bundled:talking-head-motion",
        "bundled:talking-head-tiny",
        "warp",
    ]  # avdiff talk's default first
    pipe, lock = registry.acquire("bundled:scene-tiny")
    assert type(pipe).__name__ == "TextToVideoPipeline" and registry.is_loaded("bundled:scene-tiny")


def test_every_file_input_states_its_limits():
    """Every upload of every tab says how large it may be (``max_file_size``), audio also how long (``max_audio_s``):
    from the app's limits, not fixed text."""
    app = build_app(max_audio_s=12.5, limits=Limits(max_file_size="7mb", max_image_side=2000), bundled=False)
    uploads = [
        b for b in app.blocks.values() if isinstance(b, (gr.Image, gr.Audio, gr.File)) and b.interactive is not False
    ]
    ids = {b.elem_id for b in uploads}
    assert {"th-image", "th-audio", "mv-song", "mv-images", "sc-sounds", "sc-mic"} <= ids, ids
    for block in uploads:
        assert "7 MB" in block.label, (block.elem_id, block.label)
        if isinstance(block, gr.Audio) or block.elem_id == "sc-sounds":
            assert "at most 12.5 s" in block.label, (block.elem_id, block.label)
    assert "2000 px a side" in next(b.label for b in uploads if b.elem_id == "th-image")
