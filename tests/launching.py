"""The multi-process commands of the docs, run as they are written there: each is a bash block marked
``<!-- test: LABEL -->`` in a page of docs/, and the tests change only its process count (to 2, on the CPU: gloo).
Shared by tests/batch/test_batch.py and tests/training/test_train_talking_head.py."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def doc_command(page: str, label: str, processes: int = 2) -> str:
    """The bash block under ``<!-- test: LABEL -->`` in ``docs/PAGE``, its ``--num_processes`` set to ``processes``."""
    text = (ROOT / "docs" / page).read_text()
    block = re.search(rf"<!-- test: {re.escape(label)} -->\n```bash\n(.*?)```", text, re.S)
    assert block, f"docs/{page} has no command marked '{label}'"
    command, n = re.subn(r"--num_processes \d+", f"--num_processes {processes}", block.group(1))
    assert n == 1, f"docs/{page} '{label}' must give --num_processes once"
    return command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_env() -> dict:
    """This venv's ``accelerate`` first on PATH, one intra-op thread per process (the same floats in every run), and
    the variables SLURM and the cluster command would set, for one node on this machine."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "SLURM_NNODES": "1",
        "SLURM_NODEID": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MAIN_PORT": str(free_port()),
    }


def launch(command: str, cwd: Path) -> subprocess.Popen:
    """``command`` (bash) started in ``cwd`` under :func:`launch_env`, its output captured."""
    return subprocess.Popen(
        ["bash", "-c", f"set -e\n{command}"],
        cwd=cwd,
        env=launch_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen, timeout: float = 500) -> str:
    """Its output, once it has ended with code 0 (AssertionError with the output otherwise)."""
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_all(process)
        raise
    assert process.returncode == 0, output[-5000:]
    return output


def kill_all(process: subprocess.Popen) -> None:
    """Kill ``process`` and every process it started, at once (torchrun's workers are in sessions of their own)."""
    for child in [*psutil.Process(process.pid).children(recursive=True), psutil.Process(process.pid)]:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    process.communicate()
