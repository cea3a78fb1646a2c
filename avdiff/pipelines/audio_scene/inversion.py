"""DDIM inversion of a still image with its prompt: the starting latent from which an audio-aligned scene animates it.

DDIM (Song et al. 2021, arXiv 2010.02502) run backwards with the prompt (no guidance: inversion with CFG drifts, as
Null-text Inversion, arXiv 2211.09794, shows) maps the image's latent ``x_0`` to an ``x_T``; denoising ``x_T`` with
the same prompt and no guidance gives the image back, up to the error of the per-step linearisation. That error is
what :func:`reconstruction_psnr` reports; it depends on the model (on random weights it is a mechanism check only).
Uses diffusers' ``DDIMInverseScheduler`` built from the pipeline's DDIM config.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import torch
from diffusers import DDIMInverseScheduler

logger = logging.getLogger(__name__)


def image_to_pixels(image: np.ndarray, height: int, width: int) -> torch.Tensor:
    """uint8 RGB [H0, W0, 3] -> float pixels [1, 3, height, width] in [-1, 1] (area resize when the size differs)."""
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 127.5 - 1.0


@torch.no_grad()
def ddim_invert(
    pipe, image: np.ndarray, prompt: str, num_inference_steps: int, height: int, width: int
) -> torch.Tensor:
    """The DDIM-inverted latent of ``image`` under ``prompt``.

    Args:
        pipe: a :class:`~avdiff.pipelines.TextToVideoPipeline` with a DDIM scheduler.
        image: uint8 RGB [H0, W0, 3] (resized to ``height`` x ``width`` px).
        prompt: the image's prompt.
        num_inference_steps: inversion steps (use the generation's).

    Returns:
        ``x_T`` [1, C, 1, h, w] in the UNet's dtype: pass it as the shared initial latent (no noise scaling: DDIM's
        ``init_noise_sigma`` is 1).
    """
    device, dtype = pipe._execution_device, pipe.unet.dtype
    pixels = image_to_pixels(image, height, width).to(device=pipe.codec.device, dtype=pipe.codec.dtype)
    latents = pipe.codec.encode(pixels)[:, :, None].to(device=device, dtype=dtype)  # (1, C, 1, h, w)
    inverse = DDIMInverseScheduler.from_config(pipe.scheduler.config)
    inverse.set_timesteps(num_inference_steps, device=device)
    embeds = pipe.encode_prompt(prompt, device)  # (1, T, D)
    for t in inverse.timesteps:
        pred = pipe.guided_prediction(latents, t, embeds)
        latents = inverse.step(pred, t, latents, return_dict=False)[0]
    return latents


def reconstruction_psnr(image: np.ndarray, reconstruction: np.ndarray) -> float:
    """PSNR in dB of a reconstruction uint8 [H, W, 3] against ``image`` (resized to its size first)."""
    from skimage.metrics import peak_signal_noise_ratio

    height, width = reconstruction.shape[:2]
    reference = ((image_to_pixels(image, height, width)[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255)
    return float(peak_signal_noise_ratio(reference.numpy().astype(np.uint8), reconstruction, data_range=255))
