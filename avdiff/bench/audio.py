"""``avdiff bench audio``: loading, log-mel and rhythm analysis as multiples of real time.

A 3-minute drum track (44.1 kHz stereo, written to a temporary wav and mp3) is generated in the run, so the numbers
need no data. Each stage is timed after a warm-up call (numba compiles librosa's kernels on first use; the cold
first call is reported on its own row).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import torch

from avdiff.audio.features import LogMel, default_device
from avdiff.audio.io import Waveform, load_audio, save_audio
from avdiff.audio.rhythm import analyze_rhythm
from avdiff.audio.synth import drum_track
from avdiff.bench.timing import format_table, time_call

logger = logging.getLogger(__name__)


def make_track(duration_s: float, folder: Path) -> dict[str, Path]:
    """Write a stereo 44.1 kHz drum track as wav and mp3; return the paths by format."""
    track = drum_track(128, duration_s=duration_s, sample_rate=44100)
    stereo = Waveform(track.waveform.samples.repeat(2, 1), 44100)
    return {fmt: save_audio(folder / f"track.{fmt}", stereo) for fmt in ("wav", "mp3")}


def run_audio_bench(duration_s: float = 180.0, fps: float = 25, repeats: int = 3) -> list[dict]:
    """Time each stage on a generated track. Returns rows with seconds and the real-time factor (× real time)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_track(duration_s, Path(tmp))
        start = time.perf_counter()
        analyze_rhythm(load_audio(paths["wav"]), fps)
        rows.append(
            _row("cold start: load wav + analyze_rhythm (first call, JIT)", time.perf_counter() - start, duration_s)
        )
        for fmt, path in paths.items():
            med, _ = time_call(lambda p=path: load_audio(p, sample_rate=16000), repeats)
            rows.append(_row(f"load_audio {fmt} -> 16 kHz mono", med, duration_s))
        wav16 = load_audio(paths["wav"], sample_rate=16000)
        mel = LogMel(16000)
        med, _ = time_call(lambda: mel(wav16.samples), repeats)
        rows.append(_row("log-mel 80 bands, CPU", med, duration_s))
        if torch.cuda.is_available():
            rows.append(_gpu_logmel_row(wav16, duration_s, repeats))
        wav = load_audio(paths["wav"])
        med, _ = time_call(lambda: analyze_rhythm(wav, fps), repeats)
        rows.append(_row("analyze_rhythm", med, duration_s))
        med, _ = time_call(lambda: _whole(paths["wav"], fps), repeats)
        rows.append(_row("whole analysis: load + log-mel + analyze_rhythm", med, duration_s))
    return rows


def _whole(path: Path, fps: float) -> None:
    wav = load_audio(path)
    LogMel(16000)(wav.resample(16000).samples)
    analyze_rhythm(wav, fps)


def _gpu_logmel_row(wav16: Waveform, duration_s: float, repeats: int) -> dict:
    device = default_device()
    mel = LogMel(16000).to(device)
    batch = wav16.samples.to(device).repeat(8, 1)  # a batch of 8 tracks

    def step():
        mel(batch)
        torch.cuda.synchronize()

    med, _ = time_call(step, repeats)
    return _row("log-mel 80 bands, GPU, batch of 8", med, duration_s * 8)


def _row(stage: str, seconds: float, audio_s: float) -> dict:
    return {"stage": stage, "seconds": f"{seconds:.3f}", "x_real_time": f"{audio_s / seconds:.0f}"}


def main(duration_s: float = 180.0, fps: float = 25, repeats: int = 3) -> str:
    rows = run_audio_bench(duration_s, fps, repeats)
    header = f"avdiff bench audio: {duration_s:.0f} s drum track, {torch.get_num_threads()} threads, fps {fps}"
    return header + "\n" + format_table(rows, ["stage", "seconds", "x_real_time"])
