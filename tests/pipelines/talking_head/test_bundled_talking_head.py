"""The talking-head model that ships inside the package: it loads by name, fits the recipe that made it, is the
default of `avdiff talk`, and moves a mouth it has never seen with the speech."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch

from avdiff.bundled import available, resolve
from avdiff.cli import main
from avdiff.pipelines import TalkingHeadPipeline
from avdiff.training.config import load_train_config

REPO = Path(__file__).resolve().parents[3]
NAME = "avdiff/talking-head-tiny"
RECIPE = REPO / "configs" / "train" / "talking_head_faces.yaml"


def _public(config) -> dict:
    """A diffusers config without its bookkeeping keys (``_class_name``, ``_use_default_values``, ...)."""
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


@pytest.fixture(scope="module")
def pipe():
    pipe = TalkingHeadPipeline.from_pretrained(NAME)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_it_ships_and_loads_by_name_before_any_hub_look_up(pipe):
    folder = resolve(NAME)
    assert isinstance(folder, Path) and folder.is_dir() and folder.parent.name == "bundled"
    assert [m.name for m in available("talking-head")] == ["talking-head-motion", "talking-head-tiny"]
    assert resolve("talking-head-tiny") == folder and resolve("someone/else") == "someone/else"
    size_mb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
    assert size_mb < 10  # a few MB of safetensors
    assert pipe.framing == "lower_face" and (pipe.chunk_frames, pipe.motion_frames) == (8, 2)


def test_it_fits_its_recipe(pipe):
    trainer, task = load_train_config(RECIPE)
    ran = json.loads((resolve(NAME) / "training_config.json").read_text())
    assert {k: v for k, v in ran["trainer"].items() if k != "output_dir"} == {
        k: v for k, v in trainer.__dict__.items() if k != "output_dir"
    }
    assert all(ran["task"][k] == v for k, v in task.items())  # every recipe setting, as the run used it
    fresh = TalkingHeadPipeline.from_preset(task["preset"])  # the recipe's architecture, random weights
    assert _public(fresh.unet.config) == _public(pipe.unet.config)
    assert _public(fresh.scheduler.config) == _public(pipe.scheduler.config)
    shapes = {n: p.shape for n, p in fresh.unet.named_parameters()}
    assert shapes == {n: p.shape for n, p in pipe.unet.named_parameters()}
    assert any(not torch.equal(p, dict(pipe.unet.named_parameters())[n]) for n, p in fresh.unet.named_parameters())


@pytest.mark.slow
def test_it_moves_an_unseen_mouth_with_the_speech(pipe):
    """The astronaut in colour at 512 px is no LFW face; the mouth interior still follows the speech."""
    from avdiff.audio.tts import espeak_available, speak
    from avdiff.metrics.lipsync import score_video
    from avdiff.video.reader import VideoClip

    if not espeak_available():
        pytest.skip("needs espeak-ng")
    speech = speak("We opened the box and found a very old map inside.", voice="en-gb")
    out = pipe(skimage.data.astronaut(), speech, num_inference_steps=8, generator=torch.Generator().manual_seed(0))
    result = score_video(VideoClip(torch.from_numpy(out.frames), out.fps, speech))
    assert result.scored and result.interior.r_envelope > 0.5


@pytest.mark.slow
def test_avdiff_talk_without_a_model_flag_uses_it(tmp_path, capsys):
    from PIL import Image

    from avdiff.audio import Waveform, save_audio

    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "face.png")
    t = np.arange(12000) / 16000
    save_audio(tmp_path / "s.wav", Waveform((0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 16000))
    out = tmp_path / "out.mp4"
    assert (
        main(
            [
                "talk",
                "--image",
                str(tmp_path / "face.png"),
                "--audio",
                str(tmp_path / "s.wav"),
                "--out",
                str(out),
                "--steps",
                "2",
            ]
        )
        == 0
    )
    assert out.is_file() and "wrote" in capsys.readouterr().out
    os.remove(out)
