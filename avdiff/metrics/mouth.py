"""Mouth openness per frame: the inner-lip aperture normalised by face size.

The aperture is the mean gap between mediapipe's paired inner-lip points (upper and lower lip, across the mouth),
measured along the face's own vertical axis (perpendicular to the line through the eye centres), so it does not
change when the head rolls. It is divided by the face size, the distance from the midpoint of the eye centres to
the mouth centre, so it does not change with distance to the camera either. A closed mouth gives ~0; the smile
with parted lips of skimage's astronaut photo gives ~0.18.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import numpy as np

from avdiff.video.face import INNER_LIP_PAIRS, LEFT_EYE, MOUTH_LEFT, MOUTH_RIGHT, RIGHT_EYE, track_landmarks

if TYPE_CHECKING:
    from avdiff.video.io import FramesLike

logger = logging.getLogger(__name__)

_UPPER = [upper for upper, _ in INNER_LIP_PAIRS]
_LOWER = [lower for _, lower in INNER_LIP_PAIRS]


def aperture_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Normalised inner-lip aperture of each frame.

    Args:
        landmarks: [F, 478, 2] or [478, 2] pixel ``(x, y)`` (mediapipe's mesh); frames of NaN mean no face.

    Returns:
        float32 [F] (F = 1 for a single [478, 2] face): mean gap (lower lip minus upper lip) of the inner-lip pairs
        along the face's vertical axis, divided by the eye-centre-to-mouth-centre distance, clipped at 0.
        NaN where the landmarks are NaN.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim == 2:
        pts = pts[None]
    if pts.ndim != 3 or pts.shape[1:] != (478, 2):
        raise ValueError(f"landmarks must be [F, 478, 2] or [478, 2], got {np.shape(landmarks)}")
    left = pts[:, LEFT_EYE].mean(axis=1)
    right = pts[:, RIGHT_EYE].mean(axis=1)
    mouth = pts[:, [MOUTH_LEFT, MOUTH_RIGHT]].mean(axis=1)
    eye_axis = right - left
    with np.errstate(invalid="ignore", divide="ignore"):
        eye_axis /= np.linalg.norm(eye_axis, axis=-1, keepdims=True)
        # The face's "down": the eye axis turned by +90 degrees in image coordinates (y down), (1, 0) -> (0, 1).
        down = np.stack([-eye_axis[:, 1], eye_axis[:, 0]], axis=-1)
        gaps = ((pts[:, _LOWER] - pts[:, _UPPER]) * down[:, None]).sum(axis=-1).mean(axis=1)
        face_size = np.linalg.norm(mouth - (left + right) / 2, axis=-1)
        aperture = np.maximum(gaps / face_size, 0.0)  # NaN stays NaN
    return aperture.astype(np.float32)


def mouth_openness(frames: FramesLike | str | os.PathLike, *, smooth: bool = False) -> np.ndarray:
    """Per-frame mouth openness of the (largest) face in a video: inner-lip aperture / face size.

    Args:
        frames: uint8 [F, H, W, 3] (numpy or torch), a list of PIL images, or the path of a video file.
        smooth: smooth the landmarks over time first (:func:`avdiff.video.align.smooth_landmarks`, sigma 1.5
            frames); frames without a face stay NaN.

    Returns:
        float32 [F], see :func:`aperture_from_landmarks`; NaN for frames where no face was found (a warning logs
        how many).
    """
    from avdiff.video.io import frames_to_uint8, read_video

    if isinstance(frames, (str, os.PathLike)):
        frames = read_video(frames, with_audio=False).frames
    video = frames_to_uint8(frames)
    landmarks = track_landmarks(video)
    missing = ~np.isfinite(landmarks).all(axis=(1, 2))
    if missing.any():
        logger.warning("no face found in %d of %d frames; their mouth openness is NaN", missing.sum(), len(missing))
    if smooth and not missing.all():
        from avdiff.video.align import smooth_landmarks

        landmarks = smooth_landmarks(landmarks)
        landmarks[missing] = np.nan
    return aperture_from_landmarks(landmarks)
