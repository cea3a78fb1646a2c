"""The one image reader of every job: a path, a PIL image or an array -> uint8 RGB [H, W, 3].

EXIF orientation is applied, alpha is composited on white, 16-bit and float images are scaled, and any other range is
refused rather than clipped. ``max_side`` gives the photo at a working size (the talking head's frames are the
photo's size, so a 12 MP phone photo is read at the output's bound).
"""

from __future__ import annotations

import logging
import os

import cv2
import numpy as np
from PIL import Image, ImageOps

logger = logging.getLogger(__name__)

ImageLike = str | os.PathLike | Image.Image | np.ndarray


def load_image(image: ImageLike, max_side: int | None = None) -> np.ndarray:
    """Any image -> uint8 RGB array [H, W, 3].

    Accepts a path, a PIL image in any mode (RGBA and LA are composited on white, CMYK, P, L, I;16 are converted)
    with its EXIF orientation applied, or a numpy array [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]: uint8, float in
    [0, 1] or in [0, 255], integers in 0..255, or uint16 (see :func:`_to_uint8`; other ranges are refused).

    Args:
        image: the image, as above.
        max_side: when given, an image whose longer side exceeds it is downscaled (area filter, aspect kept) so
            that its longer side is ``max_side`` px; a smaller one is returned at its own size.

    Raises:
        FileNotFoundError: a path that is not a file.
        ValueError: not an image file, an array of another shape, or values out of every known range.
        TypeError: not a path, PIL image or array.
    """
    rgb = _read_rgb(image)
    return rgb if max_side is None else fit_within(rgb, max_side)


def fit_within(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` [H, W, C] downscaled (area filter) so its longer side is at most ``max_side`` px; as it is when it
    already fits."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    logger.info(
        "the image is %dx%d px; downscaled to %dx%d (longer side at most %d px)", width, height, *size, max_side
    )
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _read_rgb(image: ImageLike) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        if not os.path.isfile(image):
            raise FileNotFoundError(f"no such image file: {os.fspath(image)!r}")
        try:
            with Image.open(image) as im:
                return _read_rgb(im.copy() if not hasattr(im, "getexif") else _exif_upright(im))
        except Image.UnidentifiedImageError as e:
            raise ValueError(f"not an image file: {os.fspath(image)!r}") from e
    if isinstance(image, Image.Image):
        im = _exif_upright(image)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(background, im)
        if im.mode.startswith("I;16") or im.mode == "I":
            arr = np.asarray(im, dtype=np.float64)
            arr = (255 * arr / max(1.0, arr.max())).astype(np.uint8)
            return np.repeat(arr[..., None], 3, axis=2)
        return np.asarray(im.convert("RGB"))
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image)
    raise TypeError(f"image must be a path, a PIL image or a numpy array, got {type(image).__name__}")


def _exif_upright(im: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block must not make the image unreadable
        return im


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"image array must be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got {arr.shape}")
    if arr.dtype != np.uint8:
        arr = _to_uint8(arr)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        alpha = arr[..., 3:].astype(np.float32) / 255
        arr = (arr[..., :3] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(arr)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """A float or integer image array -> uint8, its range read from the dtype and the values.

    Floats in [0, 1] are scaled by 255; floats in [0, 255] with a value above 1 are taken as 0..255 (what
    ``np.asarray(pil_image, dtype=float)`` gives); integers in [0, 255] are taken as they are, and uint16 is scaled
    from 0..65535. Anything else (negative values, NaN, floats above 255) is refused with a ``ValueError`` naming the
    range found, never clipped.
    """
    if arr.dtype == bool:
        raise ValueError("image array must be uint8, float or integer pixel values, got a bool mask")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError("image array has NaN or Inf values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0 and hi <= 1:
            return (arr * 255).round().astype(np.uint8)
        if lo >= 0 and hi <= 255:
            logger.info("float image with values up to %.1f: taken as 0..255", hi)
            return arr.round().astype(np.uint8)
        raise ValueError(f"float image values span [{lo:g}, {hi:g}]; expected [0, 1] or [0, 255]")
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo >= 0 and hi <= 255:
            return arr.astype(np.uint8)
        if arr.dtype == np.uint16:
            return (arr.astype(np.float64) / 257).round().astype(np.uint8)
        raise ValueError(f"integer image values span [{lo}, {hi}]; expected 0..255 (or uint16)")
    raise ValueError(f"image array must hold uint8, float or integer pixel values, got {arr.dtype}")
