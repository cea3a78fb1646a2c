"""Drawing the scene objects: one small class per word, each painting an RGBA layer per frame with OpenCV.

An object paints only into its own :class:`Layer` (colour plus an opacity per pixel); the composer blends the layers
over the background in depth order and labels every pixel with the topmost object that covers it. So the mask of an
object is, by construction, exactly the set of pixels it changed. Drawing uses no anti-aliasing (a pixel is either
covered or not), with sub-pixel coordinates (OpenCV's ``shift``) so slow motions still move pixels.

Sounding objects move with their loudness envelope ``env`` (float [F] in [0, 1]): flame height, wave amplitude, rain
density, lightning and cloud brightness, bird speed, car bounce and exhaust, bell swing, grass sway. Silent objects
(sun, moon, mountain, house) paint the same pixels in every frame.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np

from avdiff.data.scenes.vocabulary import FPS

logger = logging.getLogger(__name__)

_SHIFT = 3  # OpenCV fixed-point bits: coordinates in 1/8 pixel
_ONE = 1 << _SHIFT


def _fx(value: float) -> int:
    return int(round(value * _ONE))


def _pts(points) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


class Layer:
    """One object's paint for one frame: colour float32 [H, W, 3] (0..255) and opacity float32 [H, W] (0 = not
    covered). Later strokes replace earlier ones where they overlap."""

    def __init__(self, size: int):
        self.rgb = np.zeros((size, size, 3), np.float32)
        self.alpha = np.zeros((size, size), np.float32)
        self._mask = np.zeros((size, size), np.uint8)

    def _paint(self, colour, alpha: float) -> None:
        sel = self._mask > 0
        self.rgb[sel] = colour
        self.alpha[sel] = alpha
        self._mask[:] = 0

    def poly(self, points, colour, alpha: float = 1.0) -> None:
        cv2.fillPoly(self._mask, [_pts(points)], 255, cv2.LINE_8, _SHIFT)
        self._paint(colour, alpha)

    def circle(self, centre, radius: float, colour, alpha: float = 1.0) -> None:
        cv2.circle(self._mask, (_fx(centre[0]), _fx(centre[1])), max(_fx(radius), 1), 255, -1, cv2.LINE_8, _SHIFT)
        self._paint(colour, alpha)

    def ellipse(self, centre, axes, colour, alpha: float = 1.0) -> None:
        cv2.ellipse(
            self._mask,
            (_fx(centre[0]), _fx(centre[1])),
            (_fx(axes[0]), _fx(axes[1])),
            0,
            0,
            360,
            255,
            -1,
            cv2.LINE_8,
            _SHIFT,
        )
        self._paint(colour, alpha)

    def lines(self, points, colour, thickness: int = 1, alpha: float = 1.0, clip: np.ndarray | None = None) -> None:
        """An open polyline; with ``clip`` (bool [H, W]) only its pixels inside ``clip``."""
        cv2.polylines(self._mask, [_pts(points)], False, 255, thickness, cv2.LINE_8, _SHIFT)
        if clip is not None:
            self._mask[~clip] = 0
        self._paint(colour, alpha)

    def rect(self, x0: float, y0: float, x1: float, y1: float, colour, alpha: float = 1.0) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], colour, alpha)

    def erase_circle(self, centre, radius: float) -> None:
        cv2.circle(self._mask, (_fx(centre[0]), _fx(centre[1])), max(_fx(radius), 1), 255, -1, cv2.LINE_8, _SHIFT)
        self.alpha[self._mask > 0] = 0.0
        self._mask[:] = 0

    @property
    def covered(self) -> np.ndarray:
        return self.alpha > 0


class SceneObjectDrawer:
    """Base class: the per-clip appearance of one object (drawn from ``rng`` once) and its per-frame painting.

    Args:
        rng: the clip's appearance RNG (each object draws its own numbers from it in a fixed order).
        x: the slot's centre, pixels. y: the object's anchor (bottom for ground objects, centre for sky ones).
        scale: size factor (about 1). colour: RGB of the object's colour word, or None.
        envelope: float [F] in [0, 1], loudness per frame (ones for silent objects).
        shade: light factor of non-luminous surfaces (1 by day, less at sunset and night).
        context: scene facts some objects need (``horizon``, ``sky``).
    """

    def __init__(
        self,
        rng: np.random.Generator,
        x: float,
        y: float,
        scale: float,
        colour,
        envelope: np.ndarray,
        shade: float,
        context: dict,
    ):
        self.x, self.y, self.s, self.env, self.shade, self.context = x, y, scale, envelope, shade, context
        self.colour = None if colour is None else np.asarray(colour, np.float32)
        self.setup(rng)

    def c(self, rgb) -> np.ndarray:
        """A surface colour under the scene's light."""
        return np.asarray(rgb, np.float32) * self.shade

    def setup(self, rng: np.random.Generator) -> None:  # per-clip numbers
        pass

    def draw(self, layer: Layer, f: int) -> None:
        raise NotImplementedError


def _jitter(rng: np.random.Generator, rgb, amount: float = 8.0) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


class Campfire(SceneObjectDrawer):
    """Crossed logs and a flame whose height follows the envelope, with three flickering tongues."""

    def setup(self, rng):
        F = len(self.env)
        self.flicker = rng.uniform(0.55, 1.0, (F, 3))
        self.sway = rng.uniform(-1.0, 1.0, F)
        self.wood = self.c(_jitter(rng, (95, 60, 30)))

    def draw(self, layer, f):
        x, y, s, e = self.x, self.y, self.s, float(self.env[f])
        layer.lines([(x - 6 * s, y), (x + 5 * s, y - 2 * s)], self.wood, thickness=2)
        layer.lines([(x - 5 * s, y - 2 * s), (x + 6 * s, y)], self.wood, thickness=2)
        h, w = s * (4.0 + 10.0 * e), s * (7.0 + 2.0 * e)
        for fraction, colour in ((1.0, (245, 120, 30)), (0.55, (255, 226, 92))):  # luminous: no shading
            hh, ww, base = h * fraction, w * fraction, y - 1.5 * s
            tips = [hh * t for t in self.flicker[f]]
            dx = self.sway[f] * s * e
            outline = [
                (x - ww / 2, base),
                (x - ww / 4 + dx, base - tips[0]),
                (x - ww / 8, base - 0.4 * hh),
                (x + dx, base - tips[1]),
                (x + ww / 8, base - 0.4 * hh),
                (x + ww / 4 + dx, base - tips[2]),
                (x + ww / 2, base),
            ]
            layer.poly(outline, colour)


class Lake(SceneObjectDrawer):
    """An ellipse of water crossed by two wave lines that travel and swell with the envelope."""

    def setup(self, rng):
        self.a, self.b = 9.5 * self.s, 3.6 * self.s
        self.water = self.c(_jitter(rng, (45, 95, 178)))
        self.crest = self.c(_jitter(rng, (140, 185, 235)))
        self.k = rng.uniform(0.7, 1.1)
        self.speed = rng.choice([-1, 1]) * rng.uniform(1.8, 2.6)  # radians per frame
        self.phase = rng.uniform(0, 2 * np.pi, 2)
        size = self.context["size"]
        yy, xx = np.mgrid[0:size, 0:size]
        self.inside = ((xx - self.x) / self.a) ** 2 + ((yy - self.y) / self.b) ** 2 <= 0.8

    def draw(self, layer, f):
        layer.ellipse((self.x, self.y), (self.a, self.b), self.water)
        e = float(self.env[f])
        xs = np.linspace(self.x - self.a, self.x + self.a, 24)
        for i, dy in enumerate((-0.35 * self.b, 0.45 * self.b)):
            amp = 0.3 + 1.4 * e
            ys = self.y + dy + amp * np.sin(self.k * xs + self.speed * f + self.phase[i])
            layer.lines(np.stack([xs, ys], 1), self.crest, clip=self.inside)


class Rain(SceneObjectDrawer):
    """A grey cloud and a translucent curtain down to the horizon, with falling drops as dense as the envelope."""

    MAX_DROPS = 26

    def setup(self, rng):
        s = self.s
        self.cloud = self.c(_jitter(rng, (165, 168, 180)))
        self.curtain = self.c(_jitter(rng, (150, 160, 188)))
        self.drop = self.c((222, 230, 248))
        self.top, self.bottom = self.y + 2.5 * s, self.context["horizon"] - 1.0
        self.half = 7.0 * s
        self.drop_x = rng.uniform(self.x - self.half + 0.5, self.x + self.half - 0.5, self.MAX_DROPS)
        self.drop_y0 = rng.uniform(0, 1, self.MAX_DROPS)
        self.order = rng.permutation(self.MAX_DROPS)

    def draw(self, layer, f):
        s, e = self.s, float(self.env[f])
        layer.poly(
            [
                (self.x - self.half, self.top),
                (self.x + self.half, self.top),
                (self.x + self.half + 1.5 * s, self.bottom),
                (self.x - self.half - 1.5 * s, self.bottom),
            ],
            self.curtain,
            alpha=0.35,
        )
        height = self.bottom - self.top
        count = int(round(4 + (self.MAX_DROPS - 4) * e))
        for i in self.order[:count]:
            y0 = self.top + ((self.drop_y0[i] + 0.23 * f) % 1.0) * (height - 3)
            x0 = self.drop_x[i] + 0.4 * (y0 - self.top) / max(height, 1)  # slightly slanted paths
            layer.lines([(x0, y0), (x0 + 0.4, y0 + 2.5)], self.drop, alpha=0.9)
        _cloud(layer, self.x, self.y, s, self.cloud)


def _cloud(layer: Layer, x: float, y: float, s: float, colour, big: float = 1.0) -> None:
    layer.ellipse((x, y + 0.5 * s), (8.0 * s * big, 3.2 * s * big), colour)
    layer.circle((x - 3.5 * s * big, y - 1.2 * s), 3.4 * s * big, colour)
    layer.circle((x + 2.5 * s * big, y - 1.8 * s), 4.0 * s * big, colour)


class Thunderstorm(SceneObjectDrawer):
    """A dark cloud that brightens with the envelope, and a lightning bolt down to the horizon on its loud frames."""

    FLASH = 0.6  # envelope level from which a frame shows a bolt

    def setup(self, rng):
        F = len(self.env)
        self.dark = self.c(_jitter(rng, (70, 70, 88)))
        self.lit = np.asarray((170, 170, 205), np.float32)  # lit from inside: luminous
        self.bolt_x = rng.uniform(-3, 3, (F, 5))
        self.bolt_start = rng.uniform(-3, 3, F)

    def draw(self, layer, f):
        s, e = self.s, float(self.env[f])
        light = max(0.0, (e - 0.25) / 0.75)
        colour = self.dark + (self.lit - self.dark) * light
        if e >= self.FLASH:
            top, bottom = self.y + 3.0 * s, self.context["horizon"] - 1.0
            ys = np.linspace(top, bottom, 6)
            xs = self.x + self.bolt_start[f] + np.concatenate([[0.0], np.cumsum(self.bolt_x[f])]) * s * 0.8
            layer.lines(np.stack([xs, ys], 1), (255, 250, 190), thickness=2 if e > 0.85 else 1)
        _cloud(layer, self.x, self.y, s, colour, big=1.15)


class Birds(SceneObjectDrawer):
    """A tree, and birds circling its crown at a speed set by the envelope, flapping their wings."""

    def setup(self, rng):
        s = self.s
        self.trunk = self.c(_jitter(rng, (92, 62, 32)))
        self.leaves = self.c(_jitter(rng, (35, 105, 50), 6))
        self.bird = self.c((28, 28, 34))
        self.crown = (self.x, self.y - 11.0 * s)
        n = int(rng.integers(2, 5))
        direction = rng.choice([-1.0, 1.0])
        self.angle0 = rng.uniform(0, 2 * np.pi, n)
        steps = 0.55 * direction * np.concatenate([[0.0], np.cumsum(self.env[:-1])])  # [F] radians travelled
        self.angles = self.angle0[None, :] + steps[:, None] * rng.uniform(0.8, 1.2, n)[None, :]
        self.radius = (rng.uniform(7.5, 9.0) * s, rng.uniform(3.5, 5.0) * s)

    def draw(self, layer, f):
        x, y, s, e = self.x, self.y, self.s, float(self.env[f])
        layer.rect(x - 1.0 * s, y - 8.0 * s, x + 1.0 * s, y, self.trunk)
        cx, cy = self.crown
        layer.circle((cx, cy), 5.5 * s, self.leaves)
        layer.circle((cx - 3.5 * s, cy + 1.5 * s), 3.5 * s, self.leaves)
        layer.circle((cx + 3.5 * s, cy + 1.5 * s), 3.5 * s, self.leaves)
        for k, angle in enumerate(self.angles[f]):
            bx = cx + self.radius[0] * math.cos(angle)
            by = cy - 3.0 * s + self.radius[1] * math.sin(angle)
            flap = (1.4 if (f + k) % 2 else -0.7) * e  # gliding when quiet, flapping when loud
            layer.lines([(bx - 2.0, by - flap), (bx, by), (bx + 2.0, by - flap)], self.bird)


class Car(SceneObjectDrawer):
    """A car that idles: its body bounces, its wheels turn, exhaust puffs out behind it, all with the envelope."""

    def setup(self, rng):
        self.body = self.c(_jitter(rng, self.colour if self.colour is not None else (200, 40, 40)))
        self.glass = self.c((170, 210, 235))
        self.tyre = self.c((25, 25, 25))
        self.hub = self.c((185, 185, 185))
        self.smoke = self.c((192, 192, 198))
        self.facing = float(rng.choice([-1.0, 1.0]))  # +1: the car faces right, exhaust on the left
        self.bounce_hz = rng.uniform(2.5, 3.5)
        self.phase = rng.uniform(0, 2 * np.pi)
        self.spin = np.cumsum(0.9 + 0.9 * self.env) * self.facing

    def draw(self, layer, f):
        x, y, s, e = self.x, self.y, self.s, float(self.env[f])
        t = f / FPS
        dy = 1.2 * e * math.sin(2 * np.pi * self.bounce_hz * t + self.phase)
        rear = x - self.facing * 7.5 * s
        for k in range(int(math.ceil(3 * e))):
            drift = (f * 0.7 + k * 2.5) % 7.5
            px = rear - self.facing * (1.5 + drift) * s
            layer.circle(
                (px, y - 2.5 * s - 0.35 * drift), (0.9 + 0.9 * e) * s * (1 + 0.15 * drift), self.smoke, alpha=0.6
            )
        layer.rect(x - 7 * s, y - 6 * s + dy, x + 7 * s, y - 2 * s + dy, self.body)
        fx = self.facing
        layer.poly(
            [
                (x - fx * 4.5 * s, y - 6 * s + dy),
                (x - fx * 3 * s, y - 9 * s + dy),
                (x + fx * 2.5 * s, y - 9 * s + dy),
                (x + fx * 4.5 * s, y - 6 * s + dy),
            ],
            self.body,
        )
        layer.poly(
            [
                (x - fx * 3.2 * s, y - 6.2 * s + dy),
                (x - fx * 2.3 * s, y - 8.2 * s + dy),
                (x + fx * 2.0 * s, y - 8.2 * s + dy),
                (x + fx * 3.2 * s, y - 6.2 * s + dy),
            ],
            self.glass,
        )
        for wx in (x - 4.5 * s, x + 4.5 * s):
            layer.circle((wx, y - 1.8 * s), 2.2 * s, self.tyre)
            a = self.spin[f]
            layer.lines(
                [
                    (wx - 1.4 * s * math.cos(a), y - 1.8 * s - 1.4 * s * math.sin(a)),
                    (wx + 1.4 * s * math.cos(a), y - 1.8 * s + 1.4 * s * math.sin(a)),
                ],
                self.hub,
            )


class Bell(SceneObjectDrawer):
    """A bell hanging from a wooden frame, swinging with an amplitude that follows the envelope."""

    def setup(self, rng):
        self.wood = self.c(_jitter(rng, (85, 58, 35)))
        self.metal = self.c(_jitter(rng, self.colour if self.colour is not None else (232, 200, 40)))
        self.clapper = self.c((60, 60, 60))
        self.swing_hz = rng.uniform(1.0, 1.6)
        self.phase = rng.uniform(0, 2 * np.pi)

    def draw(self, layer, f):
        x, y, s, e = self.x, self.y, self.s, float(self.env[f])
        top = y - 17 * s
        layer.lines([(x - 6.5 * s, y), (x - 6.5 * s, top)], self.wood, thickness=2)
        layer.lines([(x + 6.5 * s, y), (x + 6.5 * s, top)], self.wood, thickness=2)
        layer.lines([(x - 8 * s, top), (x + 8 * s, top)], self.wood, thickness=2)
        theta = math.radians(40.0) * e * math.sin(2 * np.pi * self.swing_hz * f / FPS + self.phase)
        rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        pivot = np.array([x, top + 1.0])
        shape = np.array([(-1.5, 0.5), (1.5, 0.5), (2.3, 4.5), (4.2, 8.5), (-4.2, 8.5), (-2.3, 4.5)]) * s
        clapper = pivot + rot @ np.array([0.0, 9.3 * s])
        layer.circle(clapper, 1.2 * s, self.clapper)
        layer.poly(pivot + shape @ rot.T, self.metal)


class Grass(SceneObjectDrawer):
    """A tuft of grass blades swaying in the wind, as far as the envelope says."""

    def setup(self, rng):
        s = self.s
        n = int(rng.integers(9, 14))
        self.base_x = rng.uniform(self.x - 8 * s, self.x + 8 * s, n)
        self.base_y = self.y - rng.uniform(0, 2, n)
        self.height = rng.uniform(7, 12, n) * s
        self.lean = rng.uniform(-1.5, 1.5, n)
        self.colours = [self.c(_jitter(rng, (122, 205, 70), 12)) for _ in range(n)]
        self.hz = rng.uniform(1.0, 1.6)
        self.phase = rng.uniform(0, 2 * np.pi)

    def draw(self, layer, f):
        e = float(self.env[f])
        t = f / FPS
        for k in range(len(self.base_x)):
            dx = self.lean[k] + 3.5 * self.s * e * math.sin(2 * np.pi * self.hz * t + 0.7 * k + self.phase)
            bx, by, h = self.base_x[k], self.base_y[k], self.height[k]
            layer.lines([(bx, by), (bx + 0.3 * dx, by - 0.5 * h), (bx + dx, by - h)], self.colours[k])


class Sun(SceneObjectDrawer):
    def setup(self, rng):
        base = (252, 150, 60) if self.context["sky"] == "sunset" else (252, 224, 72)
        self.disk = _jitter(rng, base, 5)  # luminous
        self.r = rng.uniform(4.5, 6.0) * self.s

    def draw(self, layer, f):
        layer.circle((self.x, self.y), self.r, self.disk)


class Moon(SceneObjectDrawer):
    def setup(self, rng):
        self.disk = _jitter(rng, (236, 236, 212), 5)  # luminous
        self.r = rng.uniform(4.0, 5.5) * self.s
        self.side = float(rng.choice([-1.0, 1.0]))

    def draw(self, layer, f):
        layer.circle((self.x, self.y), self.r, self.disk)
        layer.erase_circle((self.x + self.side * 0.55 * self.r, self.y - 0.25 * self.r), 0.85 * self.r)


class Mountain(SceneObjectDrawer):
    def setup(self, rng):
        s = self.s
        self.rock = self.c(_jitter(rng, (118, 118, 134)))
        self.snow = self.c(_jitter(rng, (238, 238, 246), 5))
        self.peak = (self.x + rng.uniform(-3, 3), self.y - rng.uniform(14, 18) * s)
        self.half = rng.uniform(10.5, 12.5) * s

    def draw(self, layer, f):
        (px, py), base = self.peak, self.y
        layer.poly([(self.x - self.half, base), (self.x + self.half, base), (px, py)], self.rock)
        k = 0.3  # the top 30 % is snow
        left = (px + (self.x - self.half - px) * k, py + (base - py) * k)
        right = (px + (self.x + self.half - px) * k, py + (base - py) * k)
        layer.poly([left, right, (px, py)], self.snow)


class House(SceneObjectDrawer):
    def setup(self, rng):
        self.walls = self.c(_jitter(rng, self.colour if self.colour is not None else (236, 236, 236)))
        self.roof = self.c(_jitter(rng, (112, 46, 38)))
        self.door = self.c((70, 45, 30))
        lit = self.context["sky"] == "night"
        self.window = np.asarray((240, 220, 130), np.float32) if lit else self.c((150, 190, 220))
        self.window_side = float(rng.choice([-1.0, 1.0]))

    def draw(self, layer, f):
        x, y, s = self.x, self.y, self.s
        layer.rect(x - 6 * s, y - 9 * s, x + 6 * s, y, self.walls)
        layer.poly([(x - 7.5 * s, y - 9 * s), (x + 7.5 * s, y - 9 * s), (x, y - 15 * s)], self.roof)
        d = -self.window_side
        layer.rect(x + d * 3.5 * s - 1.5 * s, y - 5 * s, x + d * 3.5 * s + 1.5 * s, y, self.door)
        w = self.window_side
        layer.rect(x + w * 3.5 * s - 1.6 * s, y - 7 * s, x + w * 3.5 * s + 1.6 * s, y - 4 * s, self.window)


DRAWERS: dict[str, type[SceneObjectDrawer]] = {
    "campfire": Campfire,
    "lake": Lake,
    "rain": Rain,
    "birds": Birds,
    "thunderstorm": Thunderstorm,
    "car": Car,
    "bell": Bell,
    "grass": Grass,
    "sun": Sun,
    "moon": Moon,
    "mountain": Mountain,
    "house": House,
}

# back to front: the mountain behind everything, sky objects, then ground objects from flat to tall
DEPTH_ORDER = (
    "mountain",
    "sun",
    "moon",
    "thunderstorm",
    "rain",
    "lake",
    "grass",
    "house",
    "birds",
    "bell",
    "car",
    "campfire",
)
