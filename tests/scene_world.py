"""A tiny SCENES DATA folder for the text-to-video tests: one coloured shape on a sky-and-ground background.

Tests only (the real world is ``avdiff synth scenes``). It follows the SCENES DATA layout of the scene contract:
``index.jsonl``, ``vocabulary.json``, ``clips/ID.mp4`` (64x64, 8 fps) and ``clips/ID.masks.npy``. Captions read
"a red square on the left"; the shape bobs up and down over the clip so that frames differ.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from avdiff.video.io import write_video

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 220), "yellow": (230, 210, 40)}
SHAPES = ("square", "circle")
PLACES = {"left": 16, "right": 48}
LABELS = ["sky", "ground", *SHAPES]


def draw_scene(shape: str, colour: str, place: str, num_frames: int = 16, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 [F, S, S, 3] and label masks uint8 [F, S, S] of one scene."""
    yy, xx = np.mgrid[0:size, 0:size]
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    masks = np.empty((num_frames, size, size), np.uint8)
    for f in range(num_frames):
        ground = yy >= size * 5 // 8
        frame = np.where(ground[..., None], np.array([90, 70, 50], np.uint8), np.array([150, 190, 230], np.uint8))
        cy = size // 2 - 6 + round(3 * np.sin(2 * np.pi * f / num_frames))
        cx = PLACES[place] * size // 64
        inside = (np.abs(xx - cx) <= 7) & (np.abs(yy - cy) <= 7) if shape == "square" else (xx - cx) ** 2 + (yy - cy) ** 2 <= 64
        frame[inside] = COLOURS[colour]
        frames[f] = frame
        masks[f] = np.where(inside, LABELS.index(shape), np.where(ground, 1, 0))
    return frames, masks


def write_scene_data(folder: Path, n: int, seed: int = 0, split: str = "train", num_frames: int = 16) -> Path:
    """``n`` scenes drawn with ``seed`` into a SCENES DATA folder; returns the folder."""
    rng = np.random.default_rng(seed)
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        shape, colour, place = SHAPES[rng.integers(2)], list(COLOURS)[rng.integers(4)], list(PLACES)[rng.integers(2)]
        frames, masks = draw_scene(shape, colour, place, num_frames)
        cid = f"{split}_{seed}_{i:04d}"
        write_video(folder / "clips" / f"{cid}.mp4", frames, 8, crf=12)
        np.save(folder / "clips" / f"{cid}.masks.npy", masks)
        lines.append({"id": cid, "video": f"clips/{cid}.mp4", "masks": f"clips/{cid}.masks.npy",
                      "caption": f"a {colour} {shape} on the {place}",
                      "objects": [{"word": shape, "label": LABELS.index(shape), "colour": colour, "place": place,
                                   "sounding": False}],
                      "sky": "day", "num_frames": num_frames, "fps": 8, "size": 64, "split": split, "seed": seed})  # fmt: skip
    (folder / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (folder / "vocabulary.json").write_text(json.dumps({"labels": LABELS, "sounding": [], "silent": list(SHAPES)}))
    return folder
