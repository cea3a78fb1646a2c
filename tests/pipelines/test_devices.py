"""The pipelines on CUDA: float32 there makes the CPU's frames, half precision stays finite, and the device bench runs.

Every test here is marked ``gpu``: without CUDA each skips with the one reason ``conftest.CUDA_MISSING``. Each pipeline
is its random-weight tiny form (the talking head's ``tiny`` preset on the astronaut with speech-like audio, the beat
visualizer with three prompts over the tiny text-to-video preset, the audio scene over the same), built by the device
bench's :func:`avdiff.bench.device.build_job`, and moved with :func:`avdiff.loading.to_device`. All noise is drawn by
CPU generators, so the CPU and the GPU start from the same numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avdiff.bench.device import JOBS, CallTimer, build_job, main
from avdiff.loading import to_device

pytestmark = pytest.mark.gpu

# CUDA float32 against CPU float32, uint8 frames: at most this many grey levels apart anywhere, and this far apart on
# average. Kernels differ (summation order, fused attention), so bits differ; with TF32 off (the fixture below) the
# differences are rounding-sized and a few denoising steps of a tiny model move a pixel by a few levels at most.
MAX_GREY_DIFF = 8
MEAN_GREY_DIFF = 0.5
SECONDS, STEPS = 1.0, 2


@pytest.fixture(autouse=True)
def full_float32():
    """TF32 off in convolutions and matmuls (cuDNN allows it by default): float32 on the GPU is float32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def frames_on(job: str, device: str, dtype: str) -> tuple[np.ndarray, CallTimer, object]:
    """The job's tiny pipeline on ``device`` in ``dtype``: its frames uint8 [F, H, W, 3], the timer of its codec's
    decode (which notes whether every latent decoded was finite), and the module holding its parts."""
    pipe, holder, _, call = build_job(job, torch.device("cpu"), steps=STEPS)  # the CPU's (tiny) form on any device
    to_device(pipe, device, dtype)
    decode = CallTimer(holder.codec, ("decode",), cuda=device == "cuda", check_finite=True)
    frames = np.asarray(call(SECONDS).frames)
    decode.remove()
    return frames, decode, holder


@pytest.mark.parametrize("job", JOBS)
def test_cuda_float32_makes_the_cpu_frames(job):
    cpu, _, _ = frames_on(job, "cpu", "float32")
    cuda, _, holder = frames_on(job, "cuda", "float32")
    assert holder.unet.device.type == "cuda"
    assert cuda.shape == cpu.shape and cuda.dtype == np.uint8
    diff = np.abs(cuda.astype(np.int16) - cpu.astype(np.int16))
    assert diff.max() <= MAX_GREY_DIFF and diff.mean() <= MEAN_GREY_DIFF, (job, int(diff.max()), float(diff.mean()))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("job", JOBS)
def test_half_precision_on_cuda_stays_finite(job, dtype):
    frames, decode, holder = frames_on(job, "cuda", dtype)
    assert holder.unet.dtype == getattr(torch, dtype)
    assert holder.codec.dtype == (torch.float32 if dtype == "float16" else torch.bfloat16)  # the codec kept in fp32
    assert decode.calls > 0 and decode.finite, f"{job} in {dtype}: a decoded latent was NaN or infinite"
    assert frames.std() > 0  # a picture, not one flat colour


@pytest.mark.parametrize(
    "job, dtype, compile",
    [("scene", "float16", True), ("talk", "bfloat16", False)],  # the talk job is SD 1.5-sized at 256 px on CUDA
)
def test_the_device_bench_on_cuda_reports_gpu_memory(job, dtype, compile):
    text = main(job, "cuda", dtype, compile=compile, seconds=SECONDS, steps=1)
    summary = [line for line in text.split("per stage")[0].splitlines() if line.startswith("cuda")]
    asked = f"cuda {dtype}{' compiled' if compile else ''}"
    assert [row.split("  ")[0] for row in summary] == ["cuda float32", asked], text
    assert all(" n/a " not in row and " NO " not in row for row in summary), text  # peak memory known, finite
