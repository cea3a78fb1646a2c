"""Keep mediapipe's native log lines out of the user's terminal.

mediapipe's C++ graphs (TensorFlow Lite, absl logging) write lines such as ``INFO: Created TensorFlow Lite XNNPACK
delegate for CPU``, ``WARNING: All log messages before absl::InitializeLog() is called are written to STDERR`` and
``W0000 00:00:1796044449.398913   10620 inference_feedback_manager.cc:114] ...`` straight to file descriptor 2, from
their own threads, whenever a graph starts its calculators (which it does lazily, while frames flow). No environment
variable of mediapipe 0.10.21 turns them off (``GLOG_minloglevel`` and ``TF_CPP_MIN_LOG_LEVEL`` do not), and a
window of silence around the calls misses the lines its threads write a moment later.

So the first mediapipe graph a process makes installs :func:`install_native_log_filter`: file descriptor 2 becomes a
pipe, and a thread copies everything that arrives to the real stderr except complete lines in absl's or TF Lite's
format. Python's own output (logging, tqdm's ``\\r`` progress bars, tracebacks) passes at once and unchanged; at exit
the real descriptor is put back and the pipe drained, so nothing written last is lost. ``AVDIFF_DEBUG=1`` keeps every
native line (no filter).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import sys
import threading

logger = logging.getLogger(__name__)

# absl's prefix (severity, date, time, thread, file:line]) and TF Lite's two start-up lines.
NATIVE_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\]|INFO: Created TensorFlow Lite"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called)"
)
_NATIVE_STARTS = (b"INFO: Created TensorFlow Lite", b"WARNING: All log messages before absl::InitializeLog")
_PARTIAL_ABSL = re.compile(rb"^[IWEF]\d{0,4}(?: [\d:. ]*)?$")  # what could still become an absl prefix

_lock = threading.Lock()
_state: dict = {}


def could_become_native(tail: bytes) -> bool:
    """Whether an unfinished line may still turn out to be a native log line (so it waits for its newline)."""
    return (
        bool(_PARTIAL_ABSL.match(tail))
        or any(s.startswith(tail[: len(s)]) for s in _NATIVE_STARTS)
        or (NATIVE_LINE.match(tail) is not None)
    )


def filter_lines(buffer: bytes) -> tuple[bytes, bytes]:
    """Split what arrived into (what to pass on now, what to keep until more arrives): complete native lines are
    dropped, other complete lines pass, and an unfinished tail passes at once unless it could become a native line."""
    out = []
    while (nl := buffer.find(b"\n")) >= 0:
        line, buffer = buffer[: nl + 1], buffer[nl + 1 :]
        if not NATIVE_LINE.match(line):
            out.append(line)
    if buffer and not could_become_native(buffer):
        out.append(buffer)
        buffer = b""
    return b"".join(out), buffer


def _pump(read_fd: int, real_fd: int) -> None:
    pending = b""
    while chunk := os.read(read_fd, 65536):
        passed, pending = filter_lines(pending + chunk)
        if passed:
            os.write(real_fd, passed)
    if pending and not NATIVE_LINE.match(pending):
        os.write(real_fd, pending)
    os.close(read_fd)


def install_native_log_filter() -> bool:
    """Route file descriptor 2 through the filter (module docstring), once per process. Returns whether it is
    installed (not with ``AVDIFF_DEBUG`` set, nor where descriptor 2 cannot be replaced)."""
    with _lock:
        if _state:
            return True
        if os.environ.get("AVDIFF_DEBUG"):
            return False
        for stream in (sys.stderr, sys.__stderr__):
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            real_fd = os.dup(2)
            read_fd, write_fd = os.pipe()
            os.dup2(write_fd, 2)
            os.close(write_fd)
        except OSError as e:
            logger.debug("cannot filter stderr: %s", e)
            return False
        thread = threading.Thread(target=_pump, args=(read_fd, real_fd), name="avdiff-native-log-filter", daemon=True)
        thread.start()
        _state.update(real_fd=real_fd, thread=thread)
        atexit.register(remove_native_log_filter)
        return True


def remove_native_log_filter() -> None:
    """Put the real stderr back and pass on whatever the filter still holds (run at exit)."""
    with _lock:
        if not _state:
            return
        for stream in (sys.stderr, sys.__stderr__):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(_state["real_fd"], 2)  # closes the pipe's last write end here: the pump reads to its end
        _state["thread"].join(timeout=2.0)
        os.close(_state["real_fd"])
        _state.clear()


class QuietGraph:
    """A mediapipe solution (``FaceMesh``, ``FaceDetection``) made after :func:`install_native_log_filter`.

    Args:
        solution: the solution's class, e.g. ``mp.solutions.face_mesh.FaceMesh``.
        kwargs: its keyword arguments.
    """

    def __init__(self, solution: type, **kwargs):
        install_native_log_filter()
        self._graph = solution(**kwargs)

    def process(self, image):
        return self._graph.process(image)

    def close(self) -> None:
        self._graph.close()

    def __enter__(self) -> QuietGraph:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
