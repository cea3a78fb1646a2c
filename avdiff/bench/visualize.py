"""``avdiff bench visualize``: BeatVisualizerPipeline speed per keyframe source, and peak memory against song length.

All on generated 128 BPM drum tracks with accented downbeats (:func:`avdiff.audio.synth.drum_track`) and
scikit-image's pictures as keyframe images:

* speed: seconds of work per second of music (``s/s``; below 1 is faster than real time) of one call streamed to an
  mp4, next to a baseline measured in the same run: ``encode``, the cost every source pays (the same number of
  still frames encoded, with the song muxed in), and ``analysis`` (the rhythm alone). The keyframe sources are
  ``images`` (keyframe images, no model; pixel and latent in-betweens, and the "percussive" curve) and ``prompts``
  (:class:`~avdiff.pipelines.beat_visualizer.prompt_keyframes.PromptKeyframes` over ``--model``, at the model's own size:
  ``latent`` in-betweens, and stable-diffusion-videos' ``diffusion`` walk under the "beats" curve, which holds
  ``t`` between beats, and under "linear", which moves it every frame: the worst case);
* memory: the peak RSS increase of one call in keyframe-images mode, streamed to an mp4, for each song length, each
  in a fresh child process (:class:`avdiff.bench.unet.MemoryProbe`); ``peak_vs_first`` near 1 means memory does not
  grow with the song.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from avdiff.audio.io import AudioStream, save_audio
from avdiff.audio.rhythm import analyze_rhythm
from avdiff.audio.synth import drum_track
from avdiff.bench.timing import format_table, run_in_child
from avdiff.bench.unet import MemoryProbe
from avdiff.bundled import DEFAULT_SCENE_MODEL
from avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer import BeatVisualizerPipeline, song_frames
from avdiff.pipelines.beat_visualizer.prompt_keyframes import PromptKeyframes
from avdiff.video.reader import VideoReader
from avdiff.video.writer import VideoWriter

logger = logging.getLogger(__name__)

KEYFRAME_PICTURES = ("astronaut", "coffee", "chelsea")
BENCH_PROMPTS = ("a campfire on the left by day", "a lake at sunset", "a red car and rain at night")


def make_song(path: str | Path, seconds: float, bpm: float = 128.0, sample_rate: int = 22050) -> Path:
    """A drum track with accented downbeats written to ``path`` (wav: no codec in the way)."""

    return save_audio(path, drum_track(bpm, duration_s=seconds, sample_rate=sample_rate, accent=0.5).waveform)


def make_keyframes(folder: str | Path, size: int = 128) -> list[Path]:
    """scikit-image's astronaut, coffee and cat, resized to ``size`` px squares, as PNG files in ``folder``."""
    import skimage.data
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in KEYFRAME_PICTURES:
        image = getattr(skimage.data, name)()
        side = min(image.shape[:2])
        y0, x0 = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        square = cv2.resize(image[y0 : y0 + side, x0 : x0 + side], (size, size), interpolation=cv2.INTER_AREA)
        paths.append(folder / f"{name}.png")
        Image.fromarray(square).save(paths[-1])
    return paths


def measure_memory(
    song: str,
    images: list[str],
    size: int = 64,
    fps: str = "30000/1001",
    threads: int = 1,
    curve: str = "beats",
    warmup: bool = True,
) -> dict:
    """Peak RSS increase (MB) of one keyframe-images call on ``song``, streamed to an mp4, in this process.

    With ``warmup``, a call on 3 s of the same groove comes first and is not measured: the first call in a process
    also imports librosa's lazy modules and compiles its numba kernels (about 250 MB here, whatever the song's
    length), which would hide how the call itself grows.

    Returns:
        ``{"frames", "peak_mb" (None when it cannot be measured: see MemoryProbe), "seconds" (the call's wall time),
        "video_s" (frames / fps), "audio_s" (the mp4's audio track), "song_s"}``.
    """

    torch.set_num_threads(threads)
    pipe = BeatVisualizerPipeline()
    pipe.set_progress_bar_config(disable=True)
    with tempfile.TemporaryDirectory(prefix="avdiff-bench-") as tmp:
        if warmup:
            pipe(
                str(make_song(f"{tmp}/warmup.wav", 3.0)),
                images=images,
                curve=curve,
                height=size,
                width=size,
                fps=fps,
                output_path=f"{tmp}/warmup.mp4",
            )
        probe = MemoryProbe(torch.device("cpu"))
        probe.start()
        start = time.perf_counter()
        out = pipe(song, images=images, curve=curve, height=size, width=size, fps=fps, output_path=f"{tmp}/v.mp4")
        seconds = time.perf_counter() - start
        peak = probe.peak_mb()
        with VideoReader(out.path) as video:
            audio_s = video.audio.duration_s if video.audio is not None else None
            frames = sum(1 for _ in video)
    return {
        "frames": out.num_frames,
        "frames_read": frames,
        "peak_mb": peak,
        "seconds": seconds,
        "video_s": float(out.num_frames / out.fps),
        "audio_s": audio_s,
        "song_s": out.rhythm.num_frames / out.rhythm.fps,
    }


def measure_memory_in_child(**kwargs) -> dict:
    """``measure_memory`` in a fresh process (forked from a server with torch and the pipeline imported)."""
    preload = ["torch", "librosa", "avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer", __name__]
    return run_in_child(measure_memory, kwargs, preload)


def measure_speed(
    song: str, images: list[str] | None, size: int | None, fps: str, pipe=None, label: str = "images", **call
) -> dict:
    """Wall time of one call streamed to an mp4 (after the rhythm of the same song has been analysed once, so the
    first call's compilation is not counted): ``{"source", "seconds", "frames"}``."""

    pipe = pipe or BeatVisualizerPipeline()
    pipe.set_progress_bar_config(disable=True)
    with tempfile.TemporaryDirectory(prefix="avdiff-bench-") as tmp:
        start = time.perf_counter()
        keys = {"images": images} if images is not None else {}
        out = pipe(song, height=size, width=size, fps=fps, output_path=f"{tmp}/v.mp4", **call, **keys)
        seconds = time.perf_counter() - start
    return {"source": label, "seconds": seconds, "frames": out.num_frames}


def measure_baselines(song: str, size: int, fps: str) -> list[dict]:
    """The same run's floor: the rhythm analysis alone, and encoding as many still frames with the song muxed in."""

    stream = AudioStream(song)
    start = time.perf_counter()
    analyze_rhythm(stream, fps)
    analysis = time.perf_counter() - start
    frames = song_frames(stream, fps)
    still = np.full((size, size, 3), 128, np.uint8)
    with tempfile.TemporaryDirectory(prefix="avdiff-bench-") as tmp:
        start = time.perf_counter()
        with VideoWriter(f"{tmp}/still.mp4", fps, stream) as out:
            for i in range(frames):
                still[0, 0, 0] = i % 256  # not quite still: a real frame each time
                out.write(still)
        encode = time.perf_counter() - start
    return [
        {"source": "analysis (baseline)", "seconds": analysis, "frames": frames},
        {"source": "encode (baseline)", "seconds": encode, "frames": frames},
    ]


def prompt_source(model: str, steps: int):
    """The ``prompts`` rows' pipeline over ``model`` (loaded before anything is timed, so a bad ``--model`` fails
    first)."""

    pipe = BeatVisualizerPipeline(PromptKeyframes.from_pretrained(model, num_inference_steps=steps))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def prompt_rows(song: str, fps: str, pipe, label: str) -> list[dict]:
    """The ``prompts`` source's rows, at the model's own size: the keyframes' first render (with latent
    in-betweens), then each interpolation with the keyframes cached and the in-between cache emptied before the row,
    so each row pays for all of its own in-betweens. ``made`` counts the in-betweens rendered or decoded."""
    call = {"prompts": list(BENCH_PROMPTS), "beats_per_interval": 8}
    size = pipe.source.default_size[0]
    rows = []
    for name, kwargs in (
        (f"prompts ({label}): keyframes + latent", {"interpolation": "latent"}),
        ("prompts, latent in-betweens", {"interpolation": "latent"}),
        ("prompts, diffusion walk, curve beats", {"interpolation": "diffusion"}),
        ("prompts, diffusion walk, curve linear", {"interpolation": "diffusion", "curve": "linear"}),
    ):
        pipe.cache.frames.clear()
        misses = pipe.cache.misses
        row = measure_speed(song, None, None, fps, pipe, name, **kwargs, **call)
        rows.append({**row, "size": size, "made": pipe.cache.misses - misses})
    return rows


def main(
    seconds: float = 30.0,
    size: int = 64,
    fps: str = "30000/1001",
    durations: tuple[float, ...] = (60.0, 600.0),
    threads: int = 1,
    model: str | None = DEFAULT_SCENE_MODEL,
    steps: int = 20,
) -> str:
    """The report of ``avdiff bench visualize`` (see the module docstring) as text."""
    torch.set_num_threads(threads)
    begin = time.perf_counter()
    lines = [
        f"avdiff bench visualize: 128 BPM drums with accented downbeats, images at {size}x{size} px, {fps} fps, "
        f"CPU ({threads} thread(s)); s/s = seconds of work per second of music"
    ]
    with tempfile.TemporaryDirectory(prefix="avdiff-bench-") as tmp:
        song = str(make_song(f"{tmp}/song.wav", seconds))
        images = [str(p) for p in make_keyframes(f"{tmp}/keys")]

        analyze_rhythm(song, fps)  # compile librosa's kernels before anything is timed
        prompts = prompt_source(model, steps) if model is not None else None
        rows = [{**r, "size": size} for r in measure_baselines(song, size, fps)]
        for label, kwargs in (
            ("images (keyframe images, pixel)", {}),
            ("images, curve percussive", {"curve": "percussive"}),
            ("images, latent in-betweens", {"interpolation": "latent"}),
        ):
            rows.append({**measure_speed(song, images, size, fps, label=label, **kwargs), "size": size})
        if prompts is not None:
            model_size = prompts.source.default_size[0]
            if model_size != size:  # the encode baseline at the model's size, for its rows
                rows += [{**r, "size": model_size} for r in measure_baselines(song, model_size, fps)[1:]]
            rows += prompt_rows(song, fps, prompts, f"{model}, {steps} steps")
        base = {r["size"]: r["seconds"] for r in rows if r["source"] == "encode (baseline)"}
        table = [
            {
                "source": r["source"],
                "px": r["size"],
                "frames": r["frames"],
                "made": r.get("made", ""),
                "seconds": f"{r['seconds']:.2f}",
                "s/s": f"{r['seconds'] / seconds:.3f}",
                "vs_encode": f"{r['seconds'] / base[r['size']]:.2f}",
            }
            for r in rows
        ]
        lines += [
            "",
            f"speed: one call on {seconds:g} s of music, streamed to an mp4 (vs_encode: against the encode "
            "baseline at the row's size; made: in-betweens rendered or decoded)",
            format_table(table, ["source", "px", "frames", "made", "seconds", "s/s", "vs_encode"]),
        ]
        mem = []
        first = None
        for length in durations:
            path = str(make_song(f"{tmp}/song_{length:g}.wav", length))
            m = measure_memory_in_child(song=path, images=images, size=size, fps=fps, threads=threads)
            first = first or m
            mem.append(
                {
                    "song_s": f"{length:g}",
                    "frames": m["frames"],
                    "peak_mb": _mb(m["peak_mb"]),
                    "peak_vs_first": _ratio(m["peak_mb"], first["peak_mb"]),
                    "seconds": f"{m['seconds']:.1f}",
                    "video_s - audio_s": f"{m['video_s'] - (m['audio_s'] or 0):+.4f}",
                }
            )
        lines += [
            "",
            "peak memory of one keyframe-images call streamed to an mp4, fresh process per row "
            "(target: peak_vs_first <= 1.5)",
            format_table(mem, ["song_s", "frames", "peak_mb", "peak_vs_first", "seconds", "video_s - audio_s"]),
        ]
    lines.append(f"({time.perf_counter() - begin:.0f} s in all)")
    return "\n".join(lines)


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _ratio(value: float | None, base: float | None) -> str:
    return "n/a" if value is None or not base else f"{value / base:.2f}"
