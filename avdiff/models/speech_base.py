"""The speech-encoder interface and the parts its encoders share: :class:`BaseSpeechEncoder` (what a pipeline
needs from one: ``features``, ``frame_windows``, ``forward``, ``encode``), :func:`clock_windows` (per-video-frame
windows of a feature sequence, cut by the frame clock) and :class:`FrameTokenHead` (windows -> audio tokens).

The encoders themselves, :class:`~avdiff.models.speech.SpeechEncoder` and
:class:`~avdiff.models.speech.HFSpeechEncoder`, are in :mod:`avdiff.models.speech`, which re-exports everything here
(and is the module a saved pipeline's ``model_index.json`` names for them).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from torch import nn

from avdiff.audio.clock import FpsLike, FrameClock

logger = logging.getLogger(__name__)


def slice_padded(x: torch.Tensor, start: int, stop: int, pad_value: float = 0.0) -> torch.Tensor:
    """``x[..., start:stop]`` with ``pad_value`` where the range runs past either end of the last axis."""
    n = x.shape[-1]
    a, b = max(start, 0), min(stop, n)
    if a >= b:  # entirely outside
        return x.new_full((*x.shape[:-1], stop - start), pad_value)
    part = x[..., a:b]
    left, right = a - start, stop - b
    return F.pad(part, (left, right), value=pad_value) if left or right else part


def clock_windows(
    x: torch.Tensor,
    clock: FrameClock,
    first_frame: int,
    num_frames: int,
    context: int,
    hop_length: int,
    pad_value: float = 0.0,
) -> torch.Tensor:
    """Per-frame windows of frames ``[first_frame, first_frame + num_frames)`` from a sequence [..., T].

    The clock decides which steps belong to which frame (``step_starts``) and the window width (``window_length``),
    so this equals ``clock.windows(x, context=context, hop_length=hop_length)[..., first_frame:first_frame + n, :]``
    (padded with ``pad_value`` instead of zeros) while touching only the steps those frames need.

    Returns:
        [..., num_frames, W] with ``W = clock.window_length(context, hop_length)``.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last (time) axis, got shape {tuple(x.shape)}")
    W = clock.window_length(context, hop_length)
    starts = clock.step_starts(num_frames, hop_length, first_frame=first_frame - context)[:-1]  # [n]
    lo, hi = int(starts[0]), int(starts[-1]) + W  # steps [lo, hi) are needed
    part = slice_padded(x, lo, hi, pad_value)  # (..., hi - lo)
    index = (starts - lo).to(x.device)[:, None] + torch.arange(W, device=x.device)[None, :]  # [n, W]
    return part[..., index]


class FrameTokenHead(nn.Module):
    """Per-frame windows [B, n, D, W] -> tokens [B, n, T_a, D_a]: two 1-D convs over time, pooled to ``T_a``
    positions, projected to ``D_a``, plus a learned position per token, then LayerNorm.

    The pooling adapts to any W, so a model trained at 25 fps also runs at other frame rates.
    """

    def __init__(self, in_dim: int, hidden_dim: int, tokens_per_frame: int, audio_dim: int):
        super().__init__()
        for name, value in [("in_dim", in_dim), ("hidden_dim", hidden_dim), ("tokens_per_frame", tokens_per_frame),
                            ("audio_dim", audio_dim)]:  # fmt: skip
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.convs = nn.Sequential(
            nn.Conv1d(in_dim, hidden_dim, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(hidden_dim, hidden_dim, 3, padding=1),
            nn.GELU(),
        )
        self.pool = nn.AdaptiveAvgPool1d(tokens_per_frame)
        self.proj = nn.Linear(hidden_dim, audio_dim)
        self.position = nn.Parameter(torch.randn(tokens_per_frame, audio_dim) * 0.02)
        self.norm = nn.LayerNorm(audio_dim)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        b, n, d, w = windows.shape
        x = self.convs(windows.reshape(b * n, d, w))  # (B*n, hidden, W)
        x = self.pool(x).transpose(1, 2)  # (B*n, T_a, hidden)
        x = self.norm(self.proj(x) + self.position)  # (B*n, T_a, D_a)
        return x.reshape(b, n, *x.shape[1:])


class BaseSpeechEncoder(ModelMixin, ConfigMixin):
    """What a pipeline needs from a speech encoder. Subclasses set ``self.head`` and define ``features``,
    ``hop_length`` and ``pad_value``; the config has ``sample_rate``, ``context_frames``, ``tokens_per_frame`` and
    ``audio_dim``."""

    @property
    def hop_length(self) -> int:
        """Samples between feature steps."""
        raise NotImplementedError

    @property
    def pad_value(self) -> float:
        """The feature value of silence, used to pad windows past the ends of the audio."""
        return 0.0

    @property
    def sample_rate(self) -> int:
        return int(self.config.sample_rate)

    @property
    def context_frames(self) -> int:
        return int(self.config.context_frames)

    @property
    def tokens_per_frame(self) -> int:
        """T_a."""
        return int(self.config.tokens_per_frame)

    @property
    def audio_dim(self) -> int:
        """D_a."""
        return int(self.config.audio_dim)

    def features(self, samples: torch.Tensor) -> torch.Tensor:
        """samples [B, N] at ``sample_rate`` -> features [B, D, T], step ``j`` centred on sample ``j * hop_length``."""
        raise NotImplementedError

    def frame_clock(self, fps: FpsLike) -> FrameClock:
        """The clock of video at ``fps`` against this encoder's sample rate."""
        return FrameClock(fps, self.sample_rate)

    def frame_windows(self, features: torch.Tensor, clock: FrameClock, first_frame: int = 0,
                      num_frames: int | None = None) -> torch.Tensor:  # fmt: skip
        """features [B, D, T] -> windows [B, n, D, W] of frames ``first_frame ..``, ±``context_frames``.
        ``num_frames`` defaults to every frame the features cover from ``first_frame`` on."""
        if clock.sample_rate != self.sample_rate:
            raise ValueError(f"clock runs at {clock.sample_rate} Hz but this encoder at {self.sample_rate} Hz")
        if num_frames is None:
            num_frames = clock.num_frames((features.shape[-1] - 1) * self.hop_length) - first_frame
        windows = clock_windows(features, clock, first_frame, num_frames, self.context_frames, self.hop_length,
                                self.pad_value)  # (B, D, n, W)  # fmt: skip
        return windows.movedim(-2, 1)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """windows [B, n, D, W] -> audio tokens [B, n, T_a, D_a]."""
        if windows.ndim != 4:
            raise ValueError(f"windows must have shape (B, n, D, W), got {tuple(windows.shape)}")
        return self.head(self.prepare_windows(windows))

    def prepare_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """Any fixed normalisation of the windows before the head (here: only the head's dtype)."""
        return windows.to(self.dtype)

    def encode(self, samples: torch.Tensor, clock: FrameClock, num_frames: int | None = None) -> torch.Tensor:
        """samples [B, N] -> audio tokens [B, F, T_a, D_a], ``F = clock.num_frames(N)`` unless given."""
        if samples.ndim != 2:
            raise ValueError(f"samples must have shape (B, N), got {tuple(samples.shape)}")
        if num_frames is None:
            num_frames = clock.num_frames(samples.shape[-1])
        return self(self.frame_windows(self.features(samples), clock, 0, num_frames))

