"""A prompt's tokens as a text encoder sees them, and the token positions of a prompt word.

Cross-attention control (AADiff's per-frame reweighting of a word, Prompt-to-Prompt) acts on token *positions*: the
keys of a spatial cross-attention layer are the text encoder's states at positions ``0 .. T-1`` of the padded
sequence. :class:`PromptTokens` records that sequence (ids, token strings, character offsets), and
:meth:`PromptTokens.positions` maps a word of the prompt to every position it occupies, including the several
pieces of a word that WordPiece or BPE splits (MiniLM: ``campfire -> camp ##fire``; CLIP: ``camp fire</w>``).

Positions come from the tokenizer's own character offsets (a fast, ``tokenizers``-backed tokenizer), never from
re-tokenizing the word alone, which can match a piece of another word (CLIP's ``fire</w>`` ends ``campfire`` too).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)


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
