"""``avdiff bench render``: milliseconds per frame of the face renderer against the mouth warp, in the same run.

On each photo (the astronaut at 512 px, an LFW face filling a 512 px frame, the astronaut upscaled to 1024 px) the
same ``frames`` frames are made twice: by :class:`avdiff.video.render.FaceRenderer` (a motion with the mouth, an
eyelid and the head moving; the mesh solved for all frames at once, as :meth:`~FaceRenderer.frames` does) and by
:meth:`avdiff.video.warp.MouthWarper.warp` (the mouth only). OpenCV runs on ``threads`` threads (default 1: the
real-time budget is one core). The report is ms per frame, frames per second and the ratio render / warp; the
absolute numbers depend on the machine, the ratio much less.
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np
import skimage.data

from avdiff.bench.timing import format_table
from avdiff.data.faces import lfw_photo
from avdiff.video.face import detect_face
from avdiff.video.motion import FIELDS, Motion
from avdiff.video.render import FaceRenderer
from avdiff.video.warp import MouthWarper

logger = logging.getLogger(__name__)


def photos() -> dict[str, np.ndarray]:
    """The benchmark's photos by name, uint8 [H, W, 3]."""
    astronaut = skimage.data.astronaut()
    return {
        "astronaut 512": astronaut,
        "LFW face filling 512": lfw_photo(skimage.data.lfw_subset()[1], side=512),
        "astronaut 1024": cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC),
    }


def talking(renderer: FaceRenderer, frames: int) -> Motion:
    """The benchmark's motion: the mouth opening and closing, a blink every 10 frames, the head turning."""
    t = np.arange(frames)
    a = renderer.neutral(frames).as_array()
    col = {name: i for i, name in enumerate(FIELDS)}
    a[:, col["mouth_open"]] = 0.15 + 0.12 * np.sin(t / 3)
    a[:, col["lip_closure"]] = 0.0
    a[:, col["eye_left"]] = a[:, col["eye_right"]] = (t % 10 == 0).astype(float)
    a[:, col["yaw"]] = 0.1 * np.sin(t / 7)
    a[:, col["pitch"]] = 0.05 * np.sin(t / 5)
    return Motion.from_array(a)


def run_render_bench(frames: int = 50, threads: int = 1) -> list[dict]:
    """Rows: photo, the face's box, render and warp ms per frame, render fps, render / warp.

    Raises:
        ValueError: ``frames`` or ``threads`` < 1.
    """
    if frames < 1 or threads < 1:
        raise ValueError(f"frames and threads must be >= 1, got {frames} and {threads}")
    previous = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    rows = []
    try:
        for name, photo in photos().items():
            face = detect_face(photo)
            renderer, warper = FaceRenderer(photo, face), MouthWarper(photo, face)
            motion = talking(renderer, frames)
            amounts = 0.5 + 0.5 * np.sin(np.arange(frames) / 3)
            best_render = best_warp = np.inf
            for _ in range(2):  # the better of two passes: the first warms the caches
                start = time.perf_counter()
                for _frame in renderer.frames(motion):
                    pass
                middle = time.perf_counter()
                for amount in amounts:
                    warper.warp(float(amount))
                end = time.perf_counter()
                best_render, best_warp = min(best_render, middle - start), min(best_warp, end - middle)
            y0, y1, x0, x1 = renderer.roi
            rows.append(
                {
                    "photo": name,
                    "face box": f"{x1 - x0}x{y1 - y0}",
                    "render ms": f"{1000 * best_render / frames:.2f}",
                    "warp ms": f"{1000 * best_warp / frames:.2f}",
                    "render fps": f"{frames / best_render:.0f}",
                    "render / warp": f"{best_render / best_warp:.2f}",
                }
            )
    finally:
        cv2.setNumThreads(previous)
    return rows


def main(frames: int = 50, threads: int = 1) -> str:
    rows = run_render_bench(frames, threads)
    header = (
        f"avdiff bench render: FaceRenderer (mouth, lids, head) against MouthWarper.warp (mouth only), {frames} "
        f"frames per photo, OpenCV on {threads} thread(s)"
    )
    columns = ["photo", "face box", "render ms", "warp ms", "render fps", "render / warp"]
    return header + "\n" + format_table(rows, columns)
