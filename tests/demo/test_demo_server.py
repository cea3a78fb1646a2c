"""The demo's request lifecycle, through gradio_client against a served app: a worker that dies costs only its
request, a cancelled job frees its slot and files at once, a queued job keeps its uploads, and Ctrl+C stops
``avdiff demo`` cleanly with no request files left."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gradio_client
import pytest
from gradio_client.utils import Status

from avdiff.demo import build_app
from avdiff.demo.context import ABORT_ENV, HOLD_ENV, REQUESTS_DIR
from avdiff.demo.worker import WORKER_DIED_MESSAGE
from avdiff.video import read_video

from demo_server import example_inputs, free_port, serving

pytestmark = pytest.mark.slow  # apps served with worker processes

AVDIFF = Path(sys.executable).with_name("avdiff")
WAIT_S = 240  # a fresh worker imports torch and gradio: generous on a shared 2-core CPU


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    return example_inputs(tmp_path_factory.mktemp("inputs"))


def talk(client, photo, speech, fps="25"):
    files = [gradio_client.handle_file(str(p)) for p in (photo, speech)]
    return client.submit(*files, "warp", 20, 2.0, 1.5, 0, fps, 16, 2, api_name="/talk")


def wait_for(condition, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.time() + timeout_s
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def own_folders(app) -> set[Path]:
    """The request folders this app's jobs made that still exist."""
    return {Path(p) for p in app.avdiff_files._folders if Path(p).exists()}


def test_a_worker_that_dies_costs_only_its_request(inputs, tmp_path, monkeypatch, caplog):
    abort = tmp_path / "abort"
    abort.touch()
    monkeypatch.setenv(ABORT_ENV, str(abort))  # the first request to make its folder aborts its worker
    app = build_app(bundled=False)
    with serving(app) as url:
        client = gradio_client.Client(url, verbose=False, download_files=False)
        with pytest.raises(gradio_client.exceptions.AppError) as e:
            talk(client, *inputs).result(timeout=WAIT_S)
        assert str(e.value) == WORKER_DIED_MESSAGE
        assert not abort.exists() and not own_folders(app)  # the crashed request's folder is removed
        assert "stopped unexpectedly (exit code -6)" in caplog.text  # SIGABRT, logged by the app

        video, _, scores = talk(client, *inputs).result(timeout=WAIT_S)  # the next request is served
        assert read_video(video["path"]).num_frames == 81 and scores["model"] == "warp"


def test_a_cancelled_job_stops_at_once_and_frees_its_slot_and_files(inputs, tmp_path, monkeypatch):
    hold = tmp_path / "hold"
    hold.touch()
    monkeypatch.setenv(HOLD_ENV, str(hold))  # the first job to make its folder waits until hold.held is removed
    app = build_app(bundled=False, concurrency_limit=1)
    pool = app.avdiff_context.workers
    with serving(app) as url:
        client = gradio_client.Client(url, verbose=False, download_files=False)
        first = talk(client, *inputs)
        wait_for(lambda: Path(f"{hold}.held").exists() and pool.active_folders, "the first job to start")
        (held_folder,) = pool.active_folders
        held_pid = next(iter(pool._busy)).process.pid
        second = talk(client, *inputs, fps="30")  # same client; waits for the only slot
        wait_for(lambda: second.status().code == Status.IN_QUEUE, "the second job to be queued")
        assert pool.active_folders == {held_folder}  # the second job has not started

        first.cancel()
        video, _, _ = second.result(timeout=WAIT_S)  # the same client receives its other job's result
        assert Path(f"{hold}.held").exists()  # the first job never finished: cancelling it freed the slot
        assert read_video(video["path"]).fps == 30
        assert not Path(held_folder).exists()  # its folder is removed
        assert held_pid not in pool.pids  # its worker is gone
        with pytest.raises(ProcessLookupError):
            os.kill(held_pid, 0)
    Path(f"{hold}.held").unlink()


def test_a_job_whose_client_left_is_stopped_and_frees_its_slot_and_files(inputs, tmp_path, monkeypatch):
    hold = tmp_path / "hold"
    hold.touch()
    monkeypatch.setenv(HOLD_ENV, str(hold))
    app = build_app(bundled=False, concurrency_limit=1)
    pool = app.avdiff_context.workers
    with serving(app) as url:
        # a client in a process of its own, killed while its job runs: its connection drops, as a closed tab's does
        paths = [str(p) for p in inputs]
        script = (
            f"import time, gradio_client as g; c = g.Client({url!r}, verbose=False); "
            f"c.submit(*[g.handle_file(p) for p in {paths!r}], 'warp', 20, 2.0, 1.5, 0, '25', 16, 2, "
            "api_name='/talk'); time.sleep(600)"
        )
        leaving = subprocess.Popen([sys.executable, "-c", script])
        try:
            wait_for(lambda: Path(f"{hold}.held").exists() and pool.active_folders, "the job to start")
            (folder,) = pool.active_folders
        finally:
            leaving.kill()
            leaving.wait()
        wait_for(lambda: not Path(folder).exists(), "the abandoned job's folder to be removed", 90)
        assert Path(f"{hold}.held").exists() and not pool.active_folders  # stopped, not finished

        client = gradio_client.Client(url, verbose=False, download_files=False)
        video, _, _ = talk(client, *inputs).result(timeout=WAIT_S)  # the only slot is free again
        assert read_video(video["path"]).num_frames == 81
    Path(f"{hold}.held").unlink()


def test_a_queued_job_keeps_its_uploads_past_the_cleanup_age(inputs, tmp_path, monkeypatch):
    import httpx

    hold = tmp_path / "hold"
    hold.touch()
    monkeypatch.setenv(HOLD_ENV, str(hold))
    queued = [Path(shutil.copy(p, tmp_path / f"queued_{p.name}")) for p in inputs]
    app = build_app(bundled=False, concurrency_limit=1, delete_cache=(1, 2))  # uploads older than 2 s are deleted
    cache = app.avdiff_context.cache_dir
    with serving(app) as url:
        client = gradio_client.Client(url, verbose=False, download_files=False)
        first = talk(client, *inputs)
        wait_for(lambda: Path(f"{hold}.held").exists(), "the first job to start")
        second = talk(client, *queued)
        wait_for(lambda: second.status().code == Status.IN_QUEUE, "the second job to be queued")
        # an upload no job reads: its deletion shows that the schedule ran past the age while the job waited
        response = httpx.post(f"{url.rstrip('/')}/gradio_api/upload", files={"files": ("unused.wav", b"x" * 100)})
        (unused,) = response.json()
        wait_for(lambda: not Path(unused).exists(), "Gradio's schedule to delete an unused upload", 60)
        time.sleep(3)  # the held job's folder is older than the age too, and its job still runs
        assert [p for q in queued for p in cache.glob(f"*/{q.name}")]  # the queued job's uploads are still there
        Path(f"{hold}.held").unlink()

        for job in (first, second):  # each made and scored its video (which itself ages out 2 s after it is made)
            video, _, scores = job.result(timeout=WAIT_S)
            assert video["path"].endswith(".mp4") and scores["r_envelope"] > 0.5
        # once the job has finished, its uploads age as usual
        wait_for(lambda: not [p for q in queued for p in cache.glob(f"*/{q.name}")], "the uploads' deletion", 60)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_during_a_job_stops_the_server_cleanly_and_leaves_no_request_files(inputs, tmp_path, stop):
    hold = tmp_path / "hold"
    cache = tmp_path / "cache"
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(cache),
        HOLD_ENV: str(hold),
    }
    proc = subprocess.Popen(
        [str(AVDIFF), "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "avdiff demo: serving on" in line:
                break
        assert f"serving on http://127.0.0.1:{port}" in "".join(lines), "".join(lines)
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        video, _, _ = talk(client, *inputs).result(timeout=WAIT_S)  # a finished request: its folder stays
        hold.touch()
        talk(client, *inputs)  # a running one
        wait_for(lambda: Path(f"{hold}.held").exists(), "the job to start")
        assert len(list((cache / REQUESTS_DIR).glob("talking-head-*"))) == 2 and Path(video["path"]).is_file()

        proc.send_signal(stop)
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # the stacks of every thread, to see what the stop waits on
            time.sleep(2)
            proc.kill()
            out, _ = proc.communicate()
            pytest.fail(f"the server did not stop within 120 s of {stop.name}; its output and stacks:\n{out}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, 130), out
    assert "terminate called" not in out and "Traceback" not in out, out
    assert not (cache / REQUESTS_DIR).exists() or not any((cache / REQUESTS_DIR).iterdir())
    assert Path(f"{hold}.held").exists()  # the job was stopped, not finished
    print(out)
