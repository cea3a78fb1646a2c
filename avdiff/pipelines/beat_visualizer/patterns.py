"""Generative Disco's design patterns as per-frame image operations, driven by the curves of the music.

Each frame of an interval ``[a, b)`` is made from its base picture (the in-between of the start and end keyframes at
the position ``t(f)``, or the start keyframe for a hold) and these inputs, all per frame from the one clock:

* ``t``: the position (:func:`avdiff.audio.curves.curve_position`), 0 on the interval's first frame;
* ``u``: the time through the interval, ``(f - a) / (b - a)``, linear whatever the music does;
* ``e``: the pulse envelope (:func:`avdiff.audio.curves.curve_envelope`, by default 1 on each beat's frame,
  decaying with ``release_s``).

Transitions (every effect is zero at ``t = 0`` and ``t = 1``, so an interval starts on its start keyframe and runs
into its end keyframe, which is the next interval's start):

* ``"subject"``: the in-between alone (A -> B);
* ``"color"``: the in-between with its hue turned by ``hue_degrees * t`` (a full turn by default: the palette
  shifts on every step of the curve, on the beats in "beats" mode, and lands back on B's own colours);
* ``"style"``: the in-between blended with a stylised version of itself (posterised colours, inked edges) by
  ``sin(pi t)``: the look sweeps in and out between A and B;
* ``"time"``: night falls and lifts across the interval: the in-between darkened, cooled and desaturated by
  ``sin(pi t)``: A by day, night half-way, B as it is.

Holds (the start keyframe; the end keyframe is where the next interval takes over, a cut on its first frame):

* ``"drift"``: a slow push-in and pan with ``u``: zoom ``1 + drift * u``, the centre moving ``drift / 2`` of the
  frame;
* ``"pulse"``: emphasis on the beats: zoom ``1 + zoom * e`` and a flash ``flash * e`` towards white.

With a diffusion source, colour, style and time can also live in the prompts (``"a city, neon pink"`` as the end
keyframe); the pixel effects work for every source alike, keyframe images included.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from avdiff.pipelines.beat_visualizer.timeline import HOLDS, PATTERNS

logger = logging.getLogger(__name__)

# RGB <-> YIQ (NTSC): a hue turn is a rotation of the (I, Q) chroma plane.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float64)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


@dataclass(frozen=True)
class PatternSettings:
    """The strength of each pattern's effect.

    Attributes:
        hue_degrees: ``"color"``: the hue turn across an interval, degrees (360: a full turn).
        style: ``"style"``: the stylised look's weight at its peak, [0, 1].
        night: ``"time"``: how dark the night gets at its peak, [0, 1].
        drift: ``"drift"``: the push-in over a hold (0.15: 15 % closer at its end), [0, 1].
        zoom: ``"pulse"``: the zoom on a beat (0.08: 8 % closer), [0, 1].
        flash: ``"pulse"``: the flash towards white on a beat, [0, 1].
    """

    hue_degrees: float = 360.0
    style: float = 0.85
    night: float = 0.75
    drift: float = 0.15
    zoom: float = 0.08
    flash: float = 0.25

    def check(self) -> PatternSettings:
        """Raise a ValueError naming the field and its value when out of range; returns self."""
        for name, value in asdict(self).items():
            hi = 3600.0 if name == "hue_degrees" else 1.0
            lo = -hi if name == "hue_degrees" else 0.0
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or not (lo <= value <= hi)
            ):
                raise ValueError(f"{name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
        return self


def apply_pattern(
    pattern: str, base: np.ndarray, t: float, u: float, e: float, settings: PatternSettings
) -> np.ndarray:
    """One frame of ``pattern``: float32 [H, W, 3] in [0, 1] from the base picture (same form).

    Args:
        pattern: one of :data:`~avdiff.pipelines.beat_visualizer.timeline.PATTERNS`.
        base: the in-between (transitions) or the start keyframe (holds), float32 [H, W, 3] in [0, 1].
        t: the position in the interval; u: the time through it; e: the pulse envelope (all in [0, 1]).
        settings: the effects' strengths.
    """
    if pattern == "subject":
        return base
    if pattern == "color":
        return hue_rotate(base, settings.hue_degrees * t)
    if pattern == "style":
        w = settings.style * math.sin(math.pi * t)
        return base if w <= 0 else base + (stylize(base) - base) * np.float32(w)
    if pattern == "time":
        return nightfall(base, settings.night * math.sin(math.pi * t))
    if pattern == "drift":
        return zoom(base, 1.0 + settings.drift * u, pan=(0.5 * settings.drift * u, 0.25 * settings.drift * u))
    if pattern == "pulse":
        out = zoom(base, 1.0 + settings.zoom * e) if settings.zoom * e > 0 else base
        return flash(out, settings.flash * e)
    raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")


def is_hold(pattern: str) -> bool:
    return pattern in HOLDS


def hue_rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """The hue of every pixel turned by ``degrees`` (a rotation of the YIQ chroma plane; luma kept): float32
    [H, W, 3] in [0, 1]."""
    if degrees % 360 == 0:
        return image
    a = math.radians(degrees)
    turn = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    m = (_YIQ_TO_RGB @ turn @ _RGB_TO_YIQ).astype(np.float32)  # (3, 3) on RGB
    return np.clip(image @ m.T, 0.0, 1.0)


def stylize(image: np.ndarray, levels: int = 5) -> np.ndarray:
    """A poster look: colours quantised to ``levels`` per channel, edges inked dark. float32 [H, W, 3] in [0, 1]."""
    poster = np.round(image * (levels - 1)) / (levels - 1)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    edges = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3))
    ink = np.clip(edges * 2.0, 0.0, 1.0)[..., None]
    return (poster * (1.0 - 0.85 * ink)).astype(np.float32)


def nightfall(image: np.ndarray, amount: float) -> np.ndarray:
    """Night by ``amount`` in [0, 1]: darker (to 25 % at 1), bluer, less saturated, with a vignette."""
    if amount <= 0:
        return image
    h, w = image.shape[:2]
    gray = image.mean(axis=-1, keepdims=True)
    x = image + (gray - image) * np.float32(0.5 * amount)  # desaturate
    x = x * np.asarray([1 - 0.35 * amount, 1 - 0.2 * amount, 1 + 0.1 * amount], dtype=np.float32)  # cooler
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xx - (w - 1) / 2) / max(1, w / 2), (yy - (h - 1) / 2) / max(1, h / 2)) / math.sqrt(2)
    vignette = 1.0 - 0.5 * amount * r[..., None] ** 2
    return np.clip(x * np.float32(1 - 0.75 * amount) * vignette, 0.0, 1.0).astype(np.float32)


def zoom(image: np.ndarray, scale: float, pan: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """``image`` magnified ``scale`` (>= 1) about its centre moved by ``pan`` (fractions of the frame, x and y),
    bilinear, edges reflected: float32 [H, W, 3]."""
    if scale == 1.0 and pan == (0.0, 0.0):
        return image
    h, w = image.shape[:2]
    cx, cy = (w - 1) / 2 + pan[0] * w / 2, (h - 1) / 2 + pan[1] * h / 2
    matrix = np.float32([[scale, 0, (w - 1) / 2 - scale * cx], [0, scale, (h - 1) / 2 - scale * cy]])
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def flash(image: np.ndarray, amount: float) -> np.ndarray:
    """Towards white by ``amount`` in [0, 1] (a screen blend: highlights move least)."""
    if amount <= 0:
        return image
    return image + (1.0 - image) * np.float32(amount)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [H, W, 3] in [0, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
