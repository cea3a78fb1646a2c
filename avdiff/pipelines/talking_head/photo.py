"""The working size of a talking head's photo: every frame is the photo's size, so a photo larger than
:data:`avdiff.pipelines.output.MAX_OUTPUT_SIDE` is downscaled to it before any work."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from avdiff.pipelines.output import MAX_OUTPUT_SIDE

logger = logging.getLogger(__name__)


def bound_output_size(image: np.ndarray, max_side: int = MAX_OUTPUT_SIDE) -> np.ndarray:
    """``image`` uint8 [H, W, 3] downscaled (area filter) so that its longer side is at most ``max_side`` px; as it is
    when it already fits."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    logger.info("the photo is %dx%d px; downscaled to %dx%d (the output's longer side is at most %d px)", width,
                height, *size, max_side)  # fmt: skip
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
