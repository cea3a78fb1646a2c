"""What every tab of the demo is given: the model registry, the input limits, and a private folder per request."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avdiff.demo.models import ModelRegistry

logger = logging.getLogger(__name__)

REQUESTS_DIR = "avdiff-requests"
# Test hooks: a file named by one of these is claimed (removed) by the first request that creates its request folder
# afterwards; that process then aborts (ABORT: a native crash) or waits until ``<file>.held`` is removed (HOLD).
ABORT_ENV = "AVDIFF_TEST_WORKER_ABORT"
HOLD_ENV = "AVDIFF_TEST_WORKER_HOLD"
HOLD_POLL_S = 0.05


@dataclass(frozen=True)
class Limits:
    """What the app accepts.

    Attributes:
        max_audio_s: longest audio, seconds.
        max_image_side: longest side of an uploaded image, px; larger ones are refused.
        min_image_side: shortest side of an uploaded image, px; smaller ones cannot hold a usable face.
        max_output_side: photos are scaled down to this longest side, px, before animation (the video's size).
        max_file_size: largest upload, as Gradio's ``launch(max_file_size=...)`` takes it (``"50mb"``).
        max_fps: highest frame rate offered.
    """

    max_audio_s: float = 60.0
    max_image_side: int = 4096
    min_image_side: int = 32
    max_output_side: int = 1024
    max_file_size: str = "50mb"
    max_fps: float = 60.0

    def __post_init__(self):
        if not self.max_audio_s > 0:
            raise ValueError(f"max_audio_s must be > 0 seconds, got {self.max_audio_s!r}")
        if not 0 < self.min_image_side <= self.max_output_side <= self.max_image_side:
            raise ValueError(
                f"need 0 < min_image_side <= max_output_side <= max_image_side, got {self.min_image_side},"
                f" {self.max_output_side}, {self.max_image_side}"
            )


@dataclass
class TabContext:
    """Handed to each tab's ``build``.

    Attributes:
        models: the model registry (each tab takes the entries of its kind).
        limits: the input limits.
        cache_dir: Gradio's cache folder; request folders go inside it, so the files a request returns are served
            from where they were written and removed by the app's ``delete_cache`` schedule.
        concurrency_limit: how many generation events run at once, over all tabs.
        workers: the app's :class:`~avdiff.demo.worker.WorkerPool`, or None to run handlers in this process (as a
            worker does, and as tests that call a tab's handler directly do).
        on_request_dir: called with each new request folder (a worker reports it to the app this way).
    """

    models: ModelRegistry
    limits: Limits
    cache_dir: Path
    concurrency_limit: int = 2
    workers: Any = None
    on_request_dir: Callable[[Path], None] | None = None

    def in_worker(self, handler: Callable) -> Callable:
        """The tab's bound event handler ``handler``, run in a worker process of the app (a crash there costs only
        that request; cancelling the request kills its worker); ``handler`` itself when there is no pool."""
        return handler if self.workers is None else self.workers.wrap(handler)

    def request_dir(self, job: str) -> Path:
        """A new private folder for one request, e.g. ``<cache>/avdiff-requests/talking-head-k2x9a1/``. Emptied
        folders of earlier requests (their files removed by ``delete_cache``) are removed here."""
        root = self.cache_dir / REQUESTS_DIR
        root.mkdir(parents=True, exist_ok=True)
        prune_empty_dirs(root, min_age_s=60)
        folder = Path(tempfile.mkdtemp(prefix=f"{job}-", dir=root))
        if self.on_request_dir is not None:
            self.on_request_dir(folder)
        _test_hooks()
        return folder

    def generation_event(self) -> dict:
        """Keyword arguments of a generation event listener: all tabs share one concurrency group."""
        return {"concurrency_limit": self.concurrency_limit, "concurrency_id": "generation"}


def prune_empty_dirs(root: Path, min_age_s: float) -> None:
    """Remove the empty folders directly under ``root`` older than ``min_age_s`` (a request still writing is
    younger)."""
    now = time.time()
    for child in root.iterdir():
        try:
            if child.is_dir() and not any(child.iterdir()) and now - child.stat().st_mtime > min_age_s:
                child.rmdir()
        except OSError:  # another request took or filled it meanwhile
            continue


def remove_quietly(path: str | os.PathLike) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _claim(path: str | None, to: str | None = None) -> bool:
    """Remove (or rename to ``to``) the file ``path``; True for the one process that did."""
    if not path:
        return False
    try:
        os.rename(path, to) if to else os.remove(path)
        return True
    except OSError:
        return False


def _test_hooks() -> None:
    if _claim(os.environ.get(ABORT_ENV)):
        logger.warning("test hook %s: aborting this process", ABORT_ENV)
        os.abort()
    hold = os.environ.get(HOLD_ENV)
    if hold and _claim(hold, hold + ".held"):
        logger.warning("test hook %s: holding this job until %s.held is removed", HOLD_ENV, hold)
        while os.path.exists(hold + ".held"):
            time.sleep(HOLD_POLL_S)
