"""Output of the video pipelines: frames, their rate and the audio that goes with them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from avdiff.audio.io import Waveform
from avdiff.video.io import write_video


@dataclass
class VideoPipelineOutput:
    """What a pipeline returns.

    Attributes:
        frames: uint8 [F, H, W, 3] RGB (``output_type="np"``), or the pipeline's other output types.
        fps: frames per second (exact).
        audio: the sound the frames go with, or None.
    """

    frames: np.ndarray
    fps: Fraction
    audio: Waveform | None = None

    @property
    def num_frames(self) -> int:
        return int(len(self.frames))

    def save(self, path: str | os.PathLike) -> Path:
        """Write an H.264 + AAC mp4 with the audio muxed in (atomically)."""
        return write_video(path, self.frames, self.fps, self.audio)
