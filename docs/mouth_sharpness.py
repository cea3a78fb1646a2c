"""Print how sharp the mouth region stays, with and without the mouth painter, on the example and on held-out faces.

Each photo says the demo's example sentence (the shipped espeak-ng speech), animated by a motion talking head twice,
seed 0, without and with ``paint_mouth``; each frame's sharpness is the variance of the Laplacian inside the box of
the photo's outer lips grown by 0.3 face sizes (as ``tests/video/test_render.py`` measures it), divided by the
photo's own, and the mean and the minimum over the frames are printed. The photos: the astronaut (the demo's example
face, a training identity of the painter's face pool) and the first ``FACES`` faces of the pool's test split (LFW
identities no model trained on).

    python docs/mouth_sharpness.py [MODEL [FACES]]     # default: avdiff/talking-head-motion, 4
"""

from __future__ import annotations

import sys
from importlib import resources

import cv2
import numpy as np
import skimage.data
import torch

from avdiff.audio.io import load_audio
from avdiff.data.faces import face_pool
from avdiff.pipelines import MotionTalkingHeadPipeline
from avdiff.video.face import OUTER_LIPS, detect_face


def mouth_sharpness(pipe: MotionTalkingHeadPipeline, photo: np.ndarray, speech, paint: bool) -> np.ndarray:
    """The frames' mouth-region sharpness over the photo's own, float [F]."""
    face = detect_face(photo)
    lo = np.floor(face.landmarks[OUTER_LIPS].min(axis=0) - 0.3 * face.size).astype(int).clip(0)
    hi = np.ceil(face.landmarks[OUTER_LIPS].max(axis=0) + 0.3 * face.size).astype(int)
    box = np.s_[lo[1] : hi[1], lo[0] : hi[0]]

    def sharpness(image: np.ndarray) -> float:
        grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        return float(cv2.Laplacian(grey, cv2.CV_64F)[box].var())

    own = sharpness(photo)
    out = pipe(photo, speech, paint_mouth=paint, generator=torch.Generator().manual_seed(0))
    return np.array([sharpness(frame) / own for frame in np.asarray(out.frames)])


def main(model: str = "avdiff/talking-head-motion", faces: str = "4") -> None:
    speech = load_audio(str(resources.files("avdiff.demo") / "assets" / "example_speech.flac"))
    pipe = MotionTalkingHeadPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    photos = [("astronaut", skimage.data.astronaut())]
    photos += [(f.name, f.image) for f in face_pool() if f.split == "test"][: int(faces)]
    for name, photo in photos:
        for paint in (False, True):
            ratios = mouth_sharpness(pipe, photo, speech, paint)
            how = "with the mouth painter" if paint else "the renderer alone"
            print(f"{name}, {how}: {ratios.mean():.3f} of the photo's sharpness (mean of {len(ratios)} frames), "
                  f"min {ratios.min():.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main(*sys.argv[1:3])
