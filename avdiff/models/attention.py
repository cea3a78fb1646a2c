"""Attention processors that let audio into a diffusers UNet without forking its blocks.

Audio enters the spatial cross-attention layers (``attn2`` of every ``BasicTransformerBlock`` in the UNet's
``attentions``) through :class:`AudioAttnProcessor2_0`, a decoupled cross-attention in the style of IP-Adapter: the
text query attends to the audio tokens with the processor's own key/value projections, and the result is added to
the text attention through a per-layer gate ``tanh(gate)`` that starts at zero. At zero the layer computes exactly
what ``AttnProcessor2_0`` computes, so an inflated pretrained UNet behaves as before until it is trained.

The audio tokens travel in ``cross_attention_kwargs={"audio_tokens": tokens}`` with tokens ``[(B*F), T_a, D_a]``
(spatial attention runs on ``B*F`` images, batch index ``b * F + f``). diffusers hands ``cross_attention_kwargs`` to
the spatial self-attention layers too, so those get :class:`SpatialSelfAttnProcessor2_0`: ``AttnProcessor2_0`` that
accepts and ignores ``audio_tokens`` (instead of logging a warning on every call). The motion (temporal) layers never
see ``cross_attention_kwargs`` and keep their processors.

AADiff's token reweighting (:class:`TokenReweightAttnProcessor`, :func:`reweighting`) is the second processor: see its section below.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn

logger = logging.getLogger(__name__)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(N, T, heads * d) -> (N, heads, T, d)."""
    n, t, inner = x.shape
    return x.view(n, t, heads, inner // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(N, heads, T, d) -> (N, T, heads * d)."""
    n, heads, t, d = x.shape
    return x.transpose(1, 2).reshape(n, t, heads * d)


class SpatialSelfAttnProcessor2_0(AttnProcessor2_0):
    """``AttnProcessor2_0`` for spatial self-attention: accepts ``audio_tokens`` from ``cross_attention_kwargs`` and
    ignores them, so the audio kwargs reach the cross-attention layers without a warning per call."""

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        audio_tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class AudioAttnProcessor2_0(nn.Module):
    """Text cross-attention plus a gated, decoupled audio cross-attention (IP-Adapter style), with SDPA.

    ``out = to_out(attn(q, k_text, v_text) + tanh(gate) * attn(q, to_k_audio(a), to_v_audio(a)))``

    Args:
        hidden_size: the attention's inner dimension (``attn.to_k.out_features``, heads × head_dim).
        audio_dim: channels ``D_a`` of the audio tokens.

    The audio key/value projections have no bias, so all-zero audio tokens (the CFG null) give all-zero values and
    add exactly nothing. The gate is one scalar per attention layer, initialised to 0.
    """

    def __init__(self, hidden_size: int, audio_dim: int):
        super().__init__()
        if hidden_size <= 0:
            raise ValueError(f"hidden_size must be positive, got {hidden_size}")
        if audio_dim <= 0:
            raise ValueError(f"audio_dim must be positive, got {audio_dim}")
        self.hidden_size = hidden_size
        self.audio_dim = audio_dim
        self.to_k_audio = nn.Linear(audio_dim, hidden_size, bias=False)
        self.to_v_audio = nn.Linear(audio_dim, hidden_size, bias=False)
        self.gate = nn.Parameter(torch.zeros(()))

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, audio_dim={self.audio_dim}"

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        audio_tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """hidden_states (N, HW, C) or (N, C, H, W); encoder_hidden_states (N, T_t, D_t); audio_tokens (N, T_a, D_a),
        with N = B*F. Returns hidden_states' shape."""
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            n, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(n, channel, height * width).transpose(1, 2)  # (N, HW, C)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        n, context_len, _ = context.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, context_len, n)
            attention_mask = attention_mask.view(n, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)

        query = _split_heads(attn.to_q(hidden_states), attn.heads)  # (N, heads, HW, d)
        key = _split_heads(attn.to_k(context), attn.heads)  # (N, heads, T_t, d)
        value = _split_heads(attn.to_v(context), attn.heads)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)  # (N, heads, HW, d)
        out = _merge_heads(out).to(query.dtype)  # (N, HW, inner)

        if audio_tokens is not None:
            out = out + torch.tanh(self.gate).to(out.dtype) * self.audio_attention(query, audio_tokens, attn.heads)

        out = attn.to_out[1](attn.to_out[0](out))  # linear, dropout
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(n, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    def audio_attention(self, query: torch.Tensor, audio_tokens: torch.Tensor, heads: int) -> torch.Tensor:
        """query (N, heads, HW, d) attends to audio_tokens (N, T_a, D_a). Returns (N, HW, heads * d), ungated."""
        n = query.shape[0]
        if audio_tokens.ndim != 3 or audio_tokens.shape[0] != n or audio_tokens.shape[-1] != self.audio_dim:
            raise ValueError(
                f"audio_tokens must have shape ({n}, T_a, {self.audio_dim}) at this layer, "
                f"got {tuple(audio_tokens.shape)}"
            )
        audio_tokens = audio_tokens.to(self.to_k_audio.weight.dtype)
        key = _split_heads(self.to_k_audio(audio_tokens), heads)  # (N, heads, T_a, d)
        value = _split_heads(self.to_v_audio(audio_tokens), heads)
        return _merge_heads(F.scaled_dot_product_attention(query, key, value)).to(query.dtype)


def audio_processors(unet: nn.Module, audio_dim: int | None) -> dict[str, object]:
    """Processors for every attention layer of a diffusers UNet (``unet.attn_processors`` keys): audio
    cross-attention on the spatial ``attn2`` layers, audio-tolerant SDPA on the spatial ``attn1`` layers, and the
    current processor elsewhere (the motion modules). With ``audio_dim=None`` the spatial layers get plain SDPA."""
    processors = {}
    for name, current in unet.attn_processors.items():
        if ".attentions." not in name:  # motion modules: no cross_attention_kwargs reach them
            processors[name] = current
        elif name.endswith("attn2.processor") and audio_dim is not None:
            attn = unet.get_submodule(name.removesuffix(".processor"))
            processors[name] = AudioAttnProcessor2_0(attn.to_k.out_features, audio_dim)
        else:
            processors[name] = SpatialSelfAttnProcessor2_0() if audio_dim is not None else AttnProcessor2_0()
    return processors


def audio_gates(unet: nn.Module) -> dict[str, nn.Parameter]:
    """The gate parameter of every audio processor, by processor name."""
    return {name: proc.gate for name, proc in unet.attn_processors.items() if isinstance(proc, AudioAttnProcessor2_0)}


# --- AADiff: token reweighting --------------------------------------------------------------------------------
# The token-reweighting attention processor of AADiff (arXiv 2305.04001), after Prompt-to-Prompt's reweighting.
#
# :class:`TokenReweightAttnProcessor` is installed on every spatial attention layer of the UNet (``attn1`` and ``attn2``
# of the blocks in ``attentions``) with ``unet.set_attn_processor``; the motion (temporal) layers keep theirs. It reads
# one argument from ``cross_attention_kwargs``:
#
# ``token_scales``: float [N, T], one row per cross-attention batch row (``N = (1 or 2) * B * F``, the layout of
# :mod:`avdiff.pipelines.text_to_video`: ``[uncond; cond]``, b-major over frames) and one column per key token.
#
# For a cross-attention row ``n`` whose scales are not all 1, the attention probabilities ``P = softmax(q k^T / sqrt(d))``
# [heads, HW, T] are multiplied column-wise, ``P'[:, :, j] = P[:, :, j] * token_scales[n, j]``, and the output is
# ``P' v``. The rows are **not** renormalised (as Prompt-to-Prompt's ``AttentionReweight``): every other token keeps
# exactly the base pass's probability map, and the target token's values enter ``scale`` times as strongly. So
# ``out' = out + sum_j (s_j - 1) P[:, :, j] v_j``, which is what the tests check.
#
# Rows whose scales are all 1 (and every row of a self-attention layer, and every call without ``token_scales``) go
# through ``AttnProcessor2_0`` unchanged, so a frame with no control is the base pass bit for bit.


class TokenReweightAttnProcessor(AttnProcessor2_0):
    """``AttnProcessor2_0`` plus a per-row, per-token rescaling of the cross-attention probabilities (AADiff).

    See the comment above for ``token_scales`` and the mapping. Self-attention (``encoder_hidden_states is None``)
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
            raise ValueError(
                f"token_scales must have shape ({n}, {context_len}) at this layer (rows of the "
                f"cross-attention batch, key tokens), got {tuple(token_scales.shape)}"
            )
        rows = (token_scales != 1).any(dim=1).nonzero().flatten()
        if rows.numel() == 0:
            return base
        mask = None
        if attention_mask is not None:  # (N, heads, 1 or HW, T), additive
            mask = attn.prepare_attention_mask(attention_mask, context_len, n)
            mask = mask.view(n, attn.heads, -1, mask.shape[-1])[rows]
        changed = self._reweighted(
            attn, hidden_states[rows], encoder_hidden_states[rows], mask, temb, token_scales[rows]
        )
        out = base.clone()
        out[rows] = changed
        return out

    @staticmethod
    def _reweighted(
        attn: Attention,
        hidden_states: torch.Tensor,
        context: torch.Tensor,
        attention_mask: torch.Tensor | None,
        temb: torch.Tensor | None,
        scales: torch.Tensor,
    ) -> torch.Tensor:
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
