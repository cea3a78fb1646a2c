"""Trace one ``avdiff`` CLI run the way docs/architecture.md reads a job: which avdiff files run code, in the order
of their first call and from which file, and every trip back (a call into a file already on the call stack below
another file, as a generator pulled by a writer in another file would make).

Used by ``tests/test_reading_paths.py``; run by hand to redo the doc's lists::

    python tests/reading_path.py visualize --audio song.wav --images a.png b.png --out disco.mp4
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import avdiff

ROOT = str(Path(avdiff.__file__).parent) + "/"
CO_OPTIMIZED = 0x1  # set for functions, not for module or class bodies
# Work done while a module is imported (its body and all it calls) is left out: it runs once per process, so whether
# a job shows it depends on what the process imported before (another test, in the same pytest run).
IMPORTING = "<import>"


@dataclass
class Trace:
    first_calls: list[tuple[str, str, str | None]] = field(default_factory=list)  # (file, function, caller file)
    trips: dict[tuple[str, ...], int] = field(default_factory=dict)  # the stack slice from the file re-entered

    @property
    def files(self) -> list[str]:
        return [f for f, _, _ in self.first_calls]


def trace_cli(argv: list[str]) -> Trace:
    """Run ``avdiff <argv>`` in this process under ``sys.setprofile``; the files are relative to ``avdiff/``."""
    from avdiff.cli import main

    result = Trace()
    seen: set[str] = set()
    stack: list[str | None] = []
    importing = [0]  # module and class bodies on the stack

    def profile(frame, event, arg):
        if event == "call":
            code = frame.f_code
            if not code.co_flags & CO_OPTIMIZED:  # a module or class body: an import, or a class statement
                stack.append(IMPORTING)
                importing[0] += 1
            elif code.co_filename.startswith(ROOT) and not importing[0]:
                rel = code.co_filename[len(ROOT) :]
                compact: list[str] = []
                for f in stack:
                    if f and (not compact or compact[-1] != f):
                        compact.append(f)
                if compact and compact[-1] != rel and rel in compact:
                    key = (*compact[compact.index(rel) :], rel)
                    result.trips[key] = result.trips.get(key, 0) + 1
                if rel not in seen:
                    seen.add(rel)
                    result.first_calls.append((rel, code.co_name, compact[-1] if compact else None))
                stack.append(rel)
            else:
                stack.append(None)
        elif event == "return" and stack:
            if stack.pop() is IMPORTING:
                importing[0] -= 1

    assert threading.current_thread() is threading.main_thread()
    sys.setprofile(profile)
    try:
        code = main(argv)
    finally:
        sys.setprofile(None)
    if code not in (0, None):
        raise RuntimeError(f"avdiff {' '.join(argv)} exited with {code}")
    return result


if __name__ == "__main__":
    trace = trace_cli(sys.argv[1:])
    for i, (f, fn, caller) in enumerate(trace.first_calls, 1):
        print(f"{i:3d}. {f}  ({fn}, from {caller})")
    print(f"{len(trace.trips)} trip back(s)")
    for path, n in trace.trips.items():
        print(f"{n:6d}  {' > '.join(path)}")
