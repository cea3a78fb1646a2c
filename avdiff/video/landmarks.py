"""mediapipe's 478-point face mesh: the landmark indices avdiff reads, the :class:`Face` they make, running the mesh.

mediapipe 0.10.21 ships its face detector and 478-point face-mesh models inside the wheel, so this runs offline.
Landmarks are pixel coordinates ``(x, y)`` in the image as given (after EXIF rotation).

Finding faces in an image or a video is in :mod:`avdiff.video.face` and :mod:`avdiff.video.tracking`; alignment,
masks, paste-back and smoothing build on :class:`Face` in :mod:`avdiff.video.align`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avdiff.video.quiet import QuietGraph

# Landmark indices in mediapipe's 478-point mesh (468 + 10 iris points with refine_landmarks).
LEFT_EYE = [33, 133, 160, 159, 158, 144, 145, 153]  # subject's right eye, on the image's left
RIGHT_EYE = [362, 263, 387, 386, 385, 373, 374, 380]
LEFT_IRIS, RIGHT_IRIS = 468, 473
MOUTH_LEFT, MOUTH_RIGHT = 61, 291
# Inner-lip pairs (upper, lower), from the left corner to the right one: their gap is the mouth aperture.
INNER_LIP_PAIRS = [(82, 87), (13, 14), (312, 317), (81, 178), (311, 402)]
OUTER_LIPS = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
INNER_LIPS = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95]
FACE_OVAL = [
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
]
CHIN = 152
NOSE_TIP = 1


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
    def from_landmarks(cls, landmarks: np.ndarray, image_size: tuple[int, int]) -> Face:
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


def face_mesh(static: bool, max_faces: int):
    """mediapipe's 478-point face mesh (refined irises), its native log lines silenced (:mod:`avdiff.video.quiet`)."""
    import mediapipe as mp

    return QuietGraph(
        lambda: mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=0.5,
            min_tracking_confidence=0.5,
        )
    )


def faces_from_result(result, width: int, height: int) -> list[Face]:
    faces = []
    for face_landmarks in result.multi_face_landmarks or []:
        pts = np.array([(p.x * width, p.y * height) for p in face_landmarks.landmark], dtype=np.float32)
        faces.append(Face.from_landmarks(pts, (width, height)))
    return sorted(faces, key=lambda f: f.area, reverse=True)
