"""Speech encoders: a waveform in, per-video-frame audio tokens out, cut through the frame clock.

Every encoder works in two stages, so that a pipeline can hold the features of a whole recording (small: one vector
per 10 or 20 ms) and turn them into tokens one chunk of video frames at a time:

1. ``features(samples [B, N]) -> [B, D, T]``: a feature sequence whose step ``j`` is centred on sample
   ``j * hop_length`` (the :class:`~avdiff.audio.clock.FrameClock` convention), ``T = N // hop_length + 1``;
2. ``frame_windows(features, clock, first_frame, num_frames) -> [B, n, D, W]``: the steps of each video frame with
   ``context`` frames on each side, cut by the clock (``clock.step_starts``, ``clock.window_length``), then
   ``forward(windows) -> tokens [B, n, T_a, D_a]`` through a small trainable head.

``encode(samples, clock)`` does both for a whole clip.

Two encoders:

* :class:`SpeechEncoder` (the default, trained with the model, offline): log-mel (16 kHz, 80 bands, 25 ms windows,
  10 ms hop: 4 steps per frame at 25 fps; with ±2 frames of context a frame sees [80, 20]), then a 1-D conv over time,
  pooled to ``T_a`` tokens of ``D_a`` channels.
* :class:`HFSpeechEncoder`: hidden states of a pretrained speech model from transformers (wav2vec2, HuBERT, WavLM or
  Whisper's encoder; a hub id or a local folder), as LatentSync and Hallo use them. The states (50 Hz) are mixed over
  layers with learned softmax weights, cut per frame by the clock, and projected to ``D_a`` by the same kind of head.
  The backbone is frozen by default. Long audio runs in overlapping segments, so memory stays bounded.

Both are diffusers ``ModelMixin`` s: a pipeline saves and loads them (the HF backbone's weights included) with its
other components; its ``model_index.json`` names this module for them.

The interface they share (:class:`BaseSpeechEncoder`: what a pipeline needs from one), the clock's per-frame windows
(:func:`clock_windows`) and the token head (:class:`FrameTokenHead`) come first.
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

# ModelMixin must be an attribute of this module: a saved pipeline's model_index.json names this module for its
# speech encoder, and diffusers' from_pretrained looks the loadable base classes up in it (getattr(module, ...)).
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from avdiff.audio.clock import FpsLike, FrameClock
from avdiff.audio.features import LogMel

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
        for name, value in [
            ("in_dim", in_dim),
            ("hidden_dim", hidden_dim),
            ("tokens_per_frame", tokens_per_frame),
            ("audio_dim", audio_dim),
        ]:
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

    def frame_windows(
        self, features: torch.Tensor, clock: FrameClock, first_frame: int = 0, num_frames: int | None = None
    ) -> torch.Tensor:
        """features [B, D, T] -> windows [B, n, D, W] of frames ``first_frame ..``, ±``context_frames``.
        ``num_frames`` defaults to every frame the features cover from ``first_frame`` on."""
        if clock.sample_rate != self.sample_rate:
            raise ValueError(f"clock runs at {clock.sample_rate} Hz but this encoder at {self.sample_rate} Hz")
        if num_frames is None:
            num_frames = clock.num_frames((features.shape[-1] - 1) * self.hop_length) - first_frame
        windows = clock_windows(
            features, clock, first_frame, num_frames, self.context_frames, self.hop_length, self.pad_value
        )  # (B, D, n, W)
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


class SpeechEncoder(BaseSpeechEncoder):
    """Log-mel windows per video frame -> ``T_a`` tokens of ``D_a``, trained with the model.

    Args:
        sample_rate: audio rate in Hz.
        n_mels: mel bands.
        win_s, hop_s: mel window and hop in seconds (10 ms: 4 steps per frame at 25 fps).
        context_frames: frames of context on each side of a frame (±k).
        tokens_per_frame: T_a.
        audio_dim: D_a, the UNet's ``audio_dim``.
        hidden_dim: channels of the convolutional head.
        mel_mean, mel_std: fixed normalisation of the natural-log mel power, ``(x - mel_mean) / mel_std``.
    """

    @register_to_config
    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 80,
        win_s: float = 0.025,
        hop_s: float = 0.01,
        context_frames: int = 2,
        tokens_per_frame: int = 5,
        audio_dim: int = 32,
        hidden_dim: int = 64,
        mel_mean: float = -6.0,
        mel_std: float = 4.0,
    ):
        super().__init__()
        if int(context_frames) != context_frames or context_frames < 0:
            raise ValueError(f"context_frames must be an integer >= 0, got {context_frames!r}")
        if not mel_std > 0:
            raise ValueError(f"mel_std must be positive, got {mel_std!r}")
        self.mel = LogMel(sample_rate, n_mels=n_mels, win_s=win_s, hop_s=hop_s)
        self.head = FrameTokenHead(n_mels, hidden_dim, tokens_per_frame, audio_dim)

    @property
    def hop_length(self) -> int:
        return self.mel.hop_length

    @property
    def pad_value(self) -> float:
        return math.log(self.mel.log_floor)

    def features(self, samples: torch.Tensor) -> torch.Tensor:
        """samples [B, N] -> natural-log mel power [B, n_mels, N // hop + 1]."""
        mel = self.mel.float()  # a fixed transform: kept in float32 whatever dtype the pipeline runs in
        return mel(samples.to(mel.mel.spectrogram.window.device))

    def prepare_windows(self, windows: torch.Tensor) -> torch.Tensor:
        return (windows.to(self.dtype) - self.config.mel_mean) / self.config.mel_std


# --- pretrained speech models from transformers ------------------------------------------------------------------


def _receptive_field(kernels: list[int], strides: list[int]) -> tuple[int, int]:
    """(receptive field, total stride) in samples of a stack of 1-D convolutions."""
    field, jump = 1, 1
    for k, s in zip(kernels, strides):
        field += (k - 1) * jump
        jump *= s
    return field, jump


class HFSpeechEncoder(BaseSpeechEncoder):
    """Hidden states of a transformers speech model, mixed over layers, cut per frame, projected to ``D_a``.

    Build it from a pretrained model with :meth:`from_backbone`; ``HFSpeechEncoder(backbone_config=...)`` (what
    ``from_pretrained`` does) builds the backbone with random weights, to be loaded over.

    Args:
        backbone_config: the transformers config of the backbone, as a dict (``model_type`` included): wav2vec2,
            hubert, wavlm, data2vec-audio (waveform input) or whisper (its encoder, log-mel input).
        audio_dim: D_a.
        tokens_per_frame: T_a.
        context_frames: frames of context on each side.
        hidden_dim: channels of the projection head.
        layers: indices into the backbone's ``hidden_states`` to mix (negative from the end); None mixes all.
        normalize_waveform: zero mean and unit variance over the whole clip first (wav2vec2's ``do_normalize``).
        freeze_backbone: keep the backbone's weights fixed (and in eval mode); the mixing weights and head train.
        segment_s, overlap_s: run the backbone on segments of this length, each with this much extra audio on both
            sides (dropped from its output), so attention cost and memory stay bounded for long audio.
        sample_rate: the backbone's rate in Hz (16000 for all of the above).
    """

    @register_to_config
    def __init__(
        self,
        backbone_config: dict,
        audio_dim: int = 768,
        tokens_per_frame: int = 5,
        context_frames: int = 2,
        hidden_dim: int = 512,
        layers: list[int] | None = None,
        normalize_waveform: bool = True,
        freeze_backbone: bool = True,
        segment_s: float = 20.0,
        overlap_s: float = 1.0,
        sample_rate: int = 16000,
    ):
        super().__init__()
        if not segment_s > 0 or not overlap_s >= 0:
            raise ValueError(f"need segment_s > 0 and overlap_s >= 0, got {segment_s!r} and {overlap_s!r}")
        self.backbone = self._build_backbone(backbone_config)
        cfg = self.backbone.config
        self.is_whisper = cfg.model_type == "whisper"
        num_states = (cfg.encoder_layers if self.is_whisper else cfg.num_hidden_layers) + 1
        self.layer_indices = sorted({i % num_states for i in (layers if layers is not None else range(num_states))})
        self.layer_weights = nn.Parameter(torch.zeros(len(self.layer_indices)))
        width = cfg.d_model if self.is_whisper else cfg.hidden_size
        self.head = FrameTokenHead(width, hidden_dim, tokens_per_frame, audio_dim)
        if self.is_whisper:
            self._hop = 2 * 160  # mel hop 160 samples, then conv2's stride 2
            self._field = 0  # the mel is centred: state k is centred on sample k * hop already
            if cfg.max_source_positions * self._hop / sample_rate < segment_s + 2 * overlap_s:
                raise ValueError(
                    f"segment_s + 2 * overlap_s ({segment_s + 2 * overlap_s} s) exceeds Whisper's "
                    f"{cfg.max_source_positions * self._hop / sample_rate} s input"
                )
        else:
            self._field, self._hop = _receptive_field(list(cfg.conv_kernel), list(cfg.conv_stride))
        if freeze_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    @staticmethod
    def _build_backbone(backbone_config: dict) -> nn.Module:
        from transformers import AutoConfig, AutoModel

        cfg = dict(backbone_config)
        model_type = cfg.pop("model_type", None)
        if model_type is None:
            raise ValueError(f"backbone_config needs a 'model_type', got keys {sorted(backbone_config)}")
        config = AutoConfig.for_model(model_type, **{k: v for k, v in cfg.items() if not k.startswith("_")})
        if model_type == "whisper":
            from transformers.models.whisper.modeling_whisper import WhisperEncoder

            return WhisperEncoder(config)
        return AutoModel.from_config(config)

    @classmethod
    def from_backbone(cls, name_or_path: str | os.PathLike, **options) -> HFSpeechEncoder:
        """Load a pretrained speech model (a hub id such as ``facebook/wav2vec2-base-960h``,
        ``facebook/hubert-base-ls960``, ``openai/whisper-tiny``, or a local folder) and put a fresh head on it.
        ``options`` as in the constructor."""
        from transformers import AutoConfig, AutoModel, WhisperModel

        source = str(name_or_path)
        config = AutoConfig.from_pretrained(source)
        if config.model_type == "whisper":
            backbone = WhisperModel.from_pretrained(source).get_encoder()
        else:
            backbone = AutoModel.from_pretrained(source)
        encoder = cls(backbone_config=backbone.config.to_dict(), **options)
        encoder.backbone.load_state_dict(backbone.state_dict())
        logger.info("speech backbone %s (%s) loaded from %s", type(backbone).__name__, config.model_type, source)
        return encoder

    @property
    def hop_length(self) -> int:
        return self._hop

    def train(self, mode: bool = True) -> HFSpeechEncoder:
        super().train(mode)
        if self.config.freeze_backbone:
            self.backbone.eval()
        return self

    def features(self, samples: torch.Tensor) -> torch.Tensor:
        """samples [B, N] -> mixed hidden states [B, D, N // hop + 1], computed segment by segment."""
        samples = samples.float()
        if self.config.normalize_waveform:
            samples = (samples - samples.mean(-1, keepdim=True)) / torch.sqrt(samples.var(-1, keepdim=True) + 1e-7)
        hop, total = self._hop, samples.shape[-1] // self._hop + 1
        segment = max(1, round(self.config.segment_s * self.sample_rate / hop))
        overlap = round(self.config.overlap_s * self.sample_rate / hop)
        parts = []
        for s0 in range(0, total, segment):
            s1 = min(total, s0 + segment)
            a, b = max(0, s0 - overlap), min(total, s1 + overlap)
            parts.append(self._states(samples, a, b)[:, s0 - a : s1 - a])  # (B, s1 - s0, D)
        return torch.cat(parts, dim=1).transpose(1, 2)  # (B, D, T)

    def _states(self, samples: torch.Tensor, a: int, b: int) -> torch.Tensor:
        """Mixed hidden states of steps [a, b) (step j centred on sample j * hop): (B, b - a, D)."""
        hop, half = self._hop, self._field // 2
        device = self.layer_weights.device
        grad = torch.is_grad_enabled() and not self.config.freeze_backbone
        with torch.set_grad_enabled(grad):
            if self.is_whisper:
                features = self._whisper_features(slice_padded(samples, a * hop, (b - 1) * hop + 1))
                out = self.backbone(features.to(device=device, dtype=self.backbone.dtype), output_hidden_states=True)
            else:
                # state k of the conv stack covers input [k * hop, k * hop + field): start half a field early so
                # state k is centred on sample (a + k) * hop.
                x = slice_padded(samples, a * hop - half, (b - 1) * hop - half + self._field)
                out = self.backbone(x.to(device=device, dtype=self.backbone.dtype), output_hidden_states=True)
        states = torch.stack([out.hidden_states[i] for i in self.layer_indices], dim=0)  # (L, B, T', D)
        weights = torch.softmax(self.layer_weights, dim=0).to(states.dtype)
        mixed = torch.einsum("l,lbtd->btd", weights, states)
        n = b - a
        if mixed.shape[1] < n:
            mixed = F.pad(mixed, (0, 0, 0, n - mixed.shape[1]))
        return mixed[:, :n]

    def _whisper_features(self, samples: torch.Tensor) -> torch.Tensor:
        """samples [B, n] -> Whisper log-mel [B, n_mels, 2 * max_source_positions], zero-padded audio."""
        from transformers import WhisperFeatureExtractor

        cfg = self.backbone.config
        extractor = WhisperFeatureExtractor(feature_size=cfg.num_mel_bins, sampling_rate=self.sample_rate)
        frames = 2 * cfg.max_source_positions
        extractor.n_samples, extractor.nb_max_frames = frames * 160, frames
        audio = [np.asarray(x, dtype=np.float32) for x in samples.detach().cpu().numpy()]
        out = extractor(audio, sampling_rate=self.sample_rate, return_tensors="pt", padding="max_length")
        return out.input_features
