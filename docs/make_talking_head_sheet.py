"""docs/talking-head-sheet.jpg: face crops of the demo's example (the astronaut with the bundled speech) made by the
motion model (top), the pixel model (middle, 8 steps) and the warp baseline (bottom), at four frames picked from the
motion model's own motion: the widest mouth, the lips shut, the eyes most closed, the most rounded mouth.

Run: python docs/make_talking_head_sheet.py [OUT.jpg]
"""

import sys
import time

import cv2
import numpy as np
import torch

from avdiff.demo.examples import example_files
from avdiff.pipelines import MotionTalkingHeadPipeline, TalkingHeadPipeline, WarpBaselinePipeline

photo, speech = example_files()
pipes = [
    (MotionTalkingHeadPipeline.from_pretrained("avdiff/talking-head-motion"), {}),
    (TalkingHeadPipeline.from_pretrained("avdiff/talking-head-tiny"), {"num_inference_steps": 8}),
    (WarpBaselinePipeline(), {}),
]
outs = []
for pipe, kwargs in pipes:
    pipe.set_progress_bar_config(disable=True)
    if not isinstance(pipe, WarpBaselinePipeline):
        kwargs["generator"] = torch.Generator().manual_seed(0)
    tick = time.perf_counter()
    outs.append(pipe(str(photo), str(speech), **kwargs))
    print(f"{type(pipe).__name__}: {time.perf_counter() - tick:.1f} s")
m = outs[0].motion
eyes = np.maximum(m.eye_left, m.eye_right)
frames = [m.mouth_open.argmax(), (m.mouth_open + 10 * (eyes > 0.3)).argmin(), eyes.argmax(), m.mouth_round.argmax()]
rows = [np.concatenate([cv2.resize(o.frames[i][60:240, 150:330], (192, 192)) for i in frames], 1) for o in outs]
out = sys.argv[1] if len(sys.argv) > 1 else "docs/talking-head-sheet.jpg"
cv2.imwrite(out, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
print(f"frames {[int(i) for i in frames]} -> {out}")
