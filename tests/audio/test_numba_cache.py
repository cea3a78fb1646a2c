"""librosa's numba cache (avdiff.audio.numba_cache): concurrent first uses cannot break it, and a broken one is found
and rebuilt, in a ``NUMBA_CACHE_DIR`` and in the install's own place (``librosa/**/__pycache__``).

Each test starts real ``avdiff analyze`` processes: four at once on a cold cache, then a fifth. Before the lock, one
of the four segfaulted here, and a cache with two data files swapped (what two processes compiling one kernel at
once leave behind) segfaulted every later process (rc 139).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import librosa
import pytest

from avdiff.audio import save_audio
from avdiff.audio.numba_cache import LOCK_NAME, MARKER_NAME
from avdiff.audio.synth import click_track

AVDIFF = Path(sys.executable).with_name("avdiff")
WAIT_S = 1200  # a cold compile takes about a minute of CPU; the machine may be shared

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("numba_song") / "clicks.wav"
    save_audio(path, click_track(120.0, duration_s=6.0).waveform)
    return path


@pytest.fixture(scope="module")
def numba_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("numba_cache_dir")


def _env(**changes: str | None) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("AVDIFF_NUMBA_CACHE_CHILD", None)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _analyze(song: Path, env: dict[str, str], n: int = 1) -> list[tuple[int, str, str]]:
    """``n`` ``avdiff analyze`` processes started at once: ``(returncode, stdout, stderr)`` each."""
    procs = [
        subprocess.Popen(
            [str(AVDIFF), "analyze", str(song), "--fps", "25"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(n)
    ]
    return [(p.returncode, *out) for p in procs for out in [p.communicate(timeout=WAIT_S)]]


def _assert_all_ran(results: list[tuple[int, str, str]]) -> None:
    assert [rc for rc, _, _ in results] == [0] * len(results), [err[-600:] for _, _, err in results]
    beats = {tuple(json.loads(out)["beat_times_s"]) for _, out, _ in results}
    assert len(beats) == 1 and len(next(iter(beats))) >= 9  # every process found the same 120 BPM beats


def _swap_data_files(root: Path) -> int:
    """Swap data files 1 and 2 of every kernel that has both: each index then sends a signature to another's
    machine code, as when two processes compile one kernel at once. Returns how many kernels were swapped."""
    swapped = 0
    for first in root.rglob("*.1.nbc"):
        second = first.with_name(first.name.replace(".1.nbc", ".2.nbc"))
        if second.is_file():
            tmp = first.with_name("swap.tmp")
            first.rename(tmp)
            second.rename(first)
            tmp.rename(second)
            swapped += 1
    return swapped


def test_four_first_uses_at_once_then_a_fifth_on_an_empty_numba_cache_dir(song, numba_dir):
    env = _env(NUMBA_CACHE_DIR=str(numba_dir))
    results = _analyze(song, env, 4) + _analyze(song, env, 1)
    _assert_all_ran(results)
    assert len(list(numba_dir.rglob(MARKER_NAME))) == 1 and len(list(numba_dir.rglob(LOCK_NAME))) == 1
    assert not any("broken" in err for _, _, err in results)


def test_a_cache_with_swapped_data_files_is_found_and_rebuilt(song, numba_dir):
    env = _env(NUMBA_CACHE_DIR=str(numba_dir))
    _assert_all_ran(_analyze(song, env))  # a complete cache (already, after the test above)
    assert _swap_data_files(numba_dir) >= 5
    ((rc, out, err),) = _analyze(song, env)
    assert rc == 0, err[-600:]
    lines = [line for line in err.splitlines() if "numba" in line]
    assert len(lines) == 1 and "was broken" in lines[0] and "rebuilt" in lines[0], err[-600:]
    again = _analyze(song, env, 2)
    _assert_all_ran([(rc, out, err), *again])
    assert not any("numba" in e for _, _, e in again)  # the rebuilt cache is marked good: no second check


def test_the_install_location_a_copy_of_librosa_with_its_own_pycache(song, tmp_path):
    """The install's own place: numba caches in ``librosa/**/__pycache__`` when NUMBA_CACHE_DIR is unset. The
    shared install is not touched: a copy of the librosa package, first on PYTHONPATH, is imported instead, with
    empty ``__pycache__`` folders; the test checks that the cache files were written there."""
    site = tmp_path / "site"
    shutil.copytree(Path(librosa.__file__).parent, site / "librosa", ignore=shutil.ignore_patterns("__pycache__"))
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    env = _env(NUMBA_CACHE_DIR=None, PYTHONPATH=path)
    results = _analyze(song, env, 4) + _analyze(song, env, 1)
    _assert_all_ran(results)
    assert (site / "librosa" / "__pycache__" / MARKER_NAME).is_file()
    assert len(list((site / "librosa").rglob("__pycache__/*.nbi"))) >= 10
