"""The inside of a synthetic mouth: teeth and tongue drawn from the phonemes, the truth the mouth painter learns.

The face renderer (:class:`~avdiff.video.render.FaceRenderer`) moves a photo by a motion, but where the lips part the
photo has nothing true to show, so the renderer fills the inside of the inner-lip contour with a dark cavity. The
synthetic talking faces need something there to learn from: :func:`draw_mouth_interior` draws, inside that contour,

* the **upper teeth**: a band hanging from the upper inner lip, the incisors in the middle and narrower teeth towards
  the corners (a thin dark gap between teeth), shaded darker towards the corners and away from the lip;
* the **lower teeth**: a lower band standing on the lower inner lip, in the shadow of the upper jaw, shown only when
  the jaw drops far enough;
* the **tongue**: a rounded mass behind the lower teeth, raised to the upper teeth for the alveolar and dental
  consonants (t, d, n, l, s, z, th: the ``teeth`` viseme class of :mod:`avdiff.audio.visemes`) and lying low for the
  open vowels. :func:`tongue_track` gives its height per video frame from the phoneme events.

What is drawn is a function of the mouth's shape (the inner-lip points of the frame) and of the tongue's height, and
nothing else: the painter can read the first from the frame around the hole and must hear the second in the audio.
It is drawn over whatever was inside the contour and blended by the renderer's soft interior mask, so the lips
themselves are untouched. :func:`toothed_frames` renders a motion with it, frame by frame.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np

from avdiff.audio.clock import FpsLike, FrameClock
from avdiff.audio.phonemes import PhonemeEvent
from avdiff.audio.visemes import viseme_of
from avdiff.video.face import INNER_LIPS
from avdiff.video.motion import Motion
from avdiff.video.render import FaceRenderer

logger = logging.getLogger(__name__)

# tongue height per viseme class: 0 lying behind the lower teeth, 1 touching the upper teeth
TONGUE_HEIGHT = {
    "teeth": 1.0,
    "neutral": 0.5,
    "labiodental": 0.3,
    "spread": 0.35,
    "rounded": 0.2,
    "closed": 0.2,
    "open": 0.0,
    "rest": 0.2,
}
TONGUE_SMOOTH_FRAMES = 1.0  # the tongue moves smoothly: a Gaussian of this many frames
UPPER_TEETH = 0.16  # the upper teeth's visible height, in mouth widths (corner to corner)
LOWER_TEETH = 0.10  # the lower teeth's
TEETH_SPAN = (0.14, 0.86)  # the teeth cover this part of the mouth's width (the corners show the cavity)
# tooth edges along the width (the incisors are the widest, in the middle), as fractions of the mouth's width
TOOTH_EDGES = (0.23, 0.32, 0.41, 0.5, 0.59, 0.68, 0.77)
TEETH_RGB = np.array([236.0, 230.0, 214.0], np.float32)
TONGUE_RGB = np.array([178.0, 86.0, 94.0], np.float32)
GAP_WIDTH = 0.012  # mouth widths: the dark line between two teeth


def tongue_track(events: Sequence[PhonemeEvent], num_frames: int, fps: FpsLike, sample_rate: int) -> np.ndarray:
    """The tongue's height per video frame, float32 [num_frames] in [0, 1] (:data:`TONGUE_HEIGHT` of the viseme
    class of the phoneme sounding at the frame's middle; between and past the phonemes, ``rest``), smoothed over
    :data:`TONGUE_SMOOTH_FRAMES`.

    Raises:
        ValueError: ``num_frames`` < 0.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    clock = FrameClock(fps, sample_rate)
    middles = np.array([(clock.frame_start(k) + clock.frame_start(k + 1)) / 2 for k in range(num_frames)])
    heights = np.full(num_frames, TONGUE_HEIGHT["rest"], np.float64)
    for event in events:
        lo, hi = np.searchsorted(middles, [event.start_sample, event.end_sample])
        heights[lo:hi] = TONGUE_HEIGHT[viseme_of(event.phoneme)]
    if num_frames > 1 and TONGUE_SMOOTH_FRAMES > 0:
        k = np.arange(-3, 4)
        kernel = np.exp(-0.5 * (k / TONGUE_SMOOTH_FRAMES) ** 2)
        padded = np.pad(heights, 3, mode="edge")
        heights = np.convolve(padded, kernel / kernel.sum(), mode="valid")
    return np.clip(heights, 0.0, 1.0).astype(np.float32)


def _line_at(xs: np.ndarray, ys: np.ndarray, u: np.ndarray) -> np.ndarray:
    order = np.argsort(xs)
    return np.interp(u, xs[order], ys[order])


def draw_mouth_interior(frame: np.ndarray, inner_lips: np.ndarray, interior: np.ndarray, tongue: float) -> np.ndarray:
    """Teeth and tongue drawn inside the inner-lip contour of ``frame`` (see the module doc).

    Args:
        frame: uint8 [H, W, 3], the rendered frame (its mouth's inside is the renderer's cavity).
        inner_lips: float [20, 2] px, the frame's inner-lip contour in :data:`avdiff.video.face.INNER_LIPS` order
            (the left corner, the upper lip, the right corner, the lower lip).
        interior: float [H, W] in [0, 1], the renderer's mask of the inside of that contour
            (``FaceRenderer.render(..., return_interior=True)``); what is drawn is blended by it.
        tongue: the tongue's height in [0, 1] (:func:`tongue_track`).

    Returns:
        a new uint8 [H, W, 3] frame, equal to ``frame`` wherever ``interior`` is 0.

    Raises:
        ValueError: shapes that do not match.
    """
    frame, inner_lips, interior = np.asarray(frame), np.asarray(inner_lips, np.float64), np.asarray(interior)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
    if inner_lips.shape != (20, 2):
        raise ValueError(f"inner_lips must be [20, 2], got {inner_lips.shape}")
    if interior.shape != frame.shape[:2]:
        raise ValueError(f"interior must be [H, W] = {frame.shape[:2]}, got {interior.shape}")
    out = frame.copy()
    ys, xs = np.nonzero(interior > 0)
    if ys.size == 0:
        return out
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    left, right = inner_lips[0], inner_lips[10]
    axis = right - left
    width = float(np.hypot(*axis))
    if width < 1e-6:
        return out
    e_u, e_v = axis / width, np.array([-axis[1], axis[0]]) / width  # along the mouth; down (image y grows down)
    gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    d = np.stack([gx - left[0], gy - left[1]], axis=-1)
    u, v = d @ e_u / width, d @ e_v / width  # u: 0 at the left corner, 1 at the right; v: mouth widths down
    lip = (inner_lips - left) @ np.stack([e_u, e_v], axis=1) / width  # the contour in (u, v)
    upper, lower = lip[:11], lip[[0, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10]]
    v_up, v_low = _line_at(upper[:, 0], upper[:, 1], u), _line_at(lower[:, 0], lower[:, 1], u)
    gap = v_low - v_up  # the opening at u, mouth widths
    region = out[y0:y1, x0:x1].astype(np.float32)
    paint = region.copy()
    across = np.clip(np.abs(u - 0.5) / 0.5, 0, 1)  # 0 in the middle, 1 at the corners
    span = (u > TEETH_SPAN[0]) & (u < TEETH_SPAN[1])
    # the tongue: an ellipse behind the lower teeth, its top from the lower lip up towards the upper teeth
    top = v_low - (0.45 + 0.55 * float(np.clip(tongue, 0, 1))) * np.maximum(gap - 0.5 * UPPER_TEETH, 0.0)
    tongue_in = (v > top + 0.6 * (2 * (u - 0.5)) ** 2 * np.maximum(v_low - top, 0)) & (np.abs(u - 0.5) < 0.38)
    shade = 0.8 + 0.2 * np.clip((v - top) / np.maximum(v_low - top, 1e-3), 0, 1)
    paint[tongue_in] = (TONGUE_RGB * (0.85 - 0.25 * across[..., None]) * shade[..., None])[tongue_in]
    # the lower teeth, shown where the jaw has dropped past the upper teeth
    low_in = span & (v > v_low - LOWER_TEETH) & (gap > UPPER_TEETH + 0.02)
    teeth_shade = 1.0 - 0.3 * across**2
    paint[low_in] = (TEETH_RGB * 0.82 * teeth_shade[..., None])[low_in]
    # the upper teeth hang from the upper lip, shading away from it
    up_in = span & (v < v_up + UPPER_TEETH)
    depth = np.clip((v - v_up) / UPPER_TEETH, 0, 1)
    paint[up_in] = (TEETH_RGB * (teeth_shade * (1.0 - 0.1 * depth))[..., None])[up_in]
    # the gaps between teeth
    for edge in TOOTH_EDGES:
        line = (np.abs(u - edge) < GAP_WIDTH / 2) & (up_in | low_in)
        paint[line] *= 0.75
    alpha = interior[y0:y1, x0:x1, None].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(region + alpha * (paint - region) + 0.5, 0, 255).astype(np.uint8)
    return out


def toothed_frames(
    renderer: FaceRenderer, motion: Motion, events: Sequence[PhonemeEvent], fps: FpsLike, sample_rate: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Render ``motion`` with teeth and tongue drawn from the phonemes, one frame at a time.

    Args:
        renderer: the photo's :class:`~avdiff.video.render.FaceRenderer`.
        motion: the motion to render (``len(motion)`` frames at ``fps``).
        events: the speech's phoneme events (their positions in samples at ``sample_rate``), for :func:`tongue_track`.

    Yields:
        per frame: the truth (uint8 [H, W, 3], :func:`draw_mouth_interior` over the rendered frame), the rendered
        frame (uint8 [H, W, 3], the renderer's dark cavity), its interior mask (float [H, W] in [0, 1]) and its
        landmarks (float [478, 2] px).
    """
    tongue = tongue_track(events, len(motion), fps, sample_rate)
    frames = renderer.frames(motion, return_interior=True, return_landmarks=True)
    for f, (frame, interior, landmarks) in enumerate(frames):
        yield draw_mouth_interior(frame, landmarks[INNER_LIPS], interior, float(tongue[f])), frame, interior, landmarks


__all__ = ["TONGUE_HEIGHT", "draw_mouth_interior", "tongue_track", "toothed_frames"]
