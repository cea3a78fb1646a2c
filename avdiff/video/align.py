"""Face geometry: canonical crops of a face, the transforms between a frame and its crop, masks of the mouth and the
lower face, and pasting a crop back into its frame.

A face is aligned by the similarity transform (rotation, uniform scale, translation) that takes its eye centres
and mouth centre onto fixed canonical points in a square crop (:func:`canonical_points`), as FFHQ and LatentSync
do. A crop has a *framing* (:data:`FRAMINGS`): ``"face"``, the whole face with some forehead, or ``"lower_face"``,
a square around the mouth and jaw (nose to below the chin), which gives the mouth 1.67x the pixels of a face crop
of the same size, the region Wav2Lip, MuseTalk and LatentSync generate. A generated or edited crop goes back
into the frame with :func:`paste_back`, which inverts the alignment warp and blends through a feathered mask, so the
crop's edges do not show. Temporal smoothing of landmarks is in :mod:`avdiff.video.smoothing`.

Conventions:
    * Points are pixel ``(x, y)``, x to the right and y down, as in :class:`avdiff.video.face.Face`; they are
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

from avdiff.video.face import (
    CHIN,
    LEFT_EYE,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    OUTER_LIPS,
    RIGHT_EYE,
    Face,
    NoFaceError,
    detect_face,
)
from avdiff.video.image import ImageLike, load_image
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


# --- masks and paste-back ------------------------------------------------------------------------------------

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
