"""Our aligner and its frozen text encoder behind the :class:`AudioTextEncoder` interface.

``AlignedEncoder.from_pretrained("runs/align_tiny/final")`` gives ``embed_audio``, ``embed_text`` and
``select_token`` in the text encoder's space, exactly like the CLAP backends, plus :meth:`audio_tokens` (the
pseudo-tokens that let audio condition a text-conditioned UNet).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch

from avdiff.encoders.alignment import AudioTextAligner
from avdiff.encoders.base import AudioTextEncoder, as_text_list
from avdiff.encoders.text import SentenceEncoder

logger = logging.getLogger(__name__)


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
    def embed_audio(self, audio) -> torch.Tensor:
        """Clips (Waveforms, or a tensor [B, N] at ``sample_rate``) -> [B, D] unit norm. Clips of different lengths
        are embedded one by one (the tower pools over time, so any length works)."""
        return torch.cat([self.aligner(clip[None]).embedding for clip in self.mono_clips(audio)])

    @torch.no_grad()
    def audio_tokens(self, audio) -> torch.Tensor:
        """Clips -> pseudo-tokens [B, N, D] in the text encoder's token space."""
        return torch.cat([self.aligner(clip[None]).tokens for clip in self.mono_clips(audio)])

    def embed_text(self, texts: str | Sequence[str]) -> torch.Tensor:
        return self.text_encoder.encode(as_text_list(texts)).pooled
