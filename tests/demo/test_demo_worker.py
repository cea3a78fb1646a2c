"""The demo's worker pool without a server: a job cancelled right after its worker made a request folder (its
message not read yet) still has that folder removed; a job whose pool is closed under it (the server stopping)
fails with its own sentence and removes its folder; a worker logs at the app's level."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time

import gradio as gr
import pytest

from avdiff.demo import worker as worker_module
from avdiff.demo.context import Limits
from avdiff.demo.worker import WorkerPool, WorkerSpec


class _Process:
    pid = 12345

    def __init__(self, child):
        self.alive = True
        self.child = child

    def is_alive(self):
        return self.alive

    def kill(self):
        self.alive = False
        self.child.close()  # as a dead process's end of the pipe

    def join(self, timeout=None):
        pass


class _FakeWorker(worker_module._Worker):
    """A worker whose process is a stand-in; the test writes the worker's side of the pipe."""

    def __init__(self):
        self.started = time.monotonic()
        self.conn, self.child = multiprocessing.Pipe()
        self.process = _Process(self.child)


def test_a_folder_reported_just_before_a_cancel_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(worker_module, "POLL_S", 30.0)  # the app does not read the pipe again before the cancel
    spec = WorkerSpec(None, False, "cpu", Limits(), str(tmp_path), 1)
    pool = WorkerPool(spec)
    fake = _FakeWorker()
    monkeypatch.setattr(pool, "_take", lambda: fake)
    folder = tmp_path / "avdiff-requests" / "talking-head-x"

    async def scenario():
        job = asyncio.create_task(pool.run("m:Tab", "talk", (), {}))
        await asyncio.sleep(0.2)  # the job is sent and the app sleeps on its poll
        assert fake.child.recv() == ("m:Tab", "talk", (), {})
        folder.mkdir(parents=True)
        (folder / "partial.mp4").write_bytes(b"\0" * 10)
        fake.child.send(("folder", str(folder)))
        job.cancel()
        try:
            await job
        except asyncio.CancelledError:
            pass

    asyncio.run(scenario())
    assert not fake.process.alive
    assert not folder.exists()
    assert not pool.active_folders


def test_a_job_running_when_the_pool_closes_fails_with_the_stopping_sentence(tmp_path, monkeypatch, caplog):
    """The server's stop closes the pool from the main thread while the job polls its pipe on the event loop."""
    spec = WorkerSpec(None, False, "cpu", Limits(), str(tmp_path), 1)
    pool = WorkerPool(spec)
    fake = _FakeWorker()

    def take():
        pool._busy.add(fake)
        return fake

    monkeypatch.setattr(pool, "_take", take)
    folder = tmp_path / "avdiff-requests" / "talking-head-x"

    async def scenario():
        job = asyncio.create_task(pool.run("m:Tab", "talk", (), {}))
        await asyncio.sleep(0.2)
        assert fake.child.recv() == ("m:Tab", "talk", (), {})
        folder.mkdir(parents=True)
        fake.child.send(("folder", str(folder)))
        await asyncio.sleep(0.2)  # the job has read it
        assert pool.active_folders == {str(folder)}
        await asyncio.to_thread(pool.close)
        with pytest.raises(gr.Error) as raised:
            await job
        return raised.value

    with caplog.at_level(logging.INFO, logger=worker_module.__name__):
        error = asyncio.run(scenario())
    assert error.message == worker_module.STOPPING_MESSAGE
    assert "stopped unexpectedly" not in caplog.text and "stopped with the server" in caplog.text
    assert not fake.process.alive and fake.conn.closed
    assert not folder.exists() and not pool.active_folders and not pool.pids


class LogTab:
    """A tab whose handler logs one INFO line and one WARNING line (built by a worker as the demo's tabs are)."""

    def build(self, ctx):
        pass

    def work(self):
        logging.getLogger("avdiff.test_worker").info("an info line")
        logging.getLogger("avdiff.test_worker").warning("a warning line")
        return "done"


def test_a_worker_logs_at_the_level_of_the_app(tmp_path, capfd, monkeypatch):
    monkeypatch.setattr(logging.getLogger(), "level", logging.WARNING)  # as `avdiff demo` without -v
    spec = WorkerSpec(
        None, False, "cpu", Limits(), str(tmp_path), 1, log_level=logging.getLogger().getEffectiveLevel()
    )
    pool = WorkerPool(spec)
    try:
        assert asyncio.run(pool.run(f"{__name__}:LogTab", "work", (), {})) == "done"
    finally:
        pool.close()
    err = capfd.readouterr().err
    assert "a warning line" in err and "an info line" not in err, err


class WarmTab:
    """A tab with a ``warm()``: it counts its warm-ups and jobs in the worker's process."""

    warmed = 0

    def build(self, ctx):
        pass

    def warm(self):
        type(self).warmed += 1

    def times_warmed(self):
        return type(self).warmed


class BrokenWarmTab(WarmTab):
    def warm(self):
        raise RuntimeError("no model here")


def _ready(pool: WorkerPool) -> None:
    """Prestart one worker and wait for its "ready" (imported, warmed up)."""
    pool.prestart(1)
    (worker,) = pool._idle
    assert worker.conn.poll(120), "the prestarted worker never said it was ready"


@pytest.mark.parametrize("tab, warmed", [("WarmTab", 1), ("BrokenWarmTab", 0)])
def test_a_prestarted_worker_warms_its_tabs_once_before_its_first_job_and_serves_when_that_fails(
    tmp_path, capfd, tab, warmed
):
    spec = WorkerSpec(None, False, "cpu", Limits(), str(tmp_path), 1, logging.INFO, (f"{__name__}:{tab}",))
    pool = WorkerPool(spec)
    said = []
    progress = lambda fraction, desc=None, total=None, unit="steps": said.append(desc)  # noqa: E731
    try:
        _ready(pool)
        first = asyncio.run(pool.run(f"{__name__}:{tab}", "times_warmed", (), {}, progress))
        second = asyncio.run(pool.run(f"{__name__}:{tab}", "times_warmed", (), {}, progress))
    finally:
        pool.close()
    assert (first, second) == (warmed, warmed)  # the same tab instance, warmed once, before the first job
    assert said == []  # the worker was ready: no job was told it was starting
    err = capfd.readouterr().err
    if warmed:
        assert f"warmed {__name__}:{tab} up in" in err, err
    else:
        assert f"warming {__name__}:{tab} up failed" in err and "no model here" in err, err


def test_a_worker_started_for_a_waiting_job_skips_the_warm_up_and_the_job_is_told_it_is_starting(tmp_path):
    spec = WorkerSpec(None, False, "cpu", Limits(), str(tmp_path), 1, logging.INFO, (f"{__name__}:WarmTab",))
    pool = WorkerPool(spec)
    said = []
    progress = lambda fraction, desc=None, total=None, unit="steps": said.append(desc)  # noqa: E731
    try:
        assert asyncio.run(pool.run(f"{__name__}:WarmTab", "times_warmed", (), {}, progress)) == 0
    finally:
        pool.close()
    assert said == [worker_module.STARTING_MESSAGE]


class CrashingWarmTab(WarmTab):
    """Its warm-up says it began (a file in the cache folder), waits for a job to arrive, then crashes natively."""

    def build(self, ctx):
        self.began = ctx.cache_dir / "warm-began"

    def warm(self):
        self.began.touch()
        time.sleep(3)
        os.abort()  # as a segfault in a kernel


def test_a_worker_that_dies_warming_up_under_a_job_fails_it_saying_so_and_the_next_job_is_served(tmp_path, caplog):
    spec = WorkerSpec(None, False, "cpu", Limits(), str(tmp_path), 1, logging.INFO, (f"{__name__}:CrashingWarmTab",))
    pool = WorkerPool(spec)
    target = f"{__name__}:CrashingWarmTab"
    try:
        pool.prestart(1)
        deadline = time.monotonic() + 120
        while not (tmp_path / "warm-began").exists():
            assert time.monotonic() < deadline, "the warm-up never began"
            time.sleep(0.05)
        with caplog.at_level(logging.ERROR, logger=worker_module.__name__), pytest.raises(gr.Error) as raised:
            asyncio.run(pool.run(target, "times_warmed", (), {}))
        assert raised.value.message == worker_module.WORKER_DIED_MESSAGE
        assert "while it was starting" in caplog.text, caplog.text
        # the next job gets a fresh worker, which skips the warm-up because the job is waiting
        assert asyncio.run(pool.run(target, "times_warmed", (), {})) == 0
    finally:
        pool.close()


class HangingWarmTab(WarmTab):
    """Its warm-up says it began (a file in the cache folder), then never returns."""

    def build(self, ctx):
        self.began = ctx.cache_dir / "warm-began"

    def warm(self):
        self.began.touch()
        time.sleep(3600)  # as a native call that hangs


def test_a_worker_whose_warm_up_hangs_is_replaced_and_its_job_served_by_a_fresh_one(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(worker_module, "STARTING_LIMIT_S", 2.0)
    target = f"{__name__}:HangingWarmTab"
    spec = WorkerSpec(None, False, "cpu", Limits(), str(tmp_path), 1, logging.INFO, (target,))
    pool = WorkerPool(spec)
    said = []
    progress = lambda fraction, desc=None, total=None, unit="steps": said.append(desc)  # noqa: E731
    try:
        pool.prestart(1)
        (stuck,) = pool._idle
        deadline = time.monotonic() + 120
        while not (tmp_path / "warm-began").exists():
            assert time.monotonic() < deadline, "the warm-up never began"
            time.sleep(0.05)
        with caplog.at_level(logging.ERROR, logger=worker_module.__name__):
            job = pool.run(target, "times_warmed", (), {}, progress)
            assert asyncio.run(asyncio.wait_for(job, 120)) == 0  # the fresh one skipped the warm-up
        assert "was not ready 2 s after it started" in caplog.text, caplog.text
        assert not stuck.process.is_alive()
        assert said == [worker_module.STARTING_MESSAGE]
        assert len(pool.pids) == 1  # the fresh worker, idle again
    finally:
        pool.close()
