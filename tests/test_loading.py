"""Models a user has: a folder holding only ``*.fp16.safetensors`` loads (detected, or ``--variant``), a folder
without loadable weights says what it has, and a training checkpoint (``RUN/checkpoints/step_N``) is a model that
``avdiff talk --model`` takes, the same weights as the run's final folder."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from avdiff.bundled import bundled_path
from avdiff.cli import main
from avdiff.demo import build_app
from avdiff.demo.models import ModelSpecError
from avdiff.loading import (
    choose_variant,
    default_device,
    load_model,
    load_pipeline,
    pipeline_class,
    process_device,
    process_state,
    to_device,
    weight_variants,
)
from avdiff.pipelines.talking_head import TalkingHeadPipeline

pytestmark = pytest.mark.usefixtures("one_thread")

BUNDLED = bundled_path("talking-head-tiny")


def with_variant(folder: Path, *variants: str) -> Path:
    """A copy of the bundled talking-head model whose weights exist only as ``variants`` (one copy each)."""
    shutil.copytree(BUNDLED, folder)
    for weights in list(folder.glob("*/diffusion_pytorch_model.safetensors")):
        for variant in variants:
            shutil.copy(weights, weights.with_name(f"diffusion_pytorch_model.{variant}.safetensors"))
        weights.unlink()
    return folder


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_folder_of_one_variant_loads_with_a_log_line_or_by_name(tmp_path, caplog):
    folder = with_variant(tmp_path / "fp16_only", "fp16")
    assert weight_variants(folder) == (False, {"fp16"}) and weight_variants(BUNDLED) == (True, set())
    reference = TalkingHeadPipeline.from_pretrained(BUNDLED)
    with caplog.at_level(logging.INFO, logger="avdiff.loading"):
        detected = load_pipeline(TalkingHeadPipeline, folder, device="cpu")
    assert "has no plain weights, only the 'fp16' variant" in caplog.text
    assert same_weights(detected.unet, reference.unet) and same_weights(
        detected.speech_encoder, reference.speech_encoder
    )
    named = load_pipeline(TalkingHeadPipeline, folder, variant="fp16", device="cpu")
    assert same_weights(named.unet, reference.unet)


def test_a_folder_whose_unet_alone_is_a_variant_loads_it(tmp_path):
    folder = tmp_path / "mixed"  # an fp16 UNet beside a speech encoder with plain weights
    shutil.copytree(BUNDLED, folder)
    unet = folder / "unet" / "diffusion_pytorch_model.safetensors"
    unet.rename(unet.with_name("diffusion_pytorch_model.fp16.safetensors"))
    assert weight_variants(folder) == (False, {"fp16"}) and choose_variant(folder) == "fp16"
    loaded = load_pipeline(TalkingHeadPipeline, folder, device="cpu")
    assert same_weights(loaded.unet, TalkingHeadPipeline.from_pretrained(BUNDLED).unet)


def test_folders_without_the_weights_asked_for_say_what_they_hold(tmp_path):
    folder = with_variant(tmp_path / "fp16_only", "fp16")
    with pytest.raises(
        ValueError,
        match=r"--model '.*fp16_only' has no 'bf16' weights \(\*\.bf16\.safetensors\); "
        r"its weights are 'fp16'$",
    ):
        choose_variant(folder, "bf16")
    both = with_variant(tmp_path / "two", "fp16", "bf16")
    with pytest.raises(ValueError, match=r"holds only variant weights \('bf16', 'fp16'\); choose one with --variant"):
        choose_variant(both)
    assert choose_variant(both, "bf16") == "bf16"
    empty = with_variant(tmp_path / "none")
    with pytest.raises(
        ValueError,
        match=r"holds no loadable weights: no \*\.safetensors or \*\.bin files, plain or "
        r"of a variant \(\*\.fp16\.safetensors\)",
    ):
        load_pipeline(TalkingHeadPipeline, empty, device="cpu")
    assert choose_variant(BUNDLED) is None and choose_variant("org/hub-id", "fp16") == "fp16"
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "diffusion_pytorch_model.fp16-00001-of-00002.safetensors").write_bytes(b"")
    assert weight_variants(sharded) == (False, {"fp16"})


def test_the_demo_refuses_a_folder_of_several_variants_when_it_starts_not_on_the_page(tmp_path):
    both = with_variant(tmp_path / "two", "fp16", "bf16")
    with pytest.raises(
        ModelSpecError,
        match=r"^--model mine=.*two: its weights exist only as the variants 'bf16', "
        r"'fp16'; .*keep one",
    ):
        build_app({"mine": str(both)}, bundled=False)
    build_app({"mine": str(with_variant(tmp_path / "one", "fp16"))}, bundled=False)  # one variant: loaded as it is


def test_every_command_that_loads_a_model_takes_variant(tmp_path, capsys):
    from avdiff.cli import build_parser

    for command in (
        ["talk", "--image", "i", "--audio", "a", "--out", "o.mp4"],
        ["scene", "--prompt", "p", "--audio", "a", "--out", "o.mp4"],
        ["generate", "--model", "m", "--prompt", "p", "--out", "o.mp4"],
        ["visualize", "--audio", "a", "--prompts", "p", "--out", "o.mp4"],
        ["eval", "talking-head", "--data", "d", "--out", "o"],
    ):
        assert build_parser().parse_args([*command, "--variant", "fp16"]).variant == "fp16"
    folder = with_variant(tmp_path / "fp16_only", "fp16")
    image = tmp_path / "face.png"
    image.write_bytes(b"")  # never read: the model fails first
    rc = main(
        [
            "talk",
            "--model",
            str(folder),
            "--variant",
            "bf16",
            "--image",
            str(image),
            "--audio",
            str(image),
            "--out",
            str(tmp_path / "o.mp4"),
        ]
    )
    assert rc == 2 and "has no 'bf16' weights" in capsys.readouterr().err and not (tmp_path / "o.mp4").exists()


# --- one loader: the device, the kind read from model_index.json -------------------------------------------------


def test_the_device_is_decided_in_one_place():
    assert default_device("cpu") == "cpu" and default_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    module = torch.nn.Linear(2, 2)
    assert to_device(module, "cpu") is module and module.weight.device.type == "cpu"


def test_a_plain_process_is_one_process_on_its_state_s_device_unless_told():
    state = process_state()
    assert state.num_processes == 1 and state.process_index == 0 and state.is_main_process
    assert process_state().device == state.device  # one state per process, shared
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert process_device(state).type == expected
    assert process_device(state, "cpu") == torch.device("cpu")  # an explicit --device wins
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        process_device(state, "gpu")


def test_a_folder_loads_as_the_pipeline_its_model_index_names(tmp_path):
    pipe = load_model("avdiff/talking-head-tiny", device="cpu")
    assert type(pipe) is TalkingHeadPipeline
    assert same_weights(pipe.unet, TalkingHeadPipeline.from_pretrained(BUNDLED).unet)
    assert pipeline_class("talking-head") is TalkingHeadPipeline
    assert pipeline_class("text-to-video").__name__ == "TextToVideoPipeline"
    with pytest.raises(ValueError, match="no pipeline for the job 'music'"):
        pipeline_class("music")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    with pytest.raises(ValueError, match=r"--model '.*other' is not a saved pipeline avdiff knows"):
        load_model(tmp_path / "other")
    with pytest.raises(
        ValueError, match=r"not a saved pipeline folder \(no model_index.json\), a training checkpoint"
    ):
        load_pipeline(TalkingHeadPipeline, tmp_path, device="cpu")
    with pytest.raises(
        ValueError, match=r"--model 'runs/no/such/final' is not a local folder, a bundled model's name"
    ):
        load_pipeline(TalkingHeadPipeline, "runs/no/such/final", device="cpu")  # not a valid hub id: no network


# --- a training checkpoint ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A talking-head run of 2 steps on 2 synthetic clips, with an EMA: checkpoints/step_2 and final."""
    from avdiff.data.synthetic import make_dataset
    from avdiff.training import TrainConfig, Trainer
    from avdiff.training.talking_head import TalkingHeadTask, TalkingHeadTaskConfig

    folder = tmp_path_factory.mktemp("run")
    make_dataset(folder / "data", 2, progress_bar=False)
    task = TalkingHeadTask(
        TalkingHeadTaskConfig.from_dict({"data": str(folder / "data"), "items_per_clip": 4, "sample_seconds": 0})
    )
    config = TrainConfig(output_dir=str(folder / "run"), max_steps=2, batch_size=2, lr=1e-3, ema_decay=0.9, seed=5)
    Trainer(task, config, progress_bar=False).train()
    return folder / "run"


@pytest.mark.slow
@pytest.mark.requires_espeak
def test_a_checkpoint_loads_as_the_run_s_model(run):
    checkpoint = run / "checkpoints" / "step_2"
    assert checkpoint.is_dir() and not (checkpoint / "model_index.json").exists()
    pipe = load_pipeline(TalkingHeadPipeline, checkpoint, device="cpu")
    final = TalkingHeadPipeline.from_pretrained(run / "final")
    assert same_weights(pipe.unet, final.unet) and same_weights(pipe.speech_encoder, final.speech_encoder)
    assert not same_weights(pipe.unet, TalkingHeadPipeline.from_preset("tiny").unet)  # trained, and the EMA's
    assert (pipe.chunk_frames, pipe.motion_frames) == (final.chunk_frames, final.motion_frames)


@pytest.mark.slow
@pytest.mark.requires_espeak
def test_talk_takes_a_checkpoint_folder(run, tmp_path):
    import skimage.data
    from PIL import Image

    from avdiff.audio.io import Waveform, save_audio
    from avdiff.video import read_video

    face = tmp_path / "face.png"
    Image.fromarray(skimage.data.astronaut()[:256, 96:352]).save(face)
    t = torch.arange(8000) / 16000
    speech = save_audio(tmp_path / "speech.wav", Waveform(0.3 * torch.sin(2 * np.pi * 200 * t)[None], 16000))
    out = tmp_path / "talk.mp4"
    rc = main(
        [
            "talk",
            "--model",
            str(run / "checkpoints" / "step_2"),
            "--image",
            str(face),
            "--audio",
            str(speech),
            "--out",
            str(out),
            "--steps",
            "1",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0 and read_video(out).num_frames == 13


def test_a_checkpoint_of_another_job_is_a_clear_error(tmp_path):
    step = tmp_path / "run" / "checkpoints" / "step_4"
    step.mkdir(parents=True)
    (step / "DONE").write_text('{"step": 4}')
    (step / "model.safetensors").write_bytes(b"")
    (tmp_path / "run" / "config.json").write_text('{"trainer": {}, "task": {"temperature": 0.07}}')
    with pytest.raises(ValueError, match=r"the checkpoint '.*step_4' is not of a talking-head run"):
        load_pipeline(TalkingHeadPipeline, step, device="cpu")
