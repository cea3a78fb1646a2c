"""The mouth's region: the inside of its lips, and square crops around it where the mouth painter works.

:func:`lip_interior` rasterises the inside of an inner-lip contour as a soft coverage mask: the renderer draws its
cavity through it, the painter paints through it, and a tracked video's mouths are found with it. A :class:`MouthCrop` is a square of ``side`` px of the frame (its native size) centred between the mouth's inner
corners, sampled to ``size`` px for a model. The side is fixed for a photo (``crop_scale`` widths of the photo's own
mouth), the centre follows the mouth frame by frame, so a clip's crops share one scale. :meth:`MouthCrop.cut` takes a
crop out of a frame (bilinear, subpixel), :meth:`MouthCrop.paste` puts a crop back through the inverse map, blended
by a mask in the frame's pixels, touching only the crop's box.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

logger = logging.getLogger(__name__)


def lip_interior(polygon: np.ndarray, shape: tuple[int, ...], softness_px: float) -> tuple[np.ndarray, tuple]:
    """The inside of an inner-lip contour: each pixel's coverage (rasterised at 4x and averaged, so lips that touch
    give nothing), its edge blurred by a Gaussian of ``softness_px`` (none under 0.3 px).

    Args:
        polygon: float [P, 2] px, the contour (:data:`avdiff.video.face.INNER_LIPS` order).
        shape: the frame's shape (its first two entries are used).
        softness_px: the edge's blur, px.

    Returns:
        (float32 [h, w] in [0, 1], its box ``(y0, y1, x0, x1)`` in the frame, clipped to it; empty when the contour
        lies outside the frame).
    """
    poly = np.asarray(polygon, np.float64)
    height, width = shape[:2]
    margin = int(np.ceil(3 * softness_px)) + 2
    lo = np.clip(np.floor(poly.min(axis=0)).astype(int) - margin, 0, [width, height])
    hi = np.clip(np.ceil(poly.max(axis=0)).astype(int) + margin, 0, [width, height])
    box = (int(lo[1]), int(hi[1]), int(lo[0]), int(hi[0]))
    h, w = box[1] - box[0], box[3] - box[2]
    if h <= 0 or w <= 0:
        return np.zeros((max(h, 0), max(w, 0)), np.float32), box
    fine = np.zeros((4 * h, 4 * w), np.uint8)
    # pixel centres: fine pixel (i + 0.5) / 4 - 0.5 is the coarse coordinate
    fixed = np.round(((poly - lo) * 4 + 1.5) * 16).astype(np.int32)
    cv2.fillPoly(fine, [fixed], 255, lineType=cv2.LINE_8, shift=4)
    alpha = cv2.resize(fine, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    if softness_px >= 0.3 and alpha.any():
        alpha = np.clip(cv2.GaussianBlur(alpha, (0, 0), softness_px), 0.0, 1.0)
    return alpha, box


@dataclass(frozen=True)
class MouthCrop:
    """A square of ``side`` frame pixels centred at ``(cx, cy)``, sampled to ``size`` x ``size``."""

    cx: float
    cy: float
    side: float
    size: int

    @property
    def matrix(self) -> np.ndarray:
        """float64 [2, 3]: frame pixel coordinates -> crop pixel coordinates (pixel centres map to centres)."""
        s = self.size / self.side
        return np.array(
            [[s, 0.0, (self.size - 1) / 2 - s * self.cx], [0.0, s, (self.size - 1) / 2 - s * self.cy]], np.float64
        )

    def box(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """The crop's bounding box in a frame of ``shape``, clipped to it: ``(y0, y1, x0, x1)``."""
        h, w = shape[:2]
        half = self.side / 2 + 1
        x0, x1 = int(max(np.floor(self.cx - half), 0)), int(min(np.ceil(self.cx + half) + 1, w))
        y0, y1 = int(max(np.floor(self.cy - half), 0)), int(min(np.ceil(self.cy + half) + 1, h))
        return y0, y1, x0, x1

    def cut(self, image: np.ndarray) -> np.ndarray:
        """The crop of ``image`` ([H, W] or [H, W, C], any dtype cv2 samples): [size, size(, C)], bilinear; pixels
        outside the frame repeat its edge."""
        return cv2.warpAffine(
            image, self.matrix, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )

    def paste(self, frame: np.ndarray, crop: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """``frame`` (uint8 [H, W, 3]) with ``crop`` (uint8 [size, size, 3]) mapped back to the frame's pixels and
        blended in by ``alpha`` (float [H, W] in [0, 1], in the frame's pixels); a new frame."""
        out = frame.copy()
        y0, y1, x0, x1 = self.box(frame.shape)
        if y1 <= y0 or x1 <= x0:
            return out
        a = alpha[y0:y1, x0:x1, None].astype(np.float32)
        if not a.any():
            return out
        shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
        to_crop = np.vstack([self.matrix, [0.0, 0.0, 1.0]]) @ shift  # box pixel -> crop pixel
        back = cv2.warpAffine(
            crop,
            to_crop[:2],
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        ).astype(np.float32)
        region = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = np.clip(region + a * (back - region) + 0.5, 0, 255).astype(np.uint8)
        return out


def mouth_crops(inner_lips: np.ndarray, mouth_width: float, crop_scale: float, size: int) -> list[MouthCrop]:
    """One :class:`MouthCrop` per frame: centred between the inner-lip corners of each frame, ``crop_scale *
    mouth_width`` px on a side.

    Args:
        inner_lips: float [F, 20, 2] px, each frame's inner-lip contour (:data:`avdiff.video.face.INNER_LIPS` order:
            the corners are points 0 and 10).
        mouth_width: the photo's own mouth width, px (its inner-lip corners' distance).
        crop_scale: the side in mouth widths, > 1.
        size: the crops' side in samples.

    Raises:
        ValueError: bad shapes or sizes.
    """
    inner_lips = np.asarray(inner_lips, np.float64)
    if inner_lips.ndim != 3 or inner_lips.shape[1:] != (20, 2):
        raise ValueError(f"inner_lips must be [F, 20, 2], got {inner_lips.shape}")
    if not (np.isfinite(mouth_width) and mouth_width > 0) or not crop_scale > 1 or size < 1:
        raise ValueError(
            f"need mouth_width > 0, crop_scale > 1 and size >= 1, got {mouth_width}, {crop_scale}, {size}"
        )
    centres = (inner_lips[:, 0] + inner_lips[:, 10]) / 2
    side = float(crop_scale * mouth_width)
    return [MouthCrop(float(x), float(y), side, int(size)) for x, y in centres]


__all__ = ["MouthCrop", "lip_interior", "mouth_crops"]
