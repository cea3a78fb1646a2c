"""A landmark-driven mouth warp: open a face photo's mouth by a given amount, with no learned weights.

The warp works in the face's own frame: ``u`` along the eye line and ``v`` perpendicular to it (down the face), with
``v = 0`` on the line where the lips meet. Opening the mouth by ``h`` px moves the lower lip and the jaw down by up to
``h`` (the chin follows, the neck below it stays) and the upper lip up by a quarter of that; the lens-shaped gap
that opens between the lips is filled with a dark mouth interior whose colour is taken from the photo's own lips (a
grey photo gets a grey mouth, not a red one). The displacement fades to zero before the edges of the box it is
computed in and over a long stretch of neck below the chin, so no seam shows where the warped box meets the photo
and the shadow under the jaw is stretched, not crushed into a line. Everything is a backward map for
``cv2.remap``, computed only in that box around the lower face.

This drives the synthetic speech–video pairs (whose ground-truth aperture is therefore known) and the model-free
talking-head baseline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from avdiff.video.face import CHIN, INNER_LIP_PAIRS, MOUTH_LEFT, MOUTH_RIGHT, NOSE_TIP, OUTER_LIPS, Face

logger = logging.getLogger(__name__)

# Inner-lip corners (mediapipe mesh): the ends of the line where the lips meet.
_INNER_CORNERS = (78, 308)
_LOWER_OUTER_LIP = 17
_UPPER_SHARE = 0.25  # the upper lip moves up by this fraction of the opening
_CAVITY_SHADE = 0.3  # the mouth interior is the lips' median colour times this (lighter under the upper lip)
_NECK_STRETCH = 3.75  # below the chin the drop fades over at least this many openings: a smoothstep of slope
# at most 1.5 / 3.75 = 0.4 opening per px, so the neck is squeezed by at most 40 % (never folded)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@dataclass
class MouthGeometry:
    """The mouth of one face in its own frame (pixels of the image the face was found in).

    Attributes:
        origin: [2] px, the midpoint of the mouth corners.
        e_u, e_v: [2] unit vectors along the eye line and down the face.
        half_width: half the distance between the mouth corners, px.
        lip_line_u, lip_line_v: where the lips meet, as samples of ``v`` against ``u`` (sorted by ``u``), px.
        lip_thickness: inner to outer edge of the lower lip, px.
        chin_v: ``v`` of the chin, px.
        nose_v: ``v`` of the nose tip (negative), px.
        pair_u: ``u`` of each inner-lip landmark pair, px [P].
        base_gap: the gap of each inner-lip pair in the photo as given, px [P].
        face_size: the face's eye-to-mouth distance, px.
    """

    origin: np.ndarray
    e_u: np.ndarray
    e_v: np.ndarray
    half_width: float
    lip_line_u: np.ndarray
    lip_line_v: np.ndarray
    lip_thickness: float
    chin_v: float
    nose_v: float
    pair_u: np.ndarray
    base_gap: np.ndarray
    face_size: float

    @classmethod
    def from_face(cls, face: Face) -> MouthGeometry:
        lm = face.landmarks.astype(np.float64)
        e_u = face.right_eye - face.left_eye
        e_u = e_u / np.linalg.norm(e_u)
        e_v = np.array([-e_u[1], e_u[0]])
        origin = lm[[MOUTH_LEFT, MOUTH_RIGHT]].mean(axis=0)

        def uv(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            d = np.atleast_2d(points) - origin
            return d @ e_u, d @ e_v

        upper = np.array([p for p, _ in INNER_LIP_PAIRS])
        lower = np.array([q for _, q in INNER_LIP_PAIRS])
        uu, vu = uv(lm[upper])
        ul, vl = uv(lm[lower])
        cu, cv = uv(lm[list(_INNER_CORNERS)])
        line_u = np.concatenate([(uu + ul) / 2, cu])
        line_v = np.concatenate([(vu + vl) / 2, cv])
        order = np.argsort(line_u)
        corners_u, _ = uv(lm[[MOUTH_LEFT, MOUTH_RIGHT]])
        _, lip_outer_v = uv(lm[_LOWER_OUTER_LIP])
        _, chin_v = uv(lm[CHIN])
        _, nose_v = uv(lm[NOSE_TIP])
        return cls(
            origin=origin,
            e_u=e_u,
            e_v=e_v,
            half_width=float(np.abs(corners_u).max()),
            lip_line_u=line_u[order],
            lip_line_v=line_v[order],
            lip_thickness=float(max(2.0, lip_outer_v[0] - vl.max())),
            chin_v=float(chin_v[0]),
            nose_v=float(nose_v[0]),
            pair_u=(uu + ul) / 2,
            base_gap=np.maximum(vl - vu, 0.0),
            face_size=face.size,
        )

    def opening_profile(self, u: np.ndarray, height_px: float) -> np.ndarray:
        """Gap between the lips at ``u`` (px) for a centre opening of ``height_px``: a lens, 0 at the corners."""
        return height_px * (1 + _UPPER_SHARE) * self._lens(u)

    def _lens(self, u: np.ndarray) -> np.ndarray:
        """Shape of the gap along the mouth, in [0, 1]: 1 at the centre, 0 just inside the corners."""
        return np.clip(1 - (np.asarray(u) / (0.85 * self.half_width)) ** 2, 0, 1) ** 0.6

    def aperture(self, height_px: float) -> float:
        """The normalised aperture a mouth opened by ``height_px`` shows (mean inner-lip gap / face size).

        The same quantity ``avdiff.metrics.mouth.aperture_from_landmarks`` measures, so it is the ground truth of a
        warped frame.
        """
        gaps = self.base_gap + self.opening_profile(self.pair_u, height_px)
        return float(gaps.mean() / self.face_size)


class MouthWarper:
    """Open the mouth of one face photo by any amount, frame after frame.

    Args:
        image: uint8 [H, W, 3] RGB photo.
        face: the face in it (from ``avdiff.video.face.detect_face``).
        max_open: the largest opening, as a fraction of the face size (eye-to-mouth distance).
    """

    def __init__(self, image: np.ndarray, face: Face, max_open: float = 0.4):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
        if not 0 < max_open <= 1.5:
            raise ValueError(f"max_open must be in (0, 1.5], got {max_open}")
        self.image = image
        self.geometry = MouthGeometry.from_face(face)
        self.max_open_px = max_open * self.geometry.face_size
        g = self.geometry
        self._jaw_u = 1.6 * g.half_width  # the jaw's width (a gaussian along u)
        self._reach_u = 2.2 * g.half_width + self.max_open_px  # the displacement is 0 beyond this |u|
        self._chin = g.chin_v - g.lip_line_v.mean()  # lip line to chin along v
        self._neck = max(0.6 * max(self._chin, 1.0), _NECK_STRETCH * self.max_open_px)
        self.cavity_rgb = lip_colour(image, face) * _CAVITY_SHADE
        self._roi = self._region(image.shape[:2])
        self._grid = self._roi_grid()

    def _region(self, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1): a box around the lower face, generous enough for the jaw's displacement."""
        g = self.geometry
        reach = self._reach_u + 1
        down = g.chin_v + self._neck + self.max_open_px + 1
        corners = [g.origin + su * reach * g.e_u + sv * g.e_v for su in (-1, 1) for sv in (g.nose_v, down)]
        corners = np.array(corners)
        (x0, y0), (x1, y1) = np.floor(corners.min(axis=0)), np.ceil(corners.max(axis=0))
        h, w = shape
        return int(max(0, y0)), int(min(h, y1 + 1)), int(max(0, x0)), int(min(w, x1 + 1))

    def _roi_grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        y0, y1, x0, x1 = self._roi
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        g = self.geometry
        du, dv = xs - g.origin[0], ys - g.origin[1]
        u = du * g.e_u[0] + dv * g.e_u[1]
        v = du * g.e_v[0] + dv * g.e_v[1] - np.interp(du * g.e_u[0] + dv * g.e_u[1], g.lip_line_u, g.lip_line_v)
        return xs, ys, u, v

    def aperture(self, amount: float) -> float:
        """Ground-truth normalised aperture of the frame ``warp(amount)`` returns."""
        return self.geometry.aperture(float(np.clip(amount, 0, 1)) * self.max_open_px)

    def warp(self, amount: float) -> np.ndarray:
        """The photo with the mouth opened by ``amount`` in [0, 1] of ``max_open``: uint8 [H, W, 3]."""
        return self.warp_with_gap(amount)[0]

    def warp_with_gap(self, amount: float) -> tuple[np.ndarray, np.ndarray]:
        """The warped photo uint8 [H, W, 3] and where the mouth's interior shows in it, float32 [H, W] in [0, 1]
        (the opened gap between the lips; 0 elsewhere)."""
        amount = float(np.clip(amount, 0.0, 1.0))
        out = self.image.copy()
        gap = np.zeros(self.image.shape[:2], np.float32)
        if amount <= 0:
            return out, gap
        h = amount * self.max_open_px
        xs, ys, u, v = self._grid
        g = self.geometry
        below = v >= 0
        # Forward maps: a source point at v_p moves to v_p + down(v_p) below the lip line, v_p - up(v_p) above it.
        # Invert them per output pixel by fixed-point iteration (both are contractions: see the weights).
        v_src = v.copy()
        for _ in range(6):
            v_src = np.where(
                below,
                v - h * self._jaw_weight(u, np.maximum(v_src, 0)),
                v + _UPPER_SHARE * h * self._upper_weight(u, np.minimum(v_src, 0)),
            )
        # the gap: output points whose source would lie across the lip line
        edge = np.where(below, -v_src, v_src)  # > 0 inside the gap, px
        alpha = np.clip(edge, 0.0, 1.0)[..., None]
        shift = v_src - v  # px along e_v
        src_x = (xs + shift * g.e_v[0]).astype(np.float32)
        src_y = (ys + shift * g.e_v[1]).astype(np.float32)
        warped = cv2.remap(self.image, src_x, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        top = -_UPPER_SHARE * h * g._lens(u)
        depth = np.clip((v - top) / np.maximum(h * (1 + _UPPER_SHARE) * g._lens(u), 1e-6), 0, 1)[..., None]
        cavity = self.cavity_rgb * (1.3 - 0.6 * depth)  # lighter under the upper lip, darker towards the back
        roi = warped * (1 - alpha) + cavity * alpha
        y0, y1, x0, x1 = self._roi
        out[y0:y1, x0:x1] = np.clip(roi, 0, 255).round().astype(np.uint8)
        gap[y0:y1, x0:x1] = alpha[..., 0]
        return out, gap

    def _jaw_weight(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """How much of the opening a source point ``v`` px below the lip line moves down, in [0, 1].

        At the lip line it follows the lens (0 at the corners), so the gap is exactly the lens. Deeper it widens to
        the jaw, over a depth long enough (``1.5 * lip_thickness + 2 * max_open_px``) that the map never folds.
        Below the chin it fades out over the neck (at least ``_NECK_STRETCH`` openings, so the shadow under the jaw
        is squeezed by at most 40 %), and to the sides it reaches 0 before the edge of the warped box: no seam.
        """
        g = self.geometry
        depth = _smoothstep(v / (1.5 * g.lip_thickness + 2 * self.max_open_px))
        lens = g._lens(u)
        jaw = np.exp(-((u / self._jaw_u) ** 2))
        fade = 1 - _smoothstep((v - self._chin) / self._neck)
        sides = 1 - _smoothstep((np.abs(u) - self._jaw_u) / (self._reach_u - self._jaw_u))
        return ((1 - depth) * lens + depth * np.maximum(jaw, lens)) * fade * sides

    def _upper_weight(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """How much of the upper share a source point ``v`` px above the lip line (v < 0) moves up: the upper lip,
        fading out towards the nose."""
        g = self.geometry
        to_nose = max(-g.nose_v, 1.0)
        return g._lens(u) * (1 - _smoothstep(-v / (0.7 * to_nose)))


def lip_colour(image: np.ndarray, face: Face) -> np.ndarray:
    """The colour of the lips of ``face`` in ``image`` (uint8 [H, W, 3]): the median RGB of the darker half of the
    pixels inside the outer-lip outline (the lips, not teeth that a smile shows), float [3]. The mouth interior is
    drawn as a darker shade of it, so a grey photo gets a grey mouth."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(face.landmarks[OUTER_LIPS]).astype(np.int32)], 1)
    if not mask.any():  # a degenerate outline (a tiny face): the pixels at the landmarks themselves
        xy = np.clip(np.round(face.landmarks[OUTER_LIPS]).astype(int), 0, [image.shape[1] - 1, image.shape[0] - 1])
        return np.median(image[xy[:, 1], xy[:, 0]].astype(np.float64), axis=0)
    pixels = image[mask.astype(bool)].astype(np.float64)  # (P, 3)
    luma = pixels @ np.array([0.299, 0.587, 0.114])
    return np.median(pixels[luma <= np.median(luma)], axis=0)
