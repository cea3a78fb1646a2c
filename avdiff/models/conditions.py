"""Conditions are data: the typed container of what an :class:`~avdiff.models.AudioVideoUNet` is conditioned on.

A job fills the fields it uses and leaves the rest ``None``. ``as_kwargs()`` gives the UNet's keyword arguments;
``with_null(...)`` and ``cat(...)`` build the unconditional half of a classifier-free-guidance batch.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)

# field name -> the AudioVideoUNet.forward keyword it feeds
UNET_KWARGS = {
    "text": "encoder_hidden_states",
    "audio": "audio_tokens",
    "reference": "reference_latents",
    "motion": "motion_latents",
    "mask": "mask",
}


@dataclass
class Conditions:
    """Condition tensors for a batch of B clips of F frames.

    Attributes:
        text: text tokens [B, T_t, D_t] (or per frame [B, F, T_t, D_t]).
        audio: per-frame audio tokens [B, F, T_a, D_a].
        reference: reference-image latents [B, C_r, H, W], shown to every frame.
        motion: motion-frame latents [B, C_m, F, H, W] (previous frames for autoregression; zeros where absent).
        mask: inpainting mask [B, 1, F, H, W] (1 = generate).
    """

    text: torch.Tensor | None = None
    audio: torch.Tensor | None = None
    reference: torch.Tensor | None = None
    motion: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    @staticmethod
    def names() -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(Conditions))

    def items(self) -> list[tuple[str, torch.Tensor]]:
        """The conditions that are set, as (name, tensor) pairs."""
        return [(n, getattr(self, n)) for n in self.names() if getattr(self, n) is not None]

    def as_kwargs(self) -> dict[str, torch.Tensor | None]:
        """Keyword arguments for ``AudioVideoUNet.forward``."""
        return {UNET_KWARGS[n]: getattr(self, n) for n in self.names()}

    def replace(self, **changes: torch.Tensor | None) -> Conditions:
        return dataclasses.replace(self, **changes)

    def with_null(self, *names: str, nulls: dict[str, torch.Tensor] | None = None) -> Conditions:
        """A copy with the named conditions replaced by their null: ``nulls[name]`` (broadcast to the condition's
        shape, e.g. the empty-prompt embedding for ``text``) or zeros. Conditions that are ``None`` stay ``None``.
        With no names, every condition is nulled."""
        nulls = nulls or {}
        unknown = [n for n in (*names, *nulls) if n not in self.names()]
        if unknown:
            raise ValueError(f"names must be among {self.names()}, got {unknown}")
        changes = {}
        for name in names or self.names():
            x = getattr(self, name)
            if x is not None:
                changes[name] = nulls[name].to(x).expand_as(x).clone() if name in nulls else torch.zeros_like(x)
        return self.replace(**changes)

    def cat(self, other: Conditions) -> Conditions:
        """Concatenate two batches along the batch axis (``[self; other]``), e.g. ``null.cat(cond)`` for CFG."""
        changes = {}
        for name in self.names():
            a, b = getattr(self, name), getattr(other, name)
            if (a is None) != (b is None):
                raise ValueError(f"cannot concatenate conditions where only one side has {name!r}")
            changes[name] = None if a is None else torch.cat([a, b])
        return self.replace(**changes)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Conditions:
        """Move every condition; ``dtype`` applies to floating-point tensors."""

        def move(x: torch.Tensor) -> torch.Tensor:
            return x.to(device=device, dtype=dtype if x.is_floating_point() else None)

        return self.replace(**{n: move(x) for n, x in self.items()})
