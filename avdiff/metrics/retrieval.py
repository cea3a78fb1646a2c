"""Cross-modal retrieval: recall@k in both directions, with the recall a random ranking would get."""

from __future__ import annotations

import logging
from math import comb

import numpy as np
import torch

logger = logging.getLogger(__name__)


def retrieval_recall(
    audio: torch.Tensor, audio_keys: list[str], text: torch.Tensor, text_keys: list[str], ks: tuple[int, ...] = (1, 5)
) -> dict[str, float]:
    """Recall@k for audio→text and text→audio retrieval, and chance.

    Args:
        audio: unit-norm audio embeddings [Na, D]; ``audio_keys`` says what each one shows (its caption's content).
        text: unit-norm embeddings [Nt, D] of *distinct* captions ``text_keys``.
        ks: the cut-offs.

    Returns:
        ``a2t_r@k``: share of clips whose own caption is among the k nearest captions; ``t2a_r@k``: share of captions
        with a matching clip among their k nearest clips; ``chance_a2t_r@k`` and ``chance_t2a_r@k``: the same for a
        uniformly random ranking; plus ``num_audio`` and ``num_text``.
    """
    if len(set(text_keys)) != len(text_keys):
        raise ValueError("text_keys must be distinct captions")
    missing = set(audio_keys) - set(text_keys)
    if missing:
        raise ValueError(f"audio keys without a caption: {sorted(missing)[:3]}")
    sim = (audio @ text.T).cpu().numpy()  # (Na, Nt)
    a_keys, t_keys = np.array(audio_keys), np.array(text_keys)
    match = a_keys[:, None] == t_keys[None, :]  # (Na, Nt)
    a2t_rank = np.argsort(-sim, axis=1)
    t2a_rank = np.argsort(-sim.T, axis=1)
    counts = match.sum(axis=0)  # clips per caption
    Na, Nt = sim.shape
    out: dict[str, float] = {"num_audio": float(Na), "num_text": float(Nt)}
    for k in ks:
        out[f"a2t_r@{k}"] = float(np.mean([match[i, a2t_rank[i, :k]].any() for i in range(Na)]))
        out[f"t2a_r@{k}"] = float(np.mean([match[t2a_rank[j, :k], j].any() for j in range(Nt)]))
        out[f"chance_a2t_r@{k}"] = min(1.0, k / Nt)
        out[f"chance_t2a_r@{k}"] = float(np.mean([1 - comb(Na - m, k) / comb(Na, k) for m in counts]))
    return out
