"""The talking-head training job: cached DATA windows, the loss, exact resumption, the saved pipeline, DDP, the CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from launching import doc_command, finish, launch
from safetensors.torch import load_file

from avdiff.data.format import read_index
from avdiff.data.synthetic import make_dataset
from avdiff.data.talking_head_dataset import TalkingHeadDataset, cache_path
from avdiff.training import TrainConfig, Trainer
from avdiff.training.talking_head import TalkingHeadTask, TalkingHeadTaskConfig

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.requires_espeak, pytest.mark.usefixtures("one_thread")]  # trains on espeak-ng speech


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("th_data")
    make_dataset(folder, 2, progress_bar=False)
    return folder


@pytest.fixture(scope="module")
def dataset(data) -> TalkingHeadDataset:
    return TalkingHeadDataset(
        data, size=64, window_frames=6, motion_frames=2, audio_context_frames=3, reference_gap=4, items_per_clip=8
    )


def task_config(data, **kw) -> TalkingHeadTaskConfig:
    return TalkingHeadTaskConfig.from_dict({"data": str(data), "items_per_clip": 4, "sample_seconds": 0, **kw})


def train_config(out: Path, **kw) -> TrainConfig:
    base = dict(
        output_dir=str(out), max_steps=6, batch_size=2, lr=1e-3, checkpoint_every=2, log_every=1, ema_decay=0.9, seed=5
    )
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_items_have_the_right_shapes_and_come_from_the_cache(data, dataset):
    records = read_index(data)
    assert len(dataset) == 16 and dataset.chunk_frames == 8
    for r in records:
        assert cache_path(data, r, 64).is_file()
    item = dataset[3]
    assert item["frames"].shape == (6, 64, 64, 3) and item["frames"].dtype == torch.uint8
    assert item["motion"].shape == (2, 64, 64, 3) and item["motion_valid"].shape == (2,)
    assert item["reference"].shape == (64, 64, 3)
    assert item["mouth"].shape == (6, 64, 64) and item["motion_mouth"].shape == (2, 64, 64)
    assert item["audio"].shape == (dataset.audio_samples,) and dataset.audio_samples >= 640 * (8 + 6)
    assert all(torch.equal(item[k], dataset[3][k]) for k in item)  # an item is a function of its index
    mouth = dataset.clips[0]["mouth"].float() / 255
    assert 0.01 < mouth.mean() < 0.3  # a mouth region, not the whole crop
    assert mouth[:, 48:, 24:40].mean() > mouth[:, :16].mean()  # in the lower face
    again = TalkingHeadDataset(data, size=64, window_frames=6, motion_frames=2, items_per_clip=8)
    assert torch.equal(again.clips[1]["crops"], dataset.clips[1]["crops"])


@pytest.mark.slow
def test_motion_precedes_the_window_and_the_reference_is_elsewhere(dataset):
    crops, audio = dataset.clips[0]["crops"], dataset.clips[0]["audio"]
    for start in (0, 1, 2, 10, len(crops) - 6):
        g = torch.Generator().manual_seed(start)
        ref = dataset.draw_reference(len(crops), start, g)
        item = dataset.item(0, start, ref)
        assert torch.equal(item["frames"], crops[start : start + 6])
        for j in range(2):
            f = start - 2 + j
            assert bool(item["motion_valid"][j]) == (f >= 0)
            assert torch.equal(item["motion"][j], crops[f] if f >= 0 else torch.zeros_like(crops[0]))
        assert ref < start - 2 - 3 or ref > start + 6 - 1 + 3  # >= 4 frames from the motion frames and window
        assert torch.equal(item["reference"], crops[ref])
        # The audio segment starts 3 context frames before the motion frames, by the clock (640 samples a frame).
        a = (start - 2 - 3) * 640
        lo = max(a, 0)
        assert torch.equal(item["audio"][lo - a : lo - a + 1000], audio[lo : lo + 1000])
        assert torch.all(item["audio"][: lo - a] == 0)
    starts = {int(dataset[i]["start"]) for i in range(len(dataset))}
    assert len(starts) > 4  # windows are drawn at random


@pytest.mark.slow
def test_training_lowers_the_loss_on_a_fixed_batch(data):
    task = TalkingHeadTask(task_config(data))
    ds = task.build_dataset()
    batch = {k: torch.stack([ds[i][k] for i in range(4)]) for k in ds[0]}
    torch.manual_seed(0)
    model = task.build_model().train()
    model.enable_gradient_checkpointing()
    assert model.unet.is_gradient_checkpointing
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(12):
        torch.manual_seed(1)  # the same timesteps, noise and dropout every step
        loss, logs = task.compute_loss(model, batch, 0)
        assert torch.isfinite(loss) and set(logs) == {"mse", "mouth_mse"}
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0] and losses[-1] == min(losses), losses


@pytest.mark.slow
def test_the_model_input_follows_the_inference_layout(data):
    task = TalkingHeadTask(task_config(data, first_chunk_prob=0.0, audio_dropout_always=True))
    ds = task.build_dataset()
    batch = {k: torch.stack([ds.item(0, s, 40)[k] for s in (0, 20)]) for k in ds[0]}
    torch.manual_seed(0)
    x = task.model_inputs(batch)
    assert x["noisy"].shape == (2, 48, 8, 16, 16) and x["audio_windows"].shape[:2] == (2, 8)
    # window at the clip's start: a first chunk (no motion, every real frame scored); later: a continuation
    assert torch.all(x["motion"][0] == 0) and x["scored"][0].tolist() == [0, 0, 1, 1, 1, 1, 1, 1]
    assert torch.all(x["mask"][1, :, :2] == 0) and torch.all(x["mask"][1, :, 2:].amax(dim=(-1, -2)) > 0)
    assert x["scored"][1].tolist() == [0, 0, 1, 1, 1, 1, 1, 1] and torch.any(x["motion"][1, :, :2] != 0)
    assert torch.all(x["motion"][1, :, 2:] == 0)
    # motion latents: the clean latents plus a little noise
    clean = task.encode(batch["motion"][1]).transpose(0, 1)
    assert 0 < (x["motion"][1, :, :2] - clean).abs().max() < 1.0
    model = task.build_model()
    assert model.cfg_dropout.dropouts["audio"].p == 1.0  # audio_dropout_always
    with pytest.raises(ValueError, match="unknown talking-head task settings"):
        TalkingHeadTaskConfig.from_dict({"chunk_frame": 8})
    with pytest.raises(ValueError, match="motion_frames"):
        TalkingHeadTaskConfig.from_dict({"chunk_frames": 2, "motion_frames": 2})


@pytest.mark.slow
def test_audio_gain_measures_whether_the_model_uses_the_speech(data):
    from avdiff.models.builders import open_audio_gates

    task = TalkingHeadTask(task_config(data, eval_items=4))
    model = task.build_model().eval()
    listening = task.evaluate(model)
    assert set(listening) >= {"loss", "mse", "mouth_mse", "mouth_mse_swapped_audio", "audio_gain"}
    assert listening["audio_gain"] == pytest.approx(listening["mouth_mse_swapped_audio"] - listening["mouth_mse"])
    assert listening["audio_gain"] != 0  # open gates: another window's speech changes the prediction
    assert task.evaluate(model) == listening  # fixed windows, noise and timesteps
    open_audio_gates(model.unet, 0.0)  # a model deaf to the speech
    deaf = task.evaluate(model)
    assert deaf["audio_gain"] == 0 and deaf["mouth_mse"] == deaf["mouth_mse_swapped_audio"]


def _weights(final: Path) -> dict:
    out = {}
    for part in ("unet", "speech_encoder"):
        for f in sorted((final / part).glob("*.safetensors")):
            out.update({f"{part}.{k}": v for k, v in load_file(f).items()})
    assert out
    return out


@pytest.fixture(scope="module")
def straight_run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("th_straight")
    Trainer(TalkingHeadTask(task_config(data)), train_config(out), progress_bar=False).train()
    return out


@pytest.mark.slow
def test_kill_and_resume_equals_an_uninterrupted_run(data, straight_run, tmp_path):
    killed = Trainer(TalkingHeadTask(task_config(data)), train_config(tmp_path), progress_bar=False)
    partial = killed.train(stop_after=3)  # killed after step 3: checkpoints step_2 and step_3
    assert partial.steps == 3 and not (tmp_path / "final").exists()
    Trainer(TalkingHeadTask(task_config(data)), train_config(tmp_path), progress_bar=False).train(resume=True)
    a, b = _weights(straight_run / "final"), _weights(tmp_path / "final")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    logs = [json.loads(line) for line in (straight_run / "logs.jsonl").read_text().splitlines()]
    assert len(logs) == 6 and all(np.isfinite(r["loss"]) for r in logs)


@pytest.mark.slow
def test_the_final_folder_is_a_pipeline_that_generates(data, straight_run):
    from avdiff.audio.io import Waveform
    from avdiff.data.video_dataset import load_clip
    from avdiff.pipelines.talking_head import TalkingHeadPipeline

    pipe = TalkingHeadPipeline.from_pretrained(straight_run / "final")
    fresh = TalkingHeadPipeline.from_preset("tiny")
    trained = dict(pipe.unet.named_parameters())
    assert any(not torch.equal(p, trained[n]) for n, p in fresh.unet.named_parameters())  # it was trained
    pipe.set_progress_bar_config(disable=True)
    clip = load_clip(data, read_index(data)[0])
    speech = Waveform(clip.audio.samples[:, : 640 * 10], 16000)
    out = pipe(
        clip.frames[0],
        speech,
        num_inference_steps=2,
        chunk_frames=8,
        motion_frames=2,
        output_type="crops",
        generator=torch.Generator().manual_seed(0),
    )
    assert out.frames.shape == (10, 64, 64, 3) and out.frames.dtype == np.uint8


def _write_config(path: Path, out: Path, **trainer) -> Path:
    import yaml

    cfg = {
        "trainer": {"output_dir": str(out), "max_steps": 2, "batch_size": 2, "log_every": 1, **trainer},
        "task": {"items_per_clip": 4, "sample_seconds": 0.4, "sample_steps": 2},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_the_cli_trains_evaluates_and_saves(data, tmp_path):
    from avdiff.cli import main

    config = _write_config(tmp_path / "cfg.yaml", tmp_path / "unused", eval_every=2)
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "talking-head",
            "--config",
            str(config),
            "--data",
            str(data),
            "--output-dir",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    assert (out / "final" / "model_index.json").is_file() and (out / "samples" / "step_2.mp4").is_file()
    evals = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines() if "eval/loss" in line]
    assert len(evals) == 1 and np.isfinite(evals[0]["eval/loss"])


@pytest.mark.slow
def test_two_process_cpu_ddp_run_with_the_documented_command(data, tmp_path):
    """docs/data-and-training.md's `accelerate launch --multi_gpu ...` with 2 processes: on the CPU they train as
    MULTI_CPU (gloo), both ranks to the end, and one final model and checkpoint are written."""
    _write_config(tmp_path / "train.yaml", tmp_path / "run", checkpoint_every=1)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "synth").symlink_to(data, target_is_directory=True)
    output = finish(launch(doc_command("data-and-training.md", "train one machine"), tmp_path), timeout=300)
    assert output.count("trained 2 steps") == 2  # both ranks finished
    assert (tmp_path / "run" / "final" / "unet").is_dir()
    assert (tmp_path / "run" / "checkpoints" / "step_2" / "DONE").is_file()
