"""The SyncNet job: train :class:`~avdiff.models.syncnet.SyncNet` on DATA clips, and score held-out clips.

``avdiff train syncnet --config configs/train/syncnet_tiny.yaml --data DATA [--eval-data HELDOUT]`` runs it through
the shared trainer. Each training item is a *chunk* of ``chunk`` consecutive frame windows of one clip: the video
windows (five lower-face crops each) and the audio windows (the same five frames of log-mel) of frames
``t .. t + chunk - 1``. Within a chunk, video window ``i`` and audio window ``i`` are the in-sync pair, and the
other audio windows of the chunk are its negatives: the same clip's speech, out of sync by ``1 .. chunk - 1``
frames (windows closer than ``min_negative_shift`` frames are left out of the negatives). The loss is InfoNCE in
both directions (video -> audio and audio -> video) with a learned temperature.

This trains exactly what LSE-D/LSE-C measure (:mod:`avdiff.metrics.syncnet_scores`): that a face's embedding is
nearest to the audio of its own frames among the audio of nearby frames of the same clip.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from avdiff.audio.io import Waveform
from avdiff.data.video_dataset import aligned_crops, load_clip, select_records
from avdiff.metrics.syncnet_scores import SyncScores, score_faces, shift_audio
from avdiff.models.syncnet import SyncNet, SyncNetConfig
from avdiff.training.trainer import strict_from_dict

logger = logging.getLogger(__name__)


@dataclass
class SyncNetTaskConfig:
    """The ``task:`` section of a SyncNet YAML.

    Attributes:
        data: the training DATA folder (``--data`` overrides it).
        eval_data: a held-out DATA folder scored by :meth:`SyncNetTask.evaluate` (``--eval-data`` overrides it).
        split: use only the training clips of this split (None: all).
        max_clips, eval_max_clips: at most this many clips (None: all).
        chunk: consecutive frame windows per item; the in-clip negatives are at offsets up to ``chunk - 1``.
        min_negative_shift: audio windows fewer than this many frames from the positive are not used as negatives.
        gain_db: random speech gain, ± dB. noise: std of gaussian noise on the log-mel.
        brightness, contrast: random video brightness shift and contrast factor, ±.
        flip: mirror the faces at random.
        max_offset: offsets searched when scoring, frames (syncnet_python's 15).
        eval_shift: evaluation also scores each held-out clip with its audio delayed by this many frames.
        model: :class:`SyncNetConfig` settings.
    """

    data: str | None = None
    eval_data: str | None = None
    split: str | None = None
    max_clips: int | None = None
    eval_max_clips: int | None = 8
    chunk: int = 16
    min_negative_shift: int = 1
    gain_db: float = 6.0
    noise: float = 0.1
    brightness: float = 0.1
    contrast: float = 0.15
    flip: bool = True
    max_offset: int = 15
    eval_shift: int = 10
    model: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict) -> SyncNetTaskConfig:
        config = strict_from_dict(cls, values, "syncnet task")
        if config.chunk < 2:
            raise ValueError(f"chunk must be >= 2 windows (a positive and a negative), got {config.chunk}")
        if not 1 <= config.min_negative_shift < config.chunk:
            raise ValueError(f"min_negative_shift must be in [1, chunk), got {config.min_negative_shift}")
        return config


@dataclass
class PreparedClip:
    """A clip reduced to what SyncNet reads: lower faces uint8 [F, h, w] and speech (mono, the model's rate)."""

    id: str
    faces: torch.Tensor
    audio: Waveform


def prepare_clips(
    data_dir: str | Path, model: SyncNet, split: str | None = None, limit: int | None = None, progress_bar: bool = True
) -> list[PreparedClip]:
    """Load DATA clips as lower faces and speech. Unaligned clips (e.g. synthetic) are aligned on the fly."""
    out = []
    for record in tqdm(
        select_records(data_dir, split, limit), desc="loading clips", unit="clip", disable=not progress_bar
    ):
        clip = load_clip(data_dir, record)
        crops = aligned_crops(clip, model.config.crop_size)
        out.append(PreparedClip(record.id, model.lower_faces(crops), clip.audio.resample(model.config.sample_rate)))
    return out


class SyncChunks(Dataset):
    """Items: (faces uint8 [chunk + 2c, h, w], mels float32 [chunk, n_mels, W]) for ``chunk`` consecutive windows.

    Every start frame whose windows lie inside the clip is an item (``c`` = the model's context).
    """

    def __init__(self, faces: list[torch.Tensor], mels: list[torch.Tensor], chunk: int, context: int):
        self.faces, self.mels, self.chunk, self.context = faces, mels, chunk, context
        starts = []
        for k, f in enumerate(faces):
            last = len(f) - chunk - context  # centres start .. start+chunk-1 need frames start-c .. start+chunk-1+c
            starts.extend((k, s) for s in range(context, last + 1))
        if not starts:
            raise ValueError(f"no clip is long enough for a chunk of {chunk} windows ({chunk + 2 * context} frames)")
        self.items = torch.tensor(starts, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        k, s = self.items[i].tolist()
        c = self.context
        return self.faces[k][s - c : s + self.chunk + c], self.mels[k][s : s + self.chunk]


class SyncNetTask:
    """Trains a SyncNet with in-clip contrastive chunks (see the module docstring)."""

    def __init__(self, config: SyncNetTaskConfig, progress_bar: bool = True):
        self.config = config
        self.model_config = SyncNetConfig.from_dict(config.model)
        self.progress_bar = progress_bar
        self._eval: list[PreparedClip] | None = None

    def config_dict(self) -> dict:
        return asdict(self.config)

    def build_model(self) -> SyncNet:
        return SyncNet(self.model_config)

    def build_dataset(self) -> SyncChunks:
        c = self.config
        if not c.data:
            raise ValueError("no training data: give --data DATA (or task.data in the config)")
        helper = SyncNet(self.model_config)  # preprocessing only: lower faces and mel windows
        clips = prepare_clips(c.data, helper, c.split, c.max_clips, self.progress_bar)
        with torch.no_grad():
            mels = [helper.mel_windows(p.audio, len(p.faces)) for p in clips]
        dataset = SyncChunks([p.faces for p in clips], mels, c.chunk, self.model_config.context)
        logger.info(
            "syncnet training set: %d clips, %d frames, %d chunks",
            len(clips),
            sum(len(p.faces) for p in clips),
            len(dataset),
        )
        return dataset

    def compute_loss(self, model: SyncNet, batch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        faces, mels = batch
        faces, mels = self._augment(faces, mels)
        unwrapped = getattr(model, "module", model)
        windows = unwrapped.video_windows(faces)  # (B, T, window, h, w)
        video, audio = model(windows, mels)  # (B, T, D) each
        logits = unwrapped.logit_scale_value() * video @ audio.transpose(1, 2)  # (B, T, T): video i vs audio j
        T = logits.shape[-1]
        offset = torch.arange(T, device=logits.device)
        gap = (offset[:, None] - offset[None, :]).abs()
        logits = logits.masked_fill((gap > 0) & (gap < self.config.min_negative_shift), float("-inf"))
        target = offset.expand(logits.shape[0], T)
        v2a = F.cross_entropy(logits.reshape(-1, T), target.reshape(-1))
        a2v = F.cross_entropy(logits.transpose(1, 2).reshape(-1, T), target.reshape(-1))
        accuracy = (logits.argmax(dim=-1) == target).float().mean()
        return (v2a + a2v) / 2, {"accuracy": accuracy.item(), "scale": unwrapped.logit_scale_value().item()}

    def _augment(self, faces: torch.Tensor, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per item: brightness, contrast and a mirror of the faces; a gain and noise on the log-mel."""
        c = self.config
        B = faces.shape[0]
        x = faces.float() / 255.0  # (B, T+2c, h, w)
        shape = (B, 1, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        contrast = 1 + (torch.rand(shape, device=x.device) * 2 - 1) * c.contrast
        brightness = (torch.rand(shape, device=x.device) * 2 - 1) * c.brightness
        x = ((x - mean) * contrast + mean + brightness).clamp(0, 1)
        if c.flip:
            flip = torch.rand(B, device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        gain = (torch.rand(B, 1, 1, 1, device=mels.device) * 2 - 1) * c.gain_db * math.log(10) / 10  # dB -> ln power
        mels = mels + gain + c.noise * torch.randn_like(mels)
        return x, mels

    def save_model(self, model: SyncNet, path: Path) -> None:
        model.save_pretrained(path)

    def eval_clips(self, model: SyncNet) -> list[PreparedClip]:
        if self._eval is None:
            c = self.config
            self._eval = (
                prepare_clips(c.eval_data, model, None, c.eval_max_clips, self.progress_bar) if c.eval_data else []
            )
        return self._eval

    @torch.no_grad()
    def evaluate(self, model: SyncNet, step: int = 0) -> dict[str, float]:
        """Mean LSE-C/LSE-D on the held-out clips in sync and with the audio delayed by ``eval_shift`` frames, and how
        often the best offset is within ±1 frame of the truth (0 and ``eval_shift``). Empty without ``eval_data``."""
        clips = self.eval_clips(model)
        if not clips:
            return {}
        return evaluate_sync(model, clips, self.config.eval_shift, self.config.max_offset)


@torch.no_grad()
def evaluate_sync(model: SyncNet, clips: list[PreparedClip], shift: int, max_offset: int = 15) -> dict[str, float]:
    """Scores of ``clips`` in sync and with their audio delayed by ``shift`` frames (means over clips)."""
    sync: list[SyncScores] = []
    shifted: list[SyncScores] = []
    for clip in clips:
        sync.append(score_faces(model, clip.faces, clip.audio, max_offset=max_offset))
        late = shift_audio(clip.audio, shift, model.config.fps)
        shifted.append(score_faces(model, clip.faces, late, max_offset=max_offset))
    mean = lambda xs: float(np.mean(xs))  # noqa: E731
    return {
        "clips": float(len(clips)),
        "lse_c_sync": mean([s.lse_c for s in sync]),
        "lse_d_sync": mean([s.lse_d for s in sync]),
        "lse_c_shifted": mean([s.lse_c for s in shifted]),
        "lse_d_shifted": mean([s.lse_d for s in shifted]),
        "offset_within_1_sync": mean([abs(s.offset_frames) <= 1 for s in sync]),
        "offset_within_1_shifted": mean([abs(s.offset_frames - shift) <= 1 for s in shifted]),
    }
