"""The face renderer: move a photo by a :class:`~avdiff.video.motion.Motion`, at the photo's own resolution.

:class:`FaceRenderer` holds one photo and its face mesh (478 points with depth). Per frame it

1. **deforms the mesh** (:meth:`FaceRenderer.target_points`): expression first, in the reference's own frame, as a
   sum of fixed displacement fields over the landmarks, one per parameter (mouth opening or closing, jaw, mouth
   width, lip protrusion, each eyelid, each brow), with smooth falloff and none on the skull's stable points
   (:data:`avdiff.video.motion.STABLE`); then the head pose: the 3-D points rotated by ``Rz(roll) @ Ry(yaw) @
   Rx(pitch)`` (the conventions of :mod:`avdiff.video.motion`) about the stable points' centroid, scaled and shifted
   by ``tx, ty`` face sizes, and projected orthographically. The parameters are solved (a few fixed-point steps
   through :func:`~avdiff.video.motion.motion_from_landmarks`) so that **measuring the target mesh gives back the
   motion**: ``motion_from_landmarks(target_points(m), reference)`` recovers ``m`` field by field. Rotating about a
   pivot behind the face differs from this only by a translation, which the ``tx, ty`` contract fixes anyway.
   ``mouth_round`` is made of the width's narrowing (``mouth_width`` < 0) plus lip protrusion (towards the camera),
   as it is measured; ``lip_closure`` pulls the aperture towards 0 (a motion whose closure is the aperture's, as
   measured, renders exactly that aperture).
2. **warps the photo** by a piecewise-affine map over triangles: mediapipe's face tessellation, the inside of the
   mouth and of each eye, and a band from the face's outline to a fixed outer ring (:data:`RING`), so the
   displacement is continuous and zero on the ring and beyond. The backward map (:meth:`FaceRenderer.backward_map`,
   sampled bicubic by ``cv2.remap``: the face moves by fractions of a pixel, which bilinear sampling blurs) is
   computed only in the ring's box, so the cost does not grow with the photo; each pixel's source is kept within a
   pixel of the box around its triangle's source corners, so a pixel on the edge of a sliver triangle does not read
   (and show as a speck) some far part of the photo. Triangles are drawn far to near; the eyes' insides are
   drawn first, at their open positions, so a closing upper lid covers the eye instead of squashing it.
3. **composites**: the warped box is blended into the photo with a mask feathered inside the ring (nothing is pasted
   as a box; outside the ring the photo is untouched), and the inside of the target inner-lip contour, where the
   photo has nothing true, is the renderer's own interior: a dark cavity in a shade of the lips' colour
   (:func:`avdiff.video.warp.lip_colour`), lighter under the upper lip, with an anti-aliased edge. :meth:`render`
   can return that interior's mask for a painter.

Zero motion (``mouth_open`` the photo's own, everything else 0, ``scale`` 1) gives back the photo outside the mouth's
interior. The ring holds head motion up to about a tenth of a face size and ~15 degrees; beyond that the band folds.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator

import cv2
import numpy as np

from avdiff.video.face import CHIN, FACE_OVAL, INNER_LIP_PAIRS, INNER_LIPS, MOUTH_LEFT, MOUTH_RIGHT, Face
from avdiff.video.motion import (
    CENTRAL_LIPS,
    CLOSED_APERTURE,
    FIELDS,
    LEFT_BROW,
    RIGHT_BROW,
    STABLE,
    Motion,
    closure_from_aperture,
    face_frame,
    inner_lip_aperture,
    motion_from_landmarks,
    rotation_from_euler,
)
from avdiff.video.mouth_crop import lip_interior
from avdiff.video.warp import lip_colour

logger = logging.getLogger(__name__)

RING = 1.35  # the outer ring: the face outline scaled by this about its centre (fixed: no displacement there)
UPPER_SHARE = 0.25  # of a change in the mouth's opening, the upper lip takes this share (the lower lip the rest)
CAVITY_SHADE = 0.3  # the mouth's interior: the lips' colour times this (lighter under the upper lip)
SOLVE_STEPS = 4  # fixed-point steps that make the target mesh measure as the motion
EDGE_SOFTNESS = 0.01  # the cavity's edge is blurred by this many face sizes (lips' edges are not razor sharp)

# Eye contours, upper and lower lid from the inner... outer corner (shared corners first and last).
LEFT_UPPER_LID = [33, 246, 161, 160, 159, 158, 157, 173, 133]
LEFT_LOWER_LID = [33, 7, 163, 144, 145, 153, 154, 155, 133]
RIGHT_UPPER_LID = [362, 398, 384, 385, 386, 387, 388, 466, 263]
RIGHT_LOWER_LID = [362, 382, 381, 380, 374, 373, 390, 249, 263]
# The inner-lip contour as an upper and a lower line from the left corner to the right one.
_UPPER_INNER = INNER_LIPS[:11]
_LOWER_INNER = [INNER_LIPS[0], *INNER_LIPS[:10:-1], INNER_LIPS[10]]
# The lips' two innermost rings of mediapipe's mesh, corners left out: which lip a point belongs to, whatever its
# height. In a closed mouth these rings touch, and the mesh often has them crossed by a fraction of a pixel, so the
# side of the lip line a point lies on does not say which lip it is on.
_UPPER_LIP_INSIDE = [*INNER_LIPS[1:10], 183, 42, 41, 38, 12, 268, 271, 272, 407]
_LOWER_LIP_INSIDE = [*INNER_LIPS[11:], 96, 89, 179, 86, 15, 316, 403, 319, 325]
# The parameters the mesh is deformed by, in this order (the columns of the solved parameter array).
PARAMS = ("open", "close", "jaw", "width", "protrude", "eye_left", "eye_right", "brow_left", "brow_right")


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _strip(upper: list[int], lower: list[int]) -> list[tuple[int, int, int]]:
    """Triangles filling the region between two lines of points with shared end points."""
    tris = []
    for k in range(len(upper) - 1):
        a, b, c, d = upper[k], upper[k + 1], lower[k + 1], lower[k]
        if b != c:
            tris.append((a, b, c))
        if a != d:
            tris.append((a, c, d))
    return tris


@functools.lru_cache(maxsize=1)
def _tessellation() -> np.ndarray:
    """mediapipe's face-mesh triangles int [T, 3] (its edges' 3-cycles; the eyes and mouth are holes)."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    adjacent: dict[int, set[int]] = {}
    for a, b in FACEMESH_TESSELATION:
        adjacent.setdefault(a, set()).add(b)
        adjacent.setdefault(b, set()).add(a)
    tris = {tuple(sorted((a, b, c))) for a in adjacent for b in adjacent[a] for c in adjacent[a] & adjacent[b]}
    out = np.array(sorted(tris), dtype=np.int64)
    out.flags.writeable = False
    return out


def _signed_area(corners: np.ndarray) -> np.ndarray:
    """Twice the signed area of triangles [T, 3, 2]: [T]."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def _points_of(face: Face | np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The face's landmarks float64 [478, 3] px (x, y, z), or ValueError."""
    if isinstance(face, Face):
        if face.depth is None:
            raise ValueError("the face has no depth: detect it with avdiff.video.face.detect_face (mediapipe's z)")
        if tuple(face.image_size) != (shape[1], shape[0]):
            raise ValueError(f"the face was found in a {face.image_size} image, the photo is {shape[1]}x{shape[0]}")
        pts = face.points3d
    else:
        pts = np.asarray(face)
    pts = np.asarray(pts, dtype=np.float64)
    if pts.shape != (478, 3):
        raise ValueError(f"face landmarks must be [478, 3] px (x, y, z), got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("face landmarks must be finite (a face with its depth)")
    return pts


class FaceRenderer:
    """Moves one photo by a :class:`~avdiff.video.motion.Motion`, at the photo's resolution (module docstring).

    Args:
        photo: uint8 [H, W, 3] RGB.
        face: its face: a :class:`~avdiff.video.face.Face` with depth (``detect_face(photo)``), or landmarks
            [478, 3] px ``(x, y, z)`` (``Face.points3d``).

    Raises:
        ValueError: a photo that is not uint8 [H, W, 3], landmarks of another shape or not finite, a Face without
            depth or found in an image of another size, or a face too small to render (under 4 px).
    """

    def __init__(self, photo: np.ndarray, face: Face | np.ndarray):
        photo = np.asarray(photo)
        if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
            raise ValueError(f"photo must be uint8 [H, W, 3], got {photo.dtype} {photo.shape}")
        self.photo = np.ascontiguousarray(photo)
        self.reference = _points_of(face, photo.shape)
        ref = self.reference
        xy = ref[:, :2]
        origin, e_u, e_v, size = face_frame(ref[None])  # the frame and face size motion_from_landmarks uses
        self.origin, self.e_u, self.e_v, self.size = origin[0], e_u[0], e_v[0], float(size[0])
        if not self.size >= 4:
            raise ValueError(f"the face is too small to render ({self.size:.1f} px from eyes to mouth)")
        self.aperture = float(inner_lip_aperture(ref[None])[0])  # the photo's own mouth_open
        self.basis = self._basis()  # [P, 478, 3] px per unit of each parameter
        self.pivot = ref[STABLE].mean(axis=0)
        self._setup_mesh()
        self.cavity_rgb = lip_colour(photo, Face.from_landmarks(xy, (photo.shape[1], photo.shape[0])))
        self.cavity_rgb = self.cavity_rgb * CAVITY_SHADE
        logger.debug("renderer: face size %.1f px, box %s, %d triangles", self.size, self.roi, len(self._tris))

    # ------------------------------------------------------------------ the mesh's displacement fields
    def _uv(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = pts[:, :2] - self.origin
        return d @ self.e_u, d @ self.e_v

    def _basis(self) -> np.ndarray:
        """Displacement [P, 478, 3] px of each parameter in :data:`PARAMS` for one unit: an aperture change of one
        face size (open, close), one face size of chin drop (jaw), +100 % mouth width, one face size of protrusion,
        full lid closure (eyes), one face size of brow raise."""
        ref, size = self.reference, self.size
        u, v = self._uv(ref)
        n = len(ref)
        basis = np.zeros((len(PARAMS), n, 3))
        upper = [p for p, _ in INNER_LIP_PAIRS]
        lower = [q for _, q in INNER_LIP_PAIRS]
        pu, pv_up = self._uv(ref[upper])
        _, pv_lo = self._uv(ref[lower])
        corners_u, corners_v = self._uv(ref[[_UPPER_INNER[0], _UPPER_INNER[-1]]])
        half = float(np.abs(self._uv(ref[[MOUTH_LEFT, MOUTH_RIGHT]])[0]).max())
        # the lip line (the middle of the inner lips) and the photo's gap along it, as functions of u
        line_u = np.concatenate([pu, corners_u])
        line_v = np.concatenate([(pv_up + pv_lo) / 2, corners_v])
        gap = np.concatenate([np.maximum(pv_lo - pv_up, 0.0), [0.0, 0.0]])
        order = np.argsort(line_u)
        line_u, line_v, gap = line_u[order], line_v[order], gap[order]
        rel_v = v - np.interp(u, line_u, line_v)  # below the lip line > 0
        g0 = np.interp(u, line_u, gap, left=0.0, right=0.0)
        lens = np.clip(1 - (u / (0.85 * half)) ** 2, 0, 1) ** 0.6
        lo_outer = max(float(self._uv(ref[[17]])[1][0] - np.interp(0.0, line_u, line_v)), 2.0)
        up_outer = max(float(np.interp(0.0, line_u, line_v) - self._uv(ref[[0]])[1][0]), 2.0)
        chin = max(float(rel_v[CHIN]), lo_outer + 2.0)
        nose = max(float(np.interp(0.0, line_u, line_v) - self._uv(ref[[2]])[1][0]), up_outer + 2.0)
        below = rel_v >= 0
        below[_UPPER_LIP_INSIDE], below[_LOWER_LIP_INSIDE] = False, True
        to_chin = _smoothstep((rel_v - lo_outer) / (chin - lo_outer))  # 0 on the lower lip ... 1 at the chin
        to_nose = _smoothstep((-rel_v - up_outer) / (nose - up_outer))  # 0 on the upper lip ... 1 under the nose
        lower_w = np.where(below, (1 - UPPER_SHARE) * (1 - to_chin), 0.0)
        upper_w = np.where(below, 0.0, -UPPER_SHARE * (1 - to_nose))
        # open: the gap grows by `lens` (per unit of h px); scaled so the mean pair gap grows by one face size
        pair_lens = np.clip(1 - (pu / (0.85 * half)) ** 2, 0, 1) ** 0.6
        open_dv = (lower_w + upper_w) * lens * size / max(pair_lens.mean(), 1e-6)
        basis[0, :, :2] = open_dv[:, None] * self.e_v
        # close: the gap shrinks in proportion to the photo's own (a closed photo cannot close further)
        pair_gap = np.maximum(pv_lo - pv_up, 0.0)
        if pair_gap.mean() > 1e-6:
            close_dv = -(lower_w + upper_w) * g0 * size / pair_gap.mean()
            basis[1, :, :2] = close_dv[:, None] * self.e_v
        # jaw: the chin drops, the jaw line less towards the ears, nothing above the lower lip
        jaw_dv = np.where(below, to_chin, 0.0) * np.exp(-((u / (2.0 * half)) ** 2)) * size
        basis[2, :, :2] = jaw_dv[:, None] * self.e_v
        # width: points about the mouth move along u in proportion to u (the corners exactly)
        lip_band = np.where(rel_v < 0, -rel_v - up_outer, rel_v - lo_outer)  # > 0 outside the lips, px
        near_mouth = (1 - _smoothstep((np.abs(u) - half) / (0.8 * half))) * (1 - _smoothstep(lip_band / (0.5 * size)))
        basis[3, :, :2] = (u * near_mouth)[:, None] * self.e_u
        # protrude: the lips come towards the camera (smaller z), most in the middle
        central = (1 - _smoothstep((np.abs(u) - 0.6 * half) / (0.8 * half))) * (
            1 - _smoothstep(lip_band / (0.3 * size))
        )
        basis[4, :, 2] = -central * size
        basis[4, CENTRAL_LIPS, 2] = -size
        # eyelids: the upper lid's margin moves onto the lower lid, the skin above follows with falloff
        for k, (up, lo) in enumerate(((LEFT_UPPER_LID, LEFT_LOWER_LID), (RIGHT_UPPER_LID, RIGHT_LOWER_LID))):
            basis[5 + k] = self._lid_field(up, lo)
        # brows: the brow points rise, their surroundings less; never the lids or the stable points
        up_dir = -self.e_v
        for k, brow in enumerate((LEFT_BROW, RIGHT_BROW)):
            dist = np.linalg.norm(ref[:, None, :2] - ref[None, brow, :2], axis=-1).min(axis=1)
            w = 1 - _smoothstep(dist / (0.35 * size))
            w[LEFT_UPPER_LID + LEFT_LOWER_LID + RIGHT_UPPER_LID + RIGHT_LOWER_LID] = 0
            w[brow] = 1
            basis[7 + k, :, :2] = (w * size)[:, None] * up_dir
        basis[:, STABLE] = 0  # the skull does not move with the expression (the pose fit reads these points)
        basis[:, 468:] = 0  # nor the irises (the lids cover them; the eyes' insides are drawn at their open place)
        return basis

    def _lid_field(self, upper: list[int], lower: list[int]) -> np.ndarray:
        """Displacement [478, 3] px closing one eye fully: each upper-lid point onto its lower-lid partner, the skin
        above the lid by the gap at its place along the eye, fading out over about one eye opening."""
        ref = self.reference
        out = np.zeros((len(ref), 3))
        corner_a, corner_b = ref[upper[0], :2], ref[upper[-1], :2]
        along = (corner_b - corner_a) / np.linalg.norm(corner_b - corner_a)
        down = np.array([-along[1], along[0]])
        if down @ self.e_v < 0:
            down = -down
        uu = (ref[upper, :2] - corner_a) @ along
        gaps = (ref[lower, :2] - ref[upper, :2]) @ down
        margin = (ref[upper, :2] - corner_a) @ down
        order = np.argsort(uu)
        fade = max(float(gaps.max()), 1.0)
        pu = (ref[:, :2] - corner_a) @ along
        above = np.interp(pu, uu[order], margin[order]) - (ref[:, :2] - corner_a) @ down  # px above the margin
        inside = (pu > uu.min()) & (pu < uu.max()) & (above > 0)
        gap_at = np.interp(pu, uu[order], np.maximum(gaps[order], 0.0))
        w = np.where(inside, gap_at * (1 - _smoothstep(above / fade)), 0.0)
        out[:, :2] = w[:, None] * down
        out[upper] = ref[lower] - ref[upper]
        out[468:] = 0  # the irises stay: the lid covers them
        return out

    # ------------------------------------------------------------------ motion -> target mesh
    def _frames_of(self, motion: Motion, index: int | None) -> np.ndarray:
        """The motion's frames [F, 15] float64 (one frame when ``index`` is given), checked."""
        if not isinstance(motion, Motion):
            raise ValueError(f"motion must be an avdiff.video.motion.Motion, got {type(motion).__name__}")
        if index is not None:
            if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
                raise ValueError(f"the frame index must be an int, got {index!r}")
            if not -len(motion) <= index < len(motion):
                raise ValueError(f"frame {index} is out of range for a motion of {len(motion)} frames")
            motion = motion[int(index)]
        a = motion.as_array().astype(np.float64)
        bad = ~np.isfinite(a).all(axis=1)
        if bad.any():
            raise ValueError(
                f"the motion has non-finite values in {int(bad.sum())} frame(s) (first: {int(np.argmax(bad))}); "
                "fill frames without a face with Motion.interpolate_missing()"
            )
        if (a[:, FIELDS.index("scale")] <= 0).any():
            raise ValueError("the motion's scale must be positive")
        return a

    def _targets(self, a: np.ndarray) -> dict[str, np.ndarray]:
        """The expression's wanted measures per frame [F] from motion rows [F, 15]."""
        f = {name: a[:, i] for i, name in enumerate(FIELDS)}
        open_, closure = np.maximum(f["mouth_open"], 0.0), np.clip(f["lip_closure"], 0.0, 1.0)
        aperture = open_ * (1 - closure) + np.minimum(open_, (1 - closure) * CLOSED_APERTURE) * closure
        protrude = np.maximum(f["mouth_round"] - np.maximum(-f["mouth_width"], 0.0), 0.0)
        return {
            "aperture": aperture,
            "jaw": f["jaw"],
            "width": f["mouth_width"],
            "protrude": protrude,
            "eye_left": np.clip(f["eye_left"], 0, 1),
            "eye_right": np.clip(f["eye_right"], 0, 1),
            "brow_left": f["brow_left"],
            "brow_right": f["brow_right"],
        }

    def _expression(self, params: np.ndarray) -> np.ndarray:
        """Reference points moved by the parameters [F, P]: [F, 478, 3] px."""
        return self.reference + np.einsum("fp,pnc->fnc", params, self.basis)

    def _measure(self, pts: np.ndarray) -> dict[str, np.ndarray]:
        m = motion_from_landmarks(pts, self.reference)
        protrude = m.mouth_round - np.maximum(-m.mouth_width, 0.0)
        return {
            "aperture": m.mouth_open,
            "jaw": m.jaw,
            "width": m.mouth_width,
            "protrude": protrude,
            "eye_left": m.eye_left,
            "eye_right": m.eye_right,
            "brow_left": m.brow_left,
            "brow_right": m.brow_right,
        }

    def solve(self, motion: Motion, index: int | None = None) -> np.ndarray:
        """The mesh parameters float64 [F, P] (:data:`PARAMS`) whose deformed mesh measures as the motion's
        expression (frame ``index`` only when given). Raises ValueError as :meth:`target_points`."""
        want = self._targets(self._frames_of(motion, index))
        params = np.zeros((len(want["jaw"]), len(PARAMS)))
        state = {k: np.array(v, dtype=np.float64) for k, v in want.items()}  # the parameters, in measured units
        state["aperture"] = want["aperture"] - self.aperture
        names = ("jaw", "width", "protrude", "eye_left", "eye_right", "brow_left", "brow_right")
        for step in range(SOLVE_STEPS + 1):
            delta = state["aperture"]
            can_close = self.basis[1].any()
            params[:, 0] = np.maximum(delta, 0.0)
            params[:, 1] = np.clip(-delta, 0.0, self.aperture) if can_close else 0.0
            for name in names:
                params[:, PARAMS.index(name)] = state[name]
            params[:, 5:7] = np.clip(params[:, 5:7], 0.0, 1.0)
            if step == SOLVE_STEPS:
                break
            got = self._measure(self._expression(params))
            for name in ("aperture", *names):
                state[name] = state[name] + (want[name] - got[name])
        return params

    def _pose(self, pts: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Points [F, 478, 3] turned, scaled and shifted by the motion rows [F, 15]."""
        out = np.empty_like(pts)
        col = {name: i for i, name in enumerate(FIELDS)}
        for f in range(len(pts)):
            rot = rotation_from_euler(a[f, col["yaw"]], a[f, col["pitch"]], a[f, col["roll"]])
            shift = np.array([a[f, col["tx"]], a[f, col["ty"]], 0.0]) * self.size
            out[f] = a[f, col["scale"]] * (pts[f] - self.pivot) @ rot.T + self.pivot + shift
        return out

    def target_points(self, motion: Motion, index: int | None = None) -> np.ndarray:
        """The reference mesh moved by the motion: float64 [F, 478, 3] px ``(x, y, z)`` (one frame, [478, 3], when
        ``index`` is given). ``motion_from_landmarks`` of these against the photo's landmarks gives the motion back.

        Raises:
            ValueError: ``motion`` not a Motion, ``index`` out of range, non-finite motion values or a scale <= 0.
        """
        a = self._frames_of(motion, index)
        pts = self._pose(self._expression(self.solve(motion, index)), a)
        return pts[0] if index is not None else pts

    def target_landmarks(self, motion: Motion, index: int | None = None) -> np.ndarray:
        """:meth:`target_points` projected orthographically: float64 [478, 2] px (or [F, 478, 2] without
        ``index``)."""
        return self.target_points(motion, index)[..., :2]

    # ------------------------------------------------------------------ the warp
    def _setup_mesh(self) -> None:
        ref = self.reference
        xy = ref[:, :2]
        oval = xy[FACE_OVAL]
        centre = oval.mean(axis=0)
        self.ring = centre + RING * (oval - centre)  # [R, 2] px, fixed
        n, r = len(ref), len(FACE_OVAL)
        ring_tris = []
        for k in range(r):
            a, b = FACE_OVAL[k], FACE_OVAL[(k + 1) % r]
            ra, rb = n + k, n + (k + 1) % r
            ring_tris += [(a, b, rb), (a, rb, ra)]
        face_tris = _tessellation()
        mouth = _strip(_UPPER_INNER, _LOWER_INNER)
        eyes = _strip(LEFT_UPPER_LID, LEFT_LOWER_LID) + _strip(RIGHT_UPPER_LID, RIGHT_LOWER_LID)
        # drawing order: ring band, mouth interior, eye interiors (at their open positions), then the face
        self._tris = np.concatenate([np.array(ring_tris), np.array(mouth), np.array(eyes), face_tris]).astype(np.int64)
        self._n_under = len(ring_tris) + len(mouth) + len(eyes)
        self._eye_tris = slice(len(ring_tris) + len(mouth), self._n_under)
        self._source = np.concatenate([xy, self.ring])  # [V, 2] px
        self._area_sign = np.sign(_signed_area(self._source[face_tris]))  # the face's triangles as the photo has them
        height, width = self.photo.shape[:2]
        lo = np.floor(np.minimum(self.ring.min(axis=0), xy.min(axis=0))).astype(int)
        hi = np.ceil(np.maximum(self.ring.max(axis=0), xy.max(axis=0))).astype(int) + 1
        x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
        x1, y1 = min(int(hi[0]), width), min(int(hi[1]), height)
        self.roi = (y0, y1, x0, x1)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        self._xs, self._ys = xs.ravel(), ys.ravel()
        # the feather: 1 inside the ring's inner part, 0 on the ring and outside it, smooth between
        inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(inside, [np.round(self.ring - [x0, y0]).astype(np.int32)], 1)
        dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
        band = float(np.linalg.norm(self.ring - oval, axis=1).mean())
        self.feather = _smoothstep(dist / max(0.5 * band, 1.0)).astype(np.float32)
        self._feather3 = self.feather[..., None]

    def _maps(self, target: np.ndarray, target_open: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The backward map (source x, y float32 [h, w]) of the ROI for target landmarks [478, 2] px (the eyes'
        insides at ``target_open``), triangles drawn far to near by ``depth`` [478]."""
        y0, y1, x0, x1 = self.roi
        tgt = np.concatenate([target, self.ring])
        tgt_open = np.concatenate([target_open, self.ring])
        tris = self._tris
        corners = tgt[tris]  # [T, 3, 2]
        corners[self._eye_tris] = tgt_open[tris[self._eye_tris]]
        src = self._source[tris]
        # affine A [T, 2, 3] with A @ (x, y, 1) of a target corner = its source corner
        m = np.concatenate([corners, np.ones(corners.shape[:2] + (1,))], axis=2)  # [T, 3, 3]
        det = np.linalg.det(m)
        ok = np.abs(det) > 1e-6
        affine = np.zeros((len(tris) + 1, 2, 3))
        affine[:-1, 0, 0] = affine[:-1, 1, 1] = 1.0
        affine[:-1][ok] = np.linalg.solve(m[ok], src[ok]).transpose(0, 2, 1)
        affine[-1] = [[1, 0, 0], [0, 1, 0]]  # outside every triangle: the identity
        labels = np.full((y1 - y0, x1 - x0), -1, np.int32)
        fixed = 16.0
        pts = np.round((corners - [x0, y0]) * fixed).astype(np.int32)
        # the band, the mouth's and the eyes' insides first; then the face's triangles that turned away (their
        # signed area flipped: hidden by the head's own turn, drawn only where nothing else is), then the rest, far to
        # near
        order = np.arange(self._n_under).tolist()
        face = np.arange(self._n_under, len(tris))
        far_first = face[np.argsort(-depth[tris[face]].mean(axis=1), kind="stable")]
        flipped = self._area_sign[far_first - self._n_under] * _signed_area(corners[far_first]) < 0
        order += far_first[flipped].tolist() + far_first[~flipped].tolist()
        for t in order:
            if ok[t]:
                cv2.fillConvexPoly(labels, pts[t], int(t), lineType=cv2.LINE_8, shift=4)
        flat = labels.ravel()
        coef = affine.reshape(-1, 6).astype(np.float32)[flat]  # label -1 takes the last row
        map_x = coef[:, 0] * self._xs + coef[:, 1] * self._ys + coef[:, 2]
        map_y = coef[:, 3] * self._xs + coef[:, 4] * self._ys + coef[:, 5]
        # a pixel on the edge of a sliver triangle (its centre just outside it) would follow the sliver's steep affine
        # far outside its source: a speck of some other part of the photo (the collar under the jaw). Each pixel reads
        # within a pixel of its triangle's source corners
        lo = np.concatenate([src.min(axis=1) - 1.0, [[-np.inf, -np.inf]]]).astype(np.float32)[flat]
        hi = np.concatenate([src.max(axis=1) + 1.0, [[np.inf, np.inf]]]).astype(np.float32)[flat]
        map_x = np.clip(map_x, lo[:, 0], hi[:, 0])
        map_y = np.clip(map_y, lo[:, 1], hi[:, 1])
        shape = labels.shape
        return map_x.reshape(shape), map_y.reshape(shape)

    def _interior(self, target: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """The inside of the target inner-lip contour (:func:`~avdiff.video.mouth_crop.lip_interior`), its edge
        softened by :data:`EDGE_SOFTNESS` face sizes; float32 [h, w] in [0, 1] in its box ``(y0, y1, x0, x1)``."""
        return lip_interior(target[INNER_LIPS], self.photo.shape, EDGE_SOFTNESS * self.size)

    def render(
        self, motion: Motion, index: int, *, return_interior: bool = False, return_landmarks: bool = False
    ) -> np.ndarray | tuple:
        """Frame ``index`` of the photo moved by ``motion``: uint8 [H, W, 3]; with ``return_interior`` also the
        mouth's interior mask float32 [H, W] in [0, 1] (where the renderer drew its own cavity), with
        ``return_landmarks`` also the frame's :meth:`target_landmarks` float64 [478, 2] px, in that order (as
        ``numpy.unique``'s ``return_*`` flags).

        Raises:
            ValueError: as :meth:`target_points`.
        """
        a = self._frames_of(motion, index)
        params = self.solve(motion, index)
        return self._render(params, a, return_interior, return_landmarks)

    def frames(
        self, motion: Motion, *, return_interior: bool = False, return_landmarks: bool = False
    ) -> Iterator[np.ndarray | tuple]:
        """Every frame of ``motion`` in order (as :meth:`render`), the mesh solved for all frames at once."""
        a = self._frames_of(motion, None)
        params = self.solve(motion)
        for f in range(len(a)):
            yield self._render(params[f : f + 1], a[f : f + 1], return_interior, return_landmarks)

    def backward_map(self, motion: Motion, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Where each pixel of the renderer's box (:attr:`roi`) reads the photo in frame ``index`` of ``motion``: the
        photo's x and y, float32 [h, w] px each (what ``cv2.remap`` samples).

        Raises:
            ValueError: as :meth:`target_points`.
        """
        return self._target_maps(self.solve(motion, index), self._frames_of(motion, index))[:2]

    def _target_maps(self, params: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The backward map (x, y) of one frame's solved parameters and its motion row, and its target mesh [478, 3]."""
        expr = self._expression(params)
        open_params = params.copy()
        open_params[:, 5:7] = 0
        target = self._pose(expr, a)[0]
        target_open = self._pose(self._expression(open_params), a)[0]
        return (*self._maps(target[:, :2], target_open[:, :2], target[:, 2]), target)

    def _render(self, params: np.ndarray, a: np.ndarray, return_interior: bool, return_landmarks: bool):
        map_x, map_y, target = self._target_maps(params, a)
        y0, y1, x0, x1 = self.roi
        out = self.photo.copy()
        # bicubic: the whole face moves by fractions of a pixel, which bilinear sampling blurs (the freckles, lashes and
        # lip lines kept 0.59 of the photo's sharpness around the eyes and nose of the demo's example, 0.85 bicubic)
        warped = cv2.remap(self.photo, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        box = self.photo[y0:y1, x0:x1]
        blended = box + self._feather3 * (warped.astype(np.float32) - box)
        out[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        alpha, (my0, my1, mx0, mx1) = self._interior(target[:, :2])
        if alpha.size and alpha.max() > 0:
            depth = np.linspace(0.0, 1.0, my1 - my0, dtype=np.float32)[:, None, None]
            cavity = self.cavity_rgb.astype(np.float32) * (1.3 - 0.6 * depth)
            region = out[my0:my1, mx0:mx1].astype(np.float32)
            a3 = alpha[..., None]
            out[my0:my1, mx0:mx1] = np.clip(region * (1 - a3) + cavity * a3 + 0.5, 0, 255).astype(np.uint8)
        result = [out]
        if return_interior:
            interior = np.zeros(self.photo.shape[:2], np.float32)
            interior[my0:my1, mx0:mx1] = alpha
            result.append(interior)
        if return_landmarks:
            result.append(target[:, :2])
        return result[0] if len(result) == 1 else tuple(result)

    def neutral(self, num_frames: int = 1) -> Motion:
        """The zero motion of this photo: its own ``mouth_open`` (and the closure that goes with it), scale 1,
        everything else 0, ``num_frames`` frames."""
        fields = {name: np.zeros(num_frames, np.float32) for name in FIELDS}
        fields["mouth_open"][:] = self.aperture
        fields["lip_closure"][:] = closure_from_aperture(self.aperture)
        fields["scale"][:] = 1
        return Motion.from_dict(fields)


__all__ = ["FaceRenderer"]
