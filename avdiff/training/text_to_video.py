"""The text-to-video job: train a :class:`~avdiff.pipelines.text_to_video.TextToVideoPipeline`'s UNet on SCENES DATA
clips and their captions, through the shared trainer (exact resume, EMA).

``avdiff train text-to-video --config configs/train/scenes_tiny.yaml --data DATA`` runs it; ``RUN/final`` is a
complete pipeline folder (``TextToVideoPipeline.from_pretrained(RUN/final)``).

Each step is one of two kinds, drawn from the step's seeded RNG:

* a *video* step (probability ``1 - image_prob``): the first ``video_items`` clips of the batch, all ``num_frames``
  frames, denoised together (the motion layers learn how things move);
* an *image* step: every clip of the batch cut to one random frame (F = 1), so the same model makes a keyframe image.
  Images cost a tenth of a clip, so an image step can afford a larger batch (more captions per second of CPU).

The text encoder is frozen and its token states are cached per caption (:mod:`avdiff.data.scene_dataset`). Text
dropout replaces a sample's states with the empty prompt's (the null of classifier-free guidance) with probability
``text_dropout``. The loss is the MSE against the scheduler's target (the clean sample for the tiny preset), plus
``object_weight`` times the MSE on the objects' pixels (from the clips' label maps): objects cover a few percent of a
frame, and a plain MSE spends the steps on the sky and the ground.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from avdiff.data.scene_dataset import SceneClipDataset
from avdiff.models.codec import pixels_from_uint8
from avdiff.pipelines.text_to_video import TextToVideoPipeline
from avdiff.training.trainer import strict_from_dict

logger = logging.getLogger(__name__)


@dataclass
class TextToVideoTaskConfig:
    """The ``task:`` section of a text-to-video YAML.

    Attributes:
        data: the training SCENES DATA folder (``--data`` overrides it).
        eval_data: a held-out folder for :meth:`TextToVideoTask.evaluate` (None: the training folder).
        split, max_clips: which training clips.
        preset: the pipeline preset the model starts from (``"tiny"`` or a YAML path); ``model_seed`` its weights.
        num_frames: frames per training clip (the clips' first ``num_frames``).
        image_prob: probability of an image step (one random frame per clip).
        video_items: clips of the batch a video step uses (None: all).
        text_dropout: probability of replacing a caption by the empty prompt (classifier-free guidance).
        object_weight: extra weight of the error on the objects' pixels (label >= 2 in ``clips/ID.masks.npy``; 0:
            no masks read). Objects cover a few percent of a frame, so a plain MSE learns the sky and the ground
            first (as the talking head's ``mouth_weight`` does for the mouth).
        snr_gamma: Min-SNR-gamma loss weighting (Hang et al., "Efficient Diffusion Training via Min-SNR Weighting
            Strategy", ICCV 2023): each sample's error is weighted by ``min(SNR(t), gamma)`` in x0 terms (divided by
            SNR for eps-prediction, by SNR + 1 for v), so the nearly hopeless high-noise timesteps stop dominating.
            None: uniform weights. The logged ``mse`` is unweighted either way.
        frames_from: ``"render"``: each clip's frames re-rendered exactly from its record by the scene world (the
            same pixels on every machine; the mp4s are not byte-reproducible); ``"video"``: decoded from the mp4s
            (any SCENES DATA folder).
        eval_items: held-out clips in the eval losses.
        sample_prompts: prompts of the sample grid (None: the first ``sample_count`` distinct held-out captions).
        sample_count, sample_steps, sample_guidance: the grid's size, DDIM steps and guidance scale (0 prompts: none).
        sample_frames: the clip frames the grid shows (None: four, evenly spaced).
    """

    data: str | None = None
    eval_data: str | None = None
    split: str | None = None
    max_clips: int | None = None
    preset: str = "tiny"
    model_seed: int = 0
    num_frames: int = 16
    image_prob: float = 0.5
    video_items: int | None = None
    text_dropout: float = 0.1
    object_weight: float = 0.0
    snr_gamma: float | None = None
    frames_from: str = "render"
    eval_items: int = 16
    sample_prompts: list[str] | None = None
    sample_count: int = 6
    sample_steps: int = 20
    sample_guidance: float = 3.0
    sample_frames: list[int] | None = None

    @classmethod
    def from_dict(cls, values: dict) -> TextToVideoTaskConfig:
        config = strict_from_dict(cls, values, "text-to-video task")
        config.validate()
        return config

    def validate(self) -> None:
        for name in ("image_prob", "text_dropout"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)!r}")
        if self.frames_from not in ("render", "video"):
            raise ValueError(f"frames_from must be 'render' or 'video', got {self.frames_from!r}")
        if self.snr_gamma is not None and not self.snr_gamma > 0:
            raise ValueError(f"snr_gamma must be positive or null, got {self.snr_gamma!r}")
        if self.object_weight < 0:
            raise ValueError(f"object_weight must be >= 0, got {self.object_weight!r}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.video_items is not None and self.video_items < 1:
            raise ValueError(f"video_items must be >= 1 or null, got {self.video_items}")
        if self.eval_items < 1 or self.sample_steps < 1 or self.sample_count < 0:
            raise ValueError("need eval_items >= 1, sample_steps >= 1 and sample_count >= 0")
        bad = [f for f in self.sample_frames or [] if not 0 <= f < self.num_frames]
        if bad:
            raise ValueError(f"sample_frames must lie in [0, num_frames={self.num_frames}), got {bad}")


class TextToVideoTask:
    """Trains a text-to-video pipeline's UNet (see the module docstring).

    Args:
        config: the task settings.
        output_dir: the run folder; ``evaluate`` writes sample grids to ``output_dir/samples/step_N.png``.
        progress_bar: show the one-time clip decoding and caption encoding.
    """

    def __init__(
        self, config: TextToVideoTaskConfig, output_dir: str | Path | None = None, progress_bar: bool = False
    ):
        config.validate()
        self.config, self.progress_bar = config, progress_bar
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.template = TextToVideoPipeline.from_preset(config.preset, seed=config.model_seed)
        self.template.set_progress_bar_config(disable=True)
        self.codec, self.scheduler = self.template.codec, self.template.scheduler
        self.size = self.template.default_size
        self.prediction_type = self.scheduler.config.prediction_type
        if config.num_frames > self.template.max_frames:
            raise ValueError(
                f"num_frames={config.num_frames} exceeds the UNet's motion_max_seq_length {self.template.max_frames}"
            )
        self.null_text = self.template.encode_prompt("", torch.device("cpu")).float()  # (1, T, D)
        c = self.template.config
        self.text_key = f"{c.text_encoder_name or 'encoder'}_{c.max_text_length}_{int(c.text_attention_mask)}"
        self._eval: tuple[dict, SceneClipDataset] | None = None

    def config_dict(self) -> dict:
        return asdict(self.config)

    # --- the trainer's interface ------------------------------------------------------------------------------

    def build_model(self) -> nn.Module:
        """The preset's seeded UNet (a copy: every call starts from the same weights)."""
        return copy.deepcopy(self.template.unet).train()

    def make_dataset(
        self, data: str | Path, split: str | None = None, max_clips: int | None = None
    ) -> SceneClipDataset:
        def encode(captions: list[str]) -> torch.Tensor:
            return self.template.encode_prompt(captions, torch.device("cpu"))

        return SceneClipDataset(
            data,
            encode,
            self.text_key,
            self.size,
            self.config.num_frames,
            split,
            max_clips,
            with_masks=self.config.object_weight > 0,
            frames_from=self.config.frames_from,
            progress_bar=self.progress_bar,
        )

    def build_dataset(self) -> Dataset:
        if not self.config.data:
            raise ValueError("no training data: give --data DATA (or task.data in the config)")
        return self.make_dataset(self.config.data, self.config.split, self.config.max_clips)

    def compute_loss(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        inputs = self.model_inputs(batch)
        loss, logs = self.loss(self._predict(model, inputs), inputs)
        return loss, {**logs, "frames": float(inputs["noisy"].shape[2])}

    def save_model(self, model: nn.Module, path: Path) -> None:
        self.pipeline(model).save_pretrained(path)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, step: int = 0) -> dict[str, float]:
        """Held-out denoising errors on fixed clips (fixed noise, timesteps and frames): ``loss_video`` (all
        frames), ``loss_image`` (one frame per clip), ``text_gain`` (the video error with each clip's caption swapped
        for another clip's, minus the error with its own: > 0 when the model uses the text), and a sample grid in
        ``output_dir/samples/step_N.png``."""
        batch, data = self._eval_batch()
        device = next(model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        metrics = {}
        for kind in ("video", "image"):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(12345)
                inputs = self.model_inputs(batch, train=False, image=kind == "image")
            _, logs = self.loss(self._predict(model, inputs), inputs)
            metrics[f"loss_{kind}"] = logs["mse"]
            if "object_mse" in logs:
                metrics[f"object_mse_{kind}"] = logs["object_mse"]
            if kind == "video":
                swapped = {**inputs, "text": inputs["text"].roll(1, dims=0)}
                _, swapped_logs = self.loss(self._predict(model, swapped), inputs)
                metrics["text_gain"] = swapped_logs["mse"] - logs["mse"]
                if "object_mse" in logs:
                    metrics["object_text_gain"] = swapped_logs["object_mse"] - logs["object_mse"]
        if self.output_dir is not None and self.config.sample_count > 0:
            path = self.output_dir / "samples" / f"step_{step}.png"
            prompts = self.config.sample_prompts or list(dict.fromkeys(data.captions))[: self.config.sample_count]
            shown = self.config.sample_frames or sorted(
                {round(x) for x in np.linspace(0, self.config.num_frames - 1, 4)}
            )
            save_sample_grid(
                self.pipeline(model),
                prompts,
                path,
                shown,
                self.config.sample_steps,
                self.config.sample_guidance,
                self.config.num_frames,
            )
        return metrics

    # --- pieces -------------------------------------------------------------------------------------------------

    @staticmethod
    def _predict(model: nn.Module, inputs: dict) -> torch.Tensor:
        return model(inputs["noisy"], inputs["timesteps"], encoder_hidden_states=inputs["text"], return_dict=False)[0]

    def pipeline(self, model: nn.Module) -> TextToVideoPipeline:
        """A pipeline around the model (shared, not copied) and the task's codec, text encoder and scheduler."""
        model = getattr(model, "module", model)
        t = self.template
        pipe = TextToVideoPipeline(
            model,
            self.codec,
            t.text_encoder,
            t.tokenizer,
            self.scheduler,
            fps=t.config.fps,
            max_text_length=t.config.max_text_length,
            text_attention_mask=t.config.text_attention_mask,
            text_encoder_name=t.config.text_encoder_name,
        )
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [B, F, S, S, 3] -> latents [B, C, F, h, w] (the codec has no trainable weights)."""
        b, f = frames.shape[:2]
        pixels = pixels_from_uint8(frames.flatten(0, 1))  # (B*F, 3, S, S)
        codec = self.codec.to(frames.device)
        latents = codec.encode(pixels.to(codec.dtype)).float()  # (B*F, C, h, w)
        return latents.view(b, f, *latents.shape[1:]).transpose(1, 2)

    def model_inputs(self, batch: dict, train: bool = True, image: bool | None = None) -> dict[str, torch.Tensor]:
        """Everything the model and the loss need. The step's kind (unless ``image`` is given), the frames of an
        image step, text dropout (training only), timesteps and noise come from torch's global RNG, in that order."""
        c = self.config
        frames, text = batch["frames"], batch["text"].float()  # (B, F, S, S, 3), (B, T, D)
        masks = batch.get("masks")  # (B, F, S, S) labels, or None
        device = frames.device
        draw = torch.rand(())  # drawn even when `image` is given, so the stream does not depend on it
        image = bool(draw < c.image_prob) if image is None else image
        if image:
            pick = torch.randint(0, frames.shape[1], (frames.shape[0],)).to(device)
            rows = torch.arange(frames.shape[0], device=device)
            frames = frames[rows, pick][:, None]  # (B, 1, S, S, 3)
            masks = masks[rows, pick][:, None] if masks is not None else None
        elif c.video_items is not None:
            frames, text = frames[: c.video_items], text[: c.video_items]
            masks = masks[: c.video_items] if masks is not None else None
        B = frames.shape[0]
        drop = torch.rand(B) < (c.text_dropout if train else 0.0)
        text = torch.where(drop.to(device)[:, None, None], self.null_text.to(device), text)
        latents = self.encode(frames)  # (B, C, F, h, w)
        T = self.scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, T, (B,)).to(device)
        noise = torch.randn(latents.shape).to(device)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        if self.prediction_type == "epsilon":
            target = noise
        elif self.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(latents, noise, timesteps)
        elif self.prediction_type == "sample":
            target = latents
        else:
            raise ValueError(f"unsupported prediction_type {self.prediction_type!r}")
        inputs = {"noisy": noisy, "timesteps": timesteps, "text": text, "target": target}
        if c.snr_gamma is not None:
            inputs["weights"] = self.min_snr_weights(timesteps).to(device)  # (B,)
        if masks is not None:
            h = latents.shape[-1]
            objects = (masks >= 2).float().flatten(0, 1)[:, None]  # (B*F, 1, S, S): 0 sky, 1 ground, then objects
            objects = F.interpolate(objects, size=(h, h), mode="area")  # share of object pixels per latent position
            inputs["objects"] = objects.view(B, -1, 1, h, h).transpose(1, 2)  # (B, 1, F, h, w)
        return inputs

    def min_snr_weights(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Min-SNR-gamma weights [B] of the scheduler's prediction type (see ``snr_gamma``)."""
        alpha_bar = self.scheduler.alphas_cumprod.to(torch.float64)[timesteps.cpu()]
        snr = alpha_bar / (1 - alpha_bar)
        clipped = snr.clamp(max=self.config.snr_gamma)
        divisor = {"sample": torch.ones_like(snr), "epsilon": snr, "v_prediction": snr + 1}[self.prediction_type]
        return (clipped / divisor).float()

    def loss(self, pred: torch.Tensor, inputs: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE against the target, plus ``object_weight`` x the MSE on the objects' pixels (when masks are read),
        each sample weighted by its Min-SNR weight when ``snr_gamma`` is set. The logs hold the unweighted errors."""
        se = (pred.float() - inputs["target"]) ** 2  # (B, C, F, h, w)
        weights = inputs.get("weights")
        w = weights.view(-1, 1, 1, 1, 1) if weights is not None else torch.ones_like(se[:, :1, :1, :1, :1])
        mse = se.mean()
        logs = {"mse": float(mse.detach())}
        loss = (se * w).mean()
        if "objects" not in inputs:
            return loss, logs
        objects = inputs["objects"]
        denom = (objects.sum() * se.shape[1]).clamp_min(1e-6)
        logs["object_mse"] = float(((se * objects).sum() / denom).detach())
        return loss + self.config.object_weight * (se * objects * w).sum() / denom, logs

    def _eval_batch(self) -> tuple[dict, SceneClipDataset]:
        if self._eval is None:
            c = self.config
            data = self.make_dataset(c.eval_data) if c.eval_data else self.make_dataset(c.data, c.split, c.max_clips)
            items = [data[i] for i in range(min(c.eval_items, len(data)))]
            batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
            self._eval = (batch, data)
        return self._eval


def save_sample_grid(
    pipe: TextToVideoPipeline,
    prompts: list[str],
    path: str | Path,
    frames: list[int],
    num_inference_steps: int = 20,
    guidance_scale: float = 3.0,
    num_frames: int = 16,
    seed: int = 0,
) -> Path:
    """One row per prompt: the clip's ``frames`` (generated together, ``num_frames`` long), then a keyframe image
    (``num_frames=1``), then the prompt written beside them. Saved as a PNG (atomically); returns the path."""
    from PIL import Image, ImageDraw

    clips = pipe(
        prompts,
        num_frames=num_frames,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        generator=torch.Generator().manual_seed(seed),
    ).frames
    keys = pipe(
        prompts,
        num_frames=1,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        generator=torch.Generator().manual_seed(seed),
    ).frames
    clips = clips.reshape(len(prompts), num_frames, *clips.shape[-3:])  # (P, F, S, S, 3)
    keys = keys.reshape(len(prompts), *keys.shape[-3:])  # (P, S, S, 3)
    s, gap = clips.shape[-2], 4
    text_w = int(max(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(p) for p in prompts)) + 2 * gap
    width = (len(frames) + 1) * (s + gap) + gap + text_w
    canvas = Image.new("RGB", (width, len(prompts) * (s + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for row, prompt in enumerate(prompts):
        y = gap + row * (s + gap)
        tiles = [clips[row, f] for f in frames] + [keys[row]]
        for col, tile in enumerate(tiles):
            x = gap + col * (s + gap) + (gap if col == len(frames) else 0)
            canvas.paste(Image.fromarray(np.ascontiguousarray(tile)), (x, y))
        draw.text(((len(frames) + 1) * (s + gap) + 2 * gap, y + s // 2 - 5), prompt, fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial.png")
    canvas.save(tmp)
    tmp.replace(path)
    return path
