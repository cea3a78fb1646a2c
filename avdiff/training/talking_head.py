"""The talking-head job: train a :class:`~avdiff.pipelines.talking_head.TalkingHeadPipeline`'s UNet and speech
encoder on DATA clips, through the shared trainer.

``avdiff train talking-head --config configs/train/talking_head_tiny.yaml --data DATA`` runs it; ``RUN/final`` is a
complete pipeline folder (``TalkingHeadPipeline.from_pretrained(RUN/final)``, ``avdiff talk --model RUN/final``).

A training sample is laid out exactly like an inference chunk of ``chunk_frames`` frames
(:meth:`TalkingHeadPipeline.denoise_chunk`), in one of two forms:

* a *continuation* chunk: its first ``motion_frames`` slots are the frames before the window, given to the UNet as
  motion latents with mask 0, and only the window's slots are scored;
* a *first* chunk (with probability ``first_chunk_prob``, and whenever the window is at the clip's start): no motion
  latents, the lower-face mask on every slot, every slot (that shows a frame of the clip) scored.

The loss is the diffusion MSE against the scheduler's target (the clean sample, ``prediction_type: sample``, for the
tiny preset; ``epsilon`` and ``v_prediction`` work too), over the scored slots, plus ``mouth_weight`` times the same
error inside the mouth mask (Diffused Heads' lip loss). Two tricks from the literature: Gaussian noise of a random
level up to ``motion_noise`` on the motion latents (Hallo2: a model that sees slightly wrong motion frames in training
drifts less over long autoregressive generation), and classifier-free dropout of the audio tokens and the reference
latent to zeros (the nulls the pipeline's guidance uses); ``audio_dropout_always`` trains with the audio always
dropped (the no-audio control).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from avdiff.audio.io import Waveform
from avdiff.data.talking_head_dataset import TalkingHeadDataset
from avdiff.data.video_dataset import load_clip, select_records
from avdiff.models.builders import load_preset
from avdiff.models.cfg import CFGDropout
from avdiff.models.codec import pixels_from_uint8
from avdiff.models.conditions import Conditions
from avdiff.pipelines.talking_head import TalkingHeadPipeline
from avdiff.training.trainer import strict_from_dict

logger = logging.getLogger(__name__)


@dataclass
class TalkingHeadTaskConfig:
    """The ``task:`` section of a talking-head YAML.

    Attributes:
        data: the training DATA folder (``--data`` overrides it).
        eval_data: a held-out DATA folder for :meth:`TalkingHeadTask.evaluate` (None: the training folder).
        split, max_clips: which training clips.
        preset: the pipeline preset the model starts from (``"tiny"`` or a YAML path); ``model_seed`` its weights.
        chunk_frames: frames per UNet chunk, as in ``TalkingHeadPipeline(..., chunk_frames=)``.
        motion_frames: leading frames of a continuation chunk given as motion latents (the pipeline's motion_frames).
        first_chunk_prob: probability of training a sample as a first chunk (no motion).
        reference_gap: the reference frame is at least this many frames from the chunk.
        items_per_clip: dataset items per clip (each a different random window).
        motion_noise: the motion latents get Gaussian noise of std ``U(0, motion_noise)``, per sample.
        audio_dropout, reference_dropout: classifier-free dropout probabilities (to zeros).
        audio_dropout_always: drop the audio of every sample (the no-audio control).
        mouth_weight: extra weight of the error inside the mouth mask.
        eval_items: windows in the held-out loss of ``evaluate``.
        sample_steps, sample_seconds: denoising steps and length of the sample video ``evaluate`` renders (0 s: none).
    """

    data: str | None = None
    eval_data: str | None = None
    split: str | None = None
    max_clips: int | None = None
    preset: str = "tiny"
    model_seed: int = 0
    chunk_frames: int = 8
    motion_frames: int = 2
    first_chunk_prob: float = 0.2
    reference_gap: int = 4
    items_per_clip: int = 256
    motion_noise: float = 0.1
    audio_dropout: float = 0.1
    reference_dropout: float = 0.05
    audio_dropout_always: bool = False
    mouth_weight: float = 1.0
    eval_items: int = 8
    sample_steps: int = 4
    sample_seconds: float = 1.0

    @classmethod
    def from_dict(cls, values: dict) -> TalkingHeadTaskConfig:
        config = strict_from_dict(cls, values, "talking-head task")
        config.validate()
        return config

    def validate(self) -> None:
        if not 0 <= self.motion_frames < self.chunk_frames:
            raise ValueError(
                f"need 0 <= motion_frames < chunk_frames, got {self.motion_frames} and {self.chunk_frames}"
            )
        for name in ("first_chunk_prob", "audio_dropout", "reference_dropout"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)!r}")
        for name in ("motion_noise", "mouth_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.eval_items < 1 or self.sample_steps < 1 or self.sample_seconds < 0:
            raise ValueError("need eval_items >= 1, sample_steps >= 1 and sample_seconds >= 0")


class TalkingHeadModel(nn.Module):
    """The trainable parts of a pipeline in one module (one DDP wrapper, one optimiser, one EMA): the UNet and the
    speech encoder, with the classifier-free dropout applied between the speech encoder and the UNet."""

    def __init__(
        self, unet: nn.Module, speech_encoder: nn.Module, audio_dropout: float = 0.1, reference_dropout: float = 0.05
    ):
        super().__init__()
        self.unet, self.speech_encoder = unet, speech_encoder
        self.cfg_dropout = CFGDropout({"audio": audio_dropout, "reference": reference_dropout})  # zero nulls

    def enable_gradient_checkpointing(self) -> None:
        self.unet.enable_gradient_checkpointing()

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        audio_windows: torch.Tensor,
        reference: torch.Tensor,
        motion: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """Noisy latents [B, C, L, h, w], timesteps [B], speech windows [B, L, D, W], reference latents [B, C, h, w],
        motion latents [B, C, L, h, w], mask [B, 1, L, h, w] -> the UNet's prediction [B, C, L, h, w]. In training
        mode the audio tokens and the reference are dropped to zeros per sample (torch's global RNG)."""
        tokens = self.speech_encoder(audio_windows)  # (B, L, T_a, D_a)
        cond = self.cfg_dropout(Conditions(audio=tokens, reference=reference, motion=motion, mask=mask))
        return self.unet(sample, timestep, **cond.as_kwargs(), return_dict=False)[0]


class TalkingHeadTask:
    """Trains a talking-head pipeline (see the module docstring).

    Args:
        config: the task settings.
        output_dir: the run folder; ``evaluate`` writes sample videos to ``output_dir/samples/step_N.mp4``.
        progress_bar: show clip preparation.
    """

    def __init__(
        self, config: TalkingHeadTaskConfig, output_dir: str | Path | None = None, progress_bar: bool = False
    ):
        config.validate()
        self.config, self.progress_bar = config, progress_bar
        self.output_dir = Path(output_dir) if output_dir is not None else None
        spec = load_preset("talking_head", config.preset)
        self.size = int(spec["pixel_size"])
        self.framing = spec.get("framing", "face")
        template = TalkingHeadPipeline.from_preset(config.preset, seed=config.model_seed)
        self.codec, self.scheduler = template.codec, template.scheduler
        self.context_frames = template.speech_encoder.context_frames + 1  # one frame beyond the encoder's window
        self.prediction_type = self.scheduler.config.prediction_type
        self._mask = template.latent_mask(self.size, torch.device("cpu"), torch.float32)  # (1, 1, 1, h, w)
        # The speech features and their per-frame windows are fixed transforms of the encoder's config; this copy
        # computes them outside the trained module.
        self._features = template.speech_encoder
        self._clock = self._features.frame_clock(25)  # replaced by the data's clock in make_dataset
        self._eval: tuple[dict, TalkingHeadDataset] | None = None

    def config_dict(self) -> dict:
        return asdict(self.config)

    # --- the trainer's interface ------------------------------------------------------------------------------

    def build_model(self) -> TalkingHeadModel:
        c = self.config
        pipe = TalkingHeadPipeline.from_preset(c.preset, seed=c.model_seed)
        audio_p = 1.0 if c.audio_dropout_always else c.audio_dropout
        return TalkingHeadModel(pipe.unet, pipe.speech_encoder, audio_p, c.reference_dropout)

    def make_dataset(self, data: str | Path, seed: int = 0) -> TalkingHeadDataset:
        c = self.config
        dataset = TalkingHeadDataset(
            data,
            self.size,
            c.chunk_frames - c.motion_frames,
            c.motion_frames,
            self.context_frames,
            c.reference_gap,
            c.items_per_clip,
            seed,
            c.split,
            c.max_clips,
            self.progress_bar,
            framing=self.framing,
        )
        self._clock = dataset.clock
        return dataset

    def build_dataset(self) -> Dataset:
        if not self.config.data:
            raise ValueError("no training data: give --data DATA (or task.data in the config)")
        return self.make_dataset(self.config.data)

    def compute_loss(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        inputs = self.model_inputs(batch)
        return self.loss(self._predict(model, inputs), inputs)

    def save_model(self, model: TalkingHeadModel, path: Path) -> None:
        self.pipeline(model).save_pretrained(path)

    @torch.no_grad()
    def evaluate(self, model: TalkingHeadModel, step: int = 0) -> dict[str, float]:
        """Held-out denoising errors on fixed windows (fixed noise and timesteps), and a sample video in
        ``output_dir/samples/step_N.mp4``.

        ``audio_gain`` measures how much the model uses the speech: the mouth error with each window's speech
        swapped for another window's, minus the mouth error with its own speech (> 0: the right speech helps; about
        0 for a model that ignores audio, such as the no-audio control)."""
        batch, data = self._eval_batch()
        device = next(model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(12345)
            inputs = self.model_inputs(batch, train=False)
        loss, logs = self.loss(self._predict(model, inputs), inputs)
        swapped = {**inputs, "audio_windows": inputs["audio_windows"].roll(1, dims=0)}
        _, swapped_logs = self.loss(self._predict(model, swapped), inputs)
        metrics = {
            "loss": float(loss),
            "mse": logs["mse"],
            "mouth_mse": logs["mouth_mse"],
            "mouth_mse_swapped_audio": swapped_logs["mouth_mse"],
            "audio_gain": swapped_logs["mouth_mse"] - logs["mouth_mse"],
        }
        if self.output_dir is not None and self.config.sample_seconds > 0:
            path = self.output_dir / "samples" / f"step_{step}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.render_sample(model, data, path)
        return metrics

    # --- pieces -------------------------------------------------------------------------------------------------

    @staticmethod
    def _predict(model: nn.Module, inputs: dict) -> torch.Tensor:
        return model(
            inputs["noisy"],
            inputs["timesteps"],
            inputs["audio_windows"],
            inputs["reference"],
            inputs["motion"],
            inputs["mask"],
        )

    def pipeline(self, model: TalkingHeadModel) -> TalkingHeadPipeline:
        """A pipeline around the model's UNet and speech encoder (shared, not copied) and the task's codec and
        scheduler."""
        model = getattr(model, "module", model)
        c = self.config
        return TalkingHeadPipeline(
            model.unet,
            self.codec,
            model.speech_encoder,
            self.scheduler,
            framing=self.framing,
            chunk_frames=c.chunk_frames,
            motion_frames=c.motion_frames,
        )

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [..., S, S, 3] -> latents [..., C, h, w] (the codec has no trainable weights)."""
        lead = images.shape[:-3]
        pixels = pixels_from_uint8(images.reshape(-1, *images.shape[-3:]))
        codec = self.codec.to(images.device)
        with torch.no_grad():
            latents = codec.encode(pixels.to(codec.dtype))
        return latents.reshape(*lead, *latents.shape[1:]).float()

    def model_inputs(self, batch: dict, train: bool = True) -> dict[str, torch.Tensor]:
        """Everything the model and the loss need, drawing the layout, timesteps, noise and motion noise from
        torch's global RNG (seeded per step by the trainer)."""
        c = self.config
        frames = torch.cat([batch["motion"], batch["frames"]], dim=1)  # (B, L, S, S, 3)
        B, L = frames.shape[:2]
        m = c.motion_frames
        device = frames.device
        latents = self.encode(frames).transpose(1, 2)  # (B, C, L, h, w)
        reference = self.encode(batch["reference"])  # (B, C, h, w)
        valid = torch.cat([batch["motion_valid"], torch.ones(B, L - m, dtype=torch.bool, device=device)], dim=1)
        first = torch.rand(B, device="cpu").to(device) < c.first_chunk_prob
        continuation = valid.all(dim=1) & ~first & (m > 0)  # (B,)
        slot = torch.arange(L, device=device)
        is_motion = continuation[:, None] & (slot[None] < m)  # (B, L): slots given as motion latents
        scored = (valid & ~is_motion).float()  # (B, L): slots in the loss
        # Motion latents (continuation only) with Hallo2's noise augmentation.
        level = torch.rand(B, device="cpu").to(device) * c.motion_noise
        motion = latents + level.view(B, 1, 1, 1, 1) * torch.randn(latents.shape, device="cpu").to(device)
        motion = motion * is_motion[:, None, :, None, None]
        mask = self._mask.to(device).expand(B, 1, L, -1, -1) * (~is_motion)[:, None, :, None, None]
        # Diffusion: random timesteps, DDPM-style noising, the scheduler's target.
        T = self.scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, T, (B,), device="cpu").to(device)
        noise = torch.randn(latents.shape, device="cpu").to(device)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        if self.prediction_type == "epsilon":
            target = noise
        elif self.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(latents, noise, timesteps)
        elif self.prediction_type == "sample":
            target = latents
        else:
            raise ValueError(f"unsupported prediction_type {self.prediction_type!r}")
        # Speech windows of the chunk's frames, through the clock.
        features = self._features.features(batch["audio"].float())  # (B, D, T)
        windows = self._features.frame_windows(
            features.to(device), self._clock, self.context_frames, L
        )  # (B, L, D, W)
        mouth = torch.cat([batch["motion_mouth"], batch["mouth"]], dim=1).float()[:, None] / 255  # (B, 1, L, S, S)
        h = latents.shape[-1]
        mouth = F.interpolate(mouth.flatten(1, 2), size=(h, h), mode="area").view(B, 1, L, h, h)
        return {
            "noisy": noisy,
            "timesteps": timesteps,
            "audio_windows": windows,
            "reference": reference,
            "motion": motion,
            "mask": mask,
            "target": target,
            "scored": scored,
            "mouth": mouth,
        }

    def loss(self, pred: torch.Tensor, inputs: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Diffusion MSE over the scored slots + ``mouth_weight`` x the MSE inside the mouth mask."""
        se = (pred.float() - inputs["target"]) ** 2  # (B, C, L, h, w)
        scored = inputs["scored"][:, None, :, None, None]  # (B, 1, L, 1, 1)
        denom = (scored.sum() * se.shape[1] * se.shape[-1] * se.shape[-2]).clamp_min(1)
        mse = (se * scored).sum() / denom
        mouth = inputs["mouth"] * scored
        mouth_mse = (se * mouth).sum() / (mouth.sum() * se.shape[1]).clamp_min(1e-6)
        loss = mse + self.config.mouth_weight * mouth_mse
        return loss, {"mse": float(mse.detach()), "mouth_mse": float(mouth_mse.detach())}

    def _eval_batch(self) -> tuple[dict, TalkingHeadDataset]:
        if self._eval is None:
            data = self.make_dataset(self.config.eval_data or self.config.data, seed=987654)
            n = min(self.config.eval_items, len(data))
            items = [data[i] for i in range(n)]
            batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
            self._eval = (batch, data)
        return self._eval

    def render_sample(self, model: TalkingHeadModel, data: TalkingHeadDataset, path: Path) -> None:
        """Animate the first held-out clip's first frame with ``sample_seconds`` of its speech."""

        c = self.config
        record = select_records(data.data_dir, c.split, 1)[0]
        clip = load_clip(data.data_dir, record)
        n = data.clock.num_samples(max(2, round(c.sample_seconds * float(data.clock.fps))))
        speech = Waveform(clip.audio.samples[:, :n], clip.audio.sample_rate)
        pipe = self.pipeline(model)
        pipe.set_progress_bar_config(disable=True)
        out = pipe(
            clip.frames[0],
            speech,
            fps=data.clock.fps,
            num_inference_steps=c.sample_steps,
            chunk_frames=c.chunk_frames,
            motion_frames=c.motion_frames,
            generator=torch.Generator().manual_seed(0),
        )
        out.save(path)
