"""The face checks and alignment of ``avdiff prepare``: tracking, several faces, face size, aligned crops."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from avdiff.video.align import align_frames, transform_points
from avdiff.video.face import detect_faces, track_landmarks
from avdiff.video.smoothing import smooth_landmarks


@dataclass
class FaceTrack:
    """Aligned crops of a face through a clip.

    Attributes:
        crops: uint8 [F, size, size, 3].
        matrices: float64 [F, 2, 3], frame px -> crop px.
        landmarks: float32 [F, 478, 2] in crop px (the tracked, unsmoothed landmarks; missing frames interpolated).
        raw: float32 [F, 478, 2] in frame px as tracked, NaN where no face was found.
    """

    crops: np.ndarray
    matrices: np.ndarray
    landmarks: np.ndarray
    raw: np.ndarray


def align_track(
    frames: np.ndarray, landmarks: np.ndarray, size: int, smooth_sigma: float = 1.5, framing: str = "face"
) -> FaceTrack:
    """Align every frame on temporally smoothed landmarks.

    Args:
        frames: uint8 [F, H, W, 3].
        landmarks: float32 [F, 478, 2] frame px, NaN where no face (at least one frame must have one).
        size: crop side, px.
        smooth_sigma: gaussian over time on the landmarks used for alignment, in frames.
        framing: the crops' framing, ``"face"`` (what ``avdiff prepare`` writes) or ``"lower_face"``.

    Raises:
        NoFaceError: no frame has a face.
    """
    smooth = smooth_landmarks(landmarks, sigma_frames=smooth_sigma)
    crops, matrices = align_frames(frames, smooth, size, framing)
    filled = smooth_landmarks(landmarks, sigma_frames=0)
    in_crop = np.stack([transform_points(p, m) for p, m in zip(filled, matrices)]).astype(np.float32)
    return FaceTrack(crops, matrices, in_crop, landmarks.astype(np.float32))


def face_track(frames: np.ndarray, size: int, smooth_sigma: float = 1.5, framing: str = "face") -> FaceTrack:
    """Track the (largest) face through ``frames`` uint8 [F, H, W, 3] with mediapipe and align it (see
    :func:`align_track`). This is how ``prepare`` crops faces, and how the SyncNet scores crop any video."""
    return align_track(frames, track_landmarks(frames), size, smooth_sigma, framing)


def face_box_px(landmarks: np.ndarray) -> np.ndarray:
    """Longer side of each frame's landmark box in px, float32 [F], for landmarks [F, 478, 2] of found faces."""
    extent = landmarks.max(axis=1) - landmarks.min(axis=1)  # [F, 2]
    return extent.max(axis=-1)


def several_faces(frames: np.ndarray, samples: int, ratio: float) -> tuple[bool, str]:
    """Whether any of ``samples`` evenly spaced frames shows a second face comparable to the largest one.

    Two faces are comparable when the smaller's size (square root of its box area) is at least ``ratio`` of the
    larger's. Returns the verdict and a description.
    """
    positions = np.linspace(0, len(frames) - 1, samples + 2)[1:-1].round().astype(int)
    for pos in positions:
        faces = detect_faces(frames[pos], max_faces=5)
        if len(faces) >= 2:
            second = math.sqrt(faces[1].area / max(faces[0].area, 1e-9))
            if second >= ratio:
                return True, f"{len(faces)} faces in frame {pos}; the second is {second:.2f} the size of the first"
    return False, ""
