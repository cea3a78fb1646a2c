"""``avdiff bench scene``: AudioScenePipeline (AADiff) cost, naive against shared, and peak memory against length.

All on a sound whose loudness swings between a few levels (a tone stepping through 0, 0.3, 0.6 and 1 every 0.5 s,
:func:`stepped_sound`), on the tiny text-to-video preset with random weights at ``size`` px (the cost does not depend
on the weights):

* speed: seconds of work per second of audio (``s/s``) of one call, ``share_levels=False`` (naive: every frame
  denoised) against ``share_levels=True`` (each distinct level vector denoised once), in the same run; ``shared /
  naive`` below 1 is the saving, and it grows with the length (the shared cost is the number of distinct levels);
  ``chunks8``: ``chunk_frames=8`` (8 frames denoised together through the motion layers; only equal chunks shared);
* smoothing: on a fire crackle whose loudness follows a known random envelope, for each ``smoothing_s``: the
  response (Pearson r of each frame's change from the base frame with the unsmoothed control) and the flicker (mean
  absolute change of that change from one frame to the next, relative to no smoothing). A wider window flickers less
  and follows the sound less;
* memory: the peak RSS increase of one shared call streamed to an mp4, per audio length, each in a fresh child
  process (:class:`avdiff.bench.unet.MemoryProbe`); ``peak_vs_first`` near 1 means memory does not grow with length.
"""

from __future__ import annotations

import logging
import tempfile
import time

import numpy as np
import torch

from avdiff.audio.io import Waveform
from avdiff.audio.scene_sounds import curve_to_samples, random_envelope, texture
from avdiff.bench.timing import format_table, run_in_child
from avdiff.bench.unet import MemoryProbe
from avdiff.pipelines import AudioScenePipeline, TextToVideoPipeline

logger = logging.getLogger(__name__)

PROMPT = "a campfire beside a lake at night"
STEP_LEVELS = (0.0, 0.3, 0.6, 1.0)


def stepped_sound(seconds: float, sample_rate: int = 16000, step_s: float = 0.5):
    """A 330 Hz tone whose amplitude steps through :data:`STEP_LEVELS` every ``step_s`` seconds, ``seconds`` long."""

    n = int(round(seconds * sample_rate))
    step = np.arange(n) // int(step_s * sample_rate)
    env = np.asarray(STEP_LEVELS)[step % len(STEP_LEVELS)]
    t = np.arange(n) / sample_rate
    return Waveform(torch.tensor(0.5 * np.sin(2 * np.pi * 330 * t) * env, dtype=torch.float32), sample_rate)


def make_pipe(render_batch_size: int = 8):
    pipe = AudioScenePipeline(TextToVideoPipeline.from_preset("tiny", seed=0), render_batch_size=render_batch_size)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def timed_call(
    pipe, sound, size: int, steps: int, share: bool, output_path: str | None = None, chunk_frames: int = 1
) -> tuple[float, object]:
    start = time.perf_counter()
    out = pipe(
        PROMPT,
        sound,
        target_words="campfire",
        strength=2.0,
        num_inference_steps=steps,
        height=size,
        width=size,
        share_levels=share,
        generator=torch.Generator().manual_seed(0),
        output_path=output_path,
        chunk_frames=chunk_frames,
    )
    return time.perf_counter() - start, out


def crackle(seconds: float, fps: int = 8, sample_rate: int = 16000, seed: int = 0):
    """The procedural fire crackle (:func:`avdiff.audio.scene_sounds.texture`) under a random loudness envelope:
    (the sound, the envelope float [round(seconds * fps)], one value per video frame)."""

    n = int(round(seconds * sample_rate))
    env = random_envelope(np.random.default_rng(seed), int(round(seconds * fps)))
    samples = 0.2 * texture("crackle", n, sample_rate, seed) * curve_to_samples(env, n, fps, sample_rate)
    return Waveform(torch.tensor(samples, dtype=torch.float32), sample_rate), env


def smoothing_tradeoff(
    pipe, seconds: float, size: int, steps: int, spans: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
) -> list[dict]:
    """Response and flicker of the driven change for each smoothing span (see the module docstring)."""
    (sound, _), rows, first = crackle(seconds), [], None
    raw = None
    for span in spans:
        start = time.perf_counter()
        out = pipe(
            PROMPT,
            sound,
            target_words="campfire",
            strength=2.0,
            smoothing_s=span,
            num_inference_steps=steps,
            height=size,
            width=size,
            generator=torch.Generator().manual_seed(0),
        )
        took = time.perf_counter() - start
        raw = out.control[0] if raw is None else raw  # spans[0] = 0: the unsmoothed control
        change = np.abs(out.frames.astype(np.int16) - out.base_frame.astype(np.int16)).mean(axis=(1, 2, 3))
        flicker = float(np.abs(np.diff(change)).mean())
        first = first or flicker
        rows.append(
            {
                "smoothing_s": f"{span:g}",
                "response_r": f"{np.corrcoef(change, raw)[0, 1]:.3f}",
                "flicker": f"{flicker:.3f}",
                "flicker_vs_0": f"{flicker / first:.2f}" if first else "n/a",
                "renders": out.num_rendered,
                "seconds": f"{took:.1f}",
            }
        )
    return rows


def measure_memory(seconds: float, size: int = 64, steps: int = 2, threads: int = 1) -> dict:
    """Peak RSS increase (MB) of one shared call on ``seconds`` of the stepped sound, streamed to an mp4, in this
    process (after a warm-up call on 1 s that loads librosa's kernels). ``{"frames", "rendered", "peak_mb",
    "seconds"}``."""
    torch.set_num_threads(threads)
    pipe = make_pipe()
    with tempfile.TemporaryDirectory(prefix="avdiff-bench-") as tmp:
        timed_call(pipe, stepped_sound(1.0), size, steps, True, f"{tmp}/warmup.mp4")
        sound = stepped_sound(seconds)
        probe = MemoryProbe(torch.device("cpu"))
        probe.start()
        took, out = timed_call(pipe, sound, size, steps, True, f"{tmp}/v.mp4")
        peak = probe.peak_mb()
    return {"frames": out.num_frames, "rendered": out.num_rendered, "peak_mb": peak, "seconds": took}


def main(
    seconds: float = 8.0,
    size: int = 64,
    steps: int = 4,
    durations: tuple[float, ...] = (60.0, 240.0, 600.0),
    threads: int = 1,
) -> str:
    """The report of ``avdiff bench scene`` (see the module docstring) as text."""
    torch.set_num_threads(threads)
    begin = time.perf_counter()
    lines = [
        f"avdiff bench scene: tiny text-to-video preset (random weights), {size}x{size} px at 8 fps, {steps} "
        f"DDIM steps, CFG; a tone stepping through {len(STEP_LEVELS)} loudness levels; CPU ({threads} "
        "thread(s)); s/s = seconds of work per second of audio"
    ]
    pipe = make_pipe()
    timed_call(pipe, stepped_sound(1.0), size, 1, True)  # librosa's kernels and the text encoder, untimed
    rows = []
    for length in sorted({seconds / 2, seconds}):
        sound = stepped_sound(length)
        naive_s, naive = timed_call(pipe, sound, size, steps, False)
        shared_s, shared = timed_call(pipe, sound, size, steps, True)
        chunks_s, chunks = timed_call(pipe, sound, size, steps, True, chunk_frames=8)
        same = int(np.abs(naive.frames.astype(np.int16) - shared.frames).max())
        rows.append(
            {
                "audio_s": f"{length:g}",
                "frames": naive.num_frames,
                "naive_renders": naive.num_rendered,
                "shared_renders": shared.num_rendered,
                "naive_s/s": f"{naive_s / length:.3f}",
                "shared_s/s": f"{shared_s / length:.3f}",
                "shared/naive": f"{shared_s / naive_s:.3f}",
                "max_frame_diff": same,
                "chunks8_renders": chunks.num_rendered,
                "chunks8/naive": f"{chunks_s / naive_s:.3f}",
            }
        )
    lines += [
        "",
        "speed: naive (every frame denoised) against shared (each distinct level once), same run; "
        "max_frame_diff: naive vs shared frames, grey levels",
        format_table(
            rows,
            [
                "audio_s",
                "frames",
                "naive_renders",
                "shared_renders",
                "naive_s/s",
                "shared_s/s",
                "shared/naive",
                "max_frame_diff",
                "chunks8_renders",
                "chunks8/naive",
            ],
        ),
    ]
    rows = smoothing_tradeoff(pipe, seconds, size, steps)
    lines += [
        "",
        f"smoothing: {seconds:g} s of fire crackle under a random loudness envelope; response_r = r(change "
        "from the base frame, unsmoothed control); flicker = mean |frame-to-frame step of that change| (grey "
        "levels)",
        format_table(rows, ["smoothing_s", "response_r", "flicker", "flicker_vs_0", "renders", "seconds"]),
    ]
    mem, first = [], None
    for length in durations:
        m = run_in_child(
            measure_memory,
            {"seconds": length, "size": size, "steps": 2, "threads": threads},
            ["torch", "librosa", "diffusers", "avdiff.pipelines.audio_scene", __name__],
        )
        first = first or m
        mem.append(
            {
                "audio_s": f"{length:g}",
                "frames": m["frames"],
                "rendered": m["rendered"],
                "peak_mb": "n/a" if m["peak_mb"] is None else f"{m['peak_mb']:.0f}",
                "peak_vs_first": "n/a"
                if not (m["peak_mb"] and first["peak_mb"])
                else f"{m['peak_mb'] / first['peak_mb']:.2f}",
                "seconds": f"{m['seconds']:.1f}",
            }
        )
    lines += [
        "",
        "peak memory of one shared call streamed to an mp4, fresh process per row (2 steps)",
        format_table(mem, ["audio_s", "frames", "rendered", "peak_mb", "peak_vs_first", "seconds"]),
    ]
    lines.append(f"({time.perf_counter() - begin:.0f} s in all)")
    return "\n".join(lines)
