"""The sizes a pipeline built on an :class:`~avdiff.models.AudioVideoUNet` and a
:class:`~avdiff.models.codec.LatentCodec` can make, as a mixin of
:class:`~avdiff.pipelines.text_to_video.TextToVideoPipeline` and
:class:`~avdiff.pipelines.talking_head.TalkingHeadPipeline`.

It reads the pipeline's ``unet`` and ``codec`` components; it is not used on its own.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class LatentSizesMixin:
    """``latent_multiple``, ``pixel_multiple`` and ``default_size`` of a pipeline with ``unet`` and ``codec``
    components. Put it before ``DiffusionPipeline`` among the bases."""

    @property
    def latent_multiple(self) -> int:
        """Latent sides must be multiples of this (the UNet halves them once per down block but the last)."""
        return 2 ** (len(self.unet.unet.config.block_out_channels) - 1)

    @property
    def pixel_multiple(self) -> int:
        """Output sides (the talking head's crop sides) must be multiples of this many pixels: ``latent_multiple``
        times the codec's downscale."""
        return self.latent_multiple * self.codec.downscale

    @property
    def default_size(self) -> int:
        """The side (the talking head's crop side) the UNet was built for: its ``sample_size`` times the codec's
        downscale, px."""
        return int(self.unet.unet.config.sample_size) * self.codec.downscale
