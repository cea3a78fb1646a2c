"""Many files of ``avdiff prepare`` in parallel worker processes; only the parent writes the index."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import torch
from tqdm.auto import tqdm

from avdiff.data.format import ClipRecord
from avdiff.data.prepare.config import ERROR, REPORT_JSON, REPORT_TXT, RETRY_REASONS, PrepareConfig
from avdiff.data.prepare.files import (
    _read_marker,
    _remove_clip_files,
    _write_marker,
    _write_text_atomic,
    clip_id_prefix,
    find_videos,
    relative_name,
    replace_file_records,
)
from avdiff.data.prepare.latents import load_vae, vae_downsample
from avdiff.data.prepare.report import FileResult, PrepareReport
from avdiff.data.prepare.segments import _Job, _one_line, _prepare_job

logger = logging.getLogger(__name__)


class WorkerCrashed(RuntimeError):
    """A worker process died (a crash in native code) while handling an item."""


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def run_parallel(
    fn: Callable[[Any], Any], items: Iterable[Any], workers: int
) -> Iterator[tuple[Any, Any, BaseException | None]]:
    """Apply ``fn`` to every item in ``workers`` spawned processes; yield ``(item, result, error)`` as each finishes.

    ``fn`` must be a picklable module-level function. With ``workers <= 1`` it runs in this process. An exception
    raised by ``fn`` comes back as ``error``. When a worker process dies, the items that were in flight are redone
    one at a time in fresh processes, so the item that kills its process is found and reported with a
    :class:`WorkerCrashed` error while the others finish normally.
    """
    items = list(items)
    if workers <= 1:
        for item in items:
            try:
                yield item, fn(item), None
            except Exception as e:
                yield item, None, e
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    broken = yield from _pool_pass(fn, items, workers, threads, context)
    for item in broken:  # isolate the culprit: each suspect alone in a fresh process
        retry = yield from _pool_pass(fn, [item], 1, threads, context)
        if retry:
            yield item, None, WorkerCrashed(f"the worker process died while handling {item!r}")


def _pool_pass(fn, items, workers, threads, context):
    """Run ``items`` through one pool; yield finished ones; return the items lost to a dead worker."""
    broken = []
    pool = ProcessPoolExecutor(
        min(workers, len(items)), mp_context=context, initializer=_worker_init, initargs=(threads,)
    )
    try:
        futures = {pool.submit(fn, item): item for item in items}
        for future in as_completed(futures):
            item = futures[future]
            try:
                result = future.result()
            except BrokenProcessPool:
                broken.append(item)
                continue
            except Exception as e:
                yield item, None, e
                continue
            yield item, result, None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return broken


def default_workers() -> int:
    """``min(4, cpu_count)``."""
    return max(1, min(4, os.cpu_count() or 1))


def prepare_videos(
    videos_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: PrepareConfig | None = None,
    *,
    workers: int | None = None,
    force: bool = False,
    progress_bar: bool = True,
) -> PrepareReport:
    """Turn every video under ``videos_dir`` into aligned clips in the DATA folder ``out_dir``.

    Args:
        videos_dir: a folder of talking-face videos (searched recursively).
        out_dir: the DATA folder (created); may already hold clips, which are kept.
        config: settings; the defaults when None.
        workers: processes working on files at once (default :func:`default_workers`); 1 works in this process.
        force: redo files that are already finished.
        progress_bar: a tqdm bar over files.

    Returns:
        The :class:`PrepareReport`, also written to ``out_dir/prepare_report.json`` and ``prepare_report.txt``.

    Raises:
        FileNotFoundError: ``videos_dir`` is not a folder.
        ValueError: a setting is out of range, or ``config.vae`` is not a loadable AutoencoderKL folder.
    """
    tick = time.perf_counter()
    config = config or PrepareConfig()
    config.validate()
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    root, out = Path(videos_dir), Path(out_dir)
    videos, others = find_videos(root, exclude=out)
    if config.vae:
        factor = vae_downsample(load_vae(config.vae))  # fail now, with a clear message, not once per file
        if config.size % factor:
            raise ValueError(f"size={config.size} must be a multiple of the VAE's downsampling factor {factor}")
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = config.fingerprint()

    results: dict[str, FileResult] = {}
    jobs: list[_Job] = []
    for path in videos:
        rel, stat = relative_name(path, root), path.stat()
        done = None if force else _read_marker(out, rel, stat.st_size, stat.st_mtime_ns, fingerprint)
        if done is not None:
            done.skipped = True
            results[rel] = done
        else:
            jobs.append(_Job(str(path), rel, str(out), config, stat.st_size, stat.st_mtime_ns))
    logger.info(
        "prepare: %d videos, %d finished before, %d to do with %d workers",
        len(videos),
        len(results),
        len(jobs),
        workers,
    )

    bar = tqdm(total=len(videos), initial=len(results), desc="prepare", unit="file", disable=not progress_bar)
    for job, result, error in run_parallel(_prepare_job, jobs, min(workers, max(1, len(jobs)))):
        if error is not None:
            reason = "worker_crashed" if isinstance(error, WorkerCrashed) else "internal_error"
            result = FileResult(
                job.rel,
                ERROR,
                reason,
                f"{type(error).__name__}: {_one_line(error)}",
                size=job.size,
                mtime_ns=job.mtime_ns,
            )
        _finish_file(out, result, fingerprint)
        results[job.rel] = result
        bar.update(1)
        bar.set_postfix_str(f"{job.rel}: {result.status}")
    bar.close()

    report = PrepareReport(
        videos_dir=str(root),
        out_dir=str(out),
        config=asdict(config),
        files=[results[relative_name(p, root)] for p in videos],
        ignored=[relative_name(p, root) for p in others],
        seconds=time.perf_counter() - tick,
    )
    _write_text_atomic(out / REPORT_JSON, json.dumps(report.to_dict(), indent=2) + "\n")
    _write_text_atomic(out / REPORT_TXT, report.summary())
    return report


def _finish_file(out: Path, result: FileResult, fingerprint: dict) -> None:
    """Index the file's kept segments (parent process only), then mark it finished."""
    records = [ClipRecord(**r) for r in result.records]
    if result.reason not in RETRY_REASONS:
        for stale in replace_file_records(out, clip_id_prefix(result.file), records):
            _remove_clip_files(out, stale)
        _write_marker(out, result, fingerprint)
