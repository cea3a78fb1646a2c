"""A SyncNet-style audio–visual sync model (Chung & Zisserman 2016; the Wav2Lip and LatentSync expert).

Two small conv towers map a *window* of five video frames and the speech that goes with the same five frames into one
embedding space:

* the video tower reads the lower half of five consecutive aligned face crops (canonical alignment of
  :mod:`avdiff.video.align`: eyes at 0.40 of the height, mouth at 0.69), grey, resized to ``face_height`` x
  ``face_width`` and stacked as channels: [B, 5, h, w];
* the audio tower reads the log-mel steps of the same five frames, cut by the one frame clock
  (:meth:`avdiff.audio.features.LogMel.frame_windows` with ``context=2``): [B, n_mels, W], W = 20 at 25 fps with a
  10 ms hop.

Embeddings are unit norm; in-sync pairs are close, out-of-sync pairs (the same clip's audio a few frames away) far.
:mod:`avdiff.metrics.syncnet_scores` turns the distances into LSE-D, LSE-C and the audio offset, and
:mod:`avdiff.training.syncnet` trains the model through the shared trainer.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from avdiff.audio.clock import FrameClock
from avdiff.audio.features import LogMel
from avdiff.audio.io import Waveform
from avdiff.bundled import resolve_model_dir

logger = logging.getLogger(__name__)

CONFIG_NAME = "syncnet_config.json"
WEIGHTS_NAME = "syncnet.safetensors"


@dataclass
class SyncNetConfig:
    """Shape of a SyncNet.

    Attributes:
        fps, sample_rate: the clock the model was trained at (frames/s, Hz); inputs are resampled to it.
        crop_size: side in px of the aligned face crops it reads (any video is aligned to this size first).
        face_height, face_width: the lower half of a crop is resized to this, px.
        context: frames on each side of the centre frame; a window holds ``2 * context + 1`` frames.
        n_mels, win_s, hop_s: the log-mel features (hop 10 ms: 4 steps per frame at 25 fps and 16 kHz).
        embed_dim: embedding size.
        video_channels, audio_channels: widths of the conv stages (each stage halves the resolution).
        init_temperature: initial softmax temperature of the contrastive loss (learned).
        max_logit_scale: cap on 1 / temperature.
    """

    fps: int = 25
    sample_rate: int = 16000
    crop_size: int = 128
    face_height: int = 48
    face_width: int = 96
    context: int = 2
    n_mels: int = 80
    win_s: float = 0.025
    hop_s: float = 0.01
    embed_dim: int = 128
    video_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 192])
    audio_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 192])
    init_temperature: float = 0.1
    max_logit_scale: float = 100.0

    @property
    def window(self) -> int:
        """Frames per window."""
        return 2 * self.context + 1

    @classmethod
    def from_dict(cls, values: dict) -> SyncNetConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown SyncNet settings {sorted(unknown)}; known: {sorted(known)}")
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if self.face_height % 16 or self.face_width % 16 or self.face_height < 16:
            raise ValueError(
                f"face_height and face_width must be multiples of 16, got {self.face_height}x{self.face_width}"
            )
        if self.crop_size < 32:
            raise ValueError(f"crop_size must be >= 32 px, got {self.crop_size}")
        if self.context < 0:
            raise ValueError(f"context must be >= 0 frames, got {self.context}")
        if len(self.video_channels) != 4 or len(self.audio_channels) != 4:
            raise ValueError("video_channels and audio_channels must each list 4 stage widths")


def _stage(cin: int, cout: int, stride: int | tuple[int, int]) -> nn.Sequential:
    """conv 3x3 (stride) -> BN -> ReLU -> conv 3x3 -> BN -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class VideoTower(nn.Module):
    """Lower faces [B, frames, h, w] in [0, 1] -> embedding [B, D] (not normalised). Four stride-2 stages."""

    def __init__(self, c: SyncNetConfig):
        super().__init__()
        ch = c.video_channels
        self.net = nn.Sequential(
            nn.BatchNorm2d(c.window),
            _stage(c.window, ch[0], 2),
            _stage(ch[0], ch[1], 2),
            _stage(ch[1], ch[2], 2),
            _stage(ch[2], ch[3], 2),
        )
        self.head = nn.Linear(ch[3] * (c.face_height // 16) * (c.face_width // 16), c.embed_dim)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(faces).flatten(1))  # (B, C*h/16*w/16) -> (B, D)


class AudioTower(nn.Module):
    """Log-mel windows [B, n_mels, W] -> embedding [B, D] (not normalised). Halves the mel axis four times."""

    def __init__(self, c: SyncNetConfig, steps: int):
        super().__init__()
        ch = c.audio_channels
        self.net = nn.Sequential(
            nn.BatchNorm2d(1),
            _stage(1, ch[0], (2, 1)),
            _stage(ch[0], ch[1], 2),
            _stage(ch[1], ch[2], 2),
            _stage(ch[2], ch[3], (2, 1)),
        )
        with torch.no_grad():
            flat = self.net.eval()(torch.zeros(1, 1, c.n_mels, steps)).numel()
        self.net.train()
        self.head = nn.Linear(flat, c.embed_dim)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(mels.unsqueeze(1)).flatten(1))


class SyncNet(nn.Module):
    """Video windows and audio windows into one space of unit-norm embeddings.

    Example::

        model = SyncNet.from_pretrained("runs/syncnet_tiny/final")
        faces = model.lower_faces(crops)                       # uint8 [F, h, w] from aligned crops [F, S, S, 3]
        mels = model.mel_windows(waveform, num_frames=F)       # [F, n_mels, W]
        v = model.embed_video(model.video_windows(faces[None]))  # windows centred on frames 2..F-3
    """

    def __init__(self, config: SyncNetConfig | None = None):
        super().__init__()
        self.config = c = config or SyncNetConfig()
        c.validate()
        self.clock = FrameClock(c.fps, c.sample_rate)
        self.mel = LogMel(c.sample_rate, n_mels=c.n_mels, win_s=c.win_s, hop_s=c.hop_s)
        self.steps = self.clock.window_length(c.context, self.mel.hop_length)
        self.video = VideoTower(c)
        self.audio = AudioTower(c, self.steps)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / c.init_temperature)))

    # --- inputs --------------------------------------------------------------------------------------------------

    def lower_faces(self, crops: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Aligned crops uint8 [F, S, S, 3] -> grey lower halves uint8 [F, face_height, face_width].

        Rows ``[S/2, S)`` of the crop (nose tip to chin, with the mouth in the middle) are taken, converted to grey
        and resized with area averaging.
        """
        crops = crops.cpu().numpy() if isinstance(crops, torch.Tensor) else np.asarray(crops)
        if crops.ndim != 4 or crops.shape[-1] != 3 or crops.shape[1] != crops.shape[2]:
            raise ValueError(f"crops must be square RGB crops [F, S, S, 3], got {crops.shape}")
        c = self.config
        half = crops.shape[1] // 2
        out = [
            cv2.resize(
                cv2.cvtColor(np.ascontiguousarray(crop[half:]), cv2.COLOR_RGB2GRAY),
                (c.face_width, c.face_height),
                interpolation=cv2.INTER_AREA,
            )
            for crop in crops
        ]
        return torch.from_numpy(np.stack(out))

    def mel_windows(self, audio: Waveform, num_frames: int) -> torch.Tensor:
        """Speech -> per-frame log-mel windows [num_frames, n_mels, W] (frame ``i``'s steps ± ``context`` frames).

        The audio is made mono and resampled to the model's rate first.
        """
        if audio.sample_rate != self.config.sample_rate:
            audio = audio.resample(self.config.sample_rate)
        samples = audio.to_mono().samples.to(self.logit_scale.device)  # (1, N)
        mel = self.mel(samples)  # (1, n_mels, T)
        return self.mel.frame_windows(mel, self.clock, self.config.context, num_frames)[0]

    def video_windows(self, faces: torch.Tensor) -> torch.Tensor:
        """Lower faces uint8 [B, F, h, w] -> windows [B, F - 2*context, window, h, w], centred on frames
        ``context .. F - 1 - context``."""
        w = self.config.window
        return faces.unfold(1, w, 1).permute(0, 1, 4, 2, 3)

    # --- embeddings ----------------------------------------------------------------------------------------------

    def embed_video(self, windows: torch.Tensor) -> torch.Tensor:
        """Video windows [..., window, h, w] (uint8 0..255 or float in [0, 1]) -> unit embeddings [..., D]."""
        lead = windows.shape[:-3]
        x = windows.reshape(-1, *windows.shape[-3:])
        x = x.float() / 255.0 if not x.is_floating_point() else x
        return F.normalize(self.video(x), dim=-1).reshape(*lead, -1)

    def embed_audio(self, mels: torch.Tensor) -> torch.Tensor:
        """Log-mel windows [..., n_mels, W] -> unit embeddings [..., D]."""
        lead = mels.shape[:-2]
        x = mels.reshape(-1, *mels.shape[-2:]).float()
        return F.normalize(self.audio(x), dim=-1).reshape(*lead, -1)

    def forward(self, windows: torch.Tensor, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Video windows [..., window, h, w] and audio windows [..., n_mels, W] -> their unit embeddings
        ([..., D], [..., D]); what the trainer calls (so DDP sees one forward)."""
        return self.embed_video(windows), self.embed_audio(mels)

    def logit_scale_value(self) -> torch.Tensor:
        """1 / temperature, clamped to ``max_logit_scale``."""
        return self.logit_scale.exp().clamp(max=self.config.max_logit_scale)

    # --- files ---------------------------------------------------------------------------------------------------

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write ``syncnet_config.json`` and ``syncnet.safetensors`` into the folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2))
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, str(path / WEIGHTS_NAME))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> SyncNet:
        """Load a folder written by :meth:`save_pretrained` (e.g. ``runs/syncnet_tiny/final``), or a bundled one by
        name (``"avdiff/syncnet-motion"``), in eval mode.

        Raises:
            FileNotFoundError: neither a folder nor a bundled name, or the folder holds no SyncNet.
        """
        path = resolve_model_dir(path, CONFIG_NAME, "SyncNet")
        if not (path / WEIGHTS_NAME).is_file():
            raise FileNotFoundError(f"{str(path)!r} holds no SyncNet (expected {CONFIG_NAME} and {WEIGHTS_NAME})")
        model = cls(SyncNetConfig.from_dict(json.loads((path / CONFIG_NAME).read_text())))
        model.load_state_dict(load_file(str(path / WEIGHTS_NAME)))
        return model.eval()
