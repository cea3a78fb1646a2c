"""Faces with mediapipe, in an image and through a video: the face mesh's landmark indices and the :class:`Face` they
make, :func:`detect_faces`, :func:`detect_face`, :func:`track_landmarks`, :func:`track_faces`, and the errors they
raise.

mediapipe 0.10.21 ships its face detector and 478-point face-mesh models inside the wheel, so this runs offline.
Landmarks are pixel coordinates ``(x, y)`` in the image as given (after EXIF rotation); the mesh's depth ``z`` (same
px scale as ``x``, smaller is nearer the camera) is kept beside them in :attr:`Face.depth`, and
``track_landmarks(frames, depth=True)`` gives ``(x, y, z)``.

Faces of any size, and several of them. mediapipe's face mesh finds a face with its short-range detector, which needs
the face to fill about a tenth of the image: a 90 px face in a 1280x720 frame, or two faces side by side in a wide
frame, are missed. So :class:`FaceFinder` finds faces in two ways, and the cheap one is tried first:

1. the face mesh on the whole frame (in a video: tracking mode, one face, detect once and then follow), as before;
2. for what it does not find, mediapipe's *full-range* detector (``FaceDetection(model_selection=1)``, BlazeFace
   full-range, in the same 0.10.21 wheel) on the whole frame and on overlapping tiles of :data:`TILE_PX` px (on a
   whole 1280x720 frame it misses a 90 px face too; on a 640 px tile it finds it). Around each box a square window
   (:data:`BOX_MARGIN` times the box) is resampled to :data:`CROP_PX` px, the face mesh runs on that crop, and its
   landmarks are mapped back to frame pixels. In a video the window then follows the face from frame to frame
   (:data:`LANDMARK_MARGIN` times its landmark box), and the detector runs again only every ``detect_every`` frames.

A video whose faces the whole-frame mesh finds costs what it did; the crop path only runs where it finds none (or,
when several faces are tracked, every ``detect_every`` frames to look for more).

Alignment, masks and paste-back build on :class:`Face` in :mod:`avdiff.video.align`, temporal smoothing of landmarks
in :mod:`avdiff.video.smoothing`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from avdiff.video.image import ImageLike, _array_to_rgb, load_image
from avdiff.video.quiet import QuietGraph

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
        depth: float32 [478], mediapipe's ``z`` of each point in px (its relative depth times the image width, the
            scale of ``x``; smaller is nearer the camera, about 0 at the face's centre), or None when not known.
    """

    landmarks: np.ndarray
    box: tuple[float, float, float, float]
    image_size: tuple[int, int]
    depth: np.ndarray | None = None

    @classmethod
    def from_landmarks(
        cls, landmarks: np.ndarray, image_size: tuple[int, int], depth: np.ndarray | None = None
    ) -> Face:
        pts = np.asarray(landmarks, dtype=np.float32)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        z = None if depth is None else np.asarray(depth, dtype=np.float32)
        return cls(pts, (float(x0), float(y0), float(x1), float(y1)), image_size, z)

    @property
    def points3d(self) -> np.ndarray:
        """float32 [478, 3] px ``(x, y, z)``: the landmarks with their depth (NaN depth when it is not known)."""
        z = np.full(len(self.landmarks), np.nan, np.float32) if self.depth is None else self.depth
        return np.concatenate([self.landmarks, z[:, None]], axis=1)

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
        mp.solutions.face_mesh.FaceMesh,
        static_image_mode=static,
        max_num_faces=max_faces,
        refine_landmarks=True,
        min_detection_confidence=0.5,
        min_tracking_confidence=0.5,
    )


def faces_from_result(result, width: int, height: int) -> list[Face]:
    faces = []
    for face_landmarks in result.multi_face_landmarks or []:
        pts = np.array([(p.x * width, p.y * height, p.z * width) for p in face_landmarks.landmark], dtype=np.float32)
        faces.append(Face.from_landmarks(pts[:, :2], (width, height), depth=pts[:, 2]))
    return sorted(faces, key=lambda f: f.area, reverse=True)


class FaceError(ValueError):
    """Base class of face-processing errors."""


class NoFaceError(FaceError):
    """No face was found in an image."""


class MultipleFacesError(FaceError):
    """Several faces were found where exactly one was required."""


# Finding faces of any size (the module docstring).
TILE_PX = 640  # the full-range detector finds ~50 px faces (its box) on tiles this size, not on a 1280 px frame
CROP_PX = 256  # side of the crop the face mesh reads around a small face
BOX_MARGIN = 3.0  # crop window side / the detector's box side (the box covers the inner face only)
LANDMARK_MARGIN = 2.0  # crop window side / the longer side of the landmark box
MIN_DETECTION_CONFIDENCE = 0.5
SAME_FACE_OVERLAP = 0.5  # a box that shares this much of the smaller one's area with a found face is that face


def box_overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection area over the smaller box's area, for boxes ``(x0, y0, x1, y1)``; 0 when they do not meet."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(w * h / smaller) if smaller > 0 else 0.0


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two boxes ``(x0, y0, x1, y1)``."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _tiles(height: int, width: int, tile: int = TILE_PX) -> list[tuple[int, int, int, int]]:
    """The whole frame, then (when it is larger than ``tile``) square tiles of ``tile`` px overlapping by half."""
    out = [(0, 0, width, height)]
    if max(height, width) <= tile:
        return out
    side = min(tile, height, width)
    step = side // 2
    ys = sorted({*range(0, max(height - side, 0) + 1, step), max(height - side, 0)})
    xs = sorted({*range(0, max(width - side, 0) + 1, step), max(width - side, 0)})
    out += [(x, y, x + side, y + side) for y in ys for x in xs]
    return out


class FaceFinder:
    """Finds the faces of one frame after another (see the module docstring).

    Args:
        max_faces: the most faces reported per frame.
        static: images that are not a video (the whole-frame mesh detects on every call).
        detect_every: in a video, run the full-range detector at most every this many frames.
        always_detect: look for faces the whole-frame mesh missed even when it found some (needed to see a small
            face beside a large one); otherwise only when it found none.
    """

    def __init__(
        self, max_faces: int = 1, *, static: bool = False, detect_every: int = 5, always_detect: bool = False
    ):
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces!r}")
        self.max_faces = max_faces
        self.detect_every = max(1, int(detect_every))
        self.always_detect = always_detect
        # In a video the whole-frame mesh follows one face, exactly as track_landmarks always has (so a video with one
        # face gives the landmarks it gave before); further faces come through the detector and crops.
        self._mesh = face_mesh(static=static, max_faces=max_faces if static else 1)
        self._crop_mesh = None
        self._detector = None
        self._followed: list[Face] = []  # faces found through crops in the last frame, followed in the next
        self._since_detect = self.detect_every  # detect on the first frame that needs it

    def close(self) -> None:
        for graph in (self._mesh, self._crop_mesh, self._detector):
            if graph is not None:
                graph.close()

    def __enter__(self) -> FaceFinder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detect_boxes(self, rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """Full-range detector boxes ``((x0, y0, x1, y1) px, score)`` on the frame and its tiles, best first, with
        boxes of one face merged (the higher score kept)."""
        if self._detector is None:
            import mediapipe as mp

            self._detector = QuietGraph(
                mp.solutions.face_detection.FaceDetection,
                model_selection=1,
                min_detection_confidence=MIN_DETECTION_CONFIDENCE,
            )
        found = []
        for x0, y0, x1, y1 in _tiles(*rgb.shape[:2]):
            tile = np.ascontiguousarray(rgb[y0:y1, x0:x1])
            for det in self._detector.process(tile).detections or []:
                rel = det.location_data.relative_bounding_box
                w, h = x1 - x0, y1 - y0
                box = (
                    x0 + rel.xmin * w,
                    y0 + rel.ymin * h,
                    x0 + (rel.xmin + rel.width) * w,
                    y0 + (rel.ymin + rel.height) * h,
                )
                found.append((box, float(det.score[0])))
        found.sort(key=lambda b: -b[1])
        kept: list[tuple[tuple[float, float, float, float], float]] = []
        for box, score in found:
            if all(box_overlap(box, k) < SAME_FACE_OVERLAP for k, _ in kept):
                kept.append((box, score))
        return kept

    def mesh_in_window(self, rgb: np.ndarray, center: np.ndarray, side: float) -> Face | None:
        """The face mesh on a square window (``side`` px around ``center``) resampled to :data:`CROP_PX`, with the
        landmarks mapped back to frame px; the face nearest the window's centre, or None."""
        if self._crop_mesh is None:
            self._crop_mesh = face_mesh(static=True, max_faces=2)
        scale = CROP_PX / side
        matrix = np.array([[scale, 0, CROP_PX / 2 - scale * center[0]], [0, scale, CROP_PX / 2 - scale * center[1]]])
        crop = cv2.warpAffine(
            rgb,
            matrix,
            (CROP_PX, CROP_PX),
            flags=cv2.INTER_LINEAR if scale >= 1 else cv2.INTER_AREA,
            borderMode=cv2.BORDER_CONSTANT,
        )
        faces = faces_from_result(self._crop_mesh.process(crop), CROP_PX, CROP_PX)
        if not faces:
            return None
        middle = np.array([CROP_PX / 2, CROP_PX / 2])
        best = min(faces, key=lambda f: float(np.linalg.norm(f.landmarks.mean(axis=0) - middle)))
        points = (best.landmarks - matrix[:, 2]) / scale  # crop px -> frame px
        depth = None if best.depth is None else best.depth / scale
        return Face.from_landmarks(points, (rgb.shape[1], rgb.shape[0]), depth=depth)

    def __call__(self, image: np.ndarray) -> list[Face]:
        """The faces in one frame uint8 [H, W, 3] (any layout :func:`avdiff.video.image.load_image` takes as an
        array), largest first, at most ``max_faces``."""
        rgb = _array_to_rgb(np.asarray(image))
        height, width = rgb.shape[:2]
        faces = faces_from_result(self._mesh.process(rgb), width, height)
        followed = []
        for prev in self._followed:  # faces found in crops last frame: follow them with a window on their landmarks
            if any(box_overlap(prev.box, f.box) >= SAME_FACE_OVERLAP for f in faces + followed):
                continue
            x0, y0, x1, y1 = prev.box
            face = self.mesh_in_window(
                rgb, np.array([(x0 + x1) / 2, (y0 + y1) / 2]), LANDMARK_MARGIN * max(x1 - x0, y1 - y0)
            )
            if face is not None:
                followed.append(face)
        faces += followed
        self._since_detect += 1
        if (self.always_detect or not faces) and self._since_detect >= self.detect_every:
            self._since_detect = 0
            for box, _ in self.detect_boxes(rgb):
                if any(box_overlap(box, f.box) >= SAME_FACE_OVERLAP for f in faces):
                    continue
                x0, y0, x1, y1 = box
                face = self.mesh_in_window(
                    rgb, np.array([(x0 + x1) / 2, (y0 + y1) / 2]), BOX_MARGIN * max(x1 - x0, y1 - y0)
                )
                if face is not None and all(box_overlap(face.box, f.box) < SAME_FACE_OVERLAP for f in faces):
                    faces.append(face)
                    followed.append(face)
        self._followed = followed
        return sorted(faces, key=lambda f: f.area, reverse=True)[: self.max_faces]


def find_faces(image: np.ndarray, max_faces: int = 5) -> list[Face]:
    """All faces in one image, large or small (whole-image mesh plus the full-range detector), largest first."""
    with FaceFinder(max_faces, static=True, always_detect=True) as finder:
        return finder(image)


def detect_faces(image: ImageLike, max_faces: int = 5) -> list[Face]:
    """All faces in an image (up to ``max_faces``), largest first. An empty list when there are none.

    Faces of any size are found: those the face mesh finds on the whole image, and small ones (under about a tenth of
    the image) through mediapipe's full-range detector and the mesh on a crop (:class:`FaceFinder`).
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
    rgb = load_image(image)
    faces = detect_faces(rgb)
    if not faces:
        raise NoFaceError(f"no face found in the image ({rgb.shape[1]}x{rgb.shape[0]} px)")
    if len(faces) > 1:
        if on_multiple == "error":
            raise MultipleFacesError(f"{len(faces)} faces found in the image; expected exactly one")
        logger.info("%d faces found; using the largest", len(faces))
    return faces[0]


def track_landmarks(frames: np.ndarray | Sequence[np.ndarray], *, depth: bool = False) -> np.ndarray:
    """Landmarks of the largest face in every frame of a video, float32 [F, 478, 2] px ``(x, y)``, or with
    ``depth=True`` [F, 478, 3] px ``(x, y, z)`` (:attr:`Face.depth`, what :mod:`avdiff.video.motion` reads); NaN where
    no face.

    Uses mediapipe's tracking mode (detect once, then follow), which is faster and steadier than per-image detection;
    a face too small for it is found by the full-range detector and followed in a crop
    (:class:`FaceFinder`).
    """
    dims = 3 if depth else 2
    out = []
    with FaceFinder(max_faces=1) as finder:
        for frame in frames:
            faces = finder(frame)
            if not faces:
                out.append(np.full((478, dims), np.nan, np.float32))
            else:
                out.append(faces[0].points3d if depth else faces[0].landmarks)
    return np.stack(out) if out else np.zeros((0, 478, dims), np.float32)


@dataclass
class FaceTracks:
    """Faces followed through a video.

    Attributes:
        landmarks: float32 [K, F, 478, 2] px, one row per face, NaN in frames where it was not found. Faces are ordered
            from left to right by the median centre of their boxes (``--face INDEX`` counts in this order).
        num_frames: F.
    """

    landmarks: np.ndarray
    num_frames: int
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)

    def __post_init__(self):
        self.boxes = [median_box(track) for track in self.landmarks]

    @property
    def num_faces(self) -> int:
        return int(self.landmarks.shape[0])

    def found(self) -> np.ndarray:
        """bool [K, F]: where each face was found."""
        return np.isfinite(self.landmarks).all(axis=(2, 3))


def median_box(track: np.ndarray) -> tuple[float, float, float, float]:
    """The median landmark box ``(x0, y0, x1, y1)`` px of one face's landmarks [F, 478, 2] over the frames found."""
    ok = np.isfinite(track).all(axis=(1, 2))
    if not ok.any():
        return (np.nan, np.nan, np.nan, np.nan)
    pts = track[ok]
    lo, hi = np.median(pts.min(axis=1), axis=0), np.median(pts.max(axis=1), axis=0)
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def track_faces(
    frames, max_faces: int = 4, *, detect_every: int = 5, max_gap: int = 12, min_iou: float = 0.2
) -> FaceTracks:
    """Follow up to ``max_faces`` faces through a video, each with its own identity.

    Each frame's faces (:class:`FaceFinder`, with the detector looking for more every ``detect_every`` frames) are
    joined to the tracks of the frames before by box overlap (greedy, highest IoU first, at least ``min_iou``); a track
    unseen for more than ``max_gap`` frames is closed, and an unmatched face starts a new one.

    Args:
        frames: uint8 [F, H, W, 3] or a sequence of frames.

    Returns:
        :class:`FaceTracks` (K may exceed ``max_faces`` when faces come and go; each frame has at most ``max_faces``).
    """
    tracks: list[dict] = []
    n = 0
    with FaceFinder(max_faces, detect_every=detect_every, always_detect=max_faces > 1) as finder:
        for n, frame in enumerate(frames, start=1):
            index = n - 1
            faces = finder(frame)
            live = [t for t in tracks if index - t["last"] <= max_gap]
            pairs = sorted(
                ((box_iou(t["box"], f.box), ti, fi) for ti, t in enumerate(live) for fi, f in enumerate(faces)),
                reverse=True,
            )
            used_t, used_f = set(), set()
            for iou, ti, fi in pairs:
                if iou < min_iou or ti in used_t or fi in used_f:
                    continue
                used_t.add(ti), used_f.add(fi)
                live[ti].update(box=faces[fi].box, last=index)
                live[ti]["points"][index] = faces[fi].landmarks
            for fi, face in enumerate(faces):
                if fi not in used_f:
                    tracks.append({"box": face.box, "last": index, "points": {index: face.landmarks}})
    landmarks = np.full((len(tracks), n, 478, 2), np.nan, dtype=np.float32)
    for k, track in enumerate(tracks):
        for i, pts in track["points"].items():
            landmarks[k, i] = pts
    if len(tracks) > 1:
        order = np.argsort([np.nanmedian(landmarks[k, ..., 0]) for k in range(len(tracks))])
        landmarks = landmarks[order]
    return FaceTracks(landmarks, n)
