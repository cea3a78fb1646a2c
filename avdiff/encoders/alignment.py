"""A contrastive aligner: audio into a given text encoder's space.

A small log-mel conv tower reads the sound; attention pooling with ``1 + N`` learned queries gives

* a pooled embedding [B, D_text], unit norm, trained with a symmetric InfoNCE loss against the text encoder's pooled
  caption embedding (CLIP/CLAP style, with a learnable temperature clamped to at most ``max_logit_scale``), and
* ``N`` pseudo-tokens [B, N, D_text] in the text encoder's *token* space (the AudioToken idea), trained to match the
  caption's token states pooled to ``N`` positions, so audio can stand in for words in a text-conditioned UNet.

The text encoder stays frozen; only the audio side learns. :class:`AlignedEncoder` puts a trained aligner and its
text encoder behind the :class:`~avdiff.encoders.base.AudioTextEncoder` interface:
``AlignedEncoder.from_pretrained("runs/align_tiny/final")`` gives ``embed_audio``, ``embed_text`` and ``select_token``
in the text encoder's space, exactly like the CLAP backends, plus :meth:`AlignedEncoder.audio_tokens` (the
pseudo-tokens that let audio condition a text-conditioned UNet).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from avdiff.audio.features import LogMel
from avdiff.bundled import bundled_path
from avdiff.encoders.base import AudioTextEncoder
from avdiff.encoders.text import SentenceEncoder

logger = logging.getLogger(__name__)


@dataclass
class AlignerConfig:
    """Shape of the aligner. ``text_dim`` must equal the text encoder's hidden size."""

    sample_rate: int = 16000
    n_mels: int = 64
    width: int = 192
    text_dim: int = 384
    num_tokens: int = 4
    heads: int = 4
    init_temperature: float = 0.07
    max_logit_scale: float = 100.0
    text_model: str = "minilm"


@dataclass
class AlignerOutput:
    """Attributes: embedding [B, D] unit norm; tokens [B, N, D] pseudo-tokens in the text token space."""

    embedding: torch.Tensor
    tokens: torch.Tensor


def _conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, kernel, stride, padding=kernel // 2), nn.GroupNorm(8, cout), nn.GELU())


class AudioTextAligner(nn.Module):
    """Waveform or log-mel in, a text-space embedding and pseudo-tokens out."""

    def __init__(self, config: AlignerConfig | None = None):
        super().__init__()
        self.config = c = config or AlignerConfig()
        self.mel = LogMel(c.sample_rate, n_mels=c.n_mels, f_min_hz=40.0, f_max_hz=c.sample_rate / 2)
        self.tower = nn.Sequential(
            _conv(c.n_mels, c.width, 5, 1),
            _conv(c.width, c.width, 5, 2),
            _conv(c.width, c.width, 3, 2),
            _conv(c.width, c.width, 3, 2),
        )
        self.position = nn.Parameter(torch.zeros(1, 64, c.width))
        self.queries = nn.Parameter(torch.randn(1 + c.num_tokens, c.width) * 0.02)
        self.pool = nn.MultiheadAttention(c.width, c.heads, batch_first=True)
        self.to_embedding = nn.Linear(c.width, c.text_dim)
        self.to_tokens = nn.Sequential(nn.Linear(c.width, c.text_dim), nn.LayerNorm(c.text_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / c.init_temperature)))

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel [B, n_mels, T] -> tower features [B, T', width] (T' = ceil(T / 8)), with positions."""
        x = self.tower((mel + 5.0) / 5.0).transpose(1, 2)  # rough standardisation of natural-log mel power
        pos = F.interpolate(self.position.transpose(1, 2), size=x.shape[1], mode="linear", align_corners=False)
        return x + pos.transpose(1, 2)

    def forward(self, audio: torch.Tensor, is_mel: bool = False) -> AlignerOutput:
        """Audio [B, S] at ``sample_rate`` (or log-mel [B, n_mels, T] with ``is_mel``) -> AlignerOutput."""
        mel = audio if is_mel else self.mel(audio)
        x = self.features(mel)  # (B, T', W)
        q = self.queries[None].expand(x.shape[0], -1, -1)
        pooled, _ = self.pool(q, x, x, need_weights=False)  # (B, 1 + N, W)
        embedding = F.normalize(self.to_embedding(pooled[:, 0]), dim=-1)
        return AlignerOutput(embedding, self.to_tokens(pooled[:, 1:]))

    def logit_scale_value(self) -> torch.Tensor:
        """exp(logit_scale), clamped to [1, max_logit_scale] (CLIP's fix against a runaway temperature)."""
        return self.logit_scale.exp().clamp(1.0, self.config.max_logit_scale)

    # --- saving ---------------------------------------------------------------------------------------------

    def save_pretrained(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "aligner_config.json").write_text(json.dumps(asdict(self.config), indent=2))
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path / "aligner.safetensors"))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> AudioTextAligner:
        """A folder written by :meth:`save_pretrained`, or the name of a bundled aligner (``"scene_aligner"``)."""
        if not Path(path).is_dir() and bundled_path(str(path)) is not None:
            path = bundled_path(str(path))
        path = Path(path)
        config_file = path / "aligner_config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"{str(path)!r} holds no aligner (no aligner_config.json)")
        model = cls(AlignerConfig(**json.loads(config_file.read_text())))
        model.load_state_dict(load_file(str(path / "aligner.safetensors")))
        return model.eval()


def info_nce(
    audio: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, same: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE between unit-norm audio [B, D] and text [B, D] embeddings.

    ``same`` (bool [B, B], true on the diagonal) marks pairs that share a caption's content. A row's loss is
    ``-log`` of the probability mass on *all* its positives, so two clips of one combination, or two paraphrases of
    one caption, are never pushed apart. Without ``same`` this is CLIP's loss.
    """
    logits = logit_scale * audio @ text.T  # (B, B)
    positive = torch.eye(len(audio), dtype=torch.bool, device=audio.device) if same is None else same
    masked = logits.masked_fill(~positive, float("-inf"))
    a2t = (logits.logsumexp(dim=1) - masked.logsumexp(dim=1)).mean()
    t2a = (logits.logsumexp(dim=0) - masked.logsumexp(dim=0)).mean()
    return (a2t + t2a) / 2


def pool_tokens(tokens: torch.Tensor, mask: torch.Tensor, n: int) -> torch.Tensor:
    """Caption token states [B, T, D] (mask [B, T]) -> [B, n, D]: masked means over n equal spans of each caption."""
    out = []
    for states, m in zip(tokens, mask):
        valid = states[m]  # (T_valid, D)
        out.append(F.adaptive_avg_pool1d(valid.T[None], n)[0].T)
    return torch.stack(out)


class AlignedEncoder(AudioTextEncoder):
    """A trained :class:`AudioTextAligner` plus the text encoder it was aligned to."""

    def __init__(self, aligner: AudioTextAligner, text_encoder: SentenceEncoder, text_template: str = "{word}"):
        super().__init__(aligner.config.sample_rate, text_template)
        if text_encoder.dim != aligner.config.text_dim:
            raise ValueError(f"the aligner outputs {aligner.config.text_dim}-d, the text encoder {text_encoder.dim}-d")
        self.aligner, self.text_encoder = aligner.eval(), text_encoder

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, text_model: str | None = None) -> AlignedEncoder:
        """An aligner folder (``save_pretrained``) or a bundled name (``"scene_aligner"``: trained on the scene
        sounds too, so ``select_token`` picks "campfire" for a crackle); the text encoder is the one named in its
        config unless given."""
        aligner = AudioTextAligner.from_pretrained(path)
        return cls(aligner, SentenceEncoder.from_pretrained(text_model or aligner.config.text_model))

    @property
    def embedding_dim(self) -> int:
        return self.aligner.config.text_dim

    @torch.no_grad()
    def embed_clips(self, clips: list[torch.Tensor]) -> torch.Tensor:
        """Mono clips [N_i] at ``sample_rate`` -> [B, D] unit norm. Clips of different lengths are embedded one by one
        (the tower pools over time, so any length works)."""
        return torch.cat([self.aligner(clip[None]).embedding for clip in clips])

    @torch.no_grad()
    def audio_tokens(self, audio) -> torch.Tensor:
        """Clips -> pseudo-tokens [B, N, D] in the text encoder's token space."""
        return torch.cat([self.aligner(clip[None]).tokens for clip in self.mono_clips(audio)])

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        return self.text_encoder.encode(texts).pooled
