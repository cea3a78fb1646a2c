"""The error of reading or writing a video file, shared by the decoder (:mod:`avdiff.video.reader`) and the encoder
(:mod:`avdiff.video.writer`)."""

from __future__ import annotations

import os


class VideoError(ValueError):
    """Raised when a video cannot be read or written. The message names the path and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"video {self.path!r}: {reason}")
