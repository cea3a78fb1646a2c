"""``avdiff bench talk``: talking-head speed per stage, overhead outside the UNet, and peak memory against audio
length.

* ``motion``: the :class:`~avdiff.pipelines.talking_head.MotionTalkingHeadPipeline` (the bundled
  ``avdiff/talking-head-motion`` when it ships, else the untrained ``tiny`` motion preset, which costs the same),
  at 256 and 512 px, on one thread and on all cores: ``rtf`` end to end and per stage (audio loading, motion
  sampling, rendering, mouth painting, encoding, from the pipeline's own ``timings``), and the time to the first
  frame, each against the model-free warp baseline measured in the same run; at 512 px also with the mouth painter
  (``paint_mouth=True``, the painter's default 4 DDIM steps without classifier-free guidance) where the pipeline
  has one;

All on the astronaut photo (512x512) with a deterministic speech-like signal (a voiced buzz whose loudness rises and
falls at syllable rate), so the numbers do not depend on espeak-ng:

* ``rtf``: generation seconds per second of audio (below 1 is faster than real time), after a short warm-up call;
* ``unet_share`` and ``outside_unet``: the share of the call spent inside UNet forwards (timed by hooks on the UNet)
  and everything else (face detection, speech features and tokens, scheduler, decoding, paste-back); the target is
  at most 10 % outside the UNet;
* ``peak_mb`` for 10, 30 and 120 s of audio, for the warp baseline and the tiny pipeline, each streaming its video
  to an mp4 as ``avdiff talk`` does: the peak RSS increase during one call, each in a fresh child process, measured
  with :class:`avdiff.bench.unet.MemoryProbe` (the kernel's ``VmHWM`` after resetting it through
  ``/proc/self/clear_refs``; ``n/a`` where it cannot be measured). ``peak_vs_first`` is the peak over the 10 s one:
  bounded memory means it stays near 1 (the target is at most 1.5) however long the audio; the frames are never held.

The CPU runs the ``tiny`` preset with one intra-op thread. With CUDA, an SD 1.5-sized pipeline (the sd15 UNet and
an SD-sized VAE with random weights, bf16) runs at 256x256 as well.
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np
import torch

from avdiff.audio.io import Waveform
from avdiff.bench.timing import format_table, run_in_child
from avdiff.bench.unet import MemoryProbe
from avdiff.bundled import resolve
from avdiff.data.synthetic import default_face
from avdiff.models.builders import build_motion_denoiser
from avdiff.models.unet import quiet_empty_fp32_warning
from avdiff.pipelines.talking_head import MotionTalkingHeadPipeline, TalkingHeadPipeline, WarpBaselinePipeline
from avdiff.pipelines.talking_head.mouth_painting import MOUTH_GUIDANCE, MOUTH_STEPS
from avdiff.pipelines.talking_head.pipeline_motion_talking_head import STAGES

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
# An SD 1.5-sized talking-head pipeline: the sd15 UNet (random weights), Stable Diffusion's VAE architecture
# (random weights), and a log-mel speech encoder projecting to the UNet's 768-wide audio tokens.
SD15_SPEC = {
    "pixel_size": 256,
    "codec": {
        "type": "vae",
        "vae_config": {
            "in_channels": 3,
            "out_channels": 3,
            "latent_channels": 4,
            "sample_size": 256,
            "layers_per_block": 2,
            "block_out_channels": [128, 256, 512, 512],
            "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4,
            "norm_num_groups": 32,
            "scaling_factor": 0.18215,
        },
    },
    "unet": {"preset": "sd15", "mask_channels": 1},
    "speech_encoder": {"type": "log_mel", "audio_dim": 768, "hidden_dim": 256, "tokens_per_frame": 5},
    "scheduler": {
        "type": "ddim",
        "num_train_timesteps": 1000,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "prediction_type": "epsilon",
        "timestep_spacing": "trailing",
        "clip_sample": False,
        "set_alpha_to_one": False,
    },
}


def speech_like(duration_s: float, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> Waveform:
    """A deterministic stand-in for speech: a 120 Hz harmonic buzz with formant-ish noise, its loudness rising and
    falling about 4 times a second with short pauses. Mono float32 [1, N]."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    f0 = 120 + 15 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) ** 2
    pauses = (np.sin(2 * np.pi * 0.3 * t) > -0.8).astype(np.float64)
    x = 0.25 * (voiced + 0.3 * rng.standard_normal(n)) * syllables * pauses
    return Waveform(torch.from_numpy(x.astype(np.float32))[None], sample_rate)


def astronaut() -> np.ndarray:
    return default_face()


class UNetTimer:
    """Accumulates the wall time of every forward of a module (hooks; CUDA is synchronised around each call)."""

    def __init__(self, module: torch.nn.Module):
        self.seconds, self.calls, self._start = 0.0, 0, 0.0
        self._cuda = next(module.parameters()).is_cuda
        self._handles = [module.register_forward_pre_hook(self._pre), module.register_forward_hook(self._post)]

    def _sync(self) -> None:
        if self._cuda:
            torch.cuda.synchronize()

    def _pre(self, module, args) -> None:
        self._sync()
        self._start = time.perf_counter()

    def _post(self, module, args, output) -> None:
        self._sync()
        self.seconds += time.perf_counter() - self._start
        self.calls += 1

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def build(spec: str | dict = "tiny", device: str = "cpu", dtype: str = "float32", threads: int = 1):
    """A random-weight pipeline from a preset name or spec dict, on ``device`` in ``dtype``, progress bar off."""

    if threads:
        torch.set_num_threads(threads)
    pipe = TalkingHeadPipeline.from_preset(spec)
    with quiet_empty_fp32_warning():
        pipe.to(device=device, dtype=getattr(torch, dtype))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def measure_speed(
    spec: str | dict = "tiny",
    seconds: float = 10.0,
    steps: int = 4,
    device: str = "cpu",
    dtype: str = "float32",
    threads: int = 1,
    size: int | None = None,
) -> dict:
    """Real-time factor and the time outside UNet forwards of one call (after a 1 s, 1-step warm-up call)."""
    pipe = build(spec, device, dtype, threads)
    photo = astronaut()
    kwargs = {"height": size, "width": size, "generator": torch.Generator().manual_seed(0)}
    pipe(photo, speech_like(1.0), num_inference_steps=1, **kwargs)  # warm-up: mediapipe graphs, kernels
    timer = UNetTimer(pipe.unet)
    start = time.perf_counter()
    out = pipe(photo, speech_like(seconds), num_inference_steps=steps, **kwargs)
    total = time.perf_counter() - start
    timer.remove()
    return {
        "device": device,
        "dtype": dtype,
        "seconds": seconds,
        "steps": steps,
        "frames": out.num_frames,
        "size": size or pipe.default_size,
        "total_s": total,
        "unet_s": timer.seconds,
        "unet_calls": timer.calls,
        "rtf": total / seconds,
    }


MOTION_MODEL = "avdiff/talking-head-motion"
ALL_THREADS = torch.get_num_threads()  # torch's own default (all cores), read before any row changes it


def motion_pipeline() -> tuple[MotionTalkingHeadPipeline, str]:
    """(the bundled motion model, or the untrained tiny motion preset when it does not ship; its name)."""
    folder = resolve(MOTION_MODEL)
    if folder != MOTION_MODEL:
        pipe, name = MotionTalkingHeadPipeline.from_pretrained(folder), MOTION_MODEL
    else:
        pipe, name = MotionTalkingHeadPipeline(build_motion_denoiser("tiny", seed=0)), "motion tiny (untrained)"
    pipe.set_progress_bar_config(disable=True)
    return pipe, name


def measure_stages(
    seconds: float = 10.0, size: int = 512, threads: int = 1, steps: int = 10, paint_mouth: bool = False
) -> dict:
    """One call of the motion pipeline and one of the warp baseline on ``seconds`` of speech-like audio and the
    astronaut at ``size`` px, each streamed to an mp4 (after a 1 s warm-up call of each), with ``threads`` torch and
    OpenCV threads (0: the libraries' defaults, all cores), the mouth painted with ``paint_mouth``.

    Returns:
        ``{"model", "size", "threads" (torch's, during the call), "paint_mouth", "seconds", "frames", "total_s",
        "warp_s", "first_frame_s", and the seconds of each stage: "audio", "motion", "render", "paint", "encode"}``.
    """
    import tempfile

    torch.set_num_threads(threads or ALL_THREADS)  # set both ways: an earlier row's setting must not stay
    cv2.setNumThreads(threads or -1)
    pipe, name = motion_pipeline()
    warp = WarpBaselinePipeline()
    warp.set_progress_bar_config(disable=True)
    photo = astronaut()
    if size != photo.shape[0]:
        photo = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
    speech = speech_like(seconds)
    with tempfile.TemporaryDirectory(prefix="avdiff-bench-") as tmp:
        pipe(photo, speech_like(1.0), generator=torch.Generator().manual_seed(0), output_path=f"{tmp}/warm.mp4",
             paint_mouth=paint_mouth)  # fmt: skip
        warp(photo, speech_like(1.0), output_path=f"{tmp}/warm_warp.mp4")
        start = time.perf_counter()
        out = pipe(photo, speech, num_inference_steps=steps, generator=torch.Generator().manual_seed(0),
                   output_path=f"{tmp}/motion.mp4", paint_mouth=paint_mouth)  # fmt: skip
        total = time.perf_counter() - start
        start = time.perf_counter()
        warp(photo, speech, output_path=f"{tmp}/warp.mp4")
        warp_s = time.perf_counter() - start
    return {"model": name, "size": size, "threads": torch.get_num_threads(), "paint_mouth": paint_mouth,
            "seconds": seconds, "frames": out.num_frames, "total_s": total, "warp_s": warp_s,
            "first_frame_s": out.timings["first_frame"], **{k: out.timings[k] for k in STAGES}}  # fmt: skip


def stages_row(r: dict) -> dict:
    per = r["seconds"]
    return {
        "config": f"{r['size']}px {r['threads']} thread(s)" + (" painted" if r.get("paint_mouth") else ""),
        "audio_s": f"{per:g}",
        "rtf": f"{r['total_s'] / per:.3f}",
        "vs_warp": f"{r['total_s'] / r['warp_s']:.2f}",
        "first_frame_s": f"{r['first_frame_s']:.2f}",
        **{f"{k}_rtf": f"{r[k] / per:.3f}" for k in STAGES},
    }


def measure_memory(
    seconds: float,
    pipeline: str = "tiny",
    steps: int = 1,
    threads: int = 1,
    output: str = "mp4",
    output_type: str = "np",
    audio_guidance_scale: float = 2.0,
    reference_guidance_scale: float = 1.5,
    chunk_frames: int = 16,
    motion_frames: int = 2,
    photo_px: int = 512,
    crop_px: int | None = None,
) -> dict:
    """Peak RSS increase (MB) of one call on ``seconds`` of speech-like audio on the astronaut, in this process.

    Args:
        pipeline: ``"tiny"`` (the random-weight TalkingHeadPipeline), ``"motion"`` (:func:`motion_pipeline`) or
            ``"warp"`` (the mouth-warp baseline).
        output: ``"mp4"`` streams the frames to an mp4 (``output_path``, as ``avdiff talk`` does); ``"return"`` returns
            them (``output_type`` for the tiny pipeline).
        photo_px: the astronaut photo resized to this side (the frames' size).
        crop_px: the tiny pipeline's face crop side (default: the model's 64 px; 32 is 4x cheaper).

    Returns:
        ``{"seconds", "frames", "peak_mb" (None when it cannot be measured: see MemoryProbe), "output_mb" (the frames
        returned, 0 when streamed)}``.
    """
    import tempfile

    if pipeline == "warp":
        torch.set_num_threads(threads)
        pipe = WarpBaselinePipeline()
        pipe.set_progress_bar_config(disable=True)
        kwargs = {}
    elif pipeline == "motion":
        torch.set_num_threads(threads)
        pipe, _ = motion_pipeline()
        kwargs = {"generator": torch.Generator().manual_seed(0)}
    elif pipeline == "tiny":
        pipe = build("tiny", "cpu", "float32", threads)
        kwargs = {
            "num_inference_steps": steps,
            "audio_guidance_scale": audio_guidance_scale,
            "reference_guidance_scale": reference_guidance_scale,
            "chunk_frames": chunk_frames,
            "motion_frames": motion_frames,
            "generator": torch.Generator().manual_seed(0),
            "height": crop_px,
            "width": crop_px,
        }
        if output != "mp4":
            kwargs["output_type"] = output_type
    else:
        raise ValueError(f"pipeline must be 'tiny', 'motion' or 'warp', got {pipeline!r}")
    photo, speech = astronaut(), speech_like(seconds)
    if photo_px != photo.shape[0]:
        photo = cv2.resize(photo, (photo_px, photo_px), interpolation=cv2.INTER_AREA)
    with tempfile.TemporaryDirectory(prefix="avdiff-bench-") as tmp:
        probe = MemoryProbe(torch.device("cpu"))
        probe.start()
        out = pipe(photo, speech, output_path=f"{tmp}/out.mp4" if output == "mp4" else None, **kwargs)
        peak = probe.peak_mb()
    held = out.frames.nbytes / 2**20 if isinstance(out.frames, np.ndarray) else 0.0
    return {"seconds": seconds, "pipeline": pipeline, "frames": out.num_frames, "peak_mb": peak, "output_mb": held}


def measure_memory_in_child(**kwargs) -> dict:
    """``measure_memory`` in a fresh process forked from a server that has torch and the pipelines imported, so no
    allocator cache or earlier peak carries over."""
    preload = [
        "torch",
        "diffusers",
        "avdiff.pipelines.talking_head.pipeline_talking_head",
        "avdiff.pipelines.talking_head.pipeline_warp_baseline",
        "avdiff.pipelines.talking_head.pipeline_motion_talking_head",
        __name__,
    ]
    return run_in_child(measure_memory, kwargs, preload)


def speed_row(name: str, r: dict) -> dict:
    outside = r["total_s"] - r["unet_s"]
    return {
        "config": f"{name} {r['device']} {r['dtype']} {r['size']}px {r['steps']} steps",
        "audio_s": f"{r['seconds']:g}",
        "frames": r["frames"],
        "total_s": f"{r['total_s']:.2f}",
        "rtf": f"{r['rtf']:.2f}",
        "unet_calls": r["unet_calls"],
        "unet_share": f"{r['unet_s'] / r['total_s']:.1%}",
        "outside_unet": f"{outside / r['total_s']:.1%}",
    }


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _ratio(value: float | None, base: float | None) -> str:
    return "n/a" if value is None or not base else f"{value / base:.2f}"


def main(
    durations: tuple[float, ...] = (10.0, 30.0, 120.0),
    speed_seconds: float = 10.0,
    steps: int = 4,
    threads: int = 1,
    gpu: bool | None = None,
) -> str:
    start = time.perf_counter()
    stages = [measure_stages(speed_seconds, size, n) for size in (256, 512) for n in (1, 0)]
    if motion_pipeline()[0].mouth_painter is not None:
        stages += [measure_stages(speed_seconds, 512, n, paint_mouth=True) for n in (1, 0)]
    lines = [
        f"avdiff bench talk: the motion pipeline ({stages[0]['model']}, 10 DDIM steps per window, guidance 2) on the "
        "astronaut and speech-like audio, streamed to an mp4; rtf = wall s per audio s (<= 1: real time), per stage "
        "too; vs_warp = its time over the model-free warp baseline's in the same run; painted = with the mouth "
        f"painter ({MOUTH_STEPS} steps, guidance {MOUTH_GUIDANCE:g}; each mouth at its native size)",
        format_table([stages_row(r) for r in stages], ["config", "audio_s", "rtf", "vs_warp", "first_frame_s",
                                                        *(f"{k}_rtf" for k in STAGES)]),
        "",
        f"the pixel model: astronaut 512x512, speech-like audio, tiny preset on CPU ({threads} thread(s)), "
        "guidance 3 passes (audio 2.0, reference 1.5), chunks of 16 with 2 motion frames",
    ]  # fmt: skip
    speed = [speed_row("tiny", measure_speed("tiny", speed_seconds, steps, threads=threads))]
    if torch.cuda.is_available() if gpu is None else gpu:
        r = measure_speed(SD15_SPEC, speed_seconds, steps, device="cuda", dtype="bfloat16", threads=0, size=256)
        speed.append(speed_row("sd15-size", r))
    else:
        lines.append("no CUDA: the SD 1.5-sized pipeline at 256x256 is skipped")
    cols = ["config", "audio_s", "frames", "total_s", "rtf", "unet_calls", "unet_share", "outside_unet"]
    lines += ["", "speed (rtf = generation s per audio s; outside_unet target <= 10%)", format_table(speed, cols)]

    rows = []
    for pipeline in ("warp", "motion", "tiny"):
        base = None
        for seconds in durations:
            m = measure_memory_in_child(seconds=seconds, pipeline=pipeline, steps=1, threads=threads, output="mp4")
            base = base or m
            rows.append(
                {
                    "pipeline": pipeline,
                    "audio_s": f"{m['seconds']:g}",
                    "frames": m["frames"],
                    "peak_mb": _mb(m["peak_mb"]),
                    "peak_vs_first": _ratio(m["peak_mb"], base["peak_mb"]),
                }
            )
    lines += [
        "",
        "peak memory of one call streamed to an mp4 (avdiff talk), 512x512 frames pasted back, fresh process "
        "per row; tiny: 1 step, guidance on (3 UNet passes); target: peak_vs_first <= 1.5",
        format_table(rows, ["pipeline", "audio_s", "frames", "peak_mb", "peak_vs_first"]),
    ]
    lines.append(f"({time.perf_counter() - start:.0f} s in all)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
