"""The files of the demo's requests, from the moment a job is queued until the server stops.

- **A queued job keeps its uploads.** Gradio's cache schedule deletes uploads by age, also while the job that will
  read them waits in the queue. So when a job of a handler that runs in a worker is queued, its uploads join the
  app's ``keep_in_cache`` set, which the schedule skips, until the job has left the queue and finished; then they
  age as usual.
- **Request folders are removed by age and at shutdown.** Gradio deletes only the files it knows (uploads and
  returned outputs); a request folder also holds what the job wrote beside its output (the music tab's keyframe
  copies). Every ``frequency_s`` each request folder of this app older than ``age_s`` is removed, unless its job
  still runs; when the server stops, all of them are. Folders of other apps sharing the cache are left alone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

from avdiff.demo.context import REQUESTS_DIR, remove_quietly

logger = logging.getLogger(__name__)


class RequestFiles:
    """The queued jobs' uploads and the app's request folders in ``<cache_dir>/avdiff-requests``.

    Args:
        cache_dir: Gradio's cache folder (uploads are there; request folders go inside it).
        workers: the app's :class:`~avdiff.demo.worker.WorkerPool` (its ``active_folders`` are never removed by
            age; it is closed at shutdown), or None.
        delete_cache: ``(frequency_s, age_s)`` of the age schedule, or None for no schedule (shutdown still
            removes everything).
    """

    def __init__(self, cache_dir: Path, workers=None, delete_cache: tuple[int, int] | None = None):
        self.cache_dir = Path(cache_dir)
        self.root = self.cache_dir / REQUESTS_DIR
        self.workers = workers
        self.delete_cache = delete_cache
        self.blocks = None
        self._keep: set[str] = set()  # Gradio's cache schedule never deletes these paths
        self._kept: dict[object, list[str]] = {}  # event id -> the uploads its job reads
        self._refs: dict[str, int] = {}  # upload path -> how many queued or running jobs read it
        self._added: set[str] = set()  # paths this object put into _keep
        self._folders: set[str] = set()  # request folders made by this app's jobs
        self._lock = threading.Lock()

    def add_folder(self, path: str | os.PathLike) -> None:
        """Record a request folder of this app (removed by age, and at shutdown)."""
        with self._lock:
            self._folders.add(str(path))

    # --- inputs -----------------------------------------------------------------------------------------------

    def own_inputs_when_queued(self, blocks, holder) -> None:
        """Make ``blocks``' queue keep each worker job's uploads from the moment it is queued until it has finished
        (``blocks.queue()`` must have been called): their paths join ``holder.keep_in_cache`` (``holder`` is any
        component of the app), which Gradio's cache schedule never deletes."""
        self.blocks = blocks
        self._keep = holder.keep_in_cache
        queue = blocks._queue
        push = queue.push

        async def push_keeping_inputs(body, request, username):
            fn = blocks.fns.get(body.fn_index) if body.fn_index is not None else None
            if fn is None or not getattr(fn.fn, "avdiff_in_worker", False) or not body.data:
                return await push(body, request, username)
            try:
                paths = self.upload_paths(body.data)
            except Exception:  # never let this refuse a job
                logger.exception("cannot list the uploads of a queued job; they age as usual")
                return await push(body, request, username)
            token = object()
            self._hold(token, paths)  # before the push: the schedule may run while it is under way
            try:
                ok, event_id, status = await push(body, request, username)
            except BaseException:
                with self._lock:
                    paths = self._kept.pop(token)
                self._release(paths)
                raise
            with self._lock:
                paths = self._kept.pop(token)
            if ok:
                with self._lock:
                    self._kept[event_id] = paths
            else:
                self._release(paths)
            return ok, event_id, status

        queue.push = push_keeping_inputs

    def upload_paths(self, data) -> list[str]:
        """The paths of the files in Gradio's cache that an event's input payloads ``data`` name."""
        found = []

        def visit(value):
            if isinstance(value, list):
                for v in value:
                    visit(v)
            elif isinstance(value, dict):
                path = value.get("path")
                if isinstance(path, str) and self._is_upload(path):
                    found.extend(sorted({path, os.path.abspath(path), str(Path(path).resolve())}))
                for v in value.values():
                    visit(v)

        visit(data)
        return found

    def _is_upload(self, path: str) -> bool:
        p = Path(path).resolve()
        return p.is_file() and p.is_relative_to(self.cache_dir.resolve())

    def _hold(self, key, paths: list[str]) -> None:
        with self._lock:
            self._kept[key] = paths
            for path in paths:
                if path not in self._keep:
                    self._keep.add(path)
                    self._added.add(path)
                self._refs[path] = self._refs.get(path, 0) + 1

    def _release(self, paths: list[str]) -> None:
        with self._lock:
            for path in paths:
                self._refs[path] -= 1
                if self._refs[path] == 0:
                    del self._refs[path]
                    if path in self._added:
                        self._added.discard(path)
                        self._keep.discard(path)

    # --- removal ----------------------------------------------------------------------------------------------

    def sweep(self, age_s: float | None) -> list[Path]:
        """Let Gradio's schedule delete the uploads of jobs that have left the queue and finished, and remove this
        app's request folders older than ``age_s`` seconds (None: all) whose job is not running; returns the
        folders removed."""
        queue = getattr(self.blocks, "_queue", None)
        pending = set(queue.event_ids_to_events) if queue is not None else set()
        active = set(self.workers.active_folders) if self.workers is not None else set()
        now = time.time()
        removed = []
        with self._lock:
            finished = [key for key in self._kept if isinstance(key, str) and key not in pending]
            kept = [self._kept.pop(key) for key in finished]
            folders = set(self._folders)
        for paths in kept:
            self._release(paths)
        for name in folders:
            if age_s is not None:
                try:
                    if name in active or now - os.stat(name).st_mtime <= age_s:
                        continue
                except FileNotFoundError:
                    pass
                except OSError:
                    continue
            with self._lock:
                self._folders.discard(name)
            remove_quietly(name)
            removed.append(Path(name))
        if removed:
            logger.info("removed %d request folder(s) from %s", len(removed), self.root)
        return removed

    def shutdown(self) -> None:
        """Stop the workers and remove every request folder (the server is stopping)."""
        if self.workers is not None:
            self.workers.close()
        self.sweep(None)
        try:
            self.root.rmdir()
        except OSError:
            pass

    @asynccontextmanager
    async def lifespan(self, app):
        """The server's lifespan: a warm worker and the age schedule while it runs, everything removed after."""
        if self.workers is not None:
            self.workers.prestart(1)
        task = asyncio.create_task(self._every(*self.delete_cache)) if self.delete_cache else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await asyncio.to_thread(self.shutdown)

    async def _every(self, frequency_s: float, age_s: float) -> None:
        while True:
            await asyncio.sleep(frequency_s)
            try:
                await asyncio.to_thread(self.sweep, age_s)
            except Exception:
                logger.exception("removing old request folders failed")
