"""AudioVideoUNet: a latent video UNet conditioned on text, per-frame audio, a reference image and motion frames.

The network is diffusers' own ``UNetMotionModel`` (held as ``self.unet``): spatial layers as in Stable Diffusion 1.5,
temporal (motion) layers as in AnimateDiff. Three things are added, none of them a fork of a diffusers block:

* audio: every spatial cross-attention layer gets an :class:`~avdiff.models.attention.AudioAttnProcessor2_0`
  (set with ``set_attn_processor``): its own key/value projections for audio tokens and a gate ``tanh(gate)``
  that starts at 0;
* extra input channels: ``conv_in`` reads ``[latents, reference, motion frames, mask]`` stacked on channels. When a
  4-channel UNet is inflated, the new channels' weights are zero;
* per-frame plumbing: text tokens [B, T_t, D_t] are repeated per frame and audio tokens [B, F, T_a, D_a] are
  flattened to [(B*F), T_a, D_a], matching the ``b * F + f`` order in which the spatial layers see frames.

With the gates at zero, the new channels' weights at zero and the motion modules' ``proj_out`` at zero (AnimateDiff's
initialisation), the model reproduces the source 2D UNet frame by frame. It takes plain arguments and reads no
preset: building one from a preset is :func:`avdiff.models.builders.build_unet`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import accelerate
import torch
from diffusers import ConfigMixin, ModelMixin, MotionAdapter, UNet2DConditionModel, UNetMotionModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D, UNetMotionOutput
from torch import nn

from avdiff.models.attention import AudioAttnProcessor2_0, audio_gates, audio_processors

logger = logging.getLogger(__name__)


class AudioVideoUNet(ModelMixin, ConfigMixin):
    """A diffusers ``UNetMotionModel`` with gated audio cross-attention and extra conditioning channels.

    Args:
        unet_config: ``UNetMotionModel`` keyword arguments. Its ``in_channels`` counts every input channel:
            latent + reference + motion + mask.
        audio_dim: channels ``D_a`` of the audio tokens; ``None`` builds a model without audio.
        reference_channels: channels ``C_r`` of the reference-image latent (0: none).
        motion_channels: channels ``C_m`` of the motion-frame latents (0: none).
        mask_channels: channels of the mask (0: none, 1: a mask).

    Built from a config (``from_config``, ``from_pretrained``) every weight is drawn fresh, to be loaded over;
    ``from_unet2d``, ``from_sd15`` and :func:`avdiff.models.builders.build_unet` give the zero-initialised inflation
    described above.
    """

    _supports_gradient_checkpointing = True
    _skip_layerwise_casting_patterns = ["norm"]

    @register_to_config
    def __init__(
        self,
        unet_config: dict,
        audio_dim: int | None = 768,
        reference_channels: int = 4,
        motion_channels: int = 4,
        mask_channels: int = 1,
    ):
        super().__init__()
        for name, value in [
            ("reference_channels", reference_channels),
            ("motion_channels", motion_channels),
            ("mask_channels", mask_channels),
        ]:
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if audio_dim is not None and audio_dim <= 0:
            raise ValueError(f"audio_dim must be positive or None, got {audio_dim}")
        unet_config = {k: v for k, v in dict(unet_config).items() if not k.startswith("_")}
        extra = reference_channels + motion_channels + mask_channels
        if unet_config.get("in_channels", 4) <= extra:
            raise ValueError(
                f"unet_config['in_channels'] ({unet_config.get('in_channels', 4)}) must exceed the extra channels "
                f"(reference {reference_channels} + motion {motion_channels} + mask {mask_channels})"
            )
        self.unet = UNetMotionModel.from_config(unet_config)
        self.set_audio_processors()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> AudioVideoUNet:
        """``ModelMixin.from_pretrained``, then every parameter and buffer in memory of its own (see
        :func:`own_aligned_memory`): a loaded model computes exactly what the saved one computed."""
        model = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        own_aligned_memory(model)
        return model

    # --- structure -------------------------------------------------------------------------------------------

    @property
    def extra_channels(self) -> int:
        """Input channels beyond the noisy latent: reference + motion + mask."""
        c = self.config
        return c.reference_channels + c.motion_channels + c.mask_channels

    @property
    def latent_channels(self) -> int:
        """Channels C of the noisy latent ``sample``."""
        return self.unet.config.in_channels - self.extra_channels

    @property
    def out_channels(self) -> int:
        return self.unet.config.out_channels

    def set_audio_processors(self) -> None:
        """(Re)install the audio processors on every spatial attention layer, fresh (gates at 0), on the UNet's
        device and dtype."""
        processors = audio_processors(self.unet, self.config.audio_dim)
        weight = self.unet.conv_in.weight
        for proc in processors.values():
            if isinstance(proc, AudioAttnProcessor2_0):
                proc.to(device=weight.device, dtype=weight.dtype)
        self.unet.set_attn_processor(processors)

    def audio_gates(self) -> dict[str, nn.Parameter]:
        """The scalar gate of each audio cross-attention layer (the effective gate is ``tanh(gate)``)."""
        return audio_gates(self.unet)

    def audio_parameters(self) -> list[nn.Parameter]:
        """Parameters of the audio processors (key/value projections and gates), e.g. to train only those."""
        return [p for m in self.modules() if isinstance(m, AudioAttnProcessor2_0) for p in m.parameters()]

    def parameter_counts(self) -> dict[str, int]:
        """Parameters by part: ``spatial`` (what the source 2D UNet has), ``motion`` (temporal modules), ``audio``
        (audio key/values and gates), ``new_channels`` (conv_in weights of the extra input channels), ``total``."""
        total = sum(p.numel() for p in self.parameters())
        motion = sum(p.numel() for n, p in self.named_parameters() if ".motion_modules." in n)
        audio = sum(p.numel() for p in self.audio_parameters())
        conv_in = self.unet.conv_in.weight
        new_channels = conv_in[:, self.latent_channels :].numel()
        spatial = total - motion - audio - new_channels
        return {"spatial": spatial, "motion": motion, "audio": audio, "new_channels": new_channels, "total": total}

    # --- forward ---------------------------------------------------------------------------------------------

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor | None = None,
        audio_tokens: torch.Tensor | None = None,
        reference_latents: torch.Tensor | None = None,
        motion_latents: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        cross_attention_kwargs: dict | None = None,
        return_dict: bool = True,
    ) -> UNetMotionOutput | tuple[torch.Tensor]:
        """Predict from noisy video latents.

        Args:
            sample: noisy latents [B, C, F, H, W].
            timestep: a scalar or [B].
            encoder_hidden_states: text tokens [B, T_t, D_t] (repeated per frame) or [B, F, T_t, D_t]. ``None``: one
                all-zero token.
            audio_tokens: per-frame audio tokens [B, F, T_a, D_a]. ``None``: no audio (the same as all zeros).
            reference_latents: reference-image latent [B, C_r, H, W], shown to every frame. ``None``: zeros.
            motion_latents: motion-frame latents [B, C_m, F, H, W], zeros where a frame has none. ``None``: zeros.
            mask: [B, 1, F, H, W]. ``None``: zeros.
            cross_attention_kwargs: passed to the attention processors (``audio_tokens`` is added).
            return_dict: return a ``UNetMotionOutput`` rather than a tuple.

        Returns:
            ``.sample`` [B, C_out, F, H, W].
        """
        batch, _, frames, _, _ = self._check_sample(sample)
        x = self.model_input(sample, reference_latents, motion_latents, mask)  # (B, C_in, F, H, W)
        text = self._text_per_frame(encoder_hidden_states, batch, frames, sample)  # (B*F, T_t, D_t)
        kwargs = dict(cross_attention_kwargs or {})
        if audio_tokens is not None:
            kwargs["audio_tokens"] = self._audio_per_frame(audio_tokens, batch, frames)  # (B*F, T_a, D_a)
        if isinstance(timestep, torch.Tensor) and timestep.ndim == 1 and timestep.shape[0] not in (1, batch):
            raise ValueError(f"timestep must be a scalar or have shape ({batch},), got {tuple(timestep.shape)}")
        out = self.unet(
            x, timestep, encoder_hidden_states=text, cross_attention_kwargs=kwargs or None, return_dict=False
        )[0]
        return UNetMotionOutput(sample=out) if return_dict else (out,)

    def model_input(
        self,
        sample: torch.Tensor,
        reference_latents: torch.Tensor | None = None,
        motion_latents: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Stack [latents, reference, motion, mask] on channels: (B, C + C_r + C_m + C_mask, F, H, W)."""
        batch, _, frames, height, width = self._check_sample(sample)
        parts = [sample]
        for name, x, channels, per_frame in [
            ("reference_latents", reference_latents, self.config.reference_channels, False),
            ("motion_latents", motion_latents, self.config.motion_channels, True),
            ("mask", mask, self.config.mask_channels, True),
        ]:
            if x is None:
                if channels:
                    parts.append(sample.new_zeros(batch, channels, frames, height, width))
                continue
            expected = (batch, channels, frames, height, width) if per_frame else (batch, channels, height, width)
            if channels == 0 or tuple(x.shape) != expected:
                raise ValueError(f"{name} must have shape {expected} for this model, got {tuple(x.shape)}")
            x = x.to(sample.dtype)
            parts.append(x if per_frame else x[:, :, None].expand(-1, -1, frames, -1, -1))  # (B, C_r, F, H, W)
        return torch.cat(parts, dim=1)

    def _check_sample(self, sample: torch.Tensor) -> tuple[int, int, int, int, int]:
        if sample.ndim != 5 or sample.shape[1] != self.latent_channels:
            raise ValueError(f"sample must have shape (B, {self.latent_channels}, F, H, W), got {tuple(sample.shape)}")
        frames = sample.shape[2]
        if frames > self.unet.config.motion_max_seq_length:
            raise ValueError(
                f"sample has {frames} frames, more than motion_max_seq_length={self.unet.config.motion_max_seq_length}"
            )
        return tuple(sample.shape)

    def _text_per_frame(self, text: torch.Tensor | None, batch: int, frames: int, like: torch.Tensor) -> torch.Tensor:
        """[B, T_t, D_t] or [B, F, T_t, D_t] -> (B*F, T_t, D_t); None -> one zero token per frame."""
        dim = self.unet.config.cross_attention_dim
        if text is None:
            return like.new_zeros(batch * frames, 1, dim)
        if text.ndim == 3 and text.shape[0] == batch and text.shape[-1] == dim:
            return text.repeat_interleave(frames, dim=0)  # (B*F, T_t, D_t), b-major like the frames
        if text.ndim == 4 and text.shape[:2] == (batch, frames) and text.shape[-1] == dim:
            return text.flatten(0, 1)
        raise ValueError(
            f"encoder_hidden_states must have shape ({batch}, T_t, {dim}) or ({batch}, {frames}, T_t, {dim}), "
            f"got {tuple(text.shape)}"
        )

    def _audio_per_frame(self, audio: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
        """[B, F, T_a, D_a] -> (B*F, T_a, D_a), row b * F + f = frame f of clip b."""
        dim = self.config.audio_dim
        if dim is None:
            raise ValueError("audio_tokens were given, but this model has no audio layers (audio_dim=None)")
        if audio.ndim != 4 or audio.shape[:2] != (batch, frames) or audio.shape[-1] != dim:
            raise ValueError(f"audio_tokens must have shape ({batch}, {frames}, T_a, {dim}), got {tuple(audio.shape)}")
        return audio.flatten(0, 1)

    # --- builders ----------------------------------------------------------------------------------------------

    @classmethod
    def from_unet2d(
        cls,
        unet2d: UNet2DConditionModel,
        motion_adapter: MotionAdapter | None = None,
        *,
        motion_adapter_config: dict | None = None,
        audio_dim: int | None = 768,
        reference_channels: int = 4,
        motion_channels: int = 4,
        mask_channels: int = 1,
    ) -> AudioVideoUNet:
        """Inflate a 2D UNet: motion modules from ``motion_adapter`` (or a fresh one built from
        ``motion_adapter_config``, its ``proj_out`` layers zeroed as AnimateDiff initialises them), new ``conv_in``
        channels zeroed, audio gates at zero. The result reproduces ``unet2d`` frame by frame until trained."""
        if motion_adapter is None:
            motion_adapter = MotionAdapter(
                **{**default_motion_adapter_config(unet2d), **(motion_adapter_config or {})}
            )
            zero_motion_proj_out(motion_adapter)
        elif motion_adapter_config:
            raise ValueError(f"give motion_adapter or motion_adapter_config, not both (got {motion_adapter_config})")
        with quiet_empty_fp32_warning():  # from_unet2d casts with .to(dtype), which warns about nothing
            motion_unet = UNetMotionModel.from_unet2d(unet2d, motion_adapter)
        widen_conv_in(motion_unet, reference_channels + motion_channels + mask_channels)
        config = {k: v for k, v in motion_unet.config.items() if not k.startswith("_")}
        with accelerate.init_empty_weights():  # a shell; its UNet is replaced by the inflated one
            model = cls(config, audio_dim, reference_channels, motion_channels, mask_channels)
        model.unet = motion_unet
        model.set_audio_processors()
        return model

    @classmethod
    def from_sd15(
        cls,
        unet_path_or_hub_id: str = "stable-diffusion-v1-5/stable-diffusion-v1-5",
        motion_adapter_path_or_hub_id: str = "guoyww/animatediff-motion-adapter-v1-5-2",
        *,
        subfolder: str | None = "unet",
        torch_dtype: torch.dtype | None = None,
        **options,
    ) -> AudioVideoUNet:
        """Load a Stable Diffusion 1.5 UNet and an AnimateDiff motion adapter (hub ids or local folders) and
        inflate them (``options`` as in ``from_unet2d``: ``audio_dim``, ``reference_channels``, ...).

        ``subfolder`` is ignored when ``unet_path_or_hub_id`` is a folder that holds the UNet's config.json itself.
        """
        unet2d, adapter = load_pretrained_parts(
            unet_path_or_hub_id, motion_adapter_path_or_hub_id, subfolder=subfolder, torch_dtype=torch_dtype
        )
        return cls.from_unet2d(unet2d, adapter, **options)


TENSOR_ALIGNMENT = 64  # bytes: what torch's CPU allocator gives, and what SIMD GEMM kernels are tuned for


@torch.no_grad()
def own_aligned_memory(module: nn.Module) -> None:
    """Copy every parameter and buffer that does not start on a :data:`TENSOR_ALIGNMENT`-byte boundary into memory of
    its own.

    diffusers loads safetensors weights as views into a memory map of the file, each at its byte offset there (any
    multiple of 4). BLAS kernels (MKL) may take another path for unaligned operands and round differently, so such a
    model's outputs can differ in the last bits from the model that was saved. Copies made by torch's allocator are
    aligned, and no longer hold the file's mapping.
    """
    for sub in module.modules():
        for _name, param in list(sub._parameters.items()):
            if param is not None and param.data_ptr() % TENSOR_ALIGNMENT:
                param.data = param.data.clone(memory_format=torch.contiguous_format)
        for name, buf in list(sub._buffers.items()):
            if buf is not None and buf.data_ptr() % TENSOR_ALIGNMENT:
                sub._buffers[name] = buf.clone(memory_format=torch.contiguous_format)


def load_pretrained_parts(
    unet_path_or_hub_id: str | Path,
    motion_adapter_path_or_hub_id: str | Path,
    subfolder: str | None = "unet",
    torch_dtype: torch.dtype | None = None,
) -> tuple[UNet2DConditionModel, MotionAdapter]:
    """``UNet2DConditionModel.from_pretrained(..., subfolder=...)`` and ``MotionAdapter.from_pretrained(...)``.
    A local folder holding config.json directly is read without the subfolder."""
    unet_source = Path(unet_path_or_hub_id)
    if unet_source.is_dir() and (unet_source / "config.json").is_file():
        subfolder = None
    elif not unet_source.exists() and str(unet_path_or_hub_id).startswith((".", "/")):
        raise FileNotFoundError(f"unet_path_or_hub_id {str(unet_path_or_hub_id)!r} does not exist")
    logger.info(
        "loading UNet from %s (subfolder %s) and motion adapter from %s",
        unet_path_or_hub_id,
        subfolder,
        motion_adapter_path_or_hub_id,
    )
    unet2d = UNet2DConditionModel.from_pretrained(
        str(unet_path_or_hub_id), subfolder=subfolder, torch_dtype=torch_dtype
    )
    adapter = MotionAdapter.from_pretrained(str(motion_adapter_path_or_hub_id), torch_dtype=torch_dtype)
    return unet2d, adapter


def default_motion_adapter_config(unet2d: UNet2DConditionModel) -> dict:
    """A MotionAdapter config that fits ``unet2d`` (channels, layers per block, norm groups)."""
    c = unet2d.config
    return {
        "block_out_channels": tuple(c.block_out_channels),
        "motion_layers_per_block": c.layers_per_block,
        "motion_norm_num_groups": c.norm_num_groups,
    }


def zero_motion_proj_out(module: nn.Module) -> None:
    """Zero the output projection of every motion transformer, so each motion module starts as the identity."""
    for m in module.modules():
        if isinstance(m, AnimateDiffTransformer3D):
            nn.init.zeros_(m.proj_out.weight)
            nn.init.zeros_(m.proj_out.bias)


@torch.no_grad()
def widen_conv_in(unet: UNetMotionModel, extra_channels: int) -> None:
    """Give ``unet.conv_in`` ``extra_channels`` more input channels, with zero weights, and update its config."""
    if extra_channels == 0:
        return
    old = unet.conv_in
    new = nn.Conv2d(old.in_channels + extra_channels, old.out_channels, old.kernel_size, old.stride, old.padding)
    new.to(device=old.weight.device, dtype=old.weight.dtype)
    new.weight.zero_()
    new.weight[:, : old.in_channels] = old.weight
    new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=new.in_channels)


@contextlib.contextmanager
def quiet_empty_fp32_warning() -> Iterator[None]:
    """Drop diffusers' "modules ... should be kept in float32: []" warning, which ``ModelMixin.to(dtype)`` logs
    even when the list of such modules is empty (diffusers 0.42). Other warnings pass."""

    def keep(record: logging.LogRecord) -> bool:
        return "should be kept in float32: []" not in record.getMessage()

    diffusers_logger = logging.getLogger("diffusers.models.modeling_utils")
    diffusers_logger.addFilter(keep)
    try:
        yield
    finally:
        diffusers_logger.removeFilter(keep)
