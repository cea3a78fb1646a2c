"""The text-to-video training job on a few procedural scene clips (avdiff.data.scenes): the cached dataset, image and
video steps, text dropout, the object weight, the loss going down, exact resumption, the saved pipeline, the CLIs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from avdiff.data.scene_dataset import SceneClipDataset, select_scene_records
from avdiff.data.scenes import load_scene_clip, make_scenes, record_spec, render_scene
from avdiff.training import TrainConfig, Trainer
from avdiff.training.text_to_video import TextToVideoTask, TextToVideoTaskConfig
from avdiff.video.reader import read_video

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    make_scenes(folder, 6, split="train", seed=0, progress_bar=False)
    return folder


@pytest.fixture(scope="module")
def task(data) -> TextToVideoTask:
    return TextToVideoTask(task_config(data))


def task_config(data, **kw) -> TextToVideoTaskConfig:
    return TextToVideoTaskConfig.from_dict(
        {"data": str(data), "num_frames": 4, "sample_count": 0, "eval_items": 4, **kw}
    )


def train_config(out: Path, **kw) -> TrainConfig:
    base = dict(
        output_dir=str(out), max_steps=5, batch_size=2, lr=2e-3, checkpoint_every=2, log_every=1, ema_decay=0.9, seed=3
    )
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_items_come_from_the_caches_and_match_the_clips_and_captions(data, task):
    dataset = task.make_dataset(data)
    records = select_scene_records(data)
    assert len(dataset) == 6 and (data / "cache" / "scene_rendered_64_4.npy").is_file()
    item = dataset[2]
    assert item["frames"].shape == (4, 64, 64, 3) and item["frames"].dtype == torch.uint8
    drawn = render_scene(record_spec(records[2]), envelopes=load_scene_clip(data, records[2]).envelopes).frames
    np.testing.assert_array_equal(item["frames"].numpy(), drawn[:4])  # frames_from="render": the exact pixels
    decoded = read_video(data / records[2].video, with_audio=False).frames[:4].numpy()
    assert np.abs(decoded.astype(int) - drawn[:4]).mean() < 4  # the mp4 shows the rendered scene (crf 12)
    from_video = SceneClipDataset(data, task.template.encode_prompt, task.text_key, 64, 4, frames_from="video")
    np.testing.assert_array_equal(from_video[2]["frames"].numpy(), decoded)
    assert (data / "cache" / "scene_frames_64_4.npy").is_file()
    expected = task.template.encode_prompt(records[2].caption, torch.device("cpu"))[0]
    torch.testing.assert_close(item["text"], expected)
    other = next(i for i, r in enumerate(records) if r.caption != records[2].caption)
    assert not torch.equal(dataset[other]["text"], item["text"])
    # A second dataset reads the caches (the encoder is not called again); a changed index remakes them.
    calls = []
    SceneClipDataset(data, lambda c: calls.append(c) or task.template.encode_prompt(c), task.text_key, 64, 4)
    assert calls == []
    lines = (data / "index.jsonl").read_text().splitlines()
    changed = data.parent / "scenes_changed"
    changed.mkdir(exist_ok=True)
    (changed / "clips").symlink_to(data / "clips")
    record = json.loads(lines[0]) | {"caption": "a purple house on the right"}
    (changed / "index.jsonl").write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    ds = SceneClipDataset(changed, lambda c: calls.append(c) or task.template.encode_prompt(c), task.text_key, 64, 4)
    assert calls and "a purple house on the right" in ds.captions


def test_a_bad_index_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a SCENES DATA folder"):
        select_scene_records(tmp_path)
    (tmp_path / "index.jsonl").write_text('{"id": "a", "video": "clips/a.mp4"}\n')
    with pytest.raises(ValueError, match=r"index.jsonl:1: not a scene record .*'caption'"):
        select_scene_records(tmp_path)


def test_image_steps_cut_to_one_frame_video_steps_keep_them_and_text_dropout_uses_the_empty_prompt(data, task):
    dataset = task.make_dataset(data)
    batch = {k: torch.stack([dataset[i][k] for i in range(4)]) for k in ("frames", "text")}
    image = task.model_inputs(batch, image=True)
    assert image["noisy"].shape == (4, 48, 1, 16, 16)
    video = task.model_inputs(batch, image=False)
    assert video["noisy"].shape == (4, 48, 4, 16, 16)
    torch.testing.assert_close(video["target"], task.encode(batch["frames"]))  # x0-prediction: the clean latents
    kinds = []
    for seed in range(40):
        torch.manual_seed(seed)
        kinds.append(task.model_inputs(batch)["noisy"].shape[2] == 1)
    assert 8 < sum(kinds) < 32  # image_prob 0.5
    few = TextToVideoTask.__new__(TextToVideoTask)
    few.__dict__.update(task.__dict__, config=task_config(data, video_items=2, text_dropout=1.0))
    inputs = few.model_inputs(batch, image=False)
    assert inputs["noisy"].shape[0] == 2
    assert torch.equal(inputs["text"], task.null_text.expand(2, -1, -1))  # every caption dropped to the null
    assert torch.equal(few.model_inputs(batch, train=False, image=False)["text"], batch["text"][:2])


def test_object_weight_reads_the_masks_and_weights_the_objects_pixels(data, task):
    weighted = TextToVideoTask.__new__(TextToVideoTask)
    weighted.__dict__.update(task.__dict__, config=task_config(data, object_weight=3.0))
    dataset = weighted.make_dataset(data)
    assert (data / "cache" / "scene_masks_64_4.npy").is_file()
    item = dataset[1]
    truth = np.load(data / select_scene_records(data)[1].masks)[:4]
    np.testing.assert_array_equal(item["masks"].numpy(), truth)
    batch = {k: torch.stack([dataset[i][k] for i in range(3)]) for k in ("frames", "text", "masks")}
    inputs = weighted.model_inputs(batch, train=False, image=False)
    objects = inputs["objects"]  # (B, 1, F, h, w): the share of object pixels in each 4x4 patch
    expected = (batch["masks"] >= 2).float().unfold(2, 4, 4).unfold(3, 4, 4).mean((-1, -2))  # (B, F, h, w)
    torch.testing.assert_close(objects[:, 0], expected)
    assert 0.005 < objects.mean() < 0.3  # a few small objects on sky and ground
    pred = inputs["target"] + 0.1 * (objects > 0)  # wrong only where objects are
    loss, logs = weighted.loss(pred, inputs)
    torch.testing.assert_close(loss, torch.tensor(logs["mse"] + 3.0 * logs["object_mse"]))
    assert logs["object_mse"] == pytest.approx(0.01, rel=1e-4)  # every object position is off by 0.1
    assert logs["mse"] == pytest.approx(0.01 * (objects > 0).float().mean().item(), rel=1e-4)
    image = weighted.model_inputs(batch, image=True)
    assert image["objects"].shape == (3, 1, 1, 16, 16)


def test_min_snr_weights_follow_the_schedule_and_weight_the_loss(data, task):
    weighted = TextToVideoTask.__new__(TextToVideoTask)
    weighted.__dict__.update(task.__dict__, config=task_config(data, snr_gamma=5.0))
    alpha_bar = weighted.scheduler.alphas_cumprod.double()
    t = torch.tensor([0, 250, 500, 750, 999])
    snr = alpha_bar[t] / (1 - alpha_bar[t])
    expected = torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64)).float()  # x0-prediction: min(SNR, gamma)
    torch.testing.assert_close(weighted.min_snr_weights(t), expected)
    assert expected[0] == 5.0 and expected[-1] < 1e-3  # clean steps capped, the noisiest nearly ignored
    dataset = weighted.make_dataset(data)
    batch = {k: torch.stack([dataset[i][k] for i in range(3)]) for k in ("frames", "text")}
    inputs = weighted.model_inputs(batch, train=False, image=True)
    pred = torch.zeros_like(inputs["target"])
    loss, logs = weighted.loss(pred, inputs)
    per_sample = (inputs["target"] ** 2).mean(dim=(1, 2, 3, 4))
    torch.testing.assert_close(loss, (per_sample * inputs["weights"]).mean())
    assert logs["mse"] == pytest.approx(per_sample.mean().item(), rel=1e-5)  # the log stays unweighted


@pytest.mark.slow
def test_training_lowers_the_held_out_loss_and_the_text_helps(data, tmp_path):
    task = TextToVideoTask(task_config(data, image_prob=0.0, text_dropout=0.0))
    before = task.evaluate(task.build_model())
    result = Trainer(
        task,
        train_config(tmp_path, max_steps=40, checkpoint_every=0, lr=3e-3, ema_decay=None, batch_size=3),
        progress_bar=False,
    ).train()
    from avdiff.pipelines.text_to_video import TextToVideoPipeline

    trained = TextToVideoPipeline.from_pretrained(result.final_dir).unet
    after = task.evaluate(trained)
    assert after["loss_video"] < 0.7 * before["loss_video"], (before, after)
    assert after["loss_image"] < before["loss_image"]


def _weights(final: Path) -> dict[str, torch.Tensor]:
    return load_file(next((final / "unet").glob("*.safetensors")))


@pytest.fixture(scope="module")
def straight_run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("t2v_straight")
    Trainer(TextToVideoTask(task_config(data)), train_config(out), progress_bar=False).train()
    return out


@pytest.mark.slow
def test_kill_and_resume_equals_an_uninterrupted_run(data, straight_run, tmp_path):
    partial = Trainer(TextToVideoTask(task_config(data)), train_config(tmp_path), progress_bar=False).train(
        stop_after=3
    )
    assert partial.steps == 3 and not (tmp_path / "final").exists()
    Trainer(TextToVideoTask(task_config(data)), train_config(tmp_path), progress_bar=False).train(resume=True)
    a, b = _weights(straight_run / "final"), _weights(tmp_path / "final")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    logs = [json.loads(line) for line in (straight_run / "logs.jsonl").read_text().splitlines()]
    assert len(logs) == 5 and {r["frames"] for r in logs} == {1.0, 4.0}  # both kinds of step ran


@pytest.mark.slow
def test_the_final_folder_is_a_small_pipeline_that_generates(straight_run):
    from avdiff.pipelines.text_to_video import TextToVideoPipeline

    final = straight_run / "final"
    assert not (final / "text_encoder").exists()  # the packaged MiniLM is referenced by name
    pipe = TextToVideoPipeline.from_pretrained(final)
    fresh = TextToVideoPipeline.from_preset("tiny").unet
    trained = dict(pipe.unet.named_parameters())
    assert any(not torch.equal(p, trained[n]) for n, p in fresh.named_parameters())
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        "a red car on the left", num_frames=4, num_inference_steps=2, generator=torch.Generator().manual_seed(0)
    )
    assert out.frames.shape == (4, 64, 64, 3) and out.fps == 8


@pytest.mark.slow
def test_the_cli_trains_evaluates_and_writes_a_sample_grid(data, tmp_path):
    from PIL import Image

    from avdiff.cli import main

    cfg = {
        "trainer": {"max_steps": 2, "batch_size": 2, "log_every": 1, "eval_every": 2},
        "task": {"num_frames": 4, "eval_items": 2, "sample_count": 2, "sample_steps": 2, "sample_frames": [0, 3]},
    }
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "text-to-video",
            "--config",
            str(config),
            "--data",
            str(data),
            "--eval-data",
            str(data),
            "--output-dir",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    grid = Image.open(out / "samples" / "step_2.png")
    assert grid.height == 2 * (64 + 4) + 4  # two prompts, one row each
    evals = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines() if "eval/loss_video" in line]
    assert len(evals) == 1 and all(
        np.isfinite(evals[0][k]) for k in ("eval/loss_video", "eval/loss_image", "eval/text_gain")
    )


@pytest.mark.slow
def test_the_cli_refuses_a_folder_without_scenes(tmp_path, capsys):
    from avdiff.cli import main

    rc = main(
        [
            "train",
            "text-to-video",
            "--config",
            "configs/train/scenes_tiny.yaml",
            "--data",
            str(tmp_path),
            "--output-dir",
            str(tmp_path / "run"),
            "--no-progress",
        ]
    )
    assert rc == 2 and "not a SCENES DATA folder" in capsys.readouterr().err


@pytest.mark.slow
def test_generate_writes_a_clip_an_image_and_one_clip_per_caption(data, tmp_path, capsys):
    from PIL import Image

    from avdiff.cli import main

    common = ["--preset", "tiny", "--steps", "2", "--frames", "4"]
    assert main(["generate", *common, "--prompt", "a red car on the left", "--out", str(tmp_path / "a.mp4")]) == 0
    assert read_video(tmp_path / "a.mp4", with_audio=False).frames.shape == (4, 64, 64, 3)
    assert (
        main(
            [
                "generate",
                "--preset",
                "tiny",
                "--steps",
                "2",
                "--frames",
                "1",
                "--prompt",
                "a bell",
                "--out",
                str(tmp_path / "key.png"),
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "key.png").size == (64, 64)
    assert (
        main(
            [
                "generate",
                *common,
                "--captions",
                str(data),
                "--max-clips",
                "3",
                "--batch",
                "2",
                "--out",
                str(tmp_path / "videos"),
            ]
        )
        == 0
    )
    ids = [r.id for r in select_scene_records(data)[:3]]
    assert sorted(p.stem for p in (tmp_path / "videos").glob("*.mp4")) == sorted(ids)
    capsys.readouterr()
    assert main(["generate", *common, "--prompt", "a", "--out", str(tmp_path / "a.png")]) == 2
    assert "give --frames 1" in capsys.readouterr().err
    assert main(["generate", *common, "--prompt", "a", "--out", str(tmp_path / "a.gif")]) == 2
    assert "--out must end in .mp4 or .png" in capsys.readouterr().err
    assert (
        main(["generate", "--model", str(tmp_path / "missing"), "--prompt", "a", "--out", str(tmp_path / "b.mp4")])
        == 2
    )
    assert "cannot load the model" in capsys.readouterr().err
