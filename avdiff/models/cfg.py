"""Classifier-free guidance: condition dropout for training, and the guided combination at inference.

Training drops each condition on its own: per sample, with probability ``p``, the condition is replaced by its null
(zeros, or a learned null). The draws come from an explicit ``torch.Generator``, one uniform per sample per condition
in field order, so a seeded generator reproduces the drops exactly.

At inference, build a doubled batch with ``cfg_conditions`` (``[null; cond]``), run the UNet once, and combine with
``classifier_free_guidance``.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from avdiff.models.conditions import Conditions

logger = logging.getLogger(__name__)


def replace_by_null(x: torch.Tensor, drop: torch.Tensor, null: torch.Tensor | None = None) -> torch.Tensor:
    """x [B, ...] with the items where ``drop`` (bool [B]) is True replaced by ``null`` (broadcastable to ``x``;
    ``None``: zeros): the one rule by which every model here hears a dropped condition."""
    if drop.shape != (x.shape[0],):
        raise ValueError(f"drop must be bool [B={x.shape[0]}], got shape {tuple(drop.shape)}")
    null = torch.zeros((), dtype=x.dtype, device=x.device) if null is None else null.to(x.dtype)
    return torch.where(drop.to(x.device).view(-1, *([1] * (x.ndim - 1))), null, x)


class ConditionDropout(nn.Module):
    """Replace a condition [B, ...] by its null with probability ``p`` per sample.

    Args:
        p: drop probability in [0, 1].
        null_shape: the shape of a learned null (broadcast over the batch, e.g. ``(T_t, D_t)``), initialised to zeros.
            ``None``: the null is zeros.
    """

    def __init__(self, p: float = 0.1, null_shape: tuple[int, ...] | None = None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p}")
        self.p = float(p)
        self.null = nn.Parameter(torch.zeros(null_shape)) if null_shape is not None else None

    def extra_repr(self) -> str:
        return f"p={self.p}, learned_null={self.null is not None}"

    def null_like(self, x: torch.Tensor) -> torch.Tensor:
        """The null for a condition shaped like ``x`` [B, ...]."""
        if self.null is None:
            return torch.zeros_like(x)
        return self.null.to(x.dtype).expand_as(x)

    def drop_mask(self, batch_size: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Bool [B]: True where the condition is dropped. Draws ``batch_size`` uniforms from ``generator`` (on its
        device) even when ``p`` is 0 or 1, so the stream of draws does not depend on ``p``."""
        gen_device = generator.device if generator is not None else "cpu"
        u = torch.rand(batch_size, generator=generator, device=gen_device)
        return (u < self.p).to(device)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x [B, ...] -> x with dropped samples replaced by the null. Identity in eval mode."""
        if not self.training:
            return x
        return replace_by_null(x, self.drop_mask(x.shape[0], generator, x.device), self.null_like(x))


class CFGDropout(nn.Module):
    """Independent :class:`ConditionDropout` for each named condition of a :class:`Conditions`.

    Args:
        p: drop probability by condition name (``{"audio": 0.1, "text": 0.1, "reference": 0.05}``); conditions not
            named are kept.
        learned_null_shapes: conditions whose null is learned, with the null's shape (without the batch axis).
    """

    def __init__(self, p: dict[str, float], learned_null_shapes: dict[str, tuple[int, ...]] | None = None):
        super().__init__()
        learned_null_shapes = learned_null_shapes or {}
        unknown = [n for n in (*p, *learned_null_shapes) if n not in Conditions.names()]
        if unknown:
            raise ValueError(f"condition names must be among {Conditions.names()}, got {unknown}")
        self.dropouts = nn.ModuleDict(
            {n: ConditionDropout(p[n], learned_null_shapes.get(n)) for n in Conditions.names() if n in p}
        )

    def forward(self, conditions: Conditions, generator: torch.Generator | None = None) -> Conditions:
        """Drop conditions per sample; conditions that are ``None`` draw nothing."""
        changes = {}
        for name, dropout in self.dropouts.items():
            x = getattr(conditions, name)
            if x is not None:
                changes[name] = dropout(x, generator)
        return conditions.replace(**changes)

    def nulls(self, conditions: Conditions) -> Conditions:
        """Every condition of ``conditions`` replaced by its null (learned nulls where this module has them)."""
        nulled = conditions.with_null()
        changes = {n: self.dropouts[n].null_like(x) for n, x in conditions.items() if n in self.dropouts}
        return nulled.replace(**changes)


def cfg_conditions(conditions: Conditions, null: Conditions) -> Conditions:
    """The doubled batch ``[null; conditions]`` for one guided UNet call. ``null`` is e.g.
    ``conditions.with_null("audio")`` (guide on audio only) or ``conditions.with_null()`` (guide on everything)."""
    return null.cat(conditions)


def classifier_free_guidance(prediction: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """prediction [2B, ...] from a ``[null; cond]`` batch -> ``null + guidance_scale * (cond - null)`` [B, ...]."""
    if prediction.shape[0] % 2:
        raise ValueError(f"prediction must have an even batch ([null; cond]), got shape {tuple(prediction.shape)}")
    uncond, cond = prediction.chunk(2)
    return uncond + guidance_scale * (cond - uncond)
