"""Faces with mediapipe: images in any mode, detection with 478 landmarks, and tracking through a video.

mediapipe 0.10.21 ships its face detector and 478-point face-mesh models inside the wheel, so this runs offline.
Landmarks are pixel coordinates ``(x, y)`` in the image as given (after EXIF rotation).

Alignment, masks, paste-back and smoothing build on :class:`Face` in :mod:`avdiff.video.align`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from PIL import Image, ImageOps

logger = logging.getLogger(__name__)

ImageLike = str | os.PathLike | Image.Image | np.ndarray

# Landmark indices in mediapipe's 478-point mesh (468 + 10 iris points with refine_landmarks).
LEFT_EYE = [33, 133, 160, 159, 158, 144, 145, 153]  # subject's right eye, on the image's left
RIGHT_EYE = [362, 263, 387, 386, 385, 373, 374, 380]
LEFT_IRIS, RIGHT_IRIS = 468, 473
MOUTH_LEFT, MOUTH_RIGHT = 61, 291
# Inner-lip pairs (upper, lower), from the left corner to the right one: their gap is the mouth aperture.
INNER_LIP_PAIRS = [(82, 87), (13, 14), (312, 317), (81, 178), (311, 402)]
OUTER_LIPS = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
INNER_LIPS = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95]
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
CHIN = 152
NOSE_TIP = 1


class FaceError(ValueError):
    """Base class of face-processing errors."""


class NoFaceError(FaceError):
    """No face was found in an image."""


class MultipleFacesError(FaceError):
    """Several faces were found where exactly one was required."""


@dataclass
class Face:
    """One detected face.

    Attributes:
        landmarks: float32 [478, 2], pixel ``(x, y)`` of mediapipe's face-mesh points.
        box: ``(x0, y0, x1, y1)`` in pixels, the bounding box of the landmarks.
        image_size: ``(width, height)`` of the image the face was found in.
    """

    landmarks: np.ndarray
    box: tuple[float, float, float, float]
    image_size: tuple[int, int]

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray, image_size: tuple[int, int]) -> "Face":
        pts = np.asarray(landmarks, dtype=np.float32)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        return cls(pts, (float(x0), float(y0), float(x1), float(y1)), image_size)

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)

    @property
    def left_eye(self) -> np.ndarray:
        """Centre of the eye on the image's left, [2] px."""
        return self.landmarks[LEFT_EYE].mean(axis=0)

    @property
    def right_eye(self) -> np.ndarray:
        """Centre of the eye on the image's right, [2] px."""
        return self.landmarks[RIGHT_EYE].mean(axis=0)

    @property
    def mouth_center(self) -> np.ndarray:
        """Midpoint of the mouth corners, [2] px."""
        return self.landmarks[[MOUTH_LEFT, MOUTH_RIGHT]].mean(axis=0)

    @property
    def size(self) -> float:
        """A scale for normalising distances: the eye-centre to mouth-centre distance, in px."""
        eyes = (self.left_eye + self.right_eye) / 2
        return float(np.linalg.norm(self.mouth_center - eyes))


def load_image(image: ImageLike) -> np.ndarray:
    """Any image -> uint8 RGB array [H, W, 3].

    Accepts a path, a PIL image in any mode (RGBA and LA are composited on white, CMYK, P, L, I;16 are converted)
    with its EXIF orientation applied, or a numpy array [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]: uint8, float in
    [0, 1] or in [0, 255], integers in 0..255, or uint16 (see :func:`_to_uint8`; other ranges are refused).
    """
    if isinstance(image, (str, os.PathLike)):
        if not os.path.isfile(image):
            raise FileNotFoundError(f"no such image file: {os.fspath(image)!r}")
        try:
            with Image.open(image) as im:
                return load_image(im.copy() if not hasattr(im, "getexif") else _exif_upright(im))
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


def _face_mesh(static: bool, max_faces: int):
    """mediapipe's 478-point face mesh (refined irises), its native log lines silenced (:mod:`avdiff.video.quiet`)."""
    import mediapipe as mp

    from avdiff.video.quiet import QuietGraph

    return QuietGraph(lambda: mp.solutions.face_mesh.FaceMesh(
        static_image_mode=static,
        max_num_faces=max_faces,
        refine_landmarks=True,
        min_detection_confidence=0.5,
        min_tracking_confidence=0.5,
    ))  # fmt: skip


def _faces_from_result(result, width: int, height: int) -> list[Face]:
    faces = []
    for face_landmarks in result.multi_face_landmarks or []:
        pts = np.array([(p.x * width, p.y * height) for p in face_landmarks.landmark], dtype=np.float32)
        faces.append(Face.from_landmarks(pts, (width, height)))
    return sorted(faces, key=lambda f: f.area, reverse=True)


def detect_faces(image: ImageLike, max_faces: int = 5) -> list[Face]:
    """All faces in an image (up to ``max_faces``), largest first. An empty list when there are none.

    Faces of any size are found: those the face mesh finds on the whole image, and small ones (under about a tenth of
    the image) through mediapipe's full-range detector and the mesh on a crop (:mod:`avdiff.video.tracking`).
    """
    from avdiff.video.tracking import find_faces

    rgb = load_image(image)
    if min(rgb.shape[:2]) < 16:
        raise ValueError(f"image of {rgb.shape[1]}x{rgb.shape[0]} px is too small to hold a face")
    return find_faces(rgb, max_faces=max_faces)


def detect_face(image: ImageLike, *, on_multiple: Literal["largest", "error"] = "largest") -> Face:
    """The face in an image.

    Args:
        image: see :func:`load_image`.
        on_multiple: with several faces, take the ``"largest"`` (default) or raise ``MultipleFacesError``.

    Raises:
        NoFaceError: no face found.
        MultipleFacesError: several faces and ``on_multiple="error"``.
    """
    if on_multiple not in ("largest", "error"):
        raise ValueError(f"on_multiple must be 'largest' or 'error', got {on_multiple!r}")
    faces = detect_faces(image)
    if not faces:
        raise NoFaceError("no face found in the image")
    if len(faces) > 1:
        if on_multiple == "error":
            raise MultipleFacesError(f"{len(faces)} faces found in the image; expected exactly one")
        logger.info("%d faces found; using the largest", len(faces))
    return faces[0]


def track_landmarks(frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Landmarks of the largest face in every frame of a video, float32 [F, 478, 2] px; NaN where no face.

    Uses mediapipe's tracking mode (detect once, then follow), which is faster and steadier than per-image detection;
    a face too small for it is found by the full-range detector and followed in a crop
    (:class:`avdiff.video.tracking.FaceFinder`).
    """
    from avdiff.video.tracking import FaceFinder

    out = []
    with FaceFinder(max_faces=1) as finder:
        for frame in frames:
            faces = finder(frame)
            out.append(faces[0].landmarks if faces else np.full((478, 2), np.nan, np.float32))
    return np.stack(out) if out else np.zeros((0, 478, 2), np.float32)
