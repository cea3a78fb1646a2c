"""Faces in an image and through a video, with mediapipe: :func:`detect_faces`, :func:`detect_face` and
:func:`track_landmarks`, and the errors they raise.

mediapipe 0.10.21 ships its face detector and 478-point face-mesh models inside the wheel, so this runs offline.
Landmarks are pixel coordinates ``(x, y)`` in the image as given (after EXIF rotation); the :class:`Face` they make and
the mesh's landmark indices are in :mod:`avdiff.video.landmarks`. Faces of any size are found through
:mod:`avdiff.video.tracking`.

Alignment, masks, paste-back and smoothing build on :class:`Face` in :mod:`avdiff.video.align`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np

from avdiff.video.image import ImageLike, load_image
from avdiff.video.landmarks import Face
from avdiff.video.tracking import FaceFinder, find_faces

logger = logging.getLogger(__name__)


class FaceError(ValueError):
    """Base class of face-processing errors."""


class NoFaceError(FaceError):
    """No face was found in an image."""


class MultipleFacesError(FaceError):
    """Several faces were found where exactly one was required."""


def detect_faces(image: ImageLike, max_faces: int = 5) -> list[Face]:
    """All faces in an image (up to ``max_faces``), largest first. An empty list when there are none.

    Faces of any size are found: those the face mesh finds on the whole image, and small ones (under about a tenth of
    the image) through mediapipe's full-range detector and the mesh on a crop (:mod:`avdiff.video.tracking`).
    """
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
    out = []
    with FaceFinder(max_faces=1) as finder:
        for frame in frames:
            faces = finder(frame)
            out.append(faces[0].landmarks if faces else np.full((478, 2), np.nan, np.float32))
    return np.stack(out) if out else np.zeros((0, 478, 2), np.float32)
