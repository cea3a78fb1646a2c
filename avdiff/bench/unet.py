"""``avdiff bench unet``: AudioVideoUNet forward and backward time and peak memory against frames and resolution.

Every configuration is one clip (batch 1) with every condition given: text (77 tokens), audio (4 tokens per frame),
reference latent, motion frames and mask. For each it reports

* ``infer_s``: a forward pass under ``torch.no_grad`` (the first call, which also warms the kernels up);
* ``fwd_s`` and ``bwd_s``: the forward and backward passes of a training step (median of ``repeats``);
* ``ms_per_frame`` and ``x_per_frame_vs_8``: the training step's time per frame, and that over the same at 8 frames
  and the same resolution (1.0 = linear in frames);
* ``infer_peak_mb`` and ``train_peak_mb``: the peak memory above what was in use before the call.

Memory. On CPU each configuration runs in a fresh child process (forkserver, with torch and diffusers imported
once), so no allocator cache carries over between configurations. The child resets the kernel's peak-RSS mark
(``echo 5 > /proc/self/clear_refs``), runs the pass, and reports ``VmHWM`` minus the RSS before the pass; where the
mark cannot be reset, a pass that stays under the process's earlier peak has no measurable peak and shows ``n/a``
(:class:`MemoryProbe`). On CUDA it is
``torch.cuda.max_memory_allocated`` minus ``memory_allocated`` before the pass, in process.

CPU runs ``tiny`` with one intra-op thread by default: on a shared machine more threads make the timings noise.
With CUDA, ``sd15`` (random weights, bf16) runs at 256x256 pixels (32x32 latents).
"""

from __future__ import annotations

import logging
import statistics
import time

import torch

from avdiff.bench.timing import format_table, run_in_child
from avdiff.models.builders import build_unet
from avdiff.models.unet import quiet_empty_fp32_warning

logger = logging.getLogger(__name__)

COLUMNS = ["config", "infer_s", "fwd_s", "bwd_s", "ms_per_frame", "x_per_frame_vs_8", "infer_peak_mb", "train_peak_mb"]


# --- memory --------------------------------------------------------------------------------------------------------


def _proc_status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


class MemoryProbe:
    """Peak memory of a block above the memory in use when it starts: CUDA allocator stats, or the process's RSS.

    On the CPU the kernel's peak-RSS mark (``VmHWM``) is reset to the current RSS at :meth:`start` through
    ``/proc/self/clear_refs``. Where that file cannot be written (some containers), the mark keeps the process's
    earlier peak: when the block goes above it, the new mark is still the block's peak; when it does not, the block's
    peak is unknown and :meth:`peak_mb` returns None rather than a number that would be the earlier peak's.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.reset = False

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2**20
            return
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
            self.reset = True
        except OSError:
            self.reset = False
            logger.debug("cannot reset the peak-RSS mark; a peak under the earlier one cannot be measured")
        self.mark_before = _peak_rss_mb()
        self.base = _proc_status_mb("VmRSS") or 0.0

    def peak_mb(self) -> float | None:
        """The block's peak above the memory in use at :meth:`start`, MB; None when it cannot be known (see the class
        docstring)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**20 - self.base
        peak = _peak_rss_mb()
        if not self.reset and not peak > self.mark_before:
            return None
        return peak - self.base


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _peak_rss_mb() -> float:
    """The process's peak RSS so far, MB: ``VmHWM``, or ``ru_maxrss`` where /proc is missing."""
    peak = _proc_status_mb("VmHWM")
    if peak is None:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak


# --- one configuration ---------------------------------------------------------------------------------------------


def example_inputs(model, frames: int, size: int, device, dtype, seed: int = 0) -> dict:
    """One clip with every condition: sample [1, C, F, size, size], text [1, 77, D_t], audio [1, F, 4, D_a], ..."""
    g = torch.Generator().manual_seed(seed)
    c = model.config

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device=device, dtype=dtype)

    return {
        "sample": randn(1, model.latent_channels, frames, size, size),
        "timestep": torch.tensor([500], device=device),
        "encoder_hidden_states": randn(1, 77, model.unet.config.cross_attention_dim),
        "audio_tokens": randn(1, frames, 4, c.audio_dim) if c.audio_dim else None,
        "reference_latents": randn(1, c.reference_channels, size, size) if c.reference_channels else None,
        "motion_latents": randn(1, c.motion_channels, frames, size, size) if c.motion_channels else None,
        "mask": randn(1, c.mask_channels, frames, size, size) if c.mask_channels else None,
    }


def measure(
    preset: str,
    frames: int,
    size: int,
    device: str = "cpu",
    dtype: str = "float32",
    threads: int = 1,
    repeats: int = 1,
    warmup: int = 0,
) -> dict:
    """Time and memory of one configuration, in this process. Returns seconds and MB."""

    if threads:
        torch.set_num_threads(threads)
    dev, dt = torch.device(device), getattr(torch, dtype)
    with torch.device(dev), quiet_empty_fp32_warning():
        model = build_unet(preset).to(dtype=dt).train()
    x = example_inputs(model, frames, size, dev, dt)
    probe = MemoryProbe(dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def train_step() -> tuple[float, float]:
        model.zero_grad(set_to_none=True)
        sync()
        start = time.perf_counter()
        out = model(**x).sample
        sync()
        mid = time.perf_counter()
        out.float().square().mean().backward()
        sync()
        return mid - start, time.perf_counter() - mid

    for _ in range(warmup):
        train_step()
    probe.start()
    start = time.perf_counter()
    with torch.no_grad():
        model(**x)
    sync()
    infer_s, infer_peak = time.perf_counter() - start, probe.peak_mb()
    model.zero_grad(set_to_none=True)
    probe.start()
    steps = [train_step() for _ in range(repeats)]
    return {
        "preset": preset,
        "frames": frames,
        "size": size,
        "device": device,
        "dtype": dtype,
        "infer_s": infer_s,
        "fwd_s": statistics.median(s[0] for s in steps),
        "bwd_s": statistics.median(s[1] for s in steps),
        "infer_peak_mb": infer_peak,
        "train_peak_mb": probe.peak_mb(),
    }


def measure_in_child(**kwargs) -> dict:
    """``measure`` in a fresh process forked from a server that has torch and diffusers imported."""
    return run_in_child(measure, kwargs, ["torch", "diffusers", "avdiff.models", __name__])


# --- the table -----------------------------------------------------------------------------------------------------


def run_unet_bench(
    frames: tuple[int, ...] = (8, 16, 32),
    sizes: tuple[int, ...] = (16, 32),
    threads: int = 1,
    repeats: int = 1,
    gpu: bool | None = None,
) -> list[dict]:
    """Measure ``tiny`` on CPU at every (frames, latent size), and ``sd15`` at 32x32 latents on CUDA when available."""
    results = []
    for size in sizes:
        for f in frames:
            logger.info("tiny, %d frames of %dx%d latents, CPU", f, size, size)
            results.append(measure_in_child(preset="tiny", frames=f, size=size, threads=threads, repeats=repeats))
    if torch.cuda.is_available() if gpu is None else gpu:
        for f in frames:
            logger.info("sd15, %d frames of 32x32 latents, CUDA", f)
            results.append(
                measure(
                    preset="sd15", frames=f, size=32, device="cuda", dtype="bfloat16", threads=0, repeats=3, warmup=1
                )
            )
    return results


def to_rows(results: list[dict]) -> list[dict]:
    """Format results, with time per frame relative to 8 frames of the same preset, device and size."""
    per_frame = {}
    for r in results:
        per_frame[(r["preset"], r["device"], r["size"], r["frames"])] = (r["fwd_s"] + r["bwd_s"]) / r["frames"]
    rows = []
    for r in results:
        key = (r["preset"], r["device"], r["size"])
        ref = per_frame.get((*key, 8))
        mine = per_frame[(*key, r["frames"])]
        rows.append(
            {
                "config": f"{r['preset']} {r['device']} {r['dtype']} {r['frames']}f {r['size']}x{r['size']}",
                "infer_s": f"{r['infer_s']:.3f}",
                "fwd_s": f"{r['fwd_s']:.3f}",
                "bwd_s": f"{r['bwd_s']:.3f}",
                "ms_per_frame": f"{1000 * mine:.1f}",
                "x_per_frame_vs_8": f"{mine / ref:.2f}" if ref else "",
                "infer_peak_mb": _mb(r["infer_peak_mb"]),
                "train_peak_mb": _mb(r["train_peak_mb"]),
            }
        )
    return rows


def summary(results: list[dict]) -> list[str]:
    """Per (preset, device): time per frame at the most frames over that at 8, and the cost of resolution."""
    step = {(r["preset"], r["device"], r["size"], r["frames"]): r["fwd_s"] + r["bwd_s"] for r in results}
    lines = []
    for preset, device in dict.fromkeys((r["preset"], r["device"]) for r in results):
        mine = {(s, f): t for (p, d, s, f), t in step.items() if (p, d) == (preset, device)}
        sizes, frames = sorted({s for s, _ in mine}), sorted({f for _, f in mine})
        most = frames[-1]
        if 8 in frames and most != 8:
            ratios = [f"{s}x{s}: {(mine[s, most] / most) / (mine[s, 8] / 8):.2f}" for s in sizes]
            lines.append(f"{preset} {device}: time per frame at {most} frames / at 8 frames: {', '.join(ratios)}")
        if len(sizes) > 1:
            lo, hi, f = sizes[0], sizes[-1], frames[0]
            lines.append(
                f"{preset} {device}: {hi}x{hi} / {lo}x{lo} latents at {f} frames: "
                f"{mine[hi, f] / mine[lo, f]:.2f}x the time for {(hi / lo) ** 2:.0f}x the pixels"
            )
    return lines


def main(
    frames: tuple[int, ...] = (8, 16, 32), sizes: tuple[int, ...] = (16, 32), threads: int = 1, repeats: int = 1
) -> str:
    start = time.perf_counter()
    results = run_unet_bench(frames, sizes, threads, repeats)
    gpu = f"sd15 bf16 on {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "no CUDA: sd15 skipped"
    header = f"avdiff bench unet: batch 1, all conditions; tiny on CPU, {threads} thread(s), repeats {repeats}; {gpu}"
    footer = [*summary(results), f"({time.perf_counter() - start:.0f} s in all)"]
    return "\n".join([header, format_table(to_rows(results), COLUMNS), *footer])


if __name__ == "__main__":
    print(main())
