"""Keep mediapipe's native log lines out of the user's terminal.

mediapipe's C++ graphs (TensorFlow Lite, absl logging) write lines such as ``INFO: Created TensorFlow Lite XNNPACK
delegate for CPU``, ``WARNING: All log messages before absl::InitializeLog() is called are written to STDERR`` and
``W0000 ... landmark_projection_calculator.cc:186] Using NORM_RECT without IMAGE_DIMENSIONS ...`` straight to file
descriptor 2 when a graph starts and on its first frames. No environment variable of mediapipe 0.10.21 turns them
off (``GLOG_minloglevel``, ``TF_CPP_MIN_LOG_LEVEL`` do not), so :func:`native_stderr_silenced` points descriptor 2 at
``/dev/null`` while a graph is made and for its first :data:`LOUD_CALLS` frames. Python's own ``sys.stderr`` output
is flushed before and unaffected after; set ``AVDIFF_DEBUG=1`` to see the native lines.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator

logger = logging.getLogger(__name__)

LOUD_CALLS = 5  # a graph's native lines come when it is made and on its first frames (its calculators open lazily)
_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None


def _enabled() -> bool:
    return not os.environ.get("AVDIFF_DEBUG")


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Inside, whatever native code writes to file descriptor 2 is dropped (nested and thread-safe: the descriptor
    is restored when the last one leaves). A no-op with ``AVDIFF_DEBUG`` set."""
    global _depth, _saved_fd
    if not _enabled():
        yield
        return
    with _lock:
        if _depth == 0:
            for stream in (sys.stderr, sys.__stderr__):
                with contextlib.suppress(Exception):
                    stream.flush()
            try:
                _saved_fd = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            except OSError as e:  # no descriptor 2 (some embedded interpreters): nothing to silence
                logger.debug("cannot redirect stderr: %s", e)
                _saved_fd = None
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None:
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None


class QuietGraph:
    """A mediapipe solution (``FaceMesh``, ``FaceDetection``) whose native log lines are dropped: it is built
    inside :func:`native_stderr_silenced`, and so are its first :data:`LOUD_CALLS` ``process`` calls.

    Args:
        make: builds the solution, e.g. ``lambda: mp.solutions.face_mesh.FaceMesh(...)``.
    """

    def __init__(self, make):
        with native_stderr_silenced():
            self._graph = make()
        self._calls = 0

    def process(self, image):
        if self._calls < LOUD_CALLS:
            self._calls += 1
            with native_stderr_silenced():
                return self._graph.process(image)
        return self._graph.process(image)

    def close(self) -> None:
        self._graph.close()

    def __enter__(self) -> QuietGraph:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
