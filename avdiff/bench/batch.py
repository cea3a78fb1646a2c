"""``avdiff bench batch``: the speed-up of a batch shared between 2 processes against 1, measured in one run.

The same manifest (``rows`` talking heads: the astronaut photo with a deterministic speech-like signal, as
``avdiff bench talk`` uses) is run to completion by ``accelerate launch --multi_gpu --num_machines 1
--num_processes N -m avdiff batch talk`` for N = 1 and N = 2, each into a fresh folder, and timed from the launch to
the report. Every process runs ``--threads`` intra-op threads (OMP_NUM_THREADS), so 2 processes use twice the cores
of one; the ratio is rows per second against the 1-process run. Both runs must make the same videos, byte for byte
(a row's video depends on the row alone), which the benchmark checks.
"""

from __future__ import annotations

import filecmp
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from avdiff.audio.io import save_audio
from avdiff.bench.talk import astronaut, speech_like
from avdiff.bench.timing import format_table

logger = logging.getLogger(__name__)


def write_manifest(folder: Path, rows: int, seconds: float, size: int = 256) -> Path:
    """``folder/jobs.csv`` of ``rows`` talking heads on the astronaut (``size`` px) with ``seconds`` of speech-like
    audio, each row its own seed."""
    Image.fromarray(astronaut()).resize((size, size), Image.LANCZOS).save(folder / "face.png")
    save_audio(folder / "speech.wav", speech_like(seconds))
    lines = ["image,audio,name"] + [f"face.png,speech.wav,row{i:02d}" for i in range(rows)]
    (folder / "jobs.csv").write_text("\n".join(lines) + "\n")
    return folder / "jobs.csv"


def launch_command(processes: int, manifest: Path, out: Path, steps: int, model: str | None) -> list[str]:
    """The ``accelerate launch`` command of ``docs/batch.md`` with ``processes`` processes on this machine (one
    process without ``--multi_gpu``, which accelerate refuses for fewer than 2)."""
    command = [sys.executable, "-m", "accelerate.commands.launch"] + (["--multi_gpu"] if processes > 1 else [])
    command += ["--num_machines", "1"]
    command += ["--num_processes", str(processes), "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += ["-m", "avdiff", "batch", "talk", "--manifest", str(manifest), "--out", str(out)]
    command += ["--steps", str(steps), "--no-progress", "--no-score"] + (["--model", model] if model else [])
    return command


def run_once(processes: int, manifest: Path, out: Path, steps: int, model: str | None, threads: int) -> float:
    """Wall seconds of one batch run to its report (RuntimeError with the output when it fails)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        launch_command(processes, manifest, out, steps, model), env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0 or not (out / "report.json").is_file():
        raise RuntimeError(f"the {processes}-process batch failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds


def main(rows: int = 6, seconds: float = 2.0, steps: int = 4, threads: int = 1, model: str | None = None) -> dict:
    """Run the manifest with 1 then 2 processes; print a table and return ``{"runs": [...], "speedup": x}``."""
    with tempfile.TemporaryDirectory(prefix="avdiff-bench-batch-") as tmp:
        folder = Path(tmp)
        manifest = write_manifest(folder, rows, seconds)
        runs = []
        for processes in (1, 2):
            out = folder / f"out{processes}"
            wall = run_once(processes, manifest, out, steps, model, threads)
            runs.append({"processes": processes, "wall_s": wall, "rows_per_s": rows / wall})
        videos = [sorted(p.name for p in (folder / f"out{n}").glob("row*.mp4")) for n in (1, 2)]
        same = videos[0] == videos[1] and len(videos[0]) == rows
        same = same and all(filecmp.cmp(folder / "out1" / n, folder / "out2" / n, shallow=False) for n in videos[0])
    speedup = runs[1]["rows_per_s"] / runs[0]["rows_per_s"]
    table = [
        {
            "processes": str(r["processes"]),
            "wall s": f"{r['wall_s']:.1f}",
            "rows/s": f"{r['rows_per_s']:.3f}",
            "vs 1 process": f"{r['rows_per_s'] / runs[0]['rows_per_s']:.2f}x",
        }
        for r in runs
    ]
    print(
        f"avdiff bench batch: {rows} talking heads ({seconds:g} s of speech-like audio each, astronaut 256 px, "
        f"{steps} steps, {model or 'the bundled model'}), {threads} thread(s) per process, launch to report"
    )
    print(format_table(table, ["processes", "wall s", "rows/s", "vs 1 process"]))
    print(
        f"speed-up of 2 processes: {speedup:.2f}x; the videos of both runs are {'identical' if same else 'DIFFERENT'}"
    )
    return {"runs": runs, "speedup": speedup, "identical": same}
