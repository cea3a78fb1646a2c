"""The segmenter job: train :class:`SceneSegmenter` on scene clips' frames and masks, and measure it.

``avdiff train segmenter --config configs/train/segmenter_tiny.yaml --data DIR --eval-data TEST_DIR`` runs it
through the shared trainer; ``avdiff eval segmenter --checkpoint RUN/final --data TEST_DIR`` reports pixel accuracy
and mean IoU on held-out clips (decoded from their mp4s, as any video would be).

Frames are augmented in training (blur, noise, brightness and contrast, mirroring) so that the segmenter also reads
the softer frames a diffusion model makes.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from avdiff.data.scenes import load_scene_clip, read_scene_index
from avdiff.data.scenes.vocabulary import LABELS
from avdiff.evaluation.scene import segmentation_scores
from avdiff.models.segmenter import SceneSegmenter, SegmenterConfig, load_segmenter
from avdiff.training.trainer import strict_from_dict

logger = logging.getLogger(__name__)


@dataclass
class SegmenterTaskConfig:
    """The ``task:`` section of a segmenter YAML.

    Attributes:
        data, eval_data: scene folders (``avdiff synth scenes``) to train on and to measure on.
        frames_per_clip: frames taken from each training clip (evenly spaced; 16 = all).
        max_eval_clips: held-out clips measured at each evaluation (all frames of each).
        class_balance: cross-entropy weight of a label is ``frequency ** -class_balance`` (0 = plain), normalised to
            mean 1 over the pixels, so small objects (birds, a bell) count.
        blur_p, max_blur_sigma, max_noise, jitter, flip_p: augmentation.
        model: :class:`SegmenterConfig` settings (``width``, ``levels``; ``labels``: the scene vocabulary's by
            default).
    """

    data: str | None = None
    eval_data: str | None = None
    frames_per_clip: int = 4
    max_eval_clips: int = 100
    class_balance: float = 0.5
    blur_p: float = 0.5
    max_blur_sigma: float = 1.2
    max_noise: float = 0.06
    jitter: float = 0.15
    flip_p: float = 0.5
    model: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict) -> SegmenterTaskConfig:
        config = strict_from_dict(cls, values, "segmenter task")
        if not 1 <= config.frames_per_clip <= 16:
            raise ValueError(f"frames_per_clip must be in 1..16, got {config.frames_per_clip}")
        return config


class LabelledFrames(Dataset):
    """Items: (frame uint8 [H, W, 3], labels int64 [H, W])."""

    def __init__(self, frames: np.ndarray, masks: np.ndarray):
        if len(frames) != len(masks) or len(frames) == 0:
            raise ValueError(f"need as many masks as frames (>0), got {len(frames)} frames and {len(masks)} masks")
        self.frames, self.masks = torch.from_numpy(frames), torch.from_numpy(masks.astype(np.int64))

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int):
        return self.frames[i], self.masks[i]


def load_scene_frames(
    data_dir: str | Path, frames_per_clip: int = 16, max_clips: int | None = None, progress_bar: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decoded frames uint8 [N, H, W, 3] and masks uint8 [N, H, W] of a scene folder's clips, and their captions
    (one per frame). ``frames_per_clip`` evenly spaced frames per clip.

    Raises:
        FileNotFoundError: no scene index in ``data_dir``.
    """

    records = read_scene_index(data_dir)
    if not records:
        raise FileNotFoundError(
            f"{str(data_dir)!r} holds no scene clips (no index.jsonl; make one with avdiff synth scenes)"
        )
    records = records[:max_clips] if max_clips else records
    frames, masks, captions = [], [], []
    for r in tqdm(records, desc="decode", unit="clip", disable=not progress_bar):
        clip = load_scene_clip(data_dir, r, with_audio=False)
        pick = np.unique(np.linspace(0, len(clip.frames) - 1, frames_per_clip).round().astype(int))
        frames.append(clip.frames[pick])
        masks.append(clip.masks[pick])
        captions += [r.caption] * len(pick)
    return np.concatenate(frames), np.concatenate(masks), captions


class SegmenterTask:
    """Weighted cross-entropy on augmented frames; evaluation by pixel accuracy and mean IoU."""

    def __init__(self, config: SegmenterTaskConfig, progress_bar: bool = True):
        self.config = config
        self.model_config = SegmenterConfig(**{"labels": list(LABELS), **config.model})
        self.progress_bar = progress_bar
        self._weights: torch.Tensor | None = None
        self._eval: tuple[np.ndarray, np.ndarray] | None = None

    def config_dict(self) -> dict:
        return asdict(self.config)

    def build_model(self) -> SceneSegmenter:
        return SceneSegmenter(self.model_config)

    def build_dataset(self) -> LabelledFrames:
        if not self.config.data:
            raise ValueError("the segmenter task needs data: a scene folder (avdiff synth scenes)")
        frames, masks, _ = load_scene_frames(
            self.config.data, self.config.frames_per_clip, progress_bar=self.progress_bar
        )
        counts = np.bincount(masks.ravel(), minlength=self.model_config.num_labels).astype(np.float64)
        freq = np.maximum(counts / counts.sum(), 1e-6)
        weights = freq**-self.config.class_balance
        weights /= (weights * freq).sum()  # mean weight over pixels = 1
        self._weights = torch.tensor(weights, dtype=torch.float32)
        logger.info("segmenter training set: %d frames; label weights %s", len(frames), np.round(weights, 2).tolist())
        return LabelledFrames(frames, masks)

    def compute_loss(self, model: SceneSegmenter, batch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        frames, labels = batch
        x = self.augment(SceneSegmenter.to_input(frames).to(labels.device))
        if self.config.flip_p > 0:
            flip = torch.rand(x.shape[0], device=x.device) < self.config.flip_p
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            labels = torch.where(flip[:, None, None], labels.flip(-1), labels)
        logits = model(x)
        weight = self._weights.to(logits.device) if self._weights is not None else None
        loss = F.cross_entropy(logits, labels, weight=weight)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        return loss, {"pixel_acc": accuracy.item()}

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """x float [B, 3, H, W] in [-1, 1] -> blurred (with probability ``blur_p``), brightness/contrast jittered
        and noisy, in [-1, 1]. Randomness from torch's global RNG (seeded per step by the trainer)."""
        c = self.config
        B = x.shape[0]
        if c.blur_p > 0 and c.max_blur_sigma > 0:
            sigma = torch.rand(B, device=x.device) * c.max_blur_sigma
            sigma = torch.where(torch.rand(B, device=x.device) < c.blur_p, sigma, torch.zeros_like(sigma))
            x = _gaussian_blur(x, sigma)
        gain = 1 + (torch.rand(B, 1, 1, 1, device=x.device) * 2 - 1) * c.jitter
        shift = (torch.rand(B, 1, 1, 1, device=x.device) * 2 - 1) * c.jitter
        x = x * gain + shift
        x = x + torch.randn_like(x) * torch.rand(B, 1, 1, 1, device=x.device) * c.max_noise * 2
        return x.clamp(-1, 1)

    def save_model(self, model: SceneSegmenter, path: Path) -> None:
        model.save_pretrained(path)

    def eval_frames(self) -> tuple[np.ndarray, np.ndarray]:
        if self._eval is None:
            frames, masks, _ = load_scene_frames(self.config.eval_data, 16, self.config.max_eval_clips)
            self._eval = (frames, masks)
        return self._eval

    @torch.no_grad()
    def evaluate(self, model: SceneSegmenter, step: int = 0) -> dict[str, float]:
        """Pixel accuracy and mean IoU on ``eval_data`` (empty when there is none)."""
        if not self.config.eval_data:
            return {}

        frames, masks = self.eval_frames()
        return segmentation_scores(model.predict(frames), masks, model.config.labels)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """Blur each image of x [B, C, H, W] with its own sigma [B] (0 = unchanged), separable, reflect-padded."""
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    s = sigma.clamp_min(1e-3)[:, None]
    kernel = torch.exp(-0.5 * (offsets[None] / s) ** 2)
    kernel = torch.where(sigma[:, None] > 1e-3, kernel, (offsets[None] == 0).to(x.dtype))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (B, K)
    B, C, H, W = x.shape
    y = F.pad(x.reshape(1, B * C, H, W), (radius, radius, radius, radius), mode="reflect")
    k = kernel.repeat_interleave(C, dim=0)  # (B*C, K)
    y = F.conv2d(y, k[:, None, None, :], groups=B * C)
    y = F.conv2d(y, k[:, None, :, None], groups=B * C)
    return y.reshape(B, C, H, W)


def evaluate_segmenter_folder(
    checkpoint: str | Path, data_dir: str | Path, max_clips: int | None = None
) -> dict[str, float]:
    """Load a segmenter (bundled name or folder) and score it on a scene folder's decoded frames."""

    model = load_segmenter(checkpoint)
    frames, masks, _ = load_scene_frames(data_dir, 16, max_clips)
    scores = segmentation_scores(model.predict(frames), masks, model.config.labels)
    scores["frames"] = float(len(frames))
    return scores
