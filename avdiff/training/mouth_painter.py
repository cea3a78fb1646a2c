"""The mouth painter's job: train :class:`~avdiff.models.mouth_painter.MouthPainter` and score it on held-out faces.

``avdiff train talking-head-mouth --config configs/train/talking_head_mouth.yaml`` runs it through the shared trainer
(resume, DDP). It trains on synthetic talking faces whose mouths show teeth and tongue drawn from the phonemes
(:func:`~avdiff.data.mouth_dataset.synthetic_mouth_clips`: the training identities of the face pool, the training
sentences in the training voices) and on the clips of DATA folders that have a landmark track (``--data``; ``avdiff
prepare`` writes them: :func:`~avdiff.data.mouth_dataset.data_folder_mouth_clips`), cut into windows by
:class:`~avdiff.data.mouth_dataset.MouthWindows`. Each clip's crops are cut at the size the painter will paint that
mouth at (:meth:`~avdiff.models.mouth_painter.MouthPainter.paint_size` of the square's native side: the face pool's
mouths span about 41 to 106 px), so the painter learns teeth at their native scale, from 48 to 96 px, and each batch
holds one size (the trainer batches within :attr:`~avdiff.data.mouth_dataset.MouthWindows.batch_groups`).

The loss: a timestep drawn uniformly, the window of crops noised by the painter's schedule, the painter predicts the
clean crops (x0; or v, read back into the clean crops by ``MouthPainter.clean_latents``) from the noisy ones, the
crops with the hole blanked, the hole's mask, the photo's mouth and the frames' speech (dropped to silence in
``audio_dropout`` of the items, for classifier-free guidance). In
``context_prob`` of the items the window's first ``context_frames`` crops are given whole (no hole), as the pipeline
gives each chunk the last frames of the one before, so the painter learns to carry their teeth and tongue on. The
squared error is weighted 1 inside the painted pixels and ``outside_weight`` elsewhere (those pixels are given, and
kept from the renderer anyway); ``edge_weight`` adds the gradient difference loss inside the painted pixels
(:func:`gradient_difference`, logged as ``hole_gdl``), which a blur of the gaps between the teeth does not escape.

:meth:`MouthPainterTask.evaluate` paints the held-out clips (the test identities of the pool saying the "test"
sentences in voices not trained on) and measures, inside the holes only, the mean absolute error against the truth
(grey levels, weighted by the renderer's interior mask), for the painter, for its audio-dropped twin (guidance 0) and
for the renderer's own dark cavity, the model-free baseline; ``wins_*`` are the shares of clips the painter beats
each on. Sharpness is checked too: the variance of the Laplacian of the painted crops against the truth's.

``save_model`` writes a :class:`~avdiff.pipelines.talking_head.MotionTalkingHeadPipeline` folder: the motion model
named by ``motion_model`` with this painter, so ``avdiff talk --model RUN/final --paint-mouth`` uses it as it is.
"""

from __future__ import annotations

import collections
import functools
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from avdiff.audio.clock import parse_fps
from avdiff.data.faces import face_pool
from avdiff.data.motion_dataset import synthetic_utterances
from avdiff.data.mouth_dataset import MouthClip, MouthWindows, data_folder_mouth_clips, synthetic_mouth_clips
from avdiff.models.builders import build_mouth_painter
from avdiff.models.mouth_painter import MouthPainter
from avdiff.pipelines.talking_head.mouth_painting import CropSequence
from avdiff.pipelines.talking_head.pipeline_motion_talking_head import MotionTalkingHeadPipeline
from avdiff.training.talking_head_motion import EVAL_VOICES, TRAIN_VOICES
from avdiff.training.trainer import strict_from_dict

logger = logging.getLogger(__name__)

SCORES = ("hole_mae", "twin_hole_mae", "cavity_hole_mae", "wins_over_twin", "wins_over_cavity", "sharpness_ratio")


@dataclass
class MouthPainterTaskConfig:
    """The ``task:`` section of a talking-head-mouth YAML.

    Attributes:
        data: a DATA folder whose clips have landmark tracks (``--data`` overrides it), added to the synthetic clips;
            None: synthetic only.
        split, max_clips: use only that split's clips of ``data``, at most this many.
        fps: frame rate of the clips.
        synthetic_utterances: espeak-ng utterances of the training sentences, each said by a training face.
        eval_utterances: held-out utterances ("test" sentences, held-out voices, test faces) scored by ``evaluate``.
        frames: crops per training window (the painter's ``chunk_frames``, so its motion layers see the length they
            paint).
        context_prob: share of the items whose first ``context_frames`` crops are given whole.
        stride: frames between the starts of training windows.
        audio_dropout: share of items that hear silence (classifier-free guidance).
        outside_weight: the loss's weight on the given pixels (1 on the painted ones).
        edge_weight: the weight of the gradient difference loss inside the painted pixels (:func:`gradient_difference`;
            0: the squared error alone).
        eval_steps, eval_guidance: DDIM steps and audio guidance of the evaluation's painting.
        data_seed: draws the utterances and the clips' motion.
        cache_dir: keep the synthesized speech here (None: synthesize every run).
        max_photos: use at most this many training faces (None: all).
        preset: the mouth_painter preset; motion_model: the motion model saved beside the painter.
    """

    data: str | None = None
    split: str | None = None
    max_clips: int | None = None
    fps: int = 25
    synthetic_utterances: int = 200
    eval_utterances: int = 12
    frames: int = 16
    context_prob: float = 0.5
    stride: int = 4
    audio_dropout: float = 0.15
    outside_weight: float = 0.05
    edge_weight: float = 0.0
    eval_steps: int = 8
    eval_guidance: float = 1.5
    data_seed: int = 0
    cache_dir: str | None = None
    max_photos: int | None = None
    preset: str = "tiny"
    motion_model: str = "avdiff/talking-head-motion"

    @classmethod
    def from_dict(cls, values: dict) -> MouthPainterTaskConfig:
        config = strict_from_dict(cls, values, "talking-head-mouth task")
        parse_fps(config.fps)
        if config.synthetic_utterances < 0 or config.eval_utterances < 0:
            raise ValueError("synthetic_utterances and eval_utterances must be >= 0")
        if config.synthetic_utterances == 0 and not config.data:
            raise ValueError("nothing to train on: set synthetic_utterances > 0 or give a DATA folder (--data)")
        if not 0 <= config.context_prob <= 1:
            raise ValueError(f"context_prob must be in [0, 1], got {config.context_prob}")
        if not 0 <= config.audio_dropout < 1 or config.outside_weight < 0 or config.edge_weight < 0:
            raise ValueError(f"need 0 <= audio_dropout < 1, outside_weight >= 0 and edge_weight >= 0, got "
                             f"{config.audio_dropout}, {config.outside_weight}, {config.edge_weight}")  # fmt: skip
        if config.frames < 1 or config.stride < 1 or config.eval_steps < 1:
            raise ValueError("frames, stride and eval_steps must be >= 1")
        return config


class MouthPainterTask:
    """Trains a :class:`MouthPainter` (see the module docstring)."""

    def __init__(self, config: MouthPainterTaskConfig, progress_bar: bool = True):
        self.config = config
        self.progress_bar = progress_bar
        self._train: list[MouthClip] | None = None
        self._eval: dict[tuple, list[MouthClip]] = {}  # by the painter's sizes
        self._sched = None

    def config_dict(self) -> dict:
        return asdict(self.config)

    def _photos(self, split: str) -> list[np.ndarray]:
        photos = [face.image for face in face_pool() if face.split == split]
        if split == "train" and self.config.max_photos:
            photos = photos[: self.config.max_photos]
        return photos

    def _clips(self, split: str, count: int, seed: int, voices, sizer: MouthPainter) -> list[MouthClip]:
        c = self.config
        utts = synthetic_utterances(split, count, seed, list(voices), 16000, cache_dir=c.cache_dir,
                                    progress_bar=self.progress_bar)  # fmt: skip
        return synthetic_mouth_clips(self._photos(split), utts, c.fps, sizer.paint_size, sizer.config.crop_scale,
                                     seed, self.progress_bar)  # fmt: skip

    def train_clips(self) -> list[MouthClip]:
        if self._train is None:
            c = self.config
            clips = (
                self._clips("train", c.synthetic_utterances, c.data_seed, TRAIN_VOICES, self._sizer)
                if c.synthetic_utterances
                else []
            )
            if c.data:
                clips += data_folder_mouth_clips(c.data, c.fps, self._sizer.paint_size, self._sizer.config.crop_scale,
                                                 split=c.split, limit=c.max_clips)  # fmt: skip
            self._train = clips
            logger.info(
                "mouth training clips: %d (%d frames)", len(self._train), sum(len(x.crops) for x in self._train)
            )
        return self._train

    def eval_clips(self, painter: MouthPainter | None = None) -> list[MouthClip]:
        """The held-out clips, cut at the sizes ``painter`` paints them at (None: the preset's painter)."""
        sizer = painter if painter is not None else self._sizer
        cfg = sizer.config
        key = (cfg.pixel_size, cfg.max_pixel_size, sizer.size_multiple, cfg.crop_scale)
        if key not in self._eval:
            c = self.config
            self._eval[key] = self._clips("test", c.eval_utterances, c.data_seed + 1, EVAL_VOICES, sizer)
        return self._eval[key]

    # --- the trainer's interface ------------------------------------------------------------------------------

    def build_model(self) -> MouthPainter:
        return build_mouth_painter(self.config.preset, seed=None)

    @functools.cached_property
    def _sizer(self) -> MouthPainter:
        """A painter of the preset (random weights): the crops' sizes (``paint_size``) and speech windows."""
        return build_mouth_painter(self.config.preset, seed=0)

    def build_dataset(self) -> MouthWindows:
        dataset = MouthWindows(
            self.train_clips(), self._sizer, self.config.fps, self.config.frames, self.config.stride
        )
        sizes = collections.Counter(dataset.batch_groups)
        logger.info("mouth training windows: %d (by crop size: %s)", len(dataset), dict(sorted(sizes.items())))
        return dataset

    def compute_loss(self, model, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        net: MouthPainter = getattr(model, "module", model)
        crops = batch["crops"].float().permute(0, 4, 1, 2, 3) / 127.5 - 1  # [B, 3, L, S, S]
        holes = batch["holes"].float()[:, None]  # [B, 1, L, S, S]
        given = torch.rand(holes.shape[0], device=holes.device) < self.config.context_prob
        k = min(net.config.context_frames, holes.shape[2] - 1)
        holes[given, :, :k] = 0  # the frames made before: known whole
        reference = batch["reference"].float().permute(0, 3, 1, 2) / 127.5 - 1
        known, mask, ref_latent = net.conditions(crops, holes, reference)
        clean = net.encode(crops)
        B = clean.shape[0]
        scheduler = self._scheduler(net)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (B,), device=clean.device)
        noisy = scheduler.add_noise(clean, torch.randn_like(clean), t)
        drop = torch.rand(B, device=clean.device) < self.config.audio_dropout
        pred = model(noisy, t, batch["audio"], ref_latent, known, mask, drop)
        paint = net.pixel_mask(holes)
        weight = paint + self.config.outside_weight * (1 - paint)
        painted = net.decode(net.clean_latents(pred, noisy, t)).float()
        error = F.mse_loss(painted, crops, reduction="none").mean(dim=1, keepdim=True)
        loss = (error * weight).sum() / weight.sum()
        hole_mse = float((error.detach() * paint).sum() / paint.sum().clamp(min=1))
        logs = {"hole_mse": hole_mse}
        if self.config.edge_weight:
            edges = gradient_difference(painted, crops, paint)
            loss = loss + self.config.edge_weight * edges
            logs["hole_gdl"] = float(edges.detach())
        return loss, logs

    def _scheduler(self, net: MouthPainter):
        if self._sched is None:
            self._sched = net.make_scheduler()
        return self._sched

    def save_model(self, model: MouthPainter, path: Path) -> None:
        """A :class:`MotionTalkingHeadPipeline` folder: the motion model of ``motion_model`` and this painter."""
        motion = MotionTalkingHeadPipeline.from_pretrained(self.config.motion_model).motion_model
        MotionTalkingHeadPipeline(motion_model=motion, mouth_painter=getattr(model, "module", model)).save_pretrained(
            path
        )

    @torch.no_grad()
    def evaluate(self, model: MouthPainter, step: int = 0) -> dict[str, float]:
        """:func:`evaluate_painter` on the held-out clips; empty with ``eval_utterances: 0``."""
        c = self.config
        if not c.eval_utterances:
            return {}
        painter = getattr(model, "module", model)
        return evaluate_painter(painter, self.eval_clips(painter), c.fps, c.eval_steps, c.eval_guidance)


def gradient_difference(images: torch.Tensor, truth: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """The gradient difference loss of Mathieu, Couprie and LeCun, "Deep multi-scale video prediction beyond mean
    square error" (ICLR 2016), with alpha = 1: the mean absolute difference between the magnitudes of neighbouring
    pixels' differences in ``images`` and in ``truth``, over the pairs of pixels both inside ``where``.

    A squared error alone is least for the mean of the plausible pictures, which blurs what the model is unsure of
    (the gaps between teeth); this term is least only when the edges are as strong as the truth's.

    Args:
        images, truth: [B, C, F, H, W], the same scale (here [-1, 1]).
        where: [B, 1, F, H, W] in {0, 1}.

    Returns:
        a scalar tensor (0 where no pair of pixels lies inside ``where``).
    """
    total = images.new_zeros(())
    count = images.new_zeros(())
    for dim in (-1, -2):
        n = images.shape[dim] - 1
        pairs = where.narrow(dim, 1, n) * where.narrow(dim, 0, n)
        gap = (torch.diff(images, dim=dim).abs() - torch.diff(truth, dim=dim).abs()).abs().mean(dim=1, keepdim=True)
        total = total + (gap * pairs).sum()
        count = count + pairs.sum()
    return total / count.clamp(min=1)


def _hole_mae(images: np.ndarray, truth: np.ndarray, holes: np.ndarray) -> float:
    """Mean absolute error (grey levels) of ``images`` against ``truth`` (uint8 [F, S, S, 3]), weighted by ``holes``."""
    w = holes[..., None]
    return float((np.abs(images.astype(np.float32) - truth.astype(np.float32)) * w).sum() / (w.sum() * 3))


def _laplacian_variance(images: np.ndarray, where: np.ndarray) -> float:
    grey = images.astype(np.float32).mean(axis=-1)
    lap = np.stack([cv2.Laplacian(g, cv2.CV_32F) for g in grey])
    return float(lap[where].var()) if where.any() else float("nan")


@torch.no_grad()
def evaluate_painter(
    painter: MouthPainter, clips: list[MouthClip], fps: int, steps: int = 8, guidance: float = 1.5, seed: int = 0
) -> dict[str, float]:
    """Paint every clip's rendered crops (:class:`CropSequence`, as the pipeline does) with the audio at ``guidance``
    and with it dropped (the twin, guidance 0), and score the holes against the truth, beside the renderer's own dark
    cavity (the clip's ``rendered`` crops: the model-free baseline).

    Returns:
        ``clips``; ``hole_mae``, ``twin_hole_mae``, ``cavity_hole_mae`` (grey levels, means over clips);
        ``wins_over_twin``, ``wins_over_cavity`` (shares of clips); ``sharpness_ratio`` (the painted holes' variance
        of the Laplacian over the truth's, over all clips).

    Raises:
        ValueError: no clips, a clip without the renderer's version (real footage has no cavity to compare), or no
            clip with an open mouth (nothing to score).
    """
    if not clips:
        raise ValueError("evaluate_painter needs at least one clip")
    bare = [clip.id for clip in clips if clip.rendered is None]
    if bare:
        raise ValueError(f"evaluate_painter needs synthetic clips with the renderer's version; not {bare}")
    painter.eval()
    encoder = painter.speech_encoder
    clock = encoder.frame_clock(fps)
    ours, twin, cavity, sharp_painted, sharp_truth = [], [], [], [], []
    for k, clip in enumerate(clips):
        holes = clip.holes
        if holes.sum() < 1:
            continue
        features = encoder.features(clip.samples[None])
        made = {}
        for g in (guidance, 0.0):
            sequence = CropSequence(painter, clip.reference, features, clock, num_inference_steps=steps,
                                    guidance_scale=g, generator=torch.Generator().manual_seed(seed + k))  # fmt: skip
            made[g] = sequence.paint_clip(clip.rendered, holes)
        mae = functools.partial(_hole_mae, truth=clip.crops, holes=holes)
        ours.append(mae(made[guidance]))
        twin.append(mae(made[0.0]))
        cavity.append(mae(clip.rendered))
        inside = holes > 0.5
        sharp_painted.append(_laplacian_variance(made[guidance], inside))
        sharp_truth.append(_laplacian_variance(clip.crops, inside))
    if not ours:
        raise ValueError("no held-out clip opens its mouth: nothing to score")
    a, b, c = (np.array(x) for x in (ours, twin, cavity))
    out = {
        "clips": float(len(ours)),
        "hole_mae": float(a.mean()),
        "twin_hole_mae": float(b.mean()),
        "cavity_hole_mae": float(c.mean()),
        "wins_over_twin": float(np.mean(a < b)),
        "wins_over_cavity": float(np.mean(a < c)),
        "sharpness_ratio": float(np.nanmean(sharp_painted) / np.nanmean(sharp_truth)),
    }
    logger.info("mouth painter on %d held-out clips: %s", len(ours), {k: round(v, 3) for k, v in out.items()})
    return out


__all__ = ["MouthPainterTask", "MouthPainterTaskConfig", "SCORES", "evaluate_painter", "gradient_difference"]
