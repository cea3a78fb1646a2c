"""``avdiff bench talk|visualize|scene --device D --dtype T [--compile]``: one pipeline timed on a device, in a dtype,
with or without ``torch.compile`` of its UNet, against float32 without compile on the same device in the same run.

Each configuration runs in a fresh child process (:func:`avdiff.bench.timing.run_in_child`), so neither the CUDA
allocator's cache nor a compiled graph carries over. In it the pipeline is built, moved with
:func:`avdiff.loading.to_device` (under float16 the codec stays float32), called once untimed (the warm-up: kernels,
and the compilation with ``--compile``; its wall time is ``first_call_s``), then called again, timed:

* ``rtf``: wall seconds of the call per second of audio (below 1 is faster than real time), end to end;
* per stage, the same for the seconds spent inside the UNet's forwards, the speech or text encoder's forwards and the
  codec's ``encode``/``decode`` (CUDA synchronised around each call), and ``other``: the rest (face detection and
  paste-back, rhythm analysis, the scheduler, copying frames out);
* ``first_frame_s``: seconds from the call's start to its first frame pushed into the output
  (:class:`avdiff.pipelines.output.FrameSink`), what a viewer of a streamed video waits;
* ``peak_mb``: the call's peak memory above what was in use before it (the weights): on CUDA
  ``torch.cuda.max_memory_allocated``; on the CPU the process's peak RSS increase, ``n/a`` where the kernel's mark
  cannot be reset (:class:`avdiff.bench.unet.MemoryProbe`);
* ``finite``: whether every latent the codec decoded was finite (a float16 overflow shows as ``no``), and
  ``max_diff``: the largest difference, in grey levels (uint8), of any frame from the baseline's.

The ratios (``speedup``: baseline seconds over these; ``first_frame_vs_base``, ``peak_vs_base``) are against the
baseline row of the same run. The frames are returned in memory (not encoded to an mp4), so ``other`` holds no video
encoding.

The jobs, on inputs made here (no downloads): ``talk``, the astronaut with speech-like audio
(:mod:`avdiff.bench.talk`), the ``tiny`` preset on the CPU and an SD 1.5-sized pipeline at 256 px elsewhere;
``visualize``, a 128 BPM drum track with three prompts over a text-to-video model, diffusion in-betweens under the
"beats" curve (:mod:`avdiff.bench.visualize`); ``scene``, the stepped tone over the tiny text-to-video preset
(:mod:`avdiff.bench.audio_scene`).
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from avdiff.bench.audio_scene import stepped_sound, timed_call
from avdiff.bench.talk import SD15_SPEC, UNetTimer, astronaut, speech_like
from avdiff.bench.timing import format_table, run_in_child
from avdiff.bench.unet import MemoryProbe
from avdiff.bench.visualize import BENCH_PROMPTS, make_song
from avdiff.loading import DTYPES, check_device, check_dtype, to_device
from avdiff.pipelines import AudioScenePipeline, TalkingHeadPipeline, TextToVideoPipeline
from avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer import BeatVisualizerPipeline
from avdiff.pipelines.beat_visualizer.prompt_keyframes import PromptKeyframes
from avdiff.pipelines.output import FrameSink

logger = logging.getLogger(__name__)

JOBS = ("talk", "visualize", "scene")
BASELINE = {"dtype": "float32", "compile": False}


# --- instruments ---------------------------------------------------------------------------------------------------


class CallTimer:
    """Accumulates the wall time of calls to some methods of one object (``codec.encode``/``decode``), CUDA
    synchronised around each; with ``check_finite``, also whether every tensor passed to them was finite. The methods
    are wrapped on the instance and restored by :meth:`remove`."""

    def __init__(self, obj, names: tuple[str, ...], cuda: bool, check_finite: bool = False):
        self.seconds, self.calls, self.finite = 0.0, 0, True
        self._obj, self._names, self._cuda, self._check = obj, names, cuda, check_finite
        for name in names:
            setattr(obj, name, self._wrap(getattr(obj, name)))

    def _wrap(self, method: Callable) -> Callable:
        @functools.wraps(method)
        def timed(*args, **kwargs):
            if self._check:
                self.finite &= all(bool(torch.isfinite(a).all()) for a in args if isinstance(a, torch.Tensor))
            if self._cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                if self._cuda:
                    torch.cuda.synchronize()
                self.seconds += time.perf_counter() - start
                self.calls += 1

        return timed

    def reset(self) -> None:
        self.seconds, self.calls, self.finite = 0.0, 0, True

    def remove(self) -> None:
        for name in self._names:
            self._obj.__dict__.pop(name, None)  # the class's method shows through again


@contextmanager
def first_frame_clock() -> Iterator[dict]:
    """Within the block, ``clock["first"]`` becomes the ``time.perf_counter()`` of the first frame any pipeline
    pushes into a :class:`~avdiff.pipelines.output.FrameSink` (None until then; set ``clock["first"] = None`` to
    time another call). ``FrameSink.write`` is wrapped for the block and restored after."""
    clock: dict = {"first": None}
    write = FrameSink.write

    def timed_write(sink, frame) -> None:
        if clock["first"] is None:
            clock["first"] = time.perf_counter()
        write(sink, frame)

    FrameSink.write = timed_write
    try:
        yield clock
    finally:
        FrameSink.write = write


def compile_unet(unet: torch.nn.Module, backend: str = "inductor") -> None:
    """``torch.compile`` of the UNet's ``forward``, in place: the module (its config, dtype, hooks) stays the one the
    pipeline holds; the timing hooks run outside the compiled code."""
    unet.forward = torch.compile(unet.forward, backend=backend)


# --- one job's pipeline and call -----------------------------------------------------------------------------------


def build_job(job: str, device: torch.device, model: str | None = None, steps: int = 4, size: int | None = None):
    """``(pipe, the module holding unet/codec/encoder, encoder attribute name, call(seconds) -> output)``, built on
    the CPU in float32 (to be moved by :func:`~avdiff.loading.to_device`), progress bars off. ``device`` only chooses
    the talking head's size: the tiny preset for the CPU, the SD 1.5-sized spec at 256 px elsewhere. ``model``: the
    visualize job's text-to-video model (None: the tiny preset).

    Raises:
        ValueError: an unknown job.
    """
    if job == "talk":
        spec = "tiny" if device.type == "cpu" else SD15_SPEC
        pipe = TalkingHeadPipeline.from_preset(spec)
        pipe.set_progress_bar_config(disable=True)
        px = size or (None if device.type == "cpu" else SD15_SPEC["pixel_size"])
        photo = astronaut()

        def call(seconds: float):
            return pipe(
                photo,
                speech_like(seconds),
                num_inference_steps=steps,
                height=px,
                width=px,
                generator=torch.Generator().manual_seed(0),
            )

        return pipe, pipe, "speech_encoder", call
    if job == "visualize":
        t2v = (
            TextToVideoPipeline.from_preset("tiny", seed=0)
            if model is None
            else TextToVideoPipeline.from_pretrained(model)
        )
        source = PromptKeyframes(t2v, num_inference_steps=steps)
        folder = tempfile.mkdtemp(prefix="avdiff-bench-")

        def call(seconds: float):
            song = str(make_song(f"{folder}/song_{seconds:g}.wav", seconds))
            fresh = BeatVisualizerPipeline(source)  # its own keyframe cache: every call renders all it shows
            fresh.set_progress_bar_config(disable=True)
            return fresh(song, prompts=list(BENCH_PROMPTS), interpolation="diffusion", beats_per_interval=4)

        weakref.finalize(call, shutil.rmtree, folder, ignore_errors=True)  # the songs go with the call
        return BeatVisualizerPipeline(source), t2v, "text_encoder", call
    if job == "scene":
        pipe = AudioScenePipeline(TextToVideoPipeline.from_preset("tiny", seed=0))
        pipe.set_progress_bar_config(disable=True)

        def call(seconds: float):
            return timed_call(pipe, stepped_sound(seconds), size or 64, steps, True)[1]

        return pipe, pipe.t2v, "text_encoder", call
    raise ValueError(f"job must be one of {JOBS}, got {job!r}")


def measure(
    job: str,
    device: str = "cpu",
    dtype: str = "float32",
    compile: bool = False,
    seconds: float = 2.0,
    steps: int = 4,
    model: str | None = None,
    size: int | None = None,
    threads: int = 1,
    frames_path: str | None = None,
    compile_backend: str = "inductor",
) -> dict:
    """One configuration of ``job`` (see the module docstring), in this process.

    Args:
        device, dtype: where and in what the pipeline runs (``"cpu"``, ``"cuda"``; ``"float32"``, ``"float16"``,
            ``"bfloat16"``).
        compile: ``torch.compile`` the UNet's forward (``compile_backend``; ``"eager"`` only traces: a cheap check).
        seconds: audio length of the timed call, s. steps: denoising steps.
        model: the visualize job's text-to-video model (None: the tiny preset). size: frame side, px (None: the
            job's default).
        threads: CPU intra-op threads (0 leaves torch's default).
        frames_path: save the timed call's frames there (``.npy``, uint8 [F, H, W, 3]) for a comparison.

    Returns:
        ``{"job", "device", "dtype", "compile", "seconds", "frames", "total_s", "first_call_s", "first_frame_s",
        "stages": {name: seconds}, "peak_mb" (None: not measurable), "finite"}``.

    Raises:
        ValueError: an unknown job, device or dtype (named).
    """
    dev, torch_dtype = check_device(device), check_dtype(dtype)
    if not seconds > 0 or steps < 1:
        raise ValueError(f"seconds must be > 0 and steps >= 1, got {seconds!r} and {steps!r}")
    if threads:
        torch.set_num_threads(threads)
    pipe, holder, encoder, call = build_job(job, dev, model, steps, size)
    to_device(pipe, dev, torch_dtype)
    if compile:
        compile_unet(holder.unet, compile_backend)
    cuda = dev.type == "cuda"
    timers = {"unet": UNetTimer(holder.unet), encoder.replace("_", " "): UNetTimer(getattr(holder, encoder))}
    codec = CallTimer(holder.codec, ("encode", "decode"), cuda, check_finite=True)
    probe = MemoryProbe(dev)
    try:
        with first_frame_clock() as clock:
            start = time.perf_counter()
            call(seconds)  # warm-up: kernels, mediapipe graphs, librosa's kernels, the compilation
            first_call = time.perf_counter() - start
            for timer in [*timers.values(), codec]:
                timer.reset()
            clock["first"] = None
            probe.start()
            start = time.perf_counter()
            out = call(seconds)
            if cuda:
                torch.cuda.synchronize(dev)
            total = time.perf_counter() - start
            peak = probe.peak_mb()
            first_frame = None if clock["first"] is None else clock["first"] - start
    finally:
        for timer in [*timers.values(), codec]:
            timer.remove()
    stages = {name: timer.seconds for name, timer in timers.items()}
    stages["codec"] = codec.seconds
    stages["other"] = max(total - sum(stages.values()), 0.0)
    frames = np.asarray(out.frames)
    if frames_path is not None:
        np.save(frames_path, frames)
    return {
        "job": job,
        "device": str(dev),
        "dtype": dtype,
        "compile": bool(compile),
        "seconds": seconds,
        "frames": int(out.num_frames),
        "total_s": total,
        "first_call_s": first_call,
        "first_frame_s": first_frame,
        "stages": stages,
        "peak_mb": peak,
        "finite": codec.finite,
    }


def measure_in_child(**kwargs) -> dict:
    """:func:`measure` in a fresh process (forked from a server with torch, diffusers and this module imported)."""
    return run_in_child(measure, kwargs, ["torch", "diffusers", __name__])


# --- the report ----------------------------------------------------------------------------------------------------


def configs(dtype: str = "float32", compile: bool = False) -> list[dict]:
    """The baseline (float32, no compile) and the configuration asked for, when it differs."""
    asked = {"dtype": dtype, "compile": bool(compile)}
    return [BASELINE] if asked == BASELINE else [BASELINE, asked]


def label(r: dict) -> str:
    return f"{r['device']} {r['dtype']}{' compiled' if r['compile'] else ''}"


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _ratio(value: float | None, base: float | None) -> str:
    return "n/a" if value is None or not base else f"{value / base:.2f}"


def report(results: list[dict], frames: list[np.ndarray | None] | None = None) -> tuple[list[dict], list[dict]]:
    """The summary rows (one per configuration, ratios against the first: the baseline) and the per-stage rows."""
    base = results[0]
    rows, stage_rows = [], []
    for i, r in enumerate(results):
        diff = "n/a"
        if frames is not None and frames[i] is not None and frames[0] is not None:
            if frames[i].shape == frames[0].shape:
                diff = str(int(np.abs(frames[i].astype(np.int16) - frames[0].astype(np.int16)).max(initial=0)))
            else:
                diff = "shape"
        rows.append(
            {
                "config": label(r),
                "frames": r["frames"],
                "total_s": f"{r['total_s']:.2f}",
                "rtf": f"{r['total_s'] / r['seconds']:.3f}",
                "speedup": _ratio(base["total_s"], r["total_s"]),
                "first_call_s": f"{r['first_call_s']:.2f}",
                "first_frame_s": _num(r["first_frame_s"], ".3f"),
                "first_frame_vs_base": _ratio(r["first_frame_s"], base["first_frame_s"]),
                "peak_mb": _num(r["peak_mb"], ".0f"),
                "peak_vs_base": _ratio(r["peak_mb"], base["peak_mb"]),
                "finite": "yes" if r["finite"] else "NO",
                "max_diff": diff,
            }
        )
        for stage, secs in r["stages"].items():
            stage_rows.append(
                {
                    "config": label(r),
                    "stage": stage,
                    "seconds": f"{secs:.3f}",
                    "rtf": f"{secs / r['seconds']:.3f}",
                    "share": f"{secs / r['total_s']:.1%}" if r["total_s"] else "n/a",
                    "vs_base": _ratio(secs, base["stages"].get(stage)),
                }
            )
    return rows, stage_rows


SUMMARY_COLUMNS = [
    "config",
    "frames",
    "total_s",
    "rtf",
    "speedup",
    "first_call_s",
    "first_frame_s",
    "first_frame_vs_base",
    "peak_mb",
    "peak_vs_base",
    "finite",
    "max_diff",
]
STAGE_COLUMNS = ["config", "stage", "seconds", "rtf", "share", "vs_base"]


def main(
    job: str,
    device: str | None = None,
    dtype: str = "float32",
    compile: bool = False,
    seconds: float = 10.0,
    steps: int = 4,
    model: str | None = None,
    size: int | None = None,
    threads: int = 1,
    fresh_process: bool = True,
) -> str:
    """The report of ``avdiff bench JOB --device ... --dtype ... [--compile]`` as text (see the module docstring).

    Raises:
        ValueError: an unknown job, a device that is not there, or an unknown dtype (before anything runs).
    """
    if job not in JOBS:
        raise ValueError(f"job must be one of {JOBS}, got {job!r}")
    dev = check_device(device)
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    begin = time.perf_counter()
    results, frames = [], []
    run = measure_in_child if fresh_process else measure
    with tempfile.TemporaryDirectory(prefix="avdiff-bench-") as tmp:
        for i, config in enumerate(configs(dtype, compile)):
            path = str(Path(tmp) / f"frames_{i}.npy")
            results.append(
                run(
                    job=job,
                    device=str(dev),
                    seconds=seconds,
                    steps=steps,
                    model=model,
                    size=size,
                    threads=threads,
                    frames_path=path,
                    **config,
                )
            )
            frames.append(np.load(path))
    rows, stage_rows = report(results, frames)
    what = {"talk": "talking head", "visualize": "beat visualizer (prompts)", "scene": "audio scene"}[job]
    lines = [
        f"avdiff bench {job} on {dev}: the {what} pipeline, {seconds:g} s of audio, {steps} step{'s' if steps != 1 else ''}, against float32 "
        f"without compile on the same device, each configuration in a fresh process"
        f"{f' ({threads} CPU thread(s))' if dev.type == 'cpu' else ''}; rtf = wall s per audio s",
        "",
        format_table(rows, SUMMARY_COLUMNS),
        "",
        "per stage (rtf = the stage's s per audio s; other: face, rhythm, scheduler, paste-back, copies)",
        format_table(stage_rows, STAGE_COLUMNS),
        f"({time.perf_counter() - begin:.0f} s in all)",
    ]
    return "\n".join(lines)
