"""Output of the video pipelines: frames (or the mp4 they were streamed to), their rate and the audio that goes with
them; and the bound on the working size of a photo."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from avdiff.audio.io import Waveform
from avdiff.video.reader import VideoError
from avdiff.video.writer import write_video

logger = logging.getLogger(__name__)

# The longest side, in px, of the frames a talking-head pipeline makes. A larger photo (a 12 MP phone photo is
# 4000x3000) is downscaled to it first: every frame is the photo's size, and a 4000x3000 frame is 36 MB, 17 times a
# 1080p one, in the paste-back and in the encoder's look-ahead alike.
MAX_OUTPUT_SIDE = 1920


def bound_output_size(image: np.ndarray, max_side: int = MAX_OUTPUT_SIDE) -> np.ndarray:
    """``image`` uint8 [H, W, 3] downscaled (area filter) so that its longer side is at most ``max_side`` px; as it is
    when it already fits."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image
    import cv2

    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    logger.info("the photo is %dx%d px; downscaled to %dx%d (the output's longer side is at most %d px)", width,
                height, *size, max_side)  # fmt: skip
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@dataclass
class VideoPipelineOutput:
    """What a pipeline returns.

    Attributes:
        frames: uint8 [F, H, W, 3] RGB (``output_type="np"``), or the pipeline's other output types; None when the
            pipeline streamed the video to ``path`` instead (``output_path=...``).
        fps: frames per second (exact).
        audio: the sound the frames go with (the user's audio as given), or None.
        path: the mp4 the frames were streamed to, or None.
        num_frames: F (counted from ``frames`` when they are held).
        warnings: sentences about the inputs that the video was made despite (silent speech, ...), each also
            logged; empty when there is nothing to say. They hold no paths.
    """

    frames: np.ndarray | None
    fps: Fraction
    audio: Waveform | None = None
    path: Path | None = None
    num_frames: int | None = None
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.frames is not None:
            self.num_frames = int(len(self.frames))
        elif self.path is None:
            raise ValueError("a VideoPipelineOutput needs frames or the path they were written to")

    def save(self, path: str | os.PathLike) -> Path:
        """Write an H.264 + AAC mp4 with the audio muxed in (atomically). An output that was streamed to a file is
        copied (nothing is re-encoded)."""
        if self.frames is not None:
            return write_video(path, self.frames, self.fps, self.audio)
        path = Path(path)
        if path.exists() and path.samefile(self.path):
            return path
        if path.is_dir():
            raise VideoError(path, "is a folder; give a file name such as out.mp4")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial.mp4", dir=path.parent)
        os.close(fd)
        try:
            shutil.copyfile(self.path, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
