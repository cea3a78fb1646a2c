"""Small helpers that several pipelines share: argument checks, the sizes a UNet and codec can make, and the working
size of a talking head's photo."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from avdiff.pipelines.output import MAX_OUTPUT_SIDE

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


def bound_output_size(image: np.ndarray, max_side: int = MAX_OUTPUT_SIDE) -> np.ndarray:
    """The photo's working size: every talking-head frame is the photo's size, so ``image`` uint8 [H, W, 3] is
    downscaled (area filter) so that its longer side is at most ``max_side`` px; as it is
    when it already fits."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    logger.info(
        "the photo is %dx%d px; downscaled to %dx%d (the output's longer side is at most %d px)",
        width,
        height,
        *size,
        max_side,
    )
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
