"""docs/scene_grid.png: the first 8 held-out captions by the shipped scene model.

Run: avdiff synth scenes --n 200 --split test --seed 1 --out data/scenes_test
     python docs/make_scene_grid.py data/scenes_test/index.jsonl docs/scene_grid.png
"""

import json
import sys

from PIL import Image

from avdiff.pipelines import TextToVideoPipeline
from avdiff.training.text_to_video import save_sample_grid

captions = [json.loads(line)["caption"] for line in open(sys.argv[1])][:8]
pipe = TextToVideoPipeline.from_pretrained("avdiff/scene-tiny")
pipe.set_progress_bar_config(disable=True)
print(save_sample_grid(pipe, captions, sys.argv[2], frames=[0, 5, 10, 15], num_inference_steps=25, guidance_scale=3.0))

im = Image.open(sys.argv[2])
im.resize((im.width * 2, im.height * 2), Image.NEAREST).save(sys.argv[2])
