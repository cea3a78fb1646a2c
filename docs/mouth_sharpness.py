"""Print how sharp the mouth region of the demo's example stays, with and without the mouth painter.

The demo's example (the astronaut and the shipped espeak-ng sentence) is animated by a motion talking head twice,
seed 0, without and with ``paint_mouth``; each frame's sharpness is the variance of the Laplacian inside the box of
the photo's outer lips grown by 0.3 face sizes (as ``tests/video/test_render.py`` measures it), divided by the
photo's own, and the mean and the minimum over the frames are printed.

    python docs/mouth_sharpness.py [MODEL]     # default: avdiff/talking-head-motion
"""

from __future__ import annotations

import sys
from importlib import resources

import cv2
import numpy as np
import skimage.data
import torch

from avdiff.audio.io import load_audio
from avdiff.pipelines import MotionTalkingHeadPipeline
from avdiff.video.face import OUTER_LIPS, detect_face


def main(model: str = "avdiff/talking-head-motion") -> None:
    photo = skimage.data.astronaut()
    face = detect_face(photo)
    speech = load_audio(str(resources.files("avdiff.demo") / "assets" / "example_speech.flac"))
    pipe = MotionTalkingHeadPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    lo = np.floor(face.landmarks[OUTER_LIPS].min(axis=0) - 0.3 * face.size).astype(int)
    hi = np.ceil(face.landmarks[OUTER_LIPS].max(axis=0) + 0.3 * face.size).astype(int)
    box = np.s_[lo[1] : hi[1], lo[0] : hi[0]]

    def sharpness(image: np.ndarray) -> float:
        grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        return float(cv2.Laplacian(grey, cv2.CV_64F)[box].var())

    own = sharpness(photo)
    for paint in (False, True):
        out = pipe(photo, speech, paint_mouth=paint, generator=torch.Generator().manual_seed(0))
        ratios = np.array([sharpness(frame) / own for frame in np.asarray(out.frames)])
        name = "with the mouth painter" if paint else "the renderer alone"
        print(
            f"{name}: {ratios.mean():.3f} of the photo's sharpness (mean of {len(ratios)} frames), min {ratios.min():.3f}"
        )


if __name__ == "__main__":
    main(*sys.argv[1:2])
