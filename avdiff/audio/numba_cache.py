"""librosa's numba kernels, compiled once, by one process, and checked before use.

librosa compiles its kernels (``localmax``, the beat tracker's dynamic program, peak picking ...) with numba's
``cache=True``: the machine code goes into ``.nbi`` (index) and ``.nbc`` (data) files in ``librosa/**/__pycache__``,
or under ``NUMBA_CACHE_DIR``, or a user-wide folder when neither is writable. Numba writes an index entry, then its
data file, and two processes compiling different signatures of one kernel at once can both pick data file number 1:
the index then points one signature at the other's machine code, and every later process that loads it segfaults
(four ``avdiff analyze`` started together on a cold cache, then a fifth: rc 139). Numba takes no lock.

:func:`ensure_numba_cache` makes concurrent first uses safe. The first process takes an inter-process file lock
(``filelock``) beside librosa's cache files, and, unless a valid marker says the cache is complete and unchanged,
runs avdiff's own rhythm analysis on a click track, and its F0 tracker on a tone, in a child process
(``python -m avdiff.audio.numba_probe``). That compiles every kernel avdiff uses into the cache, one process at a
time, or, on a cache that is already there, loads and runs them: a child that crashes (a signal) or whose beats or
pitch are wrong means a broken cache, whose files are deleted and rebuilt by a second child, with one warning. A
marker (the probe's, numba's, librosa's and Python's versions, and the size, mtime and inode of every cache file) is
then written beside the lock, so later processes check it with a few ``stat`` calls and never compile or write: with
the marker valid, a cache that is complete for avdiff's kernels is only ever read. Any change to the files (another
program compiling into them, a truncated or swapped file) invalidates the marker and the next process checks again.

The audio modules that call librosa (:mod:`avdiff.audio.onsets`, :mod:`avdiff.audio.rhythm`,
:mod:`avdiff.audio.pitch`), and the LAION CLAP loader (its torchlibrosa layers call librosa), call
:func:`ensure_numba_cache` before their first librosa call (``import librosa`` is lazy and compiles nothing).
``make install`` runs :func:`main` once, so a fresh install is compiled before its first use. Programs that call
librosa directly in several processes at once are not covered by the lock.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path

import librosa
from filelock import FileLock, Timeout

logger = logging.getLogger(__name__)

CHILD_ENV = "AVDIFF_NUMBA_CACHE_CHILD"  # set in the child that compiles or probes: it must not take the lock again
LOCK_NAME = "avdiff-numba-cache.lock"
MARKER_NAME = "avdiff-numba-cache.json"
LOCK_TIMEOUT_S = 1800.0  # a cold compile takes about a minute on a busy 2-core machine
CHILD_TIMEOUT_S = 1500.0
CACHE_SUFFIXES = (".nbi", ".nbc")
PROBE_VERSION = 2  # what the probe compiles (2: the rhythm analysis and YIN); a marker of another is checked again

_checked: bool | None = None  # this process's answer, once known
_thread_lock = threading.Lock()


def ensure_numba_cache() -> bool:
    """Make sure librosa's numba cache is complete for avdiff's kernels and does not crash; cheap after the first
    call in a process (a flag), and cheap in a new process while the marker is valid (a JSON read and a few stats).

    On a missing or stale marker it waits for the lock (other avdiff processes compiling), then compiles or checks
    the cache in a child process, rebuilding the cache once if the child crashes. Never raises for a cache problem:
    it logs and lets the caller's own librosa call run.

    Returns:
        True when the cache is marked good (or this is the child that checks it), False when it could not be.
    """
    global _checked
    if os.environ.get(CHILD_ENV):
        return True
    with _thread_lock:
        if _checked is None:
            try:
                _checked = _ensure()
            except OSError as e:  # an unwritable place, a full disk: numba itself copes, or fails with its own error
                logger.warning("could not check librosa's numba cache (%s); continuing without the check", e)
                _checked = False
        return _checked


def cache_dirs() -> list[Path]:
    """The folders numba caches librosa's kernels in (one per librosa source folder), as numba chooses them:
    ``NUMBA_CACHE_DIR/<folder>_<hash>``, else ``<folder>/__pycache__`` when writable, else a user-wide folder."""
    from numba.core import caching  # numba takes half a second to import; only needed on this path

    root = Path(librosa.__file__).resolve().parent
    folders = sorted({p.parent for p in root.rglob("*.py")})
    locators = (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator, caching.UserWideCacheLocator)
    out = []
    for folder in folders:
        source = str(folder / "__init__.py") if (folder / "__init__.py").is_file() else str(next(folder.glob("*.py")))
        for cls in locators:
            locator = cls.from_function(_locator_probe, source)
            if locator is not None:
                out.append(Path(locator.get_cache_path()))
                break
    return out


def _locator_probe() -> None:  # numba's locators read a function's first line number; any function serves
    pass


def cache_files(dirs: list[Path]) -> list[Path]:
    """The numba cache files (``.nbi``, ``.nbc``) in ``dirs``, sorted."""
    return sorted(p for d in dirs if d.is_dir() for p in d.iterdir() if p.suffix in CACHE_SUFFIXES)


def _fingerprint(dirs: list[Path]) -> dict:
    files = {}
    for p in cache_files(dirs):
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        files[str(p)] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return {
        "probe": PROBE_VERSION,
        "python": platform.python_version(),
        "numba": metadata.version("numba"),
        "librosa": metadata.version("librosa"),
        "files": files,
    }


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_marker(path: Path, value: dict) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    tmp.write_text(json.dumps(value, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _ensure() -> bool:
    dirs = cache_dirs()
    home = dirs[0]  # librosa's top folder's cache: where the lock and the marker live
    marker = home / MARKER_NAME
    if _read_marker(marker) == _fingerprint(dirs):
        return True
    try:
        with FileLock(str(home / LOCK_NAME), timeout=LOCK_TIMEOUT_S):
            if _read_marker(marker) == _fingerprint(dirs):  # another process finished it while we waited
                return True
            if not _check_or_build(dirs):
                return False
            _write_marker(marker, _fingerprint(dirs))
            return True
    except Timeout:
        logger.warning("waited %.0f s for %s; continuing without it", LOCK_TIMEOUT_S, home / LOCK_NAME)
        return False


def _check_or_build(dirs: list[Path]) -> bool:
    """Compile (or load and run) avdiff's kernels in a child; on a crash, delete the cache files and rebuild once.
    True when a child succeeded."""
    before = len(cache_files(dirs))
    logger.info("%s librosa's numba kernels in %s (once per install)", "checking" if before else "compiling", dirs[0])
    failure = _run_child()
    if failure is None:
        return True
    stale = cache_files(dirs) + [p for d in dirs if d.is_dir() for p in d.glob("*.nb[ic].tmp.*")]
    for p in stale:
        p.unlink(missing_ok=True)
    failure_again = _run_child()
    if failure_again is None:
        logger.warning(
            "librosa's numba cache in %s was broken (%s); deleted its %d files and rebuilt it",
            dirs[0],
            failure,
            len(stale),
        )
        return True
    logger.error(
        "librosa's numba cache in %s was broken (%s); rebuilding it failed too (%s)", dirs[0], failure, failure_again
    )
    return False


def _run_child() -> str | None:
    """Run the kernels in a child process; None when it succeeded, else what went wrong (one phrase)."""
    env = {**os.environ, CHILD_ENV: "1"}
    cmd = [sys.executable, "-m", "avdiff.audio.numba_probe"]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"no answer in {CHILD_TIMEOUT_S:.0f} s"
    if done.returncode == 0:
        return None
    if done.returncode < 0:
        return f"the check crashed with signal {-done.returncode}"
    tail = done.stderr.strip().splitlines()[-1:] or ["no message"]
    return f"the check failed: {tail[0]}"


def main() -> int:
    """Compile and check librosa's kernels once, for ``make install``: ``python -c "import avdiff.audio.numba_cache as
    m; m.main()"`` (not ``-m``: :mod:`avdiff.audio` imports this module first). Returns the exit status: 0 when the
    cache is good."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not ensure_numba_cache():
        print(f"librosa's numba kernels could not be compiled and checked in {cache_dirs()[0]}", file=sys.stderr)
        return 1
    print(f"librosa's numba kernels are compiled and checked ({cache_dirs()[0]})")
    return 0
