"""The demo's jobs run in worker processes, so one request cannot take the server down, and a job can be stopped.

A native crash (a segfault in a numba kernel, an out-of-memory kill) ends only the worker process of that request:
its user gets :data:`WORKER_DIED_MESSAGE`, the app logs it, and the next request gets a fresh worker. A request
that is cancelled (Gradio cancels its task) or abandoned (its client disconnected) kills its worker at once, so the
job stops within the denoising step it is in, and its request folder is removed.

Each worker builds its own :class:`~avdiff.demo.context.TabContext` (its own
:class:`~avdiff.demo.models.ModelRegistry`, which keeps the models it loaded across requests) and its own tab
instances, and runs a tab's handler (``tab.talk(...)``) on the same arguments as the app would. Progress calls and
the request folders it creates are sent back to the app as they happen; the handler's return value, or its
``gr.Error`` sentence, comes back at the end.

A worker started with nothing to do yet (the one the server prestarts) warms up first: it runs the ``warm()`` of the
tabs that have one (``WorkerSpec.warm``; the talking-head tab makes and scores a second of its example), so its first
request does not pay for loading. A worker started for a job that is already waiting skips it (the job loads what it
needs), and then says "ready". A job that reaches a worker not yet ready says so in its progress
(:data:`STARTING_MESSAGE`); if that worker dies, the log says it died while starting. A job whose worker is still not
ready :data:`STARTING_LIMIT_S` after that worker started (imports and warm-up; a warm-up that hangs) stops it and
starts again on a fresh worker, once; an idle worker is not watched.

A process pool of the standard library (or loky's) is not used: when one of its workers dies, every job in flight
in the pool fails, and one job cannot be stopped without stopping them all.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import logging
import multiprocessing
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from avdiff.demo.context import Limits, TabContext, remove_quietly
from avdiff.demo.inputs import BUG_MESSAGE
from avdiff.demo.models import ModelRegistry

logger = logging.getLogger(__name__)

WORKER_DIED_MESSAGE = "The worker running this request stopped unexpectedly; please try again."
ABANDONED_MESSAGE = "The request was stopped: its page was closed."
STOPPING_MESSAGE = "The request was stopped: the server is shutting down."
STARTING_MESSAGE = "starting a worker: it loads the libraries and models once, after the server starts"
# a worker not ready this long after it started (imports and warm-up) is stuck, e.g. in a warm-up that hangs in a
# native call: the job waiting for it stops it and starts again on a fresh worker, which skips the warm-up
STARTING_LIMIT_S = 120.0
POLL_S = 0.05  # how often a waiting request looks at its worker's pipe and at whether its client is still there
_PROGRESS = "<avdiff-progress>"  # stands for the handler's gr.Progress argument on its way to a worker


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to build its own context: the arguments of ``build_app`` (all picklable)."""

    models: dict[str, str] | None
    bundled: bool
    device: str | None
    limits: Limits
    cache_dir: str
    concurrency_limit: int
    log_level: int = logging.INFO  # the app's (the root logger's effective level)
    warm: tuple[str, ...] = ()  # the tabs ("module:qualname") whose ``warm()`` a worker runs before its first job


class _Worker:
    """One worker process and the app's end of its pipe."""

    stopped_by_pool = False  # killed by WorkerPool.close while it ran a job
    ready = False  # it said so: imported, its tabs warmed up (serve's first message)

    def __init__(self, spec: WorkerSpec, context):
        self.started = time.monotonic()
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(spec, child), name="avdiff-worker", daemon=True)
        self.process.start()
        child.close()

    def is_ready(self) -> bool:
        """Whether it has said it is ready, read off its pipe without waiting (before its first job, "ready" is the
        only message it sends: ``serve``)."""
        try:
            while not self.ready and self.conn.poll():
                kind, value = self.conn.recv()
                self.ready = kind == "ready"
                if not self.ready:
                    logger.error("a worker sent %r before it was ready; dropped: %r", kind, value)
        except (EOFError, OSError):  # it died: the job finds out
            pass
        return self.ready

    def end(self) -> None:
        """End the process now (SIGKILL) and reap it; the pipe stays open for the job that reads it."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)

    def kill(self) -> list[str]:
        """End the process now (SIGKILL), reap it and close the pipe; returns the request folders it reported that
        were not read yet (it made them just before it was killed)."""
        self.end()
        unread = _folders_unread(self.conn)
        self.conn.close()
        return unread

    def stop(self) -> None:
        """Ask the process to finish (it is idle), then end it if it does not."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=5)
        self.kill()


class WorkerPool:
    """Worker processes for the tabs' jobs, started on demand (``spawn``) and kept, idle, for the next request.

    How many jobs run at once is Gradio's concurrency limits' business; the pool keeps at most ``max_idle`` idle
    workers (each with the models it loaded) and starts a new one when none is idle.

    Args:
        spec: the context each worker builds.
        max_idle: idle workers kept.
    Attributes:
        blocks: the app, set by ``build_app`` once it exists; used to see whether a job's client is still there.
        on_folder: called with each request folder a job makes (set by ``build_app``).
        active_folders: the request folders of the jobs running now.
    """

    def __init__(self, spec: WorkerSpec, max_idle: int = 2):
        self.spec = spec
        self.max_idle = max_idle
        self.blocks = None
        self.on_folder = None  # called with each request folder a job makes
        self.active_folders: set[str] = set()  # request folders of the jobs running now
        self._context = multiprocessing.get_context("spawn")
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._lock = threading.Lock()

    # --- workers ----------------------------------------------------------------------------------------------

    def prestart(self, count: int = 1) -> None:
        """Start ``count`` idle workers now (they import in the background), so the first requests do not wait."""
        with self._lock:
            while len(self._idle) < min(count, self.max_idle):
                self._idle.append(_Worker(self.spec, self._context))

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.is_alive():
                    self._busy.add(worker)
                    return worker
                worker.kill()
            return self._start_busy()

    def _start_busy(self) -> _Worker:
        """A fresh worker, counted busy from its start (call it under the lock)."""
        worker = _Worker(self.spec, self._context)
        self._busy.add(worker)
        return worker

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            if len(self._idle) < self.max_idle and worker.process.is_alive():
                self._idle.append(worker)
                return
        worker.stop()

    def _discard(self, worker: _Worker) -> list[str]:
        with self._lock:
            self._busy.discard(worker)
        return worker.kill()

    def close(self) -> None:
        """Kill every worker, idle or busy (their jobs end; the next request starts a fresh one).

        A busy worker's pipe is left to the job that reads it, on the server's event loop (closed here, under the
        job's poll, it raised ``OSError: handle is closed`` there): the job sees the pipe end, fails with
        :data:`STOPPING_MESSAGE` and removes its folders."""
        with self._lock:
            idle, busy = self._idle, list(self._busy)
            self._idle, self._busy = [], set()
        for worker in idle:
            for folder in worker.kill():
                remove_quietly(folder)
        for worker in busy:
            worker.stopped_by_pool = True
            worker.end()

    @property
    def pids(self) -> list[int]:
        """The process ids of the live workers, idle and busy."""
        with self._lock:
            return [w.process.pid for w in self._idle + list(self._busy) if w.process.is_alive()]

    # --- jobs -------------------------------------------------------------------------------------------------

    def wrap(self, method):
        """An async stand-in for the tab's bound handler ``method`` that runs it in a worker; Gradio sees the
        handler's own signature (its inputs, its ``gr.Progress``).

        Raises (from the stand-in):
            gr.Error: the handler's own sentence; :data:`WORKER_DIED_MESSAGE` when its worker died;
                :data:`STOPPING_MESSAGE` when the server stopped under it.
        """
        tab = method.__self__
        target = f"{type(tab).__module__}:{type(tab).__qualname__}"
        signature = inspect.signature(method)

        @functools.wraps(method)
        async def in_worker(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            progress = request = None
            for name, value in bound.arguments.items():
                if isinstance(value, gr.Progress):
                    progress, bound.arguments[name] = value, _PROGRESS
                elif isinstance(value, gr.Request):  # stays here: the worker's handler gets None
                    request, bound.arguments[name] = value, None
            try:
                return await self.run(target, method.__name__, bound.args, bound.kwargs, progress)
            except gr.Error as e:
                status = getattr(tab, "status", None)  # the tab's status line lives in the app, not the worker
                if status is None:
                    raise
                raise status.error(str(e.message), request) from None

        in_worker.avdiff_in_worker = True  # read by avdiff.demo.lifecycle: its inputs are copied when queued
        return in_worker

    async def run(self, target: str, method: str, args: tuple, kwargs: dict, progress=None):
        """Run ``<target class>.<method>(*args, **kwargs)`` in a worker and return its value.

        Raises:
            gr.Error: the handler's sentence, :data:`WORKER_DIED_MESSAGE`, :data:`ABANDONED_MESSAGE` or
                :data:`STOPPING_MESSAGE` (the pool was closed under it: the server is stopping).
            asyncio.CancelledError: the task was cancelled (the worker is killed first).
        """
        event_id = _event_id()
        worker = self._take()
        job = (target, method, args, kwargs)
        folders: list[str] = []
        reusable = replaced = False
        try:
            if progress is not None and not worker.is_ready():  # a request just after the server started waits
                progress((0, None), desc=STARTING_MESSAGE, unit="stages")
            try:
                worker.conn.send(job)
            except OSError:  # it died starting, or the pool was closed as it was taken
                raise self._ended(worker, method) from None
            while True:
                try:
                    while not worker.conn.poll():
                        if worker.stopped_by_pool:  # not only the pipe's end: a child of the worker could hold it
                            raise self._ended(worker, method)
                        if not (worker.ready or replaced) and time.monotonic() - worker.started > STARTING_LIMIT_S:
                            worker, replaced = self._replace_stuck(worker, method), True
                            worker.conn.send(job)
                        if self._abandoned(event_id):
                            logger.info(
                                "%s: the client left; stopping its worker (pid %d)", method, worker.process.pid
                            )
                            raise gr.Error(ABANDONED_MESSAGE, print_exception=False)
                        await asyncio.sleep(POLL_S)
                    kind, value = worker.conn.recv()
                except (EOFError, OSError):
                    raise self._ended(worker, method) from None
                if kind == "ready":
                    worker.ready = True
                elif kind == "progress":
                    if progress is not None:
                        fraction, desc, total, unit = value
                        progress(fraction, desc=desc, total=total, unit=unit)
                elif kind == "folder":
                    folders.append(value)
                    self.active_folders.add(value)
                    if self.on_folder is not None:
                        self.on_folder(value)
                elif kind == "done":
                    reusable = True
                    return value
                else:  # "error": the handler's sentence; it removed its own folder
                    reusable = True
                    raise gr.Error(value, print_exception=False)
        except asyncio.CancelledError:
            logger.info("%s: cancelled; stopping its worker (pid %d)", method, worker.process.pid)
            raise
        finally:
            self.active_folders.difference_update(folders)
            if reusable:
                self._give_back(worker)
            else:
                folders += self._discard(worker)  # with those it made just before it was killed, not yet read
                for folder in folders:
                    remove_quietly(folder)

    def _replace_stuck(self, worker: _Worker, method: str) -> _Worker:
        """Stop a worker that is not ready :data:`STARTING_LIMIT_S` after it started (logged as an error) and start a
        busy one in its place. (Had it turned ready and taken the job just now, it is killed before it could finish;
        the fresh worker runs the job from the start.)

        Raises:
            gr.Error: :data:`STOPPING_MESSAGE`, when the pool was closed under the job (the server is stopping).
        """
        with self._lock:
            closed = worker not in self._busy  # close() took it
            self._busy.discard(worker)
            fresh = None if closed else self._start_busy()
        for folder in worker.kill():
            remove_quietly(folder)
        if fresh is None:
            raise gr.Error(STOPPING_MESSAGE, print_exception=False)
        logger.error(
            "%s: its worker (pid %d) was not ready %.0f s after it started (a warm-up that hangs?); it is stopped, "
            "and the job starts again on a fresh worker",
            method,
            worker.process.pid,
            STARTING_LIMIT_S,
        )
        return fresh

    def _ended(self, worker: _Worker, method: str) -> gr.Error:
        """The error of a job whose worker is gone: :data:`STOPPING_MESSAGE` when the pool was closed under it (the
        server stopping), else :data:`WORKER_DIED_MESSAGE` (logged as an error, with the exit code)."""
        worker.process.join(timeout=5)
        if worker.stopped_by_pool:
            logger.info("%s: stopped with the server (worker pid %d)", method, worker.process.pid)
            return gr.Error(STOPPING_MESSAGE, print_exception=False)
        logger.error(
            "%s: the worker (pid %d) stopped unexpectedly%s (exit code %s); the request fails, the next one gets a "
            "fresh worker",
            method,
            worker.process.pid,
            "" if worker.ready else " while it was starting (importing, or warming its tabs up)",
            worker.process.exitcode,
        )
        return gr.Error(WORKER_DIED_MESSAGE, print_exception=False)

    def _abandoned(self, event_id: str | None) -> bool:
        """Whether Gradio marked the job's event as no longer wanted (its client disconnected)."""
        queue = getattr(self.blocks, "_queue", None)
        if event_id is None or queue is None:
            return False
        for events in list(queue.active_jobs):
            for event in events or []:
                if event._id == event_id:
                    return not event.alive
        return False


def _folders_unread(conn) -> list[str]:
    """The request folders reported in the messages still unread on a dead worker's pipe ``conn``."""
    found = []
    try:
        while conn.poll():
            kind, value = conn.recv()
            if kind == "folder":
                found.append(value)
    except Exception:  # the end of the pipe, or a message cut short by the kill
        pass
    return found


def _event_id() -> str | None:
    """The Gradio event this coroutine serves, from its task's name (``<session>_<fn><gradio-sep><event id>``)."""
    task = asyncio.current_task()
    name = task.get_name() if task is not None else ""
    return name.split("<gradio-sep>", 1)[1] if "<gradio-sep>" in name else None


# --- the worker process ---------------------------------------------------------------------------------------------


class _ProgressProxy:
    """Stands in for gr.Progress in a worker: each call goes to the app."""

    def __init__(self, conn):
        self.conn = conn

    def __call__(self, progress, desc=None, total=None, unit="steps"):
        self.conn.send(("progress", (progress, desc, total, unit)))


def serve(spec: WorkerSpec, conn) -> None:
    """A worker's loop: receive ``(target, method, args, kwargs)``, run it, send back progress, folders and the
    result; ``None`` (or the app's end closing) ends it. Ctrl+C is the app's to handle, so the worker ignores it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=spec.log_level, format="%(levelname)s %(name)s: %(message)s")
    ctx = TabContext(
        ModelRegistry(spec.models, bundled=spec.bundled, device=spec.device),
        spec.limits,
        Path(spec.cache_dir),
        spec.concurrency_limit,
    )
    tabs: dict[str, object] = {}
    for target in spec.warm:  # only while no job waits: a job loads what it needs itself
        if conn.poll():
            break
        _warm(target, ctx, tabs)
    conn.send(("ready", None))  # the first message: nothing may be sent before it (_Worker.is_ready)

    ctx.on_request_dir = lambda path: conn.send(("folder", str(path)))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        target, method, args, kwargs = job
        try:
            handler = getattr(_tab(target, ctx, tabs), method)
            args = [_ProgressProxy(conn) if _is_progress(a) else a for a in args]
            kwargs = {k: _ProgressProxy(conn) if _is_progress(v) else v for k, v in kwargs.items()}
            reply = ("done", handler(*args, **kwargs))
        except gr.Error as e:
            reply = ("error", str(e.message))
        except Exception:
            logger.exception("%s failed in the worker", method)
            reply = ("error", BUG_MESSAGE)
        conn.send(reply)


def _tab(target: str, ctx: TabContext, tabs: dict):
    """The worker's instance of the tab class ``module:qualname``, built once (in a Blocks of its own)."""
    if target not in tabs:
        module, _, name = target.partition(":")
        tab = getattr(importlib.import_module(module), name)()
        with gr.Blocks(analytics_enabled=False):
            tab.build(ctx)
        tabs[target] = tab
    return tabs[target]


def _warm(target: str, ctx: TabContext, tabs: dict) -> None:
    """Run the tab's ``warm()``: it loads what its first request would (the model, the scorer) and runs them once. A
    failure is logged, not raised: the worker serves anyway, and the first request loads what it needs."""
    start = time.perf_counter()
    try:
        _tab(target, ctx, tabs).warm()
    except Exception:
        logger.warning("warming %s up failed; its first request will load what it needs", target, exc_info=True)
    else:
        logger.info("warmed %s up in %.1f s", target, time.perf_counter() - start)


def _is_progress(value: object) -> bool:
    return isinstance(value, str) and value == _PROGRESS
