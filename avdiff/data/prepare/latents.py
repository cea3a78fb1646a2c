"""VAE latents cached per clip by ``avdiff prepare --latents``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

_VAE_CACHE: dict[str, Any] = {}


def load_vae(path: str | os.PathLike):
    """A diffusers ``AutoencoderKL`` from a local folder (cached per process), in eval mode on the CPU.

    ``path`` is the VAE's own folder, or a pipeline folder with the VAE in its ``vae/`` subfolder (Stable Diffusion's
    layout).

    Raises:
        ValueError: the folder is missing or holds no loadable AutoencoderKL.
    """
    key = os.path.abspath(path)
    if key not in _VAE_CACHE:
        if not os.path.isdir(key):
            raise ValueError(f"--latents {os.fspath(path)!r}: no such folder (give a diffusers AutoencoderKL folder)")
        from diffusers import AutoencoderKL

        subfolder = "vae" if os.path.isfile(os.path.join(key, "vae", "config.json")) else None
        try:
            vae = AutoencoderKL.from_pretrained(key, subfolder=subfolder)
        except (OSError, ValueError) as e:
            raise ValueError(f"--latents {os.fspath(path)!r}: not a diffusers AutoencoderKL folder ({e})") from e
        _VAE_CACHE[key] = vae.eval().requires_grad_(False)
    return _VAE_CACHE[key]


def vae_downsample(vae) -> int:
    """The VAE's spatial downsampling factor (8 for Stable Diffusion's)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


@torch.no_grad()
def encode_latents(vae, crops: np.ndarray, batch: int = 16) -> dict[str, Any]:
    """Encode crops uint8 [F, S, S, 3] with a VAE.

    Returns:
        ``{"mean": float16 [F, C, S/d, S/d], "std": float16 [F, C, S/d, S/d], "scaling_factor": float,
        "shift_factor": float}``: the posterior's mean and standard deviation, already shifted and scaled
        (``(z - shift_factor) * scaling_factor``, the convention of :class:`avdiff.models.codec.DiffusersVAECodec`,
        whose ``encode`` is ``mean``), so ``mean + std * noise`` is a latent the UNet trains on.
    """
    scale = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
    shift = float(getattr(vae.config, "shift_factor", None) or 0.0)
    means, stds = [], []
    for start in range(0, len(crops), batch):
        x = torch.from_numpy(crops[start : start + batch]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        dist = vae.encode(x).latent_dist
        means.append(((dist.mean - shift) * scale).half())
        stds.append((dist.std * scale).half())
    return {"mean": torch.cat(means), "std": torch.cat(stds), "scaling_factor": scale, "shift_factor": shift}


def _save_torch_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)
    os.replace(tmp, path)
