"""Small helpers that several pipelines share: argument checks and the sizes a UNet and codec can make."""

from __future__ import annotations

import logging

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
