"""``avdiff bench text-to-video``: the training step of the scene model's UNet, and what a CPU budget buys.

For the preset's UNet (``avdiff/presets/text_to_video_<preset>.yaml``) and a baseline that differs in one thing, text
cross-attention at every level (spatial attention at 16x16 too), it times one optimiser step (forward, backward,
AdamW) of each kind the recipe (a training YAML's ``task:`` section) mixes:

* a *video* step: ``video_items`` clips of ``num_frames`` frames;
* an *image* step: ``batch_size`` single frames.

Times are the process's CPU time (``time.process_time``) with one intra-op thread, the median of ``repeats`` steps
after a warm-up step, so other processes on a shared machine slow the wall clock but not the figure. Reported per
model: ``video_s``, ``image_s``, ``mean_s`` (mixed by ``image_prob``), ``x_vs_baseline`` (mean over the baseline's)
and ``steps_in_budget`` (``budget_min`` minutes of steps at ``mean_s``, nothing else counted).
"""

from __future__ import annotations

import copy
import logging
import statistics
import time

import torch

from avdiff.bench.timing import format_table
from avdiff.encoders.text import resolve_text_model
from avdiff.models.builders import build_codec, build_unet, load_preset
from avdiff.training.config import load_train_config
from avdiff.training.text_to_video import TextToVideoTaskConfig

logger = logging.getLogger(__name__)

COLUMNS = ["model", "params_m", "video_s", "image_s", "mean_s", "x_vs_baseline", "steps_in_budget"]


def _all_attention(spec: dict) -> dict:
    """The preset's UNet section with cross-attention blocks at every level."""
    spec = copy.deepcopy(spec)
    n = len(spec["unet2d"]["block_out_channels"])
    spec["unet2d"]["down_block_types"] = ["CrossAttnDownBlock2D"] * n
    spec["unet2d"]["up_block_types"] = ["CrossAttnUpBlock2D"] * n
    return spec


def step_time(unet: torch.nn.Module, batch: int, frames: int, tokens: int, repeats: int) -> float:
    """Median CPU seconds of one AdamW step on random latents [batch, C, frames, h, w] and text [batch, tokens, D]."""
    config = unet.unet.config
    c, s, d = unet.latent_channels, config.sample_size, config.cross_attention_dim
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    times = []
    for i in range(repeats + 1):
        x, text = torch.randn(batch, c, frames, s, s), torch.randn(batch, tokens, d)
        t = torch.randint(0, 1000, (batch,))
        start = time.process_time()
        unet(x, t, encoder_hidden_states=text).sample.pow(2).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step warms the kernels up
            times.append(time.process_time() - start)
    return statistics.median(times)


def main(
    config_path: str = "configs/train/scenes_tiny.yaml", repeats: int = 3, budget_min: float = 90.0, threads: int = 1
) -> str:

    trainer, task = load_train_config(config_path)
    task = TextToVideoTaskConfig.from_dict(task)
    spec = load_preset("text_to_video", task.preset)
    from transformers import AutoConfig

    tokens = int(spec["text_encoder"].get("max_length", 32))
    width = int(AutoConfig.from_pretrained(resolve_text_model(spec["text_encoder"]["name"])).hidden_size)
    codec = build_codec(spec["codec"])
    size = int(spec["pixel_size"]) // codec.downscale
    video_items = task.video_items or trainer.batch_size
    torch.set_num_threads(threads)
    rows = []
    for name, unet_spec in [
        ("baseline: attention at every level", _all_attention(spec["unet"])),
        (f"text_to_video_{task.preset}", spec["unet"]),
    ]:
        unet_spec = dict(unet_spec)
        audio_dim = unet_spec.pop("audio_dim", None)
        unet = build_unet(
            unet_spec,
            seed=0,
            latent_channels=codec.latent_channels,
            latent_size=size,
            cross_attention_dim=width,
            audio_dim=audio_dim,
            reference_channels=0,
            motion_channels=0,
            mask_channels=0,
        ).train()
        video = step_time(unet, video_items, task.num_frames, tokens, repeats)
        image = step_time(unet, trainer.batch_size, 1, tokens, repeats)
        mean = task.image_prob * image + (1 - task.image_prob) * video
        rows.append(
            {
                "model": name,
                "params_m": round(sum(p.numel() for p in unet.parameters()) / 1e6, 2),
                "video_s": round(video, 3),
                "image_s": round(image, 3),
                "mean_s": round(mean, 3),
                "steps_in_budget": int(budget_min * 60 / mean),
            }
        )
    for row in rows:
        row["x_vs_baseline"] = round(row["mean_s"] / rows[0]["mean_s"], 2)
    header = (
        f"{config_path}: video step {video_items} clips x {task.num_frames} frames, image step "
        f"{trainer.batch_size} frames, image_prob {task.image_prob}; CPU s per step, {threads} thread(s), "
        f"median of {repeats}; budget {budget_min:g} min"
    )
    return header + "\n" + format_table(rows, COLUMNS)
