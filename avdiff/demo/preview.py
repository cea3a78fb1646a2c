"""The face preview: the detected faces' boxes and landmarks drawn on the photo, before anything is generated."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from avdiff.video.face import Face

USED_COLOR = (40, 220, 90)  # the face the pipelines animate
OTHER_COLOR = (255, 160, 30)


def draw_faces(rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
    """``rgb`` uint8 [H, W, 3] with each face's box and its 478 landmarks drawn; ``faces[0]`` (the largest, the one
    used) in green and numbered 1, the others in orange."""
    im = Image.fromarray(rgb).convert("RGB")
    draw = ImageDraw.Draw(im)
    scale = max(im.size) / 512
    line, dot = max(1, round(2 * scale)), max(1.0, 1.2 * scale)
    for i, face in reversed(list(enumerate(faces))):  # the used face on top
        color = USED_COLOR if i == 0 else OTHER_COLOR
        x0, y0, x1, y1 = face.box
        draw.rectangle((x0, y0, x1, y1), outline=color, width=line)
        for x, y in face.landmarks:
            draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=color)
        draw.text((x0 + 2 * line, y0 + 2 * line), str(i + 1), fill=color, font_size=max(10, round(14 * scale)))
    return np.asarray(im)


def describe_faces(faces: list[Face]) -> str:
    """One line: how many faces and which one is animated."""
    if not faces:
        return "No face found."
    if len(faces) == 1:
        return "1 face found (green); it is the one animated."
    return f"{len(faces)} faces found; the largest (green, number 1) is animated, the others (orange) stay still."
