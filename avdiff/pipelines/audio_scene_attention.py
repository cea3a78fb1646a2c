"""The token-reweighting attention processor of AADiff (arXiv 2305.04001), after Prompt-to-Prompt's reweighting.

:class:`TokenReweightAttnProcessor` is installed on every spatial attention layer of the UNet (``attn1`` and ``attn2``
of the blocks in ``attentions``) with ``unet.set_attn_processor``; the motion (temporal) layers keep theirs. It reads
one argument from ``cross_attention_kwargs``:

``token_scales``: float [N, T], one row per cross-attention batch row (``N = (1 or 2) * B * F``, the layout of
:mod:`avdiff.pipelines.text_to_video`: ``[uncond; cond]``, b-major over frames) and one column per key token.

For a cross-attention row ``n`` whose scales are not all 1, the attention probabilities ``P = softmax(q k^T / sqrt(d))``
[heads, HW, T] are multiplied column-wise, ``P'[:, :, j] = P[:, :, j] * token_scales[n, j]``, and the output is
``P' v``. The rows are **not** renormalised (as Prompt-to-Prompt's ``AttentionReweight``): every other token keeps
exactly the base pass's probability map, and the target token's values enter ``scale`` times as strongly. So
``out' = out + sum_j (s_j - 1) P[:, :, j] v_j``, which is what the tests check.

Rows whose scales are all 1 (and every row of a self-attention layer, and every call without ``token_scales``) go
through ``AttnProcessor2_0`` unchanged, so a frame with no control is the base pass bit for bit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn

logger = logging.getLogger(__name__)


class TokenReweightAttnProcessor(AttnProcessor2_0):
    """``AttnProcessor2_0`` plus a per-row, per-token rescaling of the cross-attention probabilities (AADiff).

    See the module docstring for ``token_scales`` and the mapping. Self-attention (``encoder_hidden_states is None``)
    is never touched.
    """

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        token_scales: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """hidden_states (N, HW, C) or (N, C, H, W); encoder_hidden_states (N, T, D); token_scales (N, T) or None.
        Returns hidden_states' shape."""
        base = super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if token_scales is None or encoder_hidden_states is None:
            return base
        n, context_len = encoder_hidden_states.shape[:2]
        if token_scales.shape != (n, context_len):
            raise ValueError(f"token_scales must have shape ({n}, {context_len}) at this layer (rows of the "
                             f"cross-attention batch, key tokens), got {tuple(token_scales.shape)}")  # fmt: skip
        rows = (token_scales != 1).any(dim=1).nonzero().flatten()
        if rows.numel() == 0:
            return base
        mask = None
        if attention_mask is not None:  # (N, heads, 1 or HW, T), additive
            mask = attn.prepare_attention_mask(attention_mask, context_len, n)
            mask = mask.view(n, attn.heads, -1, mask.shape[-1])[rows]
        changed = self._reweighted(attn, hidden_states[rows], encoder_hidden_states[rows], mask, temb,
                                   token_scales[rows])  # fmt: skip
        out = base.clone()
        out[rows] = changed
        return out

    @staticmethod
    def _reweighted(attn: Attention, hidden_states: torch.Tensor, context: torch.Tensor,
                    attention_mask: torch.Tensor | None, temb: torch.Tensor | None,
                    scales: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """The cross-attention of the rows that are rescaled, with explicit probabilities. Same layout in and out."""
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            r, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(r, channel, height * width).transpose(1, 2)  # (R, HW, C)
        r = context.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        if attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        query, key, value = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(r, -1, attn.heads, head_dim).transpose(1, 2)  # (R, heads, HW, d)
        key = key.view(r, -1, attn.heads, head_dim).transpose(1, 2)  # (R, heads, T, d)
        value = value.view(r, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        scores = (query @ key.transpose(-1, -2)) * attn.scale  # (R, heads, HW, T)
        if attention_mask is not None:
            scores = scores + attention_mask
        probs = scores.softmax(dim=-1) * scales[:, None, None, :].to(scores.dtype)  # not renormalised
        out = (probs @ value).transpose(1, 2).reshape(r, -1, attn.heads * head_dim).to(query.dtype)  # (R, HW, inner)
        out = attn.to_out[1](attn.to_out[0](out))  # linear, dropout
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(r, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def reweight_processors(unet: nn.Module) -> dict[str, object]:
    """Processors for every attention layer of a diffusers UNet: :class:`TokenReweightAttnProcessor` on the spatial
    layers (``.attentions.`` in the name: ``attn1`` and ``attn2``), the current processor on the motion layers."""
    processor = TokenReweightAttnProcessor()
    return {name: processor if ".attentions." in name else current for name, current in unet.attn_processors.items()}


@contextmanager
def reweighting(unet: nn.Module) -> Iterator[nn.Module]:
    """``with reweighting(unet): ...`` installs :func:`reweight_processors` on a diffusers UNet and puts the previous
    processors back on exit (also on an exception)."""
    saved = dict(unet.attn_processors)
    unet.set_attn_processor(reweight_processors(unet))
    try:
        yield unet
    finally:
        unet.set_attn_processor(saved)
