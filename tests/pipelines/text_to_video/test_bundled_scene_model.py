"""The text-to-video scene model that ships inside the package (issue 16): it loads by name, fits the recipe that made
it, draws what the prompt says (checked against known truth: the sky's brightness, and the bundled segmenter on the
named object), and renders the keyframes of `avdiff visualize --prompts` offline by default (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avdiff.bundled import DEFAULT_SCENE_MODEL, available, canonical_name, resolve
from avdiff.cli import main
from avdiff.pipelines import TextToVideoPipeline
from avdiff.training.config import load_train_config

REPO = Path(__file__).resolve().parents[3]
RECIPE = REPO / "configs" / "train" / "scenes_tiny.yaml"


def _public(config) -> dict:
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


@pytest.fixture(scope="module")
def pipe():
    pipe = TextToVideoPipeline.from_pretrained(DEFAULT_SCENE_MODEL)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def keyframes(pipe, prompts: list[str], seed: int = 0, steps: int = 20) -> np.ndarray:
    """One keyframe per prompt from the same noise: uint8 [B, H, W, 3]."""
    side = pipe.default_size // pipe.codec.downscale
    shape = (1, pipe.unet.latent_channels, 1, side, side)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).repeat(len(prompts), 1, 1, 1, 1)
    return pipe(prompts, num_frames=1, num_inference_steps=steps, latents=noise).frames[:, 0]


@pytest.mark.slow
def test_it_ships_and_loads_by_name(pipe):
    folder = resolve(DEFAULT_SCENE_MODEL)
    assert isinstance(folder, Path) and folder.parent.name == "bundled"
    assert DEFAULT_SCENE_MODEL == "avdiff/scene-tiny"
    assert [canonical_name(m.name) for m in available("text-to-video")] == [DEFAULT_SCENE_MODEL]
    assert resolve(DEFAULT_SCENE_MODEL.removeprefix("avdiff/")) == folder
    size_mb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
    assert size_mb < 20  # the UNet's safetensors; MiniLM is packaged apart and saved by name only
    assert pipe.config.text_encoder_name == "minilm" and not (folder / "text_encoder").exists()
    assert pipe.default_size == 64 and float(pipe.fps) == 8


def test_it_fits_its_recipe(pipe):
    trainer, task = load_train_config(RECIPE)
    ran = json.loads((resolve(DEFAULT_SCENE_MODEL) / "training_config.json").read_text())
    assert {k: v for k, v in ran["trainer"].items() if k != "output_dir"} == {
        k: v for k, v in trainer.__dict__.items() if k != "output_dir"
    }
    assert all(ran["task"][k] == v for k, v in task.items())  # every recipe setting, as the run used it
    fresh = TextToVideoPipeline.from_preset(task["preset"])  # the recipe's architecture, random weights
    assert _public(fresh.unet.config) == _public(pipe.unet.config)
    shapes = {n: p.shape for n, p in fresh.unet.named_parameters()}
    assert shapes == {n: p.shape for n, p in pipe.unet.named_parameters()}
    assert any(not torch.equal(p, dict(pipe.unet.named_parameters())[n]) for n, p in fresh.unet.named_parameters())


@pytest.mark.slow
def test_the_sky_follows_the_prompt(pipe):
    """Known truth: the procedural world's day sky is bright blue, its night sky dark; the same noise, only the
    prompt's sky phrase changes."""
    day, night = keyframes(pipe, ["a campfire on the left by day", "a campfire on the left at night"])
    sky = slice(0, 16)  # the top quarter of a 64 px frame is sky in every scene
    day_sky, night_sky = day[sky].astype(float), night[sky].astype(float)
    assert day_sky.mean() > night_sky.mean() + 60
    assert day_sky[..., 2].mean() > day_sky[..., 0].mean()  # blue


@pytest.mark.slow
def test_the_named_object_is_drawn(pipe):
    """The bundled segmenter (pixel accuracy 0.99 on true held-out frames) finds the prompt's object in its
    keyframe, over several seeds, more often than in the keyframe of a prompt without it."""
    from avdiff.data.scenes import LABELS
    from avdiff.models.segmenter import load_segmenter

    segmenter = load_segmenter("avdiff/scene-segmenter")
    found, control = 0, 0
    words = ["moon", "lake", "house", "mountain"]
    for seed in range(3):
        frames = keyframes(pipe, [f"a {w} in the middle at night" for w in words] + ["grass at night"], seed=seed)
        labels = segmenter.predict(frames)  # (B, H, W)
        for k, word in enumerate(words):
            found += int((labels[k] == LABELS.index(word)).mean() > 0.01)
            control += int((labels[-1] == LABELS.index(word)).mean() > 0.01)
    assert found >= 0.75 * 3 * len(words) and found > control + 4


@pytest.mark.slow
def test_avdiff_visualize_prompts_uses_it_by_default(tmp_path, capsys):
    from avdiff.bench.visualize import make_song

    song = make_song(tmp_path / "song.wav", 4.0)
    out = tmp_path / "disco.mp4"
    assert (
        main(
            [
                "visualize",
                "--audio",
                str(song),
                "--prompts",
                "a campfire by day; a campfire at night",
                "--fps",
                "8",
                "--beats-per-interval",
                "4",
                "--steps",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith(f"wrote {out} (32 frames at 8 fps;")
