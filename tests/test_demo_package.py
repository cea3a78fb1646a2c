"""The demo's package-level parts that need no server: the shipped examples, the limits it checks, and the registry
serving every job's bundled models (talking head, and the scene model for the music and scene tabs)."""

from __future__ import annotations

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
    assert registry.default("talking-head").key == "bundled:talking-head-tiny"  # each tab sees its own job's models
    pipe, lock = registry.acquire("bundled:scene-tiny")
    assert type(pipe).__name__ == "TextToVideoPipeline" and registry.is_loaded("bundled:scene-tiny")
