"""Run a batch: the rows shared between the processes of an ``accelerate launch`` (or ``torchrun``), every row of a
share checked before any work, each video written atomically, finished rows skipped on a rerun, and one report.

Example (the Python API; the CLI is ``avdiff batch talk --manifest jobs.csv --out OUT``)::

    from avdiff.batch import gather_results, get_job, read_manifest, run_batch, write_report

    job = get_job("talk")
    rows = read_manifest("jobs.csv", job.columns, {"steps": 8})
    results = list(run_batch(job, rows, "out"))   # this process's share, as each row ends
    write_report(gather_results(results), "out", job)

Under several processes each takes a contiguous share of the rows (``PartialState.split_between_processes``), works
on its own device (:func:`avdiff.loading.process_device`) and yields its own results; :func:`gather_results` brings
them all to the main process. A row's video depends on that row alone (its inputs, settings and seed), so the
outputs do not depend on the number of processes.

Each video is written atomically (the writer renames a complete file into place, never a partial one), then its record
``OUT/NAME.json``: what it was made from (the job, the model, the row's values and seed, each input file's size and
modification time), its seconds and its scores. A rerun skips a row whose video and record exist and whose record
matches the row (reported with the earlier scores), so a killed batch resumes where it stopped; a row whose inputs or
settings changed is made again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelerate.utils import gather_object
from tqdm.auto import tqdm

from avdiff.batch.jobs import Job
from avdiff.batch.manifest import Row
from avdiff.evaluation.talking_head import strict_json
from avdiff.loading import process_device, process_share, process_state

logger = logging.getLogger(__name__)

REPORT_NAME = "report.json"
STATUSES = ("done", "skipped", "failed")
MADE_EARLIER = "made by an earlier run"  # the reason of a row whose video and record exist


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
        overwrite: make every row again, even those an earlier run finished.
        score: score each video made (lip sync, Beat Align Score).
        progress: a progress bar per process.

    Every row of the share is checked (files, audio, faces, settings) before its first video is made (each process
    checks its own share); a row with a problem is yielded as ``skipped`` with its reason, a row that fails while
    made as ``failed`` with its error, and the batch goes on. The model is loaded once per process, and only when its
    share has something to make; only a model that cannot be loaded raises (ValueError), before anything is made.
    """
    state = process_state()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    share = process_share(list(rows), state)
    rank = state.process_index

    def result(row: Row, status: str, **kwargs) -> RowResult:
        return RowResult(index=row.index, line=row.line, name=row.name, status=status, process=rank, **kwargs)

    todo = []  # rows left to check and make: not broken in the manifest, not made by an earlier run
    for row in share:
        output = out_dir / f"{row.name}.mp4"
        record = None if overwrite else finished_record(output, job, row, model, variant, max_duration_s)
        if row.problem is not None:
            logger.warning("row %d (line %d, %s): skipped: %s", row.index, row.line, row.name, row.problem)
            yield result(row, "skipped", reason=row.problem)
        elif record is not None:
            yield result(
                row,
                "skipped",
                reason=MADE_EARLIER,
                output=str(output),
                seconds=record.get("seconds", 0.0),
                scores=record.get("scores", {}),
            )
        else:
            todo.append((row, output))
    if not todo:  # nothing to make here: no model is loaded
        return
    pipe = job.load(model, process_device(state, device), variant, [row for row, _ in todo])
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)  # one bar per process: the batch's
    plan = []  # every row of the share checked before any video is made
    for row, output in todo:
        try:
            job.check(pipe, row, output, max_duration_s)
        except Exception as e:  # noqa: BLE001 - a row that cannot be made is reported; the batch goes on
            logger.warning("row %d (line %d, %s): skipped: %s", row.index, row.line, row.name, _one_line(e))
            yield result(row, "skipped", reason=_one_line(e))
            continue
        plan.append((row, output))
    desc = f"{job.name} [{rank + 1}/{state.num_processes}]" if state.num_processes > 1 else job.name
    for row, output in tqdm(plan, desc=desc, unit="video", position=state.local_process_index, disable=not progress):
        start = time.perf_counter()
        remove_partial_videos(out_dir, row.name)  # left by a run killed while writing this row
        record_path(output).unlink(missing_ok=True)
        try:
            job.make(pipe, row, output, max_duration_s)
        except Exception as e:  # noqa: BLE001 - one row's failure is reported; the batch goes on
            logger.error("row %d (line %d, %s) failed: %s", row.index, row.line, row.name, _one_line(e))
            yield result(row, "failed", reason=_one_line(e), seconds=time.perf_counter() - start)
            continue
        fingerprint = row_fingerprint(job, row, model, variant, max_duration_s)
        write_record(output, fingerprint, time.perf_counter() - start, {})  # the video is complete from here on
        scores = {}
        if score:
            try:
                scores = job.score(output) or {}
            except Exception as e:  # noqa: BLE001 - a video made but not scored keeps its video
                scores = {"reason": f"not scored: {_one_line(e)}"}
        seconds = time.perf_counter() - start
        write_record(output, fingerprint, seconds, scores)
        yield result(row, "done", output=str(output), seconds=seconds, scores=scores)


def record_path(output: Path) -> Path:
    """The record beside a video: ``OUT/NAME.json`` (what made it, its seconds and scores)."""
    return output.with_suffix(".json")


def _stat(path: Path) -> list:
    try:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    except OSError:
        return []


def row_fingerprint(job: Job, row: Row, model: str | None, variant: str | None, max_duration_s) -> dict:
    """What a row's video is made from: the job, the model, the row's typed values and seed, and the size and
    modification time of each input file. A video whose record holds another fingerprint is made again."""
    values, files = {}, {}
    for key, value in sorted(row.values.items()):
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, Path):
                files[str(item)] = _stat(item)
        values[key] = [str(v) for v in items] if isinstance(value, list) else str(value)
    return {
        "job": job.name,
        "model": model or job.default_model,
        "variant": variant,
        "max_duration_s": max_duration_s,
        "seed": row.seed,
        "values": values,
        "files": files,
    }


def write_json(path: Path, data) -> None:
    """``data`` as strict JSON (NaN and infinities as null) at ``path``, through a temporary file of its own and a
    rename, so neither a crash nor a second run writing the same file leaves half a file."""
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(strict_json(data), indent=2) + "\n")
    os.replace(partial, path)


def write_record(output: Path, fingerprint: dict, seconds: float, scores: dict) -> None:
    """Write the video's record atomically (:func:`record_path`)."""
    write_json(record_path(output), {"made_from": fingerprint, "seconds": seconds, "scores": scores})


def finished_record(output: Path, job: Job, row: Row, model, variant, max_duration_s) -> dict | None:
    """The record of ``output`` when an earlier run finished it from the same inputs and settings, else None (no
    video, no record, or a record of other inputs: logged, and the row is made again)."""
    path = record_path(output)
    if not (output.is_file() and path.is_file()):
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("made_from") != strict_json(row_fingerprint(job, row, model, variant, max_duration_s)):
        logger.warning("%s was made from other inputs or settings; making it again", output)
        return None
    return record


def remove_partial_videos(out_dir: Path, name: str) -> None:
    """Remove the partial files the video writer leaves for ``NAME.mp4`` when killed (``.NAME.XXXXXXXX.partial.mp4``,
    its temporary name); the exact pattern, so row ``a`` never touches row ``a.b``'s file being written."""
    pattern = re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]{{8}}\.partial\.mp4")
    for path in out_dir.glob(f".{name}.*.partial.mp4"):
        if pattern.fullmatch(path.name):
            logger.info("removing %s, the partial video of a run that was stopped", path)
            path.unlink(missing_ok=True)


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
    write_json(path, report)
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
