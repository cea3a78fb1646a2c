"""The mouth's region: the inside of its lips, and square crops around it where the mouth painter works.

:func:`lip_interior` rasterises the inside of an inner-lip contour as a soft coverage mask: the renderer draws its
cavity through it, the painter paints through it, and a tracked video's mouths are found with it. A :class:`MouthCrop`
is a square of ``side`` px of the frame (its native size) centred between the mouth's inner corners, sampled to
``size`` px for a model. The side is fixed for a photo (``crop_scale`` widths of the photo's own mouth,
:func:`mouth_width`), the centre follows the mouth frame by frame, so a clip's crops share one scale.
:meth:`MouthCrop.cut` takes a crop out of a frame (bilinear and subpixel, low-passed first when it shrinks much, so a
large photo's mouth does not alias), :meth:`MouthCrop.paste` puts a crop back through the inverse map (bicubic),
blended by a mask in the frame's pixels, touching only the crop's box and nothing outside the square.
:func:`reference_crop` is a photo's own mouth at the scale its frames are cut at: training and the pipeline take it
from here alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from avdiff.video.face import INNER_LIPS

logger = logging.getLogger(__name__)

ALIAS_SHRINK = 2.0  # a crop that shrinks the frame more than this is low-passed first


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

    def box(self, shape: tuple[int, ...], margin: int = 1) -> tuple[int, int, int, int]:
        """The crop's bounding box (grown by ``margin`` px) in a frame of ``shape``, clipped to it:
        ``(y0, y1, x0, x1)``."""
        h, w = shape[:2]
        half = self.side / 2 + margin
        x0, x1 = int(max(np.floor(self.cx - half), 0)), int(min(np.ceil(self.cx + half) + 1, w))
        y0, y1 = int(max(np.floor(self.cy - half), 0)), int(min(np.ceil(self.cy + half) + 1, h))
        return y0, y1, x0, x1

    def _box_matrix(self, x0: int, y0: int) -> np.ndarray:
        """:attr:`matrix` for pixel coordinates of a box whose corner is frame pixel ``(x0, y0)``."""
        m = self.matrix.copy()
        m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
        return m

    def cut(self, image: np.ndarray) -> np.ndarray:
        """The crop of ``image`` ([H, W] or [H, W, C], any dtype cv2 samples): [size, size(, C)], bilinear; pixels
        outside the frame repeat its edge. A crop that shrinks the frame more than :data:`ALIAS_SHRINK` times
        low-passes it first (a Gaussian of half the shrink factor), so fine detail does not alias; a milder shrink is
        sampled as it is (bilinear reads 2x2 pixels: no detail is skipped, and the painter was trained on such crops)."""
        shrink = self.side / self.size
        margin = int(np.ceil(2 * shrink)) + 1
        y0, y1, x0, x1 = self.box(image.shape, margin)
        if y1 <= y0 or x1 <= x0:  # the square lies outside the frame: its nearest edge, as BORDER_REPLICATE gives
            y0, x0 = min(max(y0, 0), image.shape[0] - 1), min(max(x0, 0), image.shape[1] - 1)
            y1, x1 = y0 + 1, x0 + 1
        region = np.ascontiguousarray(image[y0:y1, x0:x1])
        if shrink > ALIAS_SHRINK:
            region = cv2.GaussianBlur(region, (0, 0), 0.5 * shrink)
        return cv2.warpAffine(
            region, self._box_matrix(x0, y0), (self.size, self.size), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip

    def paste(self, frame: np.ndarray, crop: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """``frame`` (uint8 [H, W, 3]) with ``crop`` (uint8 [size, size, 3]) mapped back to the frame's pixels
        (bicubic: a crop smaller than its square, such as a one-size painter's 48 px crop of a 64 px mouth, keeps about
        half again the detail bilinear keeps) and
        blended in by ``alpha`` (float [H, W] in [0, 1], in the frame's pixels), only inside the square; a new
        frame."""
        out = frame.copy()
        y0, y1, x0, x1 = self.box(frame.shape)
        if y1 <= y0 or x1 <= x0:
            return out
        a = alpha[y0:y1, x0:x1].astype(np.float32)
        if not a.any():
            return out
        to_crop = self._box_matrix(x0, y0)  # box pixel -> crop pixel
        size = (x1 - x0, y1 - y0)
        flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP  # the crop is usually smaller: enlarge it keeping detail
        back = cv2.warpAffine(crop, to_crop, size, flags=flags, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        inside = cv2.warpAffine(np.ones(crop.shape[:2], np.float32), to_crop, size, flags=flags, borderValue=0.0)
        a = (a * inside)[..., None]  # a hole reaching past the square keeps the frame there
        region = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = np.clip(region + a * (back - region) + 0.5, 0, 255).astype(np.uint8)
        return out


def mouth_width(points: np.ndarray) -> float:
    """The distance between the inner-lip corners of landmarks [478, 2+] (px)."""
    corners = np.asarray(points)[[INNER_LIPS[0], INNER_LIPS[10]], :2]
    return float(np.hypot(*(corners[1] - corners[0])))


def reference_crop(photo: np.ndarray, points: np.ndarray, crop_scale: float, size: int) -> np.ndarray:
    """A photo's own mouth: the :class:`MouthCrop` of its landmarks [478, 2+] (``crop_scale`` of its
    :func:`mouth_width` on a side), uint8 [size, size, 3]."""
    lips = np.asarray(points, np.float64)[INNER_LIPS, :2]
    return mouth_crops(lips[None], mouth_width(points), crop_scale, size)[0].cut(photo)


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


__all__ = ["MouthCrop", "lip_interior", "mouth_crops", "mouth_width", "reference_crop"]
