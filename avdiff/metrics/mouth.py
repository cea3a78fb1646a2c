"""Mouth openness per frame: the inner-lip aperture normalised by face size.

The aperture is the mean gap between mediapipe's paired inner-lip points (upper and lower lip, across the mouth),
measured along the face's own vertical axis (perpendicular to the line through the eye centres), so it does not
change when the head rolls. It is divided by the face size, the distance from the midpoint of the eye centres to
the mouth centre, so it does not change with distance to the camera either. A closed mouth gives ~0; the smile
with parted lips of skimage's astronaut photo gives ~0.18.

:func:`mouth_interior` is an appearance measure beside it: the share of the mouth box that is dark. It reads mouths
whose inner lips are too blurred for the face mesh to place, such as faces generated at 64 px and pasted back into a
512 px photo (there the aperture says little; see docs/results.md).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import cv2
import numpy as np

from avdiff.video.face import track_landmarks
from avdiff.video.motion import face_frame, inner_lip_aperture
from avdiff.video.reader import read_video
from avdiff.video.smoothing import smooth_landmarks
from avdiff.video.writer import frames_to_uint8

if TYPE_CHECKING:
    from avdiff.video.writer import FramesLike

logger = logging.getLogger(__name__)


def aperture_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Normalised inner-lip aperture of each frame.

    The rule is :func:`avdiff.video.motion.inner_lip_aperture`, the one ``Motion.mouth_open`` uses too.

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
    return inner_lip_aperture(pts).astype(np.float32)


# Boxes in face units (x along the eye line, y down, both in eye-to-mouth distances, from the mouth centre).
MOUTH_BOX = ((-0.45, 0.45), (-0.25, 0.45))  # the lips and the mouth opening, even with the jaw dropped
SKIN_BOX = ((-0.45, 0.45), (-0.85, -0.45))  # cheeks and the nose's base: the face's own brightness


def mouth_interior(frames: FramesLike, landmarks: np.ndarray, dark_ratio: float = 0.45, grid: int = 32) -> np.ndarray:
    """Per-frame share of the mouth box that is dark: how much of an open mouth's interior shows.

    An appearance measure beside the landmark aperture (:func:`aperture_from_landmarks`). It needs only the eyes and
    the mouth corners, so it still reads a mouth whose inner lips are too blurred for the face mesh to place (faces
    upscaled from small crops). A pixel is dark when its luminance is below ``dark_ratio`` times the median luminance
    of the cheeks and nose base (so lighting does not matter). It assumes the open mouth looks dark, as it does in
    most footage; a dark beard or lipstick inside the box raises the level but not its changes over time.

    Args:
        frames: uint8 [F, H, W, 3] RGB.
        landmarks: [F, 478, 2] px (mediapipe's mesh, e.g. from ``track_landmarks``); NaN frames have no face.
        dark_ratio: the darkness threshold, a fraction of the skin's median luminance.
        grid: samples per side of each box.

    Returns:
        float32 [F] in [0, 1]; NaN where the landmarks are NaN.
    """
    video = frames_to_uint8(frames)
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[1:] != (478, 2) or len(pts) != len(video):
        raise ValueError(f"landmarks must be [F, 478, 2] for {len(video)} frames, got {pts.shape}")
    mouth, across, down, size = face_frame(pts)
    out = np.full(len(video), np.nan, dtype=np.float32)
    t = (np.arange(grid) + 0.5) / grid
    for i in np.flatnonzero(np.isfinite(pts).all(axis=(1, 2))):
        gray = cv2.cvtColor(video[i], cv2.COLOR_RGB2GRAY)

        # called only within this pass of the loop, so it reads this pass's i and gray
        def sample(box: tuple[tuple[float, float], tuple[float, float]]) -> np.ndarray:
            (x0, x1), (y0, y1) = box
            u, v = np.meshgrid(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)  # face units
            xy = mouth[i] + size[i] * (u[..., None] * across[i] + v[..., None] * down[i])  # (grid, grid, 2) px  # noqa: B023
            maps = xy.astype(np.float32)
            return cv2.remap(gray, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # noqa: B023

        skin = float(np.median(sample(SKIN_BOX)))
        out[i] = float((sample(MOUTH_BOX) < dark_ratio * skin).mean())
    return out


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
    return mouth_signals(frames, smooth=smooth)[0]


def mouth_signals(frames: FramesLike | str | os.PathLike, *, smooth: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(openness [F], interior [F]) of the (largest) face, from one tracking pass: :func:`mouth_openness` and
    :func:`mouth_interior`. Arguments as :func:`mouth_openness`."""
    if isinstance(frames, (str, os.PathLike)):
        frames = read_video(frames, with_audio=False).frames
    video = frames_to_uint8(frames)
    landmarks = track_landmarks(video)
    missing = ~np.isfinite(landmarks).all(axis=(1, 2))
    if missing.any():
        logger.warning("no face found in %d of %d frames; their mouth openness is NaN", missing.sum(), len(missing))
    if smooth and not missing.all():
        landmarks = smooth_landmarks(landmarks)
        landmarks[missing] = np.nan
    return aperture_from_landmarks(landmarks), mouth_interior(video, landmarks)
