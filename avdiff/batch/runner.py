"""Run a batch: the rows shared between the processes of an ``accelerate launch`` (or ``torchrun``), every row of a
share checked before any work, each video written atomically, finished rows skipped on a rerun, and one report.

Example (the Python API; the CLI is ``avdiff batch talk --manifest jobs.csv --out OUT``)::

    from avdiff.batch import get_job, read_manifest, run_batch, write_report

    job = get_job("talk")
    rows = read_manifest("jobs.csv", job.columns, {"steps": 8})
    results = list(run_batch(job, rows, "out"))   # this process's share, as each row ends
    write_report(gather_results(results), "out", job)

Under several processes each takes a contiguous share of the rows (``PartialState.split_between_processes``), works
on its own device (:func:`avdiff.loading.process_device`) and yields its own results; :func:`gather_results` brings
them all to the main process. A row's video depends on that row alone (its own seed), so the outputs do not depend
on the number of processes. A row whose ``OUT/NAME.mp4`` exists was finished by an earlier run (the writer renames a
complete file into place, never a partial one) and is skipped, so a killed batch resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelerate.utils import gather_object
from tqdm.auto import tqdm

from avdiff.batch.jobs import Job
from avdiff.batch.manifest import Row
from avdiff.loading import process_device, process_state

logger = logging.getLogger(__name__)

REPORT_NAME = "report.json"
STATUSES = ("done", "skipped", "failed")


@dataclass
class RowResult:
    """What became of one row.

    Attributes:
        index: the row's position in the manifest, from 0; ``line`` its line in the file.
        name: its output name; ``output`` the video's path (None when none was made).
        status: ``"done"`` (made now), ``"skipped"`` (a problem found before any work, or made by an earlier run:
            ``reason`` says which) or ``"failed"`` (an error while making it: ``reason`` is its one line).
        seconds: wall time spent on the row (making and scoring), s.
        scores: the job's scores of the video (``{"lip sync r": 0.71, "offset_frames": 0}``), ``{"reason": ...}``
            when it could not be scored, empty for a job without scores.
        process: the index of the process that handled it.
    """

    index: int
    line: int
    name: str
    status: str
    reason: str | None = None
    output: str | None = None
    seconds: float = 0.0
    scores: dict = field(default_factory=dict)
    process: int = 0


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, ValueError) else f"{type(error).__name__}: {text}"


def run_batch(
    job: Job,
    rows: Iterable[Row],
    out_dir: str | os.PathLike,
    *,
    model: str | None = None,
    variant: str | None = None,
    device: str | None = None,
    max_duration_s: float | None = 600.0,
    overwrite: bool = False,
    score: bool = True,
    progress: bool = True,
) -> Iterator[RowResult]:
    """Make the videos of this process's share of ``rows`` into ``out_dir``, yielding each row's result as it ends.

    Args:
        job: the job (:func:`avdiff.batch.jobs.get_job`).
        rows: the manifest's rows (:func:`avdiff.batch.manifest.read_manifest`), the same list in every process.
        out_dir: where ``NAME.mp4`` of each row goes (made if missing).
        model: the job's model (a bundled name, a saved folder, a hub id; ``"baseline"`` for the talk job's
            model-free warp); None: the job's default.
        device: the torch device of every process (None: the one the launcher gave each process).
        max_duration_s: refuse longer audio (the row is skipped with the reason).
        overwrite: make every row again, even those whose video exists.
        score: score each video made (lip sync, Beat Align Score).
        progress: a progress bar per process.

    Every row of the share is checked (files, audio, faces, settings) before the first video is made; a row with a
    problem is yielded as ``skipped`` with its reason, a row that fails while made as ``failed`` with its error, and
    the batch goes on. Only a model that cannot be loaded raises (ValueError), before anything is made.
    """
    state = process_state()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with state.split_between_processes(list(rows)) as share:
        share = list(share)
    rank = state.process_index
    pipe = job.load(model, process_device(state, device), variant)
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)  # one bar per process: the batch's
    plan = []  # (row, output, problem), every row checked before any work
    for row in share:
        output = out_dir / f"{row.name}.mp4"
        problem = row.problem
        if problem is None and output.is_file() and not overwrite:
            yield RowResult(
                row.index, row.line, row.name, "skipped", "made by an earlier run", str(output), 0.0, {}, rank
            )
            continue
        if problem is None:
            try:
                job.check(pipe, row, max_duration_s)
            except ValueError as e:
                problem = _one_line(e)
        if problem is not None:
            logger.warning("row %d (line %d, %s): skipped: %s", row.index, row.line, row.name, problem)
            yield RowResult(row.index, row.line, row.name, "skipped", problem, None, 0.0, {}, rank)
            continue
        plan.append((row, output))
    desc = f"{job.name} [{rank + 1}/{state.num_processes}]" if state.num_processes > 1 else job.name
    for row, output in tqdm(plan, desc=desc, unit="video", position=rank, disable=not progress):
        start = time.perf_counter()
        for stale in out_dir.glob(f".{row.name}.*.partial.mp4"):  # left by a run killed while writing this row
            logger.info("removing %s, the partial video of a run that was stopped", stale)
            stale.unlink(missing_ok=True)
        try:
            job.make(pipe, row, output, max_duration_s)
        except Exception as e:  # one row's failure is reported; the batch goes on
            logger.error("row %d (line %d, %s) failed: %s", row.index, row.line, row.name, _one_line(e))
            yield RowResult(
                row.index, row.line, row.name, "failed", _one_line(e), None, time.perf_counter() - start, {}, rank
            )
            continue
        scores = {}
        if score:
            try:
                scores = job.score(output) or {}
            except Exception as e:  # a video made but not scored keeps its video
                scores = {"reason": f"not scored: {_one_line(e)}"}
        yield RowResult(
            row.index, row.line, row.name, "done", None, str(output), time.perf_counter() - start, scores, rank
        )


def gather_results(results: list[RowResult]) -> list[RowResult] | None:
    """Every process's results, in manifest order, on the main process (None on the others); with one process, its
    own. Every process must call it (it waits for the others)."""
    state = process_state()
    if state.num_processes == 1:
        return sorted(results, key=lambda r: r.index)
    merged = gather_object([asdict(r) for r in results])
    return sorted((RowResult(**r) for r in merged), key=lambda r: r.index) if state.is_main_process else None


def summary(results: list[RowResult]) -> dict[str, int]:
    """How many rows ended in each status."""
    return {status: sum(r.status == status for r in results) for status in STATUSES}


def _strict(value):
    """``value`` with every NaN or infinity as None (the report is strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return value


def write_report(results: list[RowResult], out_dir: str | os.PathLike, job: Job, **settings) -> Path:
    """``OUT/report.json``: the job, its settings, the count per status and every row's result, in manifest order
    (written atomically). Returns its path."""
    path = Path(out_dir) / REPORT_NAME
    report = {
        "job": job.name,
        "settings": settings,
        "summary": summary(results),
        "rows": [asdict(r) for r in sorted(results, key=lambda r: r.index)],
    }
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(_strict(report), indent=2) + "\n")
    os.replace(partial, path)
    return path


def format_table(results: list[RowResult], job: Job) -> str:
    """A short table of the results for the terminal: row, name, status, seconds, score or reason."""
    lines = [f"{'row':>4}  {'name':<24} {'status':<8} {'s':>6}  {job.score_name or 'reason'}"]
    for r in sorted(results, key=lambda r: r.index):
        value = r.scores.get(job.score_name) if job.score_name else None
        if r.reason:
            detail = r.reason
        elif value is not None:
            detail = f"{value:.3f}" if isinstance(value, float) else str(value)
        else:
            detail = r.scores.get("reason", "")
        lines.append(f"{r.index:>4}  {r.name[:24]:<24} {r.status:<8} {r.seconds:>6.1f}  {detail}")
    counts = summary(results)
    lines.append(", ".join(f"{n} {status}" for status, n in counts.items()))
    return "\n".join(lines)
