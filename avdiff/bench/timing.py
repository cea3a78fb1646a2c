"""Small timing helpers shared by the benchmarks."""

from __future__ import annotations

import multiprocessing as mp
import statistics
import time
import traceback
from collections.abc import Callable


def time_call(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> tuple[float, float]:
    """Median and minimum wall time of ``fn()`` in seconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def format_table(rows: list[dict], columns: list[str]) -> str:
    """Plain-text table: labels left-aligned, numbers right-aligned."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:  # first column left-aligned (labels), the rest right-aligned (numbers)
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))

    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(row) for row in cells])


def run_in_child(fn: Callable[..., dict], kwargs: dict, preload: list[str]) -> dict:
    """``fn(**kwargs)`` in a fresh process, so no allocator cache or earlier memory peak carries over.

    The process is forked from a forkserver that has the ``preload`` modules imported (torch, diffusers ...), which
    keeps the start cheap. ``fn`` must be a module-level function. A failure in the child raises ``RuntimeError``
    with the child's traceback.
    """
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(preload)
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, args=(send, fn, kwargs))
    child.start()
    send.close()
    try:
        status, payload = receive.recv()
    except EOFError:
        child.join()
        status, payload = "error", f"the child process died (exit code {child.exitcode})"
    child.join()
    if status != "ok":
        raise RuntimeError(f"benchmark {fn.__name__}({kwargs}) failed:\n{payload}")
    return payload


def _child_main(conn, fn: Callable[..., dict], kwargs: dict) -> None:
    try:
        conn.send(("ok", fn(**kwargs)))
    except BaseException:  # noqa: BLE001 - reported to the parent
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()
