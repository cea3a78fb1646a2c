"""Motion: what the face does, frame by frame, relative to the reference photo, read from mediapipe's face mesh.

One function, :func:`motion_from_landmarks`, measures it, so training video, generated video and evaluation are read
the same way; :class:`Motion` is the small typed container it returns (named per-frame float32 arrays [F]).

How it is measured (landmarks ``(x, y, z)`` in px, from ``track_landmarks(frames, depth=True)``):

1. **Head pose.** The stable points (:data:`STABLE`: forehead, nose bridge and tip, the upper face oval, the eye
   corners; not the lips, jaw or lids) of each frame are fitted to the reference's by a similarity transform (Umeyama:
   ``frame = scale * R @ reference + t``). ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` about the image axes (x right,
   y down, z away from the camera): positive ``yaw`` turns the nose towards the image's left, positive ``pitch``
   tips it down, positive ``roll`` turns the face clockwise in the image. ``tx``, ``ty`` are the shift of the stable
   points' centroid divided by the reference's face size; ``scale`` is the frame's size over the reference's.
2. **Expression**, in the pose-normalised frame: each frame's points mapped back onto the reference
   (``R.T @ (p - t) / scale``), so turning, tilting or moving the head changes none of the features below, and
   distances are divided by the reference's face size (eye-midpoint to mouth-centre distance,
   :func:`face_frame`), so they do not depend on the image size.

   - ``mouth_open``: the inner-lip aperture (:func:`inner_lip_aperture`, the rule
     ``avdiff.metrics.mouth.aperture_from_landmarks`` uses too), of the pose-normalised points; as that rule does, it
     divides by the frame's own face size (which a dropped jaw lengthens a little). An absolute state: ~0 closed,
     ~0.18 for the astronaut's parted-lip smile.
   - ``lip_closure``: 0 open ... 1 closed: ``1 - mouth_open / CLOSED_APERTURE`` clipped to [0, 1]
     (:func:`closure_from_aperture`), so 1 when the inner lips touch and 0 from an aperture of
     :data:`CLOSED_APERTURE` up. Absolute, like ``mouth_open``.
   - ``mouth_width``: the mouth-corner distance over the reference's, minus 1 (0 as in the photo, < 0 narrower).
   - ``mouth_round``: rounding (as for "oo"): the width's narrowing (``max(-mouth_width, 0)``) plus the lips'
     protrusion (how much nearer the camera the central lip points are than in the photo, in face sizes,
     ``max(., 0)``). 0 as in the photo.
   - ``jaw``: how far the chin moved down the face from the photo's, in face sizes (positive = jaw dropped).
   - ``eye_left``, ``eye_right`` (the eyes on the image's left and right, as :data:`~avdiff.video.face.LEFT_EYE`):
     eyelid closure ``1 - EAR / EAR_reference`` clipped to [0, 1], where EAR is the eye aspect ratio (mean lid gap
     over the corner distance); 0 as open as in the photo (whose eyes are taken as open), 1 shut.
   - ``brow_left``, ``brow_right``: how far the brow rose above the eye centre from the photo's, in face sizes
     (positive = raised).

Relative fields are 0 for the reference against itself; ``mouth_open`` and ``lip_closure`` are the mouth's own state.

NaN policy: a frame whose landmarks hold any NaN (no face found) gives NaN in every field, silently;
:meth:`Motion.interpolate_missing` fills such frames linearly from their neighbours (the nearest frame at the ends).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass

import numpy as np

from avdiff.video.face import CHIN, INNER_LIP_PAIRS, LEFT_EYE, MOUTH_LEFT, MOUTH_RIGHT, RIGHT_EYE

logger = logging.getLogger(__name__)

# The fields of Motion, in the column order of Motion.as_array().
FIELDS = (
    "mouth_open",
    "mouth_width",
    "mouth_round",
    "lip_closure",
    "jaw",
    "eye_left",
    "eye_right",
    "brow_left",
    "brow_right",
    "yaw",
    "pitch",
    "roll",
    "tx",
    "ty",
    "scale",
)

# Points that move with the skull, not with the expression: forehead, nose bridge and tip, upper face oval
# (temples, cheekbones by the ears), eye corners.
STABLE = [10, 151, 9, 8, 109, 67, 103, 338, 297, 332, 54, 284, 21, 251, 162, 389, 127, 356, 234, 454, 168, 6, 197,
          195, 5, 4, 1, 33, 133, 362, 263]  # fmt: skip
# Eyelid pairs (upper, lower) and corners, per eye.
LEFT_LIDS = [(160, 144), (159, 145), (158, 153)]
LEFT_CORNERS = (33, 133)
RIGHT_LIDS = [(387, 373), (386, 374), (385, 380)]
RIGHT_CORNERS = (362, 263)
# Brows: the eyebrow on the image's left (the subject's right) and on the image's right.
LEFT_BROW = [46, 53, 52, 65, 55, 70, 63, 105, 66, 107]
RIGHT_BROW = [276, 283, 282, 295, 285, 300, 293, 334, 296, 336]
# Central lip points whose depth gives the protrusion: outer and inner, upper and lower lips near the middle.
CENTRAL_LIPS = [0, 37, 267, 17, 84, 314, 13, 14, 82, 312, 87, 317]
# The aperture (in face sizes) from which lip_closure is 0.
CLOSED_APERTURE = 0.05

_UPPER, _LOWER = map(list, zip(*INNER_LIP_PAIRS))  # the upper and the lower lip's points of the pairs


def face_frame(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The face's own 2-D frame, per frame of landmarks [F, 478, >=2] px (only ``x, y`` are read).

    Returns:
        (mouth centre [F, 2] px, the face's right axis [F, 2] and down axis [F, 2], both unit, from the line through
        the eye centres; face size [F], the eye-midpoint-to-mouth-centre distance in px). NaN where points are NaN.
    """
    xy = pts[..., :2]
    left = xy[:, LEFT_EYE].mean(axis=1)
    right = xy[:, RIGHT_EYE].mean(axis=1)
    mouth = xy[:, [MOUTH_LEFT, MOUTH_RIGHT]].mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        across = (right - left) / np.linalg.norm(right - left, axis=-1, keepdims=True)
    down = np.stack([-across[:, 1], across[:, 0]], axis=-1)  # the eye axis turned by +90 degrees (y down)
    return mouth, across, down, np.linalg.norm(mouth - (left + right) / 2, axis=-1)


def inner_lip_aperture(pts: np.ndarray) -> np.ndarray:
    """The mouth-opening rule: per frame of landmarks [F, 478, >=2] px, the mean gap (lower minus upper lip) of the
    inner-lip pairs along the face's down axis, divided by the face size (:func:`face_frame`), clipped at 0.

    Returns float64 [F]; NaN where the points are NaN (no warning)."""
    _, _, down, size = face_frame(pts)
    xy = pts[..., :2]
    with np.errstate(invalid="ignore", divide="ignore"):
        gaps = ((xy[:, _LOWER] - xy[:, _UPPER]) * down[:, None]).sum(axis=-1).mean(axis=1)
        return np.maximum(gaps / size, 0.0)  # NaN stays NaN


def closure_from_aperture(aperture):
    """The ``lip_closure`` that goes with an inner-lip aperture, the way :func:`motion_from_landmarks` reads it:
    ``1 - aperture / CLOSED_APERTURE`` clipped to [0, 1].

    Args:
        aperture: ``mouth_open`` in face sizes (:func:`inner_lip_aperture`): a float, or an array of any shape
            (float32 or float64, e.g. [F]).

    Returns:
        The closure, 0 open (an aperture of :data:`CLOSED_APERTURE` or more) ... 1 inner lips touching (0 or less):
        a numpy float for a float, else an array of the aperture's shape and float dtype. NaN stays NaN.
    """
    return np.clip(1.0 - aperture / CLOSED_APERTURE, 0.0, 1.0)


@dataclass(frozen=True)
class Motion:
    """Per-frame motion of one face relative to its reference photo; every field float32 [F] (see the module
    docstring for the definitions; NaN where the frame had no face).

    Attributes:
        mouth_open: inner-lip aperture in face sizes (absolute; ~0 closed).
        mouth_width: mouth-corner distance over the reference's, minus 1.
        mouth_round: width narrowing plus lip protrusion, in face sizes (>= 0).
        lip_closure: 0 open ... 1 inner lips touching.
        jaw: chin drop from the reference, in face sizes.
        eye_left, eye_right: eyelid closure, 0 as open as the reference ... 1 shut (eyes on the image's left/right).
        brow_left, brow_right: brow raise from the reference, in face sizes.
        yaw, pitch, roll: head rotation from the reference, radians.
        tx, ty: head shift from the reference, in reference face sizes (x right, y down).
        scale: head size over the reference's (1 = same).
    """

    mouth_open: np.ndarray
    mouth_width: np.ndarray
    mouth_round: np.ndarray
    lip_closure: np.ndarray
    jaw: np.ndarray
    eye_left: np.ndarray
    eye_right: np.ndarray
    brow_left: np.ndarray
    brow_right: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    tx: np.ndarray
    ty: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        lengths = set()
        for name in FIELDS:
            value = np.asarray(getattr(self, name), dtype=np.float32)
            if value.ndim != 1:
                raise ValueError(f"Motion.{name} must be a 1-D array [F], got shape {value.shape}")
            lengths.add(len(value))
            object.__setattr__(self, name, value)
        if len(lengths) > 1:
            raise ValueError(f"Motion fields must all have the same length, got lengths {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.mouth_open)

    def __getitem__(self, index: int | slice | np.ndarray) -> Motion:
        """Frames ``index`` (a slice, an index array or mask; an int keeps one frame, as a Motion of length 1)."""
        if isinstance(index, (int, np.integer)):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        return Motion(**{name: getattr(self, name)[index] for name in FIELDS})

    def as_array(self) -> np.ndarray:
        """float32 [F, D] with the columns in :data:`FIELDS` order (D = 15)."""
        return np.stack([getattr(self, name) for name in FIELDS], axis=1)

    @classmethod
    def from_array(cls, array: np.ndarray) -> Motion:
        """From [F, D] with the columns in :data:`FIELDS` order. Raises ValueError on another shape."""
        a = np.asarray(array, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != len(FIELDS):
            raise ValueError(f"a motion array must be [F, {len(FIELDS)}] (columns {FIELDS}), got shape {a.shape}")
        return cls(**{name: a[:, i] for i, name in enumerate(FIELDS)})

    def to_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, np.ndarray]) -> Motion:
        """From a mapping holding every field. Raises ValueError naming the missing fields."""
        missing = [name for name in FIELDS if name not in data]
        if missing:
            raise ValueError(f"motion data lacks the fields {missing}")
        return cls(**{name: data[name] for name in FIELDS})

    def save(self, path: str | os.PathLike) -> None:
        """Write an .npz with one array per field."""
        np.savez(path, **self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Motion:
        with np.load(path) as data:
            return cls.from_dict({name: data[name] for name in data.files})

    def missing(self) -> np.ndarray:
        """bool [F]: frames with any NaN field (no face)."""
        return ~np.isfinite(self.as_array()).all(axis=1)

    def interpolate_missing(self) -> Motion:
        """A copy with the frames that have no face filled linearly from the frames that have (the nearest one at
        the ends). Raises ValueError when no frame has a face."""
        missing = self.missing()
        if not missing.any():
            return self
        if missing.all():
            raise ValueError(f"no frame of the {len(self)} has a face; nothing to interpolate from")
        frames = np.arange(len(self))
        a = self.as_array()
        for col in range(a.shape[1]):
            a[missing, col] = np.interp(frames[missing], frames[~missing], a[~missing, col])
        return Motion.from_array(a)

    def replace(self, **changes: np.ndarray) -> Motion:
        return dataclasses.replace(self, **changes)


def _check(points: np.ndarray, ndim: int, name: str) -> np.ndarray:
    """``points`` as float64, or ValueError naming its shape unless it is [F, 478, 3] (ndim 3) or [478, 3] (ndim 2)."""
    a = np.asarray(points, dtype=np.float64)
    if a.shape[-2:] != (478, 3) or a.ndim != ndim:
        want = "[F, 478, 3]" if ndim == 3 else "[478, 3]"
        raise ValueError(
            f"{name} must be {want} px (x, y, z), e.g. from track_landmarks(frames, depth=True), got shape "
            f"{np.shape(points)}"
        )
    return a


def similarity_fit(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Umeyama's least-squares similarity ``target ~= scale * R @ source + t``, per frame.

    Args:
        source: [N, 3] points (the same for every frame).
        target: [F, N, 3] points.

    Returns:
        (scale [F], R [F, 3, 3] proper rotations, t [F, 3]). Frames with NaN points give NaN.
    """
    mu_s = source.mean(axis=0)
    mu_t = target.mean(axis=1)
    s0 = source - mu_s
    t0 = target - mu_t[:, None]
    cov = np.einsum("fni,nj->fij", t0, s0) / len(source)  # [F, 3, 3]
    ok = np.isfinite(cov).all(axis=(1, 2))
    scale = np.full(len(target), np.nan)
    rot = np.full((len(target), 3, 3), np.nan)
    if ok.any():
        u, d, vt = np.linalg.svd(cov[ok])
        sign = np.ones_like(d)
        sign[:, 2] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
        rot[ok] = u @ (sign[:, :, None] * vt)
        scale[ok] = (d * sign).sum(axis=1) / (s0**2).sum(axis=1).mean()
    t = mu_t - scale[:, None] * np.einsum("fij,j->fi", rot, mu_s)
    return scale, rot, t


def euler_from_rotation(rot: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(yaw, pitch, roll) radians of rotations [F, 3, 3] written ``Rz(roll) @ Ry(yaw) @ Rx(pitch)``."""
    yaw = np.arcsin(np.clip(-rot[:, 2, 0], -1.0, 1.0))
    pitch = np.arctan2(rot[:, 2, 1], rot[:, 2, 2])
    roll = np.arctan2(rot[:, 1, 0], rot[:, 0, 0])
    return yaw, pitch, roll


def rotation_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The [3, 3] rotation ``Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (radians), the inverse of :func:`euler_from_rotation`."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return rz @ ry @ rx


def _eye_ratio(pts: np.ndarray, lids: list[tuple[int, int]], corners: tuple[int, int]) -> np.ndarray:
    """Eye aspect ratio [F] of points [F, 478, 3] (x, y only): mean lid gap over the corner distance."""
    xy = pts[..., :2]
    upper, lower = [u for u, _ in lids], [lo for _, lo in lids]
    gap = np.linalg.norm(xy[:, lower] - xy[:, upper], axis=-1).mean(axis=1)
    return gap / np.linalg.norm(xy[:, corners[1]] - xy[:, corners[0]], axis=-1)


def _brow_height(pts: np.ndarray, brow: list[int], eye: list[int], up: np.ndarray) -> np.ndarray:
    """Height [F] px of the brow's centre above the eye's centre, along ``up`` [2]."""
    xy = pts[..., :2]
    return (xy[:, brow].mean(axis=1) - xy[:, eye].mean(axis=1)) @ up


def motion_from_landmarks(landmarks: np.ndarray, reference: np.ndarray) -> Motion:
    """The motion of a face through frames, relative to its reference photo (definitions in the module docstring).

    Args:
        landmarks: [F, 478, 3] px ``(x, y, z)`` of mediapipe's mesh per frame (``track_landmarks(frames,
            depth=True)``); a frame with any NaN has no face.
        reference: [478, 3] px, the reference photo's face (``detect_face(photo).points3d``), taken as neutral with
            open eyes. Its image size need not match the frames'.

    Returns:
        :class:`Motion` of F frames; every field NaN in frames without a face.

    Raises:
        ValueError: a shape other than the above (naming it), or a reference with NaN points.
    """
    pts = _check(landmarks, 3, "landmarks")
    ref = _check(reference, 2, "reference")
    if not np.isfinite(ref).all():
        raise ValueError("the reference landmarks hold NaN: the reference photo needs a face (with its depth)")
    refs = ref[None]
    _, _, ref_down, ref_size_arr = face_frame(refs)
    ref_size = float(ref_size_arr[0])
    if not ref_size > 0:
        raise ValueError("the reference face has no size (its eyes and mouth coincide)")

    scale, rot, t = similarity_fit(ref[STABLE], pts[:, STABLE])
    yaw, pitch, roll = euler_from_rotation(rot)
    shift = (pts[:, STABLE, :2].mean(axis=1) - ref[STABLE, :2].mean(axis=0)) / ref_size

    with np.errstate(invalid="ignore", divide="ignore"):
        # pose-normalised points, in the reference's coordinates: R.T @ (p - t) / scale
        aligned = np.einsum("fji,fnj->fni", rot, pts - t[:, None]) / scale[:, None, None]
        mouth_open = inner_lip_aperture(aligned)
        lip_closure = closure_from_aperture(mouth_open)

        def width(p: np.ndarray) -> np.ndarray:
            return np.linalg.norm(p[:, MOUTH_RIGHT, :2] - p[:, MOUTH_LEFT, :2], axis=-1)

        mouth_width = width(aligned) / width(refs) - 1.0
        protrusion = -(aligned[:, CENTRAL_LIPS, 2].mean(axis=1) - ref[CENTRAL_LIPS, 2].mean()) / ref_size
        mouth_round = np.maximum(-mouth_width, 0.0) + np.maximum(protrusion, 0.0)
        jaw = ((aligned[:, CHIN, :2] - ref[CHIN, :2]) @ ref_down[0]) / ref_size

        def closure(lids: list[tuple[int, int]], corners: tuple[int, int]) -> np.ndarray:
            return np.clip(1.0 - _eye_ratio(aligned, lids, corners) / _eye_ratio(refs, lids, corners), 0.0, 1.0)

        def brow(brow_points: list[int], eye: list[int]) -> np.ndarray:
            up = -ref_down[0]
            return (_brow_height(aligned, brow_points, eye, up) - _brow_height(refs, brow_points, eye, up)) / ref_size

        fields = {
            "mouth_open": mouth_open,
            "mouth_width": mouth_width,
            "mouth_round": mouth_round,
            "lip_closure": lip_closure,
            "jaw": jaw,
            "eye_left": closure(LEFT_LIDS, LEFT_CORNERS),
            "eye_right": closure(RIGHT_LIDS, RIGHT_CORNERS),
            "brow_left": brow(LEFT_BROW, LEFT_EYE),
            "brow_right": brow(RIGHT_BROW, RIGHT_EYE),
            "yaw": yaw,
            "pitch": pitch,
            "roll": roll,
            "tx": shift[:, 0],
            "ty": shift[:, 1],
            "scale": scale,
        }
    # a frame with any NaN point has no face: every field NaN (the fit alone would leave some finite)
    missing = ~np.isfinite(pts).all(axis=(1, 2))
    for value in fields.values():
        value[missing] = np.nan
    logger.debug("motion of %d frames (%d without a face)", len(pts), int(missing.sum()))
    return Motion(**fields)


def neutral_frame(landmarks: np.ndarray) -> int:
    """The frame of a video that serves as its reference photo when a clip has none (``avdiff prepare``): the face
    most like a neutral portrait.

    Each frame with a face is scored, against the first such frame, by how far its head pose is from the clip's
    median pose (radians, in units of 0.05 rad: about 3 degrees), how open its mouth is (in units of
    :data:`CLOSED_APERTURE`) and how closed its eyes are against the clip's 90th percentile of the eye aspect ratio
    (times 4, so a blink always loses). The lowest score wins; ties go to the earliest frame.

    Args:
        landmarks: [F, 478, 3] px ``(x, y, z)`` per frame (``track_landmarks(frames, depth=True)``); NaN where no
            face.

    Returns:
        The frame index.

    Raises:
        ValueError: a wrong shape, or no frame with a face.
    """
    pts = _check(landmarks, 3, "landmarks")
    found = np.flatnonzero(np.isfinite(pts).all(axis=(1, 2)))
    if not len(found):
        raise ValueError(f"no frame of the {len(pts)} has a face: there is no reference to pick")
    motion = motion_from_landmarks(pts[found], pts[found[0]])
    pose = np.stack([motion.yaw, motion.pitch, motion.roll], axis=1)
    pose_cost = np.abs(pose - np.median(pose, axis=0)).sum(axis=1) / 0.05
    ear = (_eye_ratio(pts[found], LEFT_LIDS, LEFT_CORNERS) + _eye_ratio(pts[found], RIGHT_LIDS, RIGHT_CORNERS)) / 2
    eye_cost = 4.0 * np.clip(1.0 - ear / np.quantile(ear, 0.9), 0.0, None)
    cost = pose_cost + motion.mouth_open / CLOSED_APERTURE + eye_cost
    return int(found[int(np.argmin(cost))])


def motion_track(landmarks: np.ndarray) -> tuple[Motion, int]:
    """A video's motion against its own :func:`neutral_frame`: ``(Motion of F frames with the frames that have no
    face interpolated, the reference frame's index)``. Raises ValueError as :func:`neutral_frame` does."""
    reference = neutral_frame(landmarks)
    motion = motion_from_landmarks(landmarks, np.asarray(landmarks, np.float64)[reference])
    return motion.interpolate_missing(), reference


def plot_motion(motion: Motion, fps: float, *, width_px: int = 900, height_px: int = 330) -> np.ndarray:
    """A picture of a motion against time, uint8 [H, W, 3] (matplotlib, drawn off-screen), in three rows: the mouth's
    opening (face sizes), the eyelids' closure (0 open ... 1 shut, each eye) and the head's yaw, pitch and roll
    (degrees).

    Raises:
        ValueError: an empty motion or an fps that is not positive.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not len(motion):
        raise ValueError("the motion has no frames to plot")
    if not float(fps) > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    times = np.arange(len(motion)) / float(fps)
    fig = Figure(figsize=(width_px / 100, height_px / 100), dpi=100)
    axes = fig.subplots(3, 1, sharex=True)
    axes[0].plot(times, motion.mouth_open, color="#d9480f", lw=1.4)
    axes[0].set_ylabel("mouth\nopening", fontsize=8)
    axes[1].plot(times, motion.eye_left, color="#1f5fbf", lw=1.2, label="left eye")
    axes[1].plot(times, motion.eye_right, color="#0b7285", lw=1.0, ls="--", label="right eye")
    axes[1].set_ylim(-0.05, 1.05)
    axes[1].set_ylabel("eyelids\nclosed", fontsize=8)
    for name, color in (("yaw", "#2b8a3e"), ("pitch", "#862e9c"), ("roll", "#e67700")):
        axes[2].plot(times, np.rad2deg(getattr(motion, name)), color=color, lw=1.2, label=name)
    axes[2].set_ylabel("head (deg)", fontsize=8)
    axes[2].set_xlabel("time (s)")
    for ax in axes[1:]:
        ax.legend(loc="upper right", fontsize=7, ncol=3)
    axes[2].set_xlim(0, max(times[-1], 1e-3))
    fig.tight_layout()
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
