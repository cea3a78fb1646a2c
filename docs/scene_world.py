"""Draw docs/scene_world.png: held-out scene clips (frames 0, 5, 10), their label masks, and their captions.

python docs/scene_world.py            # writes docs/scene_world.png (deterministic)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from avdiff.data.scenes import LABELS, render_scene, sample_scene

SCALE, ROWS, FRAMES = 3, 6, (0, 5, 10)
FONT = ImageFont.load_default(size=15)
# a distinct colour per label for the mask panels (sky and ground dark so the objects stand out)
PALETTE = np.array(
    [
        (30, 40, 70),
        (60, 45, 30),
        (255, 120, 0),
        (0, 120, 255),
        (150, 170, 255),
        (0, 200, 80),
        (120, 0, 200),
        (230, 30, 30),
        (255, 215, 0),
        (150, 255, 90),
        (255, 255, 150),
        (230, 230, 255),
        (140, 140, 140),
        (255, 90, 200),
    ],
    np.uint8,
)


def main(out: str = "docs/scene_world.png") -> Path:
    assert len(PALETTE) == len(LABELS)
    size = 64 * SCALE
    caption_w = 430
    sheet = Image.new("RGB", (len(FRAMES) * 2 * size + caption_w, ROWS * size), "white")
    draw = ImageDraw.Draw(sheet)
    for row in range(ROWS):
        spec = sample_scene(np.random.default_rng([2, 1, row]), "test")
        scene = render_scene(spec)
        tiles = [scene.frames[f] for f in FRAMES] + [PALETTE[scene.masks[f]] for f in FRAMES]
        for col, tile in enumerate(tiles):
            big = Image.fromarray(tile).resize((size, size), Image.NEAREST)
            sheet.paste(big, (col * size, row * size))
        words, text, line = spec.caption.split(), [], ""
        for w in words:  # wrap the caption
            if len(line) + len(w) > 44:
                text.append(line)
                line = ""
            line = f"{line} {w}".strip()
        text.append(line)
        draw.text((len(tiles) * size + 10, row * size + 10), "\n".join(text), fill="black", font=FONT)
    path = Path(out)
    sheet.save(path, optimize=True)
    return path


if __name__ == "__main__":
    print(main(*sys.argv[1:]))
