"""``avdiff bench scenes``: the cost of one procedural scene clip, stage by stage.

Each stage (sampling, drawing frames and masks, synthesizing and mixing the sounds, encoding the mp4, the whole
``make_scene_clip``) is timed over the same ``clips`` scenes in one run and reported in milliseconds per clip, as a
share of the whole, and as multiples of real time (a clip lasts 2 s).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from avdiff.audio.io import Waveform
from avdiff.audio.scene_sounds import mix
from avdiff.bench.timing import format_table
from avdiff.data.scenes import FPS, SAMPLE_RATE, make_scene_clip, render_scene, sample_scene
from avdiff.data.scenes.vocabulary import DURATION_S
from avdiff.data.scenes.writer import object_sounds
from avdiff.video.writer import write_video

logger = logging.getLogger(__name__)


def run_scene_bench(clips: int = 40, seed: int = 0) -> list[dict]:
    """Rows: stage, ms per clip, share of the whole clip, x real time."""

    rngs = [np.random.default_rng([seed, 0, k]) for k in range(clips)]
    timings: dict[str, float] = {}

    def timed(name, fn):
        start = time.perf_counter()
        out = fn()
        timings[name] = time.perf_counter() - start
        return out

    specs = timed("sample scene and caption", lambda: [sample_scene(r, "train") for r in rngs])
    scenes = timed("draw frames and masks", lambda: [render_scene(s) for s in specs])
    silence = np.zeros(int(DURATION_S * SAMPLE_RATE), np.float32)
    mixes = timed(
        "synthesize and mix the sounds",
        lambda: [
            mix(list(object_sounds(s, r.envelopes).values()))[0] if r.envelopes else silence
            for s, r in zip(specs, scenes)
        ],
    )
    with tempfile.TemporaryDirectory() as tmp:
        timed(
            "encode mp4 (H.264 video + AAC audio)",
            lambda: [
                write_video(
                    Path(tmp) / f"{k}.mp4", r.frames, FPS, Waveform(torch.from_numpy(a)[None], SAMPLE_RATE), crf=12
                )
                for k, (r, a) in enumerate(zip(scenes, mixes))
            ],
        )
        timed(
            "whole clip (make_scene_clip: all of it, written)",
            lambda: [make_scene_clip(tmp, f"c{k}", s, "train") for k, s in enumerate(specs)],
        )
    whole = timings["whole clip (make_scene_clip: all of it, written)"]
    return [
        {
            "stage": name,
            "ms_per_clip": f"{1000 * t / clips:.1f}",
            "share": f"{t / whole:.2f}",
            "x_real_time": f"{clips * DURATION_S / t:.0f}",
        }
        for name, t in timings.items()
    ]


def main(clips: int = 40, seed: int = 0) -> str:
    rows = run_scene_bench(clips, seed)
    header = f"avdiff bench scenes: {clips} clips of 16 frames at 64x64 with sound, {torch.get_num_threads()} threads"
    return header + "\n" + format_table(rows, ["stage", "ms_per_clip", "share", "x_real_time"])
