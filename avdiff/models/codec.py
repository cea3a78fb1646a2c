"""Latent codecs: the map between pixels and the latents the video UNet denoises.

A pipeline sees one interface, :class:`LatentCodec`: ``encode(pixels [B, 3, H, W] in [-1, 1]) -> latents
[B, C, H / f, W / f]``, ``decode(latents) -> pixels``, ``latent_channels`` (C), ``downscale`` (f) and diffusers'
``save_pretrained`` / ``from_pretrained``. Latents are already scaled for diffusion (about unit variance).

Two codecs implement it:

* :class:`SpaceToDepthCodec` is an exact, weight-free "autoencoder": ``pixel_unshuffle`` folds each ``f x f`` block
  of pixels into ``3 * f * f`` channels, and ``pixel_shuffle`` unfolds them. This is the codec of the ``tiny``
  talking-head preset, by decision: no pretrained VAE reaches this machine (no internet), and a VAE trained here
  would be a second model to train and to debug. So the tiny model works in pixel space at 64x64, behind the same
  interface as a real VAE, rearranged so that its UNet runs at 16x16 on 48 channels, the same spatial size and cost
  as a latent model would have. Decoding is exact, so every error in the output is the UNet's.
* :class:`DiffusersVAECodec` wraps a diffusers ``AutoencoderKL`` (Stable Diffusion 1.5's VAE for the ``sd15``
  preset): the posterior's mean, shifted and scaled by the VAE's ``shift_factor`` and ``scaling_factor``.

Both are diffusers ``ModelMixin`` s, so a ``DiffusionPipeline`` saves and loads them as components.
"""

from __future__ import annotations

import logging
import os

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

logger = logging.getLogger(__name__)


class LatentCodec(ModelMixin, ConfigMixin):
    """Pixels [B, 3, H, W] in [-1, 1] <-> latents [B, C, H / f, W / f]. Subclasses define the four members below."""

    @property
    def latent_channels(self) -> int:
        """Channels C of a latent."""
        raise NotImplementedError

    @property
    def downscale(self) -> int:
        """Pixels per latent along each side (f)."""
        raise NotImplementedError

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [B, 3, H, W] in [-1, 1] -> latents [B, C, H / f, W / f] (scaled for diffusion)."""
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents [B, C, h, w] -> pixels [B, 3, h * f, w * f], nominally in [-1, 1] (not clamped)."""
        raise NotImplementedError

    def check_pixels(self, pixels: torch.Tensor) -> None:
        """Raise a ValueError unless ``pixels`` is [B, 3, H, W] with H and W multiples of ``downscale``."""
        f = self.downscale
        if pixels.ndim != 4 or pixels.shape[1] != 3 or pixels.shape[2] % f or pixels.shape[3] % f:
            raise ValueError(
                f"pixels must have shape (B, 3, H, W) with H and W multiples of {f}, got {tuple(pixels.shape)}"
            )

    def check_latents(self, latents: torch.Tensor) -> None:
        """Raise a ValueError unless ``latents`` is [B, C, h, w] with this codec's C."""
        if latents.ndim != 4 or latents.shape[1] != self.latent_channels:
            raise ValueError(f"latents must have shape (B, {self.latent_channels}, h, w), got {tuple(latents.shape)}")


class SpaceToDepthCodec(LatentCodec):
    """The exact, weight-free codec: ``pixel_unshuffle`` / ``pixel_shuffle`` by ``factor``.

    Args:
        factor: pixels per latent along each side (f).
        channels: image channels (3 for RGB); latents have ``channels * factor**2`` of them.

    ``decode(encode(x)) == x`` exactly. Pixels in [-1, 1] are used as they are: a uniform image has unit-order
    variance already, so no scaling factor is needed.
    """

    @register_to_config
    def __init__(self, factor: int = 4, channels: int = 3):
        super().__init__()
        if int(factor) != factor or factor < 1:
            raise ValueError(f"factor must be a positive integer, got {factor!r}")
        if int(channels) != channels or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        # No weights, but a module must tell its device and dtype (ModelMixin.device/dtype, pipeline.to(...)): an
        # empty buffer, left out of the state dict, follows .to() for it.
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    @property
    def latent_channels(self) -> int:
        return self.config.channels * self.config.factor**2

    @property
    def downscale(self) -> int:
        return self.config.factor

    def check_pixels(self, pixels: torch.Tensor) -> None:
        c, f = self.config.channels, self.config.factor
        if pixels.ndim != 4 or pixels.shape[1] != c or pixels.shape[2] % f or pixels.shape[3] % f:
            raise ValueError(
                f"pixels must have shape (B, {c}, H, W) with H and W multiples of {f}, got {tuple(pixels.shape)}"
            )

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        self.check_pixels(pixels)
        return F.pixel_unshuffle(pixels, self.config.factor)  # (B, 3 f^2, H / f, W / f)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        self.check_latents(latents)
        return F.pixel_shuffle(latents, self.config.factor)  # (B, 3, h f, w f)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> SpaceToDepthCodec:
        """Load from a folder (or hub id) holding this codec's ``config.json``. There are no weights, so the
        loading options of ``ModelMixin.from_pretrained`` (dtype, device map, ...) have nothing to act on."""
        config_kwargs = {
            k: kwargs[k] for k in ("subfolder", "cache_dir", "local_files_only", "revision", "token") if k in kwargs
        }
        config = cls.load_config(pretrained_model_name_or_path, **config_kwargs)
        return cls.from_config(config)


class DiffusersVAECodec(LatentCodec):
    """A diffusers ``AutoencoderKL`` as a codec: ``encode`` takes the posterior's mean (deterministic), then
    ``(z - shift_factor) * scaling_factor``; ``decode`` inverts that and runs the decoder.

    Args:
        vae: the autoencoder (e.g. ``AutoencoderKL.from_pretrained(sd15, subfolder="vae")``).
        vae_config: build a fresh (randomly initialised) ``AutoencoderKL`` from this config instead; this is how
            ``from_pretrained`` rebuilds a saved codec before loading its weights.
    """

    def __init__(self, vae: AutoencoderKL | None = None, vae_config: dict | None = None):
        super().__init__()
        if (vae is None) == (vae_config is None):
            raise ValueError(
                f"give exactly one of vae or vae_config, got vae={type(vae).__name__} and vae_config={vae_config!r}"
            )
        if vae is None:
            vae = AutoencoderKL.from_config({k: v for k, v in vae_config.items() if not k.startswith("_")})
        elif not isinstance(vae, AutoencoderKL):
            raise ValueError(f"vae must be a diffusers AutoencoderKL, got {type(vae).__name__}")
        self.vae = vae
        # The config holds the VAE's config, never the module, so it serialises to JSON (and has no "vae" key, which
        # ModelMixin.__getattr__ would answer from the config instead of the module).
        self.register_to_config(vae_config={k: v for k, v in vae.config.items() if not k.startswith("_")})

    @classmethod
    def from_vae(cls, path_or_hub_id: str | os.PathLike, subfolder: str | None = "vae", **kwargs) -> DiffusersVAECodec:
        """``AutoencoderKL.from_pretrained(path_or_hub_id, subfolder=...)`` wrapped as a codec."""
        return cls(AutoencoderKL.from_pretrained(str(path_or_hub_id), subfolder=subfolder, **kwargs))

    @property
    def latent_channels(self) -> int:
        return self.vae.config.latent_channels

    @property
    def downscale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def shift_factor(self) -> float:
        return float(self.vae.config.get("shift_factor") or 0.0)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        self.check_pixels(pixels)
        posterior = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist
        return (posterior.mean - self.shift_factor) * self.scaling_factor  # (B, C, H / f, W / f)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        self.check_latents(latents)
        z = latents.to(self.vae.dtype) / self.scaling_factor + self.shift_factor
        return self.vae.decode(z).sample  # (B, 3, h f, w f)


def pixels_from_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 images [B, H, W, 3] -> float pixels [B, 3, H, W] in [-1, 1]."""
    return images.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def pixels_to_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """Float pixels [B, 3, H, W] in [-1, 1] (clamped) -> uint8 images [B, H, W, 3] on the CPU."""
    x = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu()
