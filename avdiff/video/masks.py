"""Masks of the mouth and the lower face, and pasting a crop back into its frame.

Masks are float32 in [0, 1], 1 where the crop (or the edit) is used. A generated or edited crop goes back into the
frame with :func:`paste_back`, which inverts the alignment warp (:mod:`avdiff.video.align`) and blends through a
feathered mask, so the crop's edges do not show.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from avdiff.video.align import (
    Framing,
    _check_landmarks,
    _check_shape,
    _face_size,
    canonical_points,
    invert_matrix,
    transform_points,
)
from avdiff.video.landmarks import CHIN, MOUTH_LEFT, MOUTH_RIGHT, OUTER_LIPS

logger = logging.getLogger(__name__)

# Chin-side landmarks of the face oval (the chin and its neighbours on both sides): the bottom of the mouth mask.
_CHIN_POINTS = [CHIN, 148, 377, 176, 400]


def mouth_mask(
    landmarks: np.ndarray,
    shape: tuple[int, int],
    dilate: float = 0.15,
    feather_px: float | None = None,
    to_chin: float = 1.0,
) -> np.ndarray:
    """A soft mask of the mouth region: the lips and the jaw below them, down toward the chin.

    The region is the convex hull of the outer-lip points and the chin points (pulled toward the mouth by
    ``to_chin``), grown by ``dilate`` face sizes, with a smooth ramp of ``feather_px`` across its edge. It is
    smaller than the lower-half masks of LatentSync or Diffused Heads: the nose, cheeks and eyes stay outside.

    Args:
        landmarks: [478, 2] px in the image the mask is for (e.g. :attr:`AlignedFace.landmarks` for a crop).
        shape: ``(H, W)`` of the mask.
        dilate: growth beyond the lips and chin, as a fraction of the face size (eye-to-mouth distance).
        feather_px: width of the soft edge in px; None gives 0.1 of the face size.
        to_chin: how far down the region reaches, from 0 (the lips only) to 1 (the chin).

    Returns:
        float32 [H, W] in [0, 1]: 1 on the lips and everything within the grown region's inner edge.
    """
    landmarks = _check_landmarks(landmarks, "landmarks", frames=False)
    if not np.isfinite(landmarks).all():
        raise ValueError("landmarks contain NaN: no face to mask")
    h, w = _check_shape(shape)
    if not dilate >= 0:
        raise ValueError(f"dilate must be >= 0, got {dilate!r}")
    if not 0 <= to_chin <= 1:
        raise ValueError(f"to_chin must be in [0, 1], got {to_chin!r}")
    face_size = _face_size(landmarks)
    if feather_px is None:
        feather_px = 0.1 * face_size
    if not feather_px >= 0:
        raise ValueError(f"feather_px must be >= 0, got {feather_px!r}")
    lips = landmarks[OUTER_LIPS].astype(np.float64)
    mouth = landmarks[[MOUTH_LEFT, MOUTH_RIGHT]].mean(axis=0)
    chin = mouth + to_chin * (landmarks[_CHIN_POINTS].astype(np.float64) - mouth)
    return _soft_polygon(np.concatenate([lips, chin]), (h, w), dilate * face_size, feather_px)


def lower_face_mask(size: int, feather_px: float | None = None, framing: str | Framing = "face") -> np.ndarray:
    """A fixed soft mask of the lower face in canonical crop coordinates (see
    :func:`avdiff.video.align.canonical_points`) of the given framing (``"face"`` or ``"lower_face"``).

    Covers from just below the nose (55% of the way from the eyes to the mouth) to the bottom of the crop,
    between the eye centres widened by 40% of their distance on each side, with rounded corners.
    Use it where a face-independent mask is wanted (inpainting the mouth of every aligned crop alike).

    Args:
        size: crop side in px.
        feather_px: width of the soft edge in px; None gives ``size / 32``.
        framing: the crop's framing; the mask covers the same part of the face in every framing (down to the
            crop's bottom edge).

    Returns:
        float32 [size, size] in [0, 1].
    """
    pts = canonical_points(size, framing).astype(np.float64)
    left, right, mouth = pts
    eye_dist = right[0] - left[0]
    top = left[1] + 0.55 * (mouth[1] - left[1])
    x0, x1 = left[0] - 0.4 * eye_dist, right[0] + 0.4 * eye_dist
    radius = 0.25 * eye_dist
    # A rectangle shrunk by the corner radius, then grown back by it: rounded corners.
    core = np.array(
        [
            [x0 + radius, top + radius],
            [x1 - radius, top + radius],
            [x1 - radius, size + radius],
            [x0 + radius, size + radius],
        ]
    )
    if feather_px is None:
        feather_px = size / 32
    if not feather_px >= 0:
        raise ValueError(f"feather_px must be >= 0, got {feather_px!r}")
    return _soft_polygon(core, (size, size), radius, feather_px)


def square_feather(size: int, feather_px: float) -> np.ndarray:
    """float32 [size, size]: 0 at the border of a square crop, rising smoothly to 1 over ``feather_px`` px."""
    idx = np.arange(size, dtype=np.float32)
    dist = np.minimum(idx, size - 1 - idx)  # px to the nearest edge, along one axis
    if feather_px <= 0:
        ramp = np.ones(size, np.float32)
    else:
        ramp = _smoothstep(np.clip(dist / feather_px, 0, 1))
    return np.minimum(ramp[:, None], ramp[None, :]).astype(np.float32)


def paste_back(
    frame: np.ndarray,
    crop: np.ndarray,
    matrix: np.ndarray,
    feather_px: float = 8.0,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Put an aligned crop back into its frame, blending through a feathered mask so the seam does not show.

    Args:
        frame: uint8 [H, W, 3], the original frame.
        crop: uint8 [s, s, 3], an aligned (possibly edited or generated) crop of that frame.
        matrix: [2, 3], frame px -> crop px, as returned by :func:`avdiff.video.align.align_face` / ``align_frames``.
        feather_px: width in crop px over which the crop fades out toward its border.
        mask: optional [s, s] in crop coordinates (float in [0, 1], bool, or uint8 in 0..255) restricting where
            the crop is used, e.g. :func:`mouth_mask` of the crop's landmarks. It is multiplied with the feather.

    Returns:
        uint8 [H, W, 3]: the crop blended in. Pixels the (feathered) mask does not reach are the frame's, exactly.
    """
    frame = np.asarray(frame)
    crop = np.asarray(crop)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] != crop.shape[1] or crop.dtype != np.uint8:
        raise ValueError(f"crop must be uint8 [s, s, 3], got {crop.dtype} {crop.shape}")
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (2, 3) or not np.isfinite(matrix).all():
        raise ValueError(f"matrix must be a finite [2, 3] affine matrix, got shape {matrix.shape}")
    if not feather_px >= 0:
        raise ValueError(f"feather_px must be >= 0, got {feather_px!r}")
    size = crop.shape[0]
    weight = square_feather(size, feather_px)
    if mask is not None:
        weight = weight * _as_weight(mask, size)

    # Warp only the frame's region under the crop: the bounding box of the crop's corners.
    h, w = frame.shape[:2]
    corners = transform_points(
        np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]]), invert_matrix(matrix)
    )
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    out = frame.copy()
    if x0 >= x1 or y0 >= y1:
        return out  # the crop lies outside the frame
    # frame ROI px -> crop px: shift the ROI origin to (x0, y0), then apply matrix.
    roi_to_crop = matrix.copy()
    roi_to_crop[:, 2] += matrix[:, :2] @ np.array([x0, y0], dtype=np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    roi_size = (x1 - x0, y1 - y0)
    pasted = cv2.warpAffine(crop, roi_to_crop, roi_size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(weight, roi_to_crop, roi_size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = np.clip(alpha, 0, 1)[..., None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    blended = np.round(region + alpha * (pasted.astype(np.float32) - region))
    out[y0:y1, x0:x1] = np.clip(blended, 0, 255).astype(np.uint8)
    return out


def _smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3 - 2 * x)


def _soft_polygon(points: np.ndarray, shape: tuple[int, int], grow_px: float, feather_px: float) -> np.ndarray:
    """float32 [H, W]: 1 inside the convex hull of ``points`` grown by ``grow_px``, ramping to 0 over the edge.

    The ramp of width ``feather_px`` is centred on the grown edge, but never reaches into the hull itself.
    """
    h, w = shape
    hull = cv2.convexHull(np.round(points * 4).astype(np.int32))  # 2 fractional bits for sub-pixel edges
    inside = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(inside, hull, 1, lineType=cv2.LINE_8, shift=2)
    if not inside.any():
        # The hull is outside the image or thinner than a pixel; distance from the hull's points instead.
        outside_dist = _distance_to_points(points, shape)
    else:
        outside_dist = cv2.distanceTransform(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    lo = max(0.0, grow_px - feather_px / 2)
    hi = grow_px + feather_px / 2
    if hi <= lo:
        return (outside_dist <= hi).astype(np.float32)
    return _smoothstep(np.clip((hi - outside_dist) / (hi - lo), 0, 1)).astype(np.float32)


def _distance_to_points(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.full((h, w), np.inf, np.float32)
    for x, y in points:
        dist = np.minimum(dist, np.hypot(xs - x, ys - y))
    return dist


def _as_weight(mask: np.ndarray, size: int) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[..., 0]
    if m.shape != (size, size):
        raise ValueError(f"mask must be [{size}, {size}] like the crop, got {m.shape}")
    if m.dtype == np.bool_:
        return m.astype(np.float32)
    if m.dtype == np.uint8:
        return m.astype(np.float32) / 255
    m = m.astype(np.float32)
    if not np.isfinite(m).all() or m.min() < 0 or m.max() > 1:
        raise ValueError("a float mask must be finite and in [0, 1]")
    return m
