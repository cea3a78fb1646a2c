"""Scenes: which objects, where, in what light (:func:`sample_scene`), their captions, and rendering them.

A :class:`SceneSpec` (objects with colours and places, the sky, a seed) renders to frames and a label map per frame
(:func:`render_scene`). Every object draws its appearance and its loudness envelope from its own RNG, seeded by the
scene's seed and its label, so leaving an object out (``without=``) leaves every other pixel of the scene as it was:
that is how the tests check that the masks match what is drawn.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np

from avdiff.audio.scene_sounds import random_envelope
from avdiff.data.scenes.drawing import DEPTH_ORDER, DRAWERS, Layer
from avdiff.data.scenes.vocabulary import (
    COLOURED,
    COLOURS,
    HELD_OUT_PAIRS,
    MASS_NOUNS,
    NUM_FRAMES,
    OBJECTS,
    PLACES,
    SIZE,
    SKIES,
    SOUNDING,
    held_out_pairs_in,
    label_of,
    layer_of,
)

logger = logging.getLogger(__name__)

PLACE_PHRASES = {"left": "on the left", "centre": "in the middle", "right": "on the right"}
SKY_PHRASES = {"day": "by day", "sunset": "at sunset", "night": "at night"}
CONNECTORS = ("and", "beside", "near", "with")
OBJECT_COUNTS, OBJECT_COUNT_P = (1, 2, 3, 4), (0.1, 0.35, 0.35, 0.2)
P_PLACE_STATED, P_SKY_STATED = 0.7, 0.85
SHADE = {"day": 1.0, "sunset": 0.85, "night": 0.6}


@dataclass
class SceneObject:
    """One object of a scene. ``place`` is its slot (``left``/``centre``/``right``) in its layer (sky or ground);
    ``place_stated`` says whether the caption names it."""

    word: str
    colour: str | None = None
    place: str = "centre"
    place_stated: bool = True

    def __post_init__(self):
        if self.word not in OBJECTS:
            raise ValueError(f"unknown scene object {self.word!r}; objects: {list(OBJECTS)}")
        if self.place not in PLACES:
            raise ValueError(f"place must be one of {list(PLACES)}, got {self.place!r}")
        if self.colour is not None and self.colour not in COLOURS:
            raise ValueError(f"colour must be one of {sorted(COLOURS)} or None, got {self.colour!r}")

    @property
    def label(self) -> int:
        return label_of(self.word)

    @property
    def sounding(self) -> bool:
        return self.word in SOUNDING

    @property
    def slot_layer(self) -> str:
        return layer_of(self.word)

    def to_dict(self) -> dict:
        return {
            "word": self.word,
            "label": self.label,
            "colour": self.colour,
            "place": self.place,
            "sounding": self.sounding,
            "place_stated": self.place_stated,
            "slot_layer": self.slot_layer,
        }

    @classmethod
    def from_dict(cls, d: dict) -> SceneObject:
        return cls(d["word"], d.get("colour"), d.get("place", "centre"), bool(d.get("place_stated", True)))


@dataclass
class SceneSpec:
    """What a clip shows: objects, sky, and the seed of its appearance and loudness envelopes."""

    objects: list[SceneObject]
    sky: str
    seed: int
    sky_stated: bool = True
    caption: str = ""

    def __post_init__(self):
        if self.sky not in SKIES:
            raise ValueError(f"sky must be one of {list(SKIES)}, got {self.sky!r}")
        words = [o.word for o in self.objects]
        if len(set(words)) != len(words):
            raise ValueError(f"an object may appear once per scene, got {words}")
        slots = [(o.slot_layer, o.place) for o in self.objects]
        if len(set(slots)) != len(slots):
            raise ValueError(f"two objects share a slot (layer, place): {slots}")

    @property
    def words(self) -> list[str]:
        return [o.word for o in self.objects]


@dataclass
class RenderedScene:
    """Attributes: frames uint8 [F, H, W, 3]; masks uint8 [F, H, W] (label index per pixel); envelopes: word ->
    float32 [F] loudness of each sounding object (its motion follows it)."""

    frames: np.ndarray
    masks: np.ndarray
    envelopes: dict[str, np.ndarray] = field(default_factory=dict)


# --- sampling -------------------------------------------------------------------------------------------------


def sample_scene(
    rng: np.random.Generator,
    split: str,
    seed: int | None = None,
    *,
    include: str | None = None,
    count: int | None = None,
) -> SceneSpec:
    """A random scene of 1-4 objects for ``split``: train scenes hold no held-out pair
    (:data:`~avdiff.data.scenes.vocabulary.HELD_OUT_PAIRS`), test scenes hold at least one (so at least 2 objects).

    Args:
        rng: where every choice comes from.
        split: ``"train"`` or ``"test"``.
        seed: the render seed stored in the spec (default: drawn from ``rng``).
        include: an object word the scene must hold (train split only).
        count: the number of objects, 1-4 (default: drawn, mostly 2 or 3).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if include is not None and (include not in OBJECTS or split != "train"):
        raise ValueError(f"include must be an object word and the split 'train', got {include!r} and {split!r}")
    if count is not None and count not in OBJECT_COUNTS:
        raise ValueError(f"count must be one of {OBJECT_COUNTS}, got {count!r}")
    count = int(rng.choice(OBJECT_COUNTS, p=OBJECT_COUNT_P)) if count is None else count
    for _attempt in range(1000):
        if split == "test":
            pairs = sorted(sorted(p) for p in HELD_OUT_PAIRS)
            words = list(pairs[int(rng.integers(len(pairs)))])
            count = max(count, 2)
        else:
            words = [include] if include else []
        pool = [w for w in OBJECTS if w not in words]
        rng.shuffle(pool)
        for w in pool:
            if len(words) >= count:
                break
            if sum(layer_of(v) == layer_of(w) for v in words) < len(PLACES):
                words.append(w)
        if len(words) == count and (split == "test" or not held_out_pairs_in(words)):
            break
    else:  # pragma: no cover - 1000 misses cannot happen with this vocabulary
        raise RuntimeError("could not sample a scene")
    sky = _sky_for(words, rng)
    objects = []
    slots = {layer: list(rng.permutation(PLACES)) for layer in ("sky", "ground")}
    for w in words:
        colour = str(rng.choice(sorted(COLOURS))) if w in COLOURED else None
        objects.append(SceneObject(w, colour, str(slots[layer_of(w)].pop()), bool(rng.random() < P_PLACE_STATED)))
    spec = SceneSpec(
        objects,
        sky,
        int(rng.integers(2**31)) if seed is None else int(seed),
        sky_stated=bool(rng.random() < P_SKY_STATED),
    )
    spec.caption = compose_caption(spec, rng)
    return spec


def _sky_for(words: list[str], rng: np.random.Generator) -> str:
    sun, moon = "sun" in words, "moon" in words
    if sun and moon:
        return "sunset"
    if sun:
        return "day" if rng.random() < 0.7 else "sunset"
    if moon:
        return "night" if rng.random() < 0.8 else "sunset"
    return str(rng.choice(SKIES))


# --- captions -------------------------------------------------------------------------------------------------


def object_phrase(obj: SceneObject) -> str:
    """``"a red car on the left"``, ``"rain"``, ``"a lake in the middle"``."""
    parts = [] if obj.word in MASS_NOUNS else ["a"]
    if obj.colour:
        parts.append(obj.colour)
    parts.append(obj.word)
    if obj.place_stated:
        parts.append(PLACE_PHRASES[obj.place])
    return " ".join(parts)


def compose_caption(spec: SceneSpec, rng: np.random.Generator | None = None) -> str:
    """The caption of a scene: its objects' phrases (in a random order when ``rng`` is given) joined by
    "and"/"beside"/"near"/"with", then "by day"/"at sunset"/"at night" when ``spec.sky_stated``.
    Example: "a campfire on the left beside a lake at night"."""
    objects = list(spec.objects)
    if rng is not None:
        objects = [objects[i] for i in rng.permutation(len(objects))]
    text = object_phrase(objects[0]) if objects else ""
    for obj in objects[1:]:
        connector = str(rng.choice(CONNECTORS)) if rng is not None else "and"
        text += f" {connector} {object_phrase(obj)}"
    if spec.sky_stated:
        text = f"{text} {SKY_PHRASES[spec.sky]}".strip()
    return text


@dataclass
class ParsedCaption:
    """What a prompt says: objects (``place`` None where the prompt names none) and the sky (None if unsaid)."""

    objects: list[dict]
    sky: str | None

    @property
    def words(self) -> list[str]:
        return [o["word"] for o in self.objects]


_ALIASES = {"bird": "birds", "centre": "centre", "center": "centre", "middle": "centre"}


def _object_word(token: str) -> str | None:
    if token in OBJECTS:
        return token
    if token in _ALIASES and _ALIASES[token] in OBJECTS:
        return _ALIASES[token]
    if token.endswith("s") and token[:-1] in OBJECTS:  # cars, bells, houses ...
        return token[:-1]
    return None


def parse_caption(text: str) -> ParsedCaption:
    """Objects, colours, places and sky of a prompt, in this world's grammar or free wording.

    An object is a vocabulary word (plurals and "bird" accepted); its colour is a colour word right before it; its
    place is the first of "left" / "right" / "middle" / "centre" between it and the next object word. The sky is
    "night", "sunset" or "day"/"daylight" anywhere. Example: ``parse_caption("a red car on the left and rain at
    night")`` -> objects car (red, left) and rain (no place), sky night.
    """
    if not isinstance(text, str):
        raise TypeError(f"caption must be a str, got {type(text).__name__}")
    tokens = re.findall(r"[a-z]+", text.lower())
    found: list[dict] = []
    sky = None
    for i, token in enumerate(tokens):
        word = _object_word(token)
        if word is not None and word not in [o["word"] for o in found]:
            colour = tokens[i - 1] if i > 0 and tokens[i - 1] in COLOURS else None
            found.append({"word": word, "colour": colour, "place": None, "index": i})
        elif token in ("night", "sunset", "day", "daylight"):
            sky = "day" if token == "daylight" else token
    for k, obj in enumerate(found):
        end = found[k + 1]["index"] if k + 1 < len(found) else len(tokens)
        for token in tokens[obj["index"] + 1 : end]:
            if token in ("left", "right"):
                obj["place"] = token
                break
            if token in ("middle", "centre", "center"):
                obj["place"] = "centre"
                break
    for obj in found:
        obj.pop("index")
    return ParsedCaption(found, sky)


# --- rendering ------------------------------------------------------------------------------------------------


def _object_rng(seed: int, word: str) -> np.random.Generator:
    return np.random.default_rng([seed, 1, label_of(word)])


def _background(seed: int, sky: str, size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Sky gradient (with stars at night) over ground: float32 [H, W, 3], labels uint8 [H, W], the horizon row."""
    rng = np.random.default_rng([seed, 2])
    horizon = int(rng.integers(30, 35))
    top, bottom = {
        "day": ((80, 140, 225), (175, 212, 245)),
        "sunset": ((70, 45, 115), (250, 150, 85)),
        "night": ((6, 10, 36), (28, 38, 78)),
    }[sky]
    top, bottom = (np.clip(np.asarray(c, np.float32) + rng.uniform(-10, 10, 3), 0, 255) for c in (top, bottom))
    rows = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None]
    image = np.empty((size, size, 3), np.float32)
    image[:horizon] = (top + (bottom - top) * rows)[:, None, :]
    ground = np.clip(np.asarray((128, 108, 70), np.float32) + rng.uniform(-12, 12, 3), 0, 255) * SHADE[sky]
    image[horizon:] = ground + rng.normal(0, 5, (size - horizon, size, 1)).astype(np.float32) * SHADE[sky]
    if sky == "night":
        for _ in range(int(rng.integers(6, 12))):
            image[int(rng.integers(0, horizon - 2)), int(rng.integers(0, size))] = rng.uniform(200, 255)
    labels = np.zeros((size, size), np.uint8)
    labels[horizon:] = label_of("ground")
    return np.clip(image, 0, 255), labels, horizon


def _anchor(word: str, place: str, horizon: int, rng: np.random.Generator, size: int) -> tuple[float, float, float]:
    x = size * (PLACES.index(place) + 0.5) / len(PLACES) + rng.uniform(-2.0, 2.0)
    scale = rng.uniform(0.85, 1.1)
    if word in ("sun", "moon"):
        y = rng.uniform(7, 13)
    elif word in ("rain", "thunderstorm"):
        y = rng.uniform(7, 10)
    elif word == "mountain":
        y = horizon + 3.0
    elif word == "lake":
        y = horizon + rng.uniform(9, 14)
    else:
        y = min(size - 3.0, horizon + rng.uniform(14, 22))
    return x, y, scale


def render_scene(
    spec: SceneSpec,
    *,
    without: tuple[str, ...] | list[str] = (),
    envelopes: dict[str, np.ndarray] | None = None,
    num_frames: int = NUM_FRAMES,
    size: int = SIZE,
) -> RenderedScene:
    """Draw a scene: frames uint8 [F, size, size, 3] and label masks uint8 [F, size, size].

    Args:
        spec: the scene.
        without: words of ``spec`` to leave out (every other pixel stays exactly as it is with them).
        envelopes: word -> loudness curve [F] in [0, 1] to use instead of the drawn one (sounding objects).
        num_frames, size: frames and pixels (the world is 16 frames of 64x64).

    Deterministic: the same spec gives the same bytes.
    """
    image, base_labels, horizon = _background(spec.seed, spec.sky, size)
    context = {"horizon": horizon, "sky": spec.sky, "size": size}
    drawers, labels, drawn_env = [], [], {}
    by_word = {o.word: o for o in spec.objects}
    for word in DEPTH_ORDER:
        obj = by_word.get(word)
        if obj is None:
            continue
        rng = _object_rng(spec.seed, word)
        if obj.sounding:
            kind = "bursts" if word == "thunderstorm" and rng.random() < 0.7 else None
            env = random_envelope(rng, num_frames, kind)
        else:
            env = np.ones(num_frames, np.float32)
        if envelopes and word in envelopes:
            env = np.clip(np.asarray(envelopes[word], np.float32), 0.0, 1.0)
            if env.shape != (num_frames,):
                raise ValueError(f"envelopes[{word!r}] must have {num_frames} values, got shape {env.shape}")
        if obj.sounding:
            drawn_env[word] = env
        if word in without:
            continue
        x, y, scale = _anchor(word, obj.place, horizon, rng, size)
        colour = COLOURS[obj.colour] if obj.colour else None
        drawers.append(DRAWERS[word](rng, x, y, scale, colour, env, SHADE[spec.sky], context))
        labels.append(label_of(word))
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    masks = np.empty((num_frames, size, size), np.uint8)
    for f in range(num_frames):
        frame, mask = image.copy(), base_labels.copy()
        for drawer, label in zip(drawers, labels):
            layer = Layer(size)
            drawer.draw(layer, f)
            a = layer.alpha[..., None]
            frame = frame * (1.0 - a) + layer.rgb * a
            mask[layer.covered] = label
        frames[f] = np.clip(np.round(frame), 0, 255).astype(np.uint8)
        masks[f] = mask
    return RenderedScene(frames, masks, drawn_env)
