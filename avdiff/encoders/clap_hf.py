"""transformers' ``ClapModel`` behind :class:`~avdiff.encoders.base.AudioTextEncoder`: :class:`HFClapEncoder`.

Audio is embedded by exact windows of the feature extractor's ``nb_max_samples`` (10 s at 48 kHz for the published
models; the windowing is described in :mod:`avdiff.encoders.clap_laion`).
:meth:`HFClapEncoder.from_pretrained` takes a hub id (``"laion/clap-htsat-unfused"``) or a local folder.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from avdiff.encoders.base import AudioTextEncoder, embed_windowed
from avdiff.encoders.clap_laion import TEXT_CONTEXT


class HFClapEncoder(AudioTextEncoder):
    """transformers' ``ClapModel`` with deterministic windowed audio embeddings.

    Args:
        model: a ``ClapModel``.
        processor: its ``ClapProcessor`` (feature extractor + tokenizer); its sampling rate and ``nb_max_samples``
            set :attr:`sample_rate` and the window (48 kHz, 10 s for the published models).
        text_template: see :class:`~avdiff.encoders.base.AudioTextEncoder`.
        batch_size: windows per forward pass of the audio model.

    Every window is exactly ``nb_max_samples`` long, so the feature extractor never crops at random, and ``is_longer``
    is passed as all False: the extractor's random choice of a "longer" clip when none is (its fusion mode) is
    overridden, and the global numpy RNG it draws from is restored.
    """

    def __init__(self, model: Any, processor: Any, *, text_template: str = "{word}", batch_size: int = 8):
        extractor = processor.feature_extractor
        super().__init__(extractor.sampling_rate, text_template)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self.model = model.eval()
        self.processor = processor
        self.window = int(extractor.nb_max_samples)
        self.batch_size = int(batch_size)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike, device: str | torch.device | None = None, **kwargs: Any
    ) -> HFClapEncoder:
        """Load ``ClapModel`` and ``ClapProcessor`` from a hub id (e.g. ``"laion/clap-htsat-unfused"``) or a folder.

        Raises:
            OSError: not a folder and not in the hub cache, and it cannot be downloaded (e.g. offline).
        """
        from transformers import ClapModel, ClapProcessor

        source = str(name_or_path)
        try:
            processor = ClapProcessor.from_pretrained(source)
            model = ClapModel.from_pretrained(source)
        except OSError as e:
            raise OSError(
                f"cannot load a CLAP model from name_or_path={source!r}: give a local folder saved with "
                f"save_pretrained, or download the hub id first (HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE')!r}). ({e})"
            ) from e
        return cls(model, processor, **kwargs).to(device or "cpu")

    @property
    def embedding_dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def embed_clips(self, clips: list[torch.Tensor]) -> torch.Tensor:
        """Unit-norm audio embeddings [B, D] (cpu float32), by windows of ``nb_max_samples`` (10 s at 48 kHz)."""
        with torch.no_grad():
            return embed_windowed(clips, self.window, self._embed_windows, self.batch_size).cpu()

    def _embed_windows(self, windows: torch.Tensor) -> torch.Tensor:
        rng_state = np.random.get_state()
        try:
            features = self.processor.feature_extractor(
                [w.numpy() for w in windows], sampling_rate=self.sample_rate, return_tensors="pt"
            )
        finally:
            np.random.set_state(rng_state)
        is_longer = torch.zeros(windows.shape[0], 1, dtype=torch.bool, device=self.device)
        out = self.model.get_audio_features(
            input_features=features["input_features"].to(self.device), is_longer=is_longer
        )
        return _pooled(out)

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Unit-norm text embeddings [B, D] (cpu float32). Texts are padded/truncated to 77 tokens."""
        tokens = self.processor.tokenizer(
            texts, padding="max_length", truncation=True, max_length=TEXT_CONTEXT, return_tensors="pt"
        )
        with torch.no_grad():
            out = self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device), attention_mask=tokens["attention_mask"].to(self.device)
            )
            return F.normalize(_pooled(out).float(), dim=-1).cpu()


def _pooled(out: Any) -> torch.Tensor:
    """transformers 5 returns an output object whose ``pooler_output`` is the projected embedding; 4.x a tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output
