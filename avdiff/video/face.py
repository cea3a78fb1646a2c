"""Faces with mediapipe: images in any mode, detection with 478 landmarks, and tracking through a video.

mediapipe 0.10.21 ships its face detector and 478-point face-mesh models inside the wheel, so this runs offline.
Landmarks are pixel coordinates ``(x, y)`` in the image as given (after EXIF rotation).

Alignment, masks, paste-back and smoothing build on :class:`Face` in :mod:`avdiff.video.align`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from avdiff.video.image import ImageLike, load_image

logger = logging.getLogger(__name__)


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
