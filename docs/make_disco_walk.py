"""docs/disco_walk.png: the frames between two prompt keyframes, the diffusion walk against the latent
interpolation, by the shipped scene model.

Run: python docs/make_disco_walk.py [MODEL] [OUT.png]
"""

import sys
import time

import numpy as np
import torch
from PIL import Image, ImageDraw

from avdiff.pipelines.beat_visualizer.prompt_keyframes import PromptKeyframes

src = PromptKeyframes.from_pretrained(
    sys.argv[1] if len(sys.argv) > 1 else "avdiff/scene-tiny", num_inference_steps=20
)
pairs = [
    ("a campfire on the left by day", "a campfire on the left at night"),
    ("a lake in the middle at sunset", "a red car in the middle at sunset"),
]
ts = [0.0, 0.25, 0.5, 0.75, 1.0]
rows, labels = [], []
for a, b in pairs:
    A, B = src.render_prompt(a, (64, 64)), src.render_prompt(b, (64, 64))
    t0 = time.perf_counter()
    walk = [A.image] + src.inbetweens(A, B, ts[1:-1]) + [B.image]
    tw = time.perf_counter() - t0
    t0 = time.perf_counter()
    lat = list(src.decode(torch.cat([A.latent + (B.latent - A.latent) * t for t in ts])))
    tl = time.perf_counter() - t0
    rows += [walk, lat]
    labels += [
        f"diffusion walk: {a} -> {b}  ({tw / 3:.2f} s per in-between)",
        f"latent lerp  ({tl / 5 * 1000:.1f} ms per frame)",
    ]
s, gap = 128, 4
tw_ = int(max(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(label) for label in labels)) + 3 * gap
canvas = Image.new("RGB", (len(ts) * (s + gap) + gap + tw_, len(rows) * (s + gap) + gap + 14), "white")
d = ImageDraw.Draw(canvas)
for j, t in enumerate(ts):
    d.text((gap + j * (s + gap) + s // 2 - 8, 2), f"t={t:g}", fill="black")
for i, (row, label) in enumerate(zip(rows, labels)):
    y = 14 + gap + i * (s + gap)
    for j, im in enumerate(row):
        canvas.paste(Image.fromarray(np.ascontiguousarray(im)).resize((s, s), Image.NEAREST), (gap + j * (s + gap), y))
    d.text((len(ts) * (s + gap) + 2 * gap, y + s // 2 - 5), label, fill="black")
canvas.save(sys.argv[2] if len(sys.argv) > 2 else "docs/disco_walk.png")
print(labels)
