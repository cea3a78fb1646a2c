"""Small helpers that several pipelines share: argument checks and the sizes a UNet and codec can make."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

logger = logging.getLogger(__name__)


def is_int(x: object) -> bool:
    """True for an ``int`` that is not a ``bool`` (``True`` is not a step count)."""
    return isinstance(x, int) and not isinstance(x, bool)


def latent_multiple(unet) -> int:
    """Latent sides must be multiples of this: the :class:`~avdiff.models.AudioVideoUNet` halves them once per down
    block but the last."""
    return 2 ** (len(unet.unet.config.block_out_channels) - 1)


def pixel_multiple(unet, codec) -> int:
    """Output sides (the talking head's crop sides) must be multiples of this many pixels: :func:`latent_multiple`
    times the codec's downscale."""
    return latent_multiple(unet) * codec.downscale


def default_size(unet, codec) -> int:
    """The side, px, the UNet was built for (the talking head's crop side): its ``sample_size`` times the codec's
    downscale."""
    return int(unet.unet.config.sample_size) * codec.downscale


def apply_frame_callback(
    callback: Callable, pipe, index: int, t: float, tensors: dict[str, torch.Tensor], inputs: list[str]
) -> np.ndarray:
    """Run ``callback_on_step_end(pipe, index, t, {name: tensors[name] for name in inputs})`` for one frame of the
    pipelines that call back once per frame (the warp baseline, the motion talking head, the music job).
    ``tensors["frame"]`` is the frame, uint8 [H, W, 3]; a ``"frame"`` the callback returns (same shape, uint8; a
    tensor or an array) replaces it.

    Returns:
        The frame, uint8 [H, W, 3] (numpy).

    Raises:
        ValueError: the callback returned a frame of another shape or dtype.
    """
    frame = tensors["frame"]
    returned = callback(pipe, index, t, {k: tensors[k] for k in inputs})
    new = (returned or {}).get("frame")
    if new is None:
        return frame.numpy()
    new = new.detach().cpu().numpy() if isinstance(new, torch.Tensor) else np.asarray(new)
    if new.shape != tuple(frame.shape) or new.dtype != np.uint8:
        raise ValueError(
            f"callback_on_step_end returned a frame of shape {new.shape} and dtype {new.dtype}; expected "
            f"{tuple(frame.shape)} uint8"
        )
    return new
