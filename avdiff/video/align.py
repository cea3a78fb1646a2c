"""Face alignment: canonical crops of a face, and the transforms between a frame and its crop.

A face is aligned by the similarity transform (rotation, uniform scale, translation) that takes its eye centres
and mouth centre onto fixed canonical points in a square crop (:func:`canonical_points`), as FFHQ and LatentSync
do. A crop has a *framing* (:data:`FRAMINGS`): ``"face"``, the whole face with some forehead, or ``"lower_face"``,
a square around the mouth and jaw (nose to below the chin), which gives the mouth 1.67x the pixels of a face crop
of the same size, the region Wav2Lip, MuseTalk and LatentSync generate. Masks and paste-back are in
:mod:`avdiff.video.masks`, temporal smoothing of landmarks in :mod:`avdiff.video.smoothing`.

Conventions:
    * Points are pixel ``(x, y)``, x to the right and y down, as in :class:`avdiff.video.landmarks.Face`; they are
      handled as OpenCV pixel coordinates (pixel ``(i, j)`` is the point ``x = i, y = j``).
    * A transform is an affine matrix [2, 3] ``M`` that maps a point ``p`` of the original image to
      ``M[:, :2] @ p + M[:, 2]`` in the crop.
    * Masks are float32 in [0, 1], 1 where the crop (or the edit) is used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from avdiff.video.face import NoFaceError, detect_face
from avdiff.video.image import ImageLike, load_image
from avdiff.video.landmarks import LEFT_EYE, MOUTH_LEFT, MOUTH_RIGHT, RIGHT_EYE, Face
from avdiff.video.writer import FramesLike, frames_to_uint8

logger = logging.getLogger(__name__)

NUM_LANDMARKS = 478

# Canonical (left eye, right eye, mouth centre) as fractions of the crop size. The eyes are 0.30 of the crop apart
# and the mouth is 0.29 below them (in mediapipe's landmarks mouth-to-eyes / eye-to-eye is ~0.85..1.1 across
# faces: 0.86 on skimage's astronaut, 1.09 on average over LFW faces). With these the whole face oval, chin
# included, and some forehead fit inside the crop: over LFW faces the chin lands at ~0.90 of the crop height
# (at most ~0.94), the top of the forehead (landmark 10) at ~0.16, the sides of the face at ~0.21 and ~0.83 of
# the width.
# A face whose proportions differ from these is fitted in the least-squares sense: its eyes and mouth land within
# a few px of the canonical points (~3 px at 256 px for the astronaut).
_CANONICAL = np.array([[0.35, 0.40], [0.65, 0.40], [0.50, 0.69]], dtype=np.float64)


@dataclass(frozen=True)
class Framing:
    """Which square of the canonical face crop a crop shows: its top-left corner ``(x0, y0)`` and its ``side``, in
    units of the face crop's side (the ``"face"`` framing is ``(0, 0, 1)``)."""

    name: str
    x0: float
    y0: float
    side: float


# "lower_face": x 0.20..0.80, y 0.42..1.02 of the face crop: from just below the eyes to below the chin, the mouth
# at its centre horizontally and 0.45 down, wide enough for the jaw to drop by 0.4 face sizes inside the crop.
FRAMINGS = {"face": Framing("face", 0.0, 0.0, 1.0), "lower_face": Framing("lower_face", 0.20, 0.42, 0.60)}


def get_framing(framing: str | Framing) -> Framing:
    """A :class:`Framing` by name (``"face"``, ``"lower_face"``); ValueError for an unknown one."""
    if isinstance(framing, Framing):
        return framing
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {sorted(FRAMINGS)}, got {framing!r}")
    return FRAMINGS[framing]


def canonical_points(size: int, framing: str | Framing = "face") -> np.ndarray:
    """Canonical pixel positions of (left eye centre, right eye centre, mouth centre) in a ``size`` px crop of the
    given framing (the eyes lie just above a ``"lower_face"`` crop).

    Returns:
        float32 [3, 2], pixel ``(x, y)``. "Left" is the eye on the image's left, as in :attr:`Face.left_eye`.
    """
    _check_size(size)
    f = get_framing(framing)
    return ((_CANONICAL - (f.x0, f.y0)) / f.side * size).astype(np.float32)


def reframe_matrix(
    size: int, source: str | Framing, target: str | Framing, source_size: int | None = None
) -> np.ndarray:
    """The matrix [2, 3] from a ``source_size`` px crop of one framing to a ``size`` px crop of another (a scale and
    a shift), e.g. to cut ``"lower_face"`` crops out of prepared ``"face"`` crops with :func:`warp_to_crop`."""
    a, b = get_framing(source), get_framing(target)
    source_size = source_size or size
    scale = a.side / b.side * size / source_size  # target px per source px
    shift = ((a.x0 - b.x0) / b.side * size, (a.y0 - b.y0) / b.side * size)
    return np.array([[scale, 0, shift[0]], [0, scale, shift[1]]], dtype=np.float64)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform taking ``src`` points onto ``dst`` points (Umeyama, 1991).

    Rotation, uniform scale and translation only: never a reflection or a shear.

    Args:
        src: [N, 2] points, N >= 2, not all equal.
        dst: [N, 2] points.

    Returns:
        float64 [2, 3] matrix ``M`` minimising ``sum |M[:, :2] @ src_i + M[:, 2] - dst_i|^2``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape:
        raise ValueError(f"src and dst must both be [N, 2], got {src.shape} and {dst.shape}")
    if src.shape[0] < 2:
        raise ValueError(f"a similarity transform needs at least 2 point pairs, got {src.shape[0]}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("src and dst must be finite (no NaN: a frame without a face cannot be aligned)")
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    var_src = (src_c**2).sum() / len(src)
    if var_src <= 1e-12:
        raise ValueError("src points are all the same point; the scale is undefined")
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0  # the best orthogonal map would be a reflection: take the best rotation instead
    rotation = u @ np.diag(d) @ vt
    scale = float((s * d).sum() / var_src)
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_dst - matrix[:, :2] @ mu_src
    return matrix


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply an affine matrix [2, 3] to points [..., 2]; returns float32 [..., 2]."""
    pts = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    return (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)


def matrix_scale(matrix: np.ndarray) -> float:
    """The uniform scale of a similarity matrix [2, 3] (crop px per original px)."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(matrix, dtype=np.float64)[:, :2]))))


def invert_matrix(matrix: np.ndarray) -> np.ndarray:
    """Inverse of an affine matrix [2, 3] (crop px -> original px), float64 [2, 3]."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


@dataclass
class AlignedFace:
    """A face warped into a canonical square crop.

    Attributes:
        image: uint8 [size, size, 3] RGB crop.
        matrix: float64 [2, 3], original image px -> crop px.
        size: side of the crop in px.
        landmarks: float32 [478, 2], the face's landmarks in crop px.
    """

    image: np.ndarray
    matrix: np.ndarray
    size: int
    landmarks: np.ndarray

    def inverse_matrix(self) -> np.ndarray:
        """float64 [2, 3], crop px -> original image px."""
        return invert_matrix(self.matrix)


def alignment_matrix(landmarks: np.ndarray, size: int, framing: str | Framing = "face") -> np.ndarray:
    """The similarity matrix [2, 3] taking a face's eyes and mouth centre onto :func:`canonical_points`.

    Args:
        landmarks: [478, 2] pixel ``(x, y)``.
        size: crop side in px.
        framing: ``"face"`` or ``"lower_face"`` (:data:`FRAMINGS`).
    """
    landmarks = _check_landmarks(landmarks, "landmarks", frames=False)
    return similarity_transform(_anchor_points(landmarks), canonical_points(size, framing))


def align_face(
    image: ImageLike, face: Face | None = None, size: int = 256, framing: str | Framing = "face"
) -> AlignedFace:
    """Warp a face into a canonical ``size`` x ``size`` crop (eyes and mouth on :func:`canonical_points`).

    Args:
        image: anything :func:`avdiff.video.image.load_image` takes (EXIF rotation is applied).
        face: the face to align, found in this same image; detected (the largest one) when None.
        size: crop side in px.
        framing: ``"face"`` or ``"lower_face"`` (:data:`FRAMINGS`).

    Raises:
        NoFaceError: ``face`` is None and the image has no face.
    """
    _check_size(size)
    rgb = load_image(image)
    if face is None:
        face = detect_face(rgb)
    matrix = alignment_matrix(face.landmarks, size, framing)
    crop = warp_to_crop(rgb, matrix, size)
    return AlignedFace(crop, matrix, size, transform_points(face.landmarks, matrix))


def warp_to_crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp an RGB image [H, W, 3] (uint8) into a ``size`` px square with ``matrix`` (original px -> crop px).

    Bilinear, with the edge pixels repeated outside the image. When the warp shrinks the image by more than 1.5x,
    the image is first reduced with area averaging, so the crop is not aliased.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    scale = matrix_scale(matrix)
    if scale < 1 / 1.5:
        h, w = image.shape[:2]
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        sx, sy = new_w / w, new_h / h
        # original px -> reduced px (cv2.resize maps pixel centres: x' = (x + 0.5) * sx - 0.5), then inverted.
        to_reduced_inv = np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5], [0, 0, 1]])
        matrix = matrix @ to_reduced_inv
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def align_frames(
    frames: FramesLike, landmarks: np.ndarray, size: int = 256, framing: str | Framing = "face"
) -> tuple[np.ndarray, np.ndarray]:
    """Align every frame of a video.

    Smooth the landmarks first (:func:`avdiff.video.smoothing.smooth_landmarks`) for crops that do not jitter.

    Args:
        frames: uint8 [F, H, W, 3] (numpy or torch) or a list of PIL images.
        landmarks: [F, 478, 2] px, e.g. from :func:`avdiff.video.face.track_landmarks`. Frames whose landmarks
            are NaN (no face) take the matrix of the nearest frame with a face.
        size: crop side in px.
        framing: ``"face"`` or ``"lower_face"`` (:data:`FRAMINGS`).

    Returns:
        ``(crops, matrices)``: uint8 [F, size, size, 3] and float64 [F, 2, 3] (original px -> crop px).

    Raises:
        NoFaceError: no frame has a face.
    """
    _check_size(size)
    video = frames_to_uint8(frames)
    landmarks = _check_landmarks(landmarks, "landmarks", frames=True)
    if len(landmarks) != len(video):
        raise ValueError(f"landmarks has {len(landmarks)} frames but frames has {len(video)}")
    valid = np.isfinite(landmarks).all(axis=(1, 2))
    if not valid.any():
        raise NoFaceError("no frame has a face: all landmarks are NaN")
    if not valid.all():
        logger.warning(
            "%d of %d frames have no face; they use the nearest face's alignment", (~valid).sum(), len(valid)
        )
    valid_idx = np.flatnonzero(valid)
    matrices = np.empty((len(video), 2, 3), dtype=np.float64)
    for i in valid_idx:
        matrices[i] = alignment_matrix(landmarks[i], size, framing)
    for i in np.flatnonzero(~valid):
        matrices[i] = matrices[valid_idx[np.argmin(np.abs(valid_idx - i))]]
    crops = np.stack([warp_to_crop(frame, m, size) for frame, m in zip(video, matrices)])
    return crops, matrices


# --- helpers ------------------------------------------------------------------------------------------------------


def _check_size(size: int) -> None:
    if int(size) != size or size < 16:
        raise ValueError(f"size must be an integer number of px >= 16, got {size!r}")


def _check_shape(shape) -> tuple[int, int]:
    if len(shape) < 2 or int(shape[0]) <= 0 or int(shape[1]) <= 0:
        raise ValueError(f"shape must be (H, W) with positive sizes, got {shape!r}")
    return int(shape[0]), int(shape[1])


def _check_landmarks(landmarks, name: str, frames: bool, any_points: bool = False) -> np.ndarray:
    arr = np.asarray(landmarks, dtype=np.float32)
    want = "[F, 478, 2]" if frames else "[478, 2]"
    ndim = 3 if frames else 2
    if arr.ndim != ndim or arr.shape[-1] != 2 or (not any_points and arr.shape[-2] != NUM_LANDMARKS):
        raise ValueError(f"{name} must be {want}, got {arr.shape}")
    return arr


def _anchor_points(landmarks: np.ndarray) -> np.ndarray:
    """(left eye centre, right eye centre, mouth centre) [3, 2], as in :class:`Face`."""
    return np.stack(
        [
            landmarks[LEFT_EYE].mean(axis=0),
            landmarks[RIGHT_EYE].mean(axis=0),
            landmarks[[MOUTH_LEFT, MOUTH_RIGHT]].mean(axis=0),
        ]
    ).astype(np.float64)


def _face_size(landmarks: np.ndarray) -> float:
    left, right, mouth = _anchor_points(landmarks)
    return float(np.linalg.norm(mouth - (left + right) / 2))
