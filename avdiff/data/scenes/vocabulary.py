"""The scene world's vocabulary: labels, sounding and silent objects, colours, places, skies, held-out pairs.

Everything here is a constant of the world (see ``/work/wt/SCENES_CONTRACT.md`` and the README's "Scene world"):
the label index of a word is its position in :data:`LABELS` (0 sky, 1 ground, then the objects), and the held-out
pairs do not depend on any seed, so a train split and a test split made with different seeds still never share a
held-out combination.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

SIZE = 64  # frame height and width, pixels
NUM_FRAMES = 16
FPS = 8
SAMPLE_RATE = 16000
DURATION_S = NUM_FRAMES / FPS

# word -> the procedural sound it makes (avdiff.audio.scene_sounds); the order is the label order
SOUND_OF = {
    "campfire": "crackle",
    "lake": "waves",
    "rain": "rain",
    "birds": "birdsong",
    "thunderstorm": "thunder",
    "car": "engine",
    "bell": "bell",
    "grass": "wind",
}
SOUNDING = tuple(SOUND_OF)
SILENT = ("sun", "moon", "mountain", "house")
OBJECTS = SOUNDING + SILENT
LABELS = ("sky", "ground") + OBJECTS

# objects above the horizon have their own three slots; the rest stand on the ground
SKY_OBJECTS = frozenset({"sun", "moon", "rain", "thunderstorm"})
GROUND_OBJECTS = frozenset(OBJECTS) - SKY_OBJECTS

PLACES = ("left", "centre", "right")
SKIES = ("day", "sunset", "night")
COLOURS = {"red": (200, 40, 40), "blue": (50, 80, 205), "yellow": (232, 200, 40), "white": (236, 236, 236)}
COLOURED = frozenset({"car", "house", "bell"})

# words said without an article in a caption ("rain on the left", not "a rain on the left")
MASS_NOUNS = frozenset({"rain", "grass", "birds"})

# Object pairs that never appear together in the train split; every test clip holds at least one of them. Each
# object is in one or two pairs, so every object (and most pairs with it) is still seen in training.
HELD_OUT_PAIRS = frozenset(
    frozenset(p)
    for p in [
        ("campfire", "car"),
        ("lake", "bell"),
        ("rain", "house"),
        ("birds", "moon"),
        ("thunderstorm", "grass"),
        ("car", "mountain"),
        ("bell", "sun"),
        ("grass", "birds"),
        ("house", "lake"),
    ]
)


def label_of(word: str) -> int:
    """Label index of a vocabulary word (``"sky"`` 0, ``"ground"`` 1, ``"campfire"`` 2, ...)."""
    try:
        return LABELS.index(word)
    except ValueError:
        raise ValueError(f"{word!r} is not a scene label; labels: {list(LABELS)}") from None


def layer_of(word: str) -> str:
    """``"sky"`` for objects above the horizon (sun, moon, rain, thunderstorm), ``"ground"`` for the rest."""
    if word not in OBJECTS:
        raise ValueError(f"{word!r} is not a scene object; objects: {list(OBJECTS)}")
    return "sky" if word in SKY_OBJECTS else "ground"


def held_out_pairs_in(words: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """The held-out pairs among ``words``, each as a sorted tuple."""
    present = sorted(set(words))
    return [(a, b) for i, a in enumerate(present) for b in present[i + 1 :] if frozenset((a, b)) in HELD_OUT_PAIRS]


def vocabulary_json() -> dict:
    """The content of a DATA folder's ``vocabulary.json``."""
    return {
        "labels": list(LABELS),
        "sounding": list(SOUNDING),
        "silent": list(SILENT),
        "sound_of": dict(SOUND_OF),
        "colours": sorted(COLOURS),
        "coloured": sorted(COLOURED),
        "places": list(PLACES),
        "skies": list(SKIES),
        "held_out_pairs": sorted(sorted(p) for p in HELD_OUT_PAIRS),
        "size": SIZE,
        "num_frames": NUM_FRAMES,
        "fps": FPS,
        "sample_rate": SAMPLE_RATE,
    }
