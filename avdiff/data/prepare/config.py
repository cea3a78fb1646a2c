"""Settings of ``avdiff prepare``, and the status and reason codes it reports."""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

FPS = 25
SAMPLE_RATE = 16000
VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".m2ts",
        ".flv",
        ".wmv",
        ".3gp",
        ".ogv",
        ".mxf",
    }
)
MARKER_DIR = ".prepare"
REPORT_JSON = "prepare_report.json"
REPORT_TXT = "prepare_report.txt"

# Statuses of a file or a segment.
KEPT, DROPPED, ERROR = "kept", "dropped", "error"
# Reasons. Files: unreadable, no_video, no_audio, internal_error, worker_crashed, or their segments' reason.
# Segments: too_short, silence, no_face, multiple_faces, face_too_small.
SEGMENT_REASONS = ("too_short", "silence", "no_face", "multiple_faces", "face_too_small")
# What a kept segment writes; a file finished with older outputs is redone. 2: clips/ID.motion.npz.
OUTPUTS = 2
# Reasons that may go away on a re-run: no completion marker is written for them.
RETRY_REASONS = ("internal_error", "worker_crashed")


@dataclass
class PrepareConfig:
    """Settings of ``avdiff prepare``.

    Attributes:
        size: side of the aligned face crops, px (a multiple of 8 for VAE latents).
        segment_s: length of a segment, seconds.
        min_segment_s: a last piece shorter than this (seconds) is dropped as ``too_short``.
        min_face_px: smallest accepted face: the median longer side of the landmark box, in source px.
        min_face_fraction: a segment needs a tracked face in at least this fraction of its frames.
        second_face_ratio: a second face at least this fraction of the largest face's size makes ``multiple_faces``.
        face_samples: frames per segment (evenly spaced) searched for several faces.
        silence_dbfs: a frame is voiced when its RMS is above this level, dB re full scale.
        min_voiced_fraction: a segment with fewer voiced frames than this fraction is ``silence``.
        smooth_sigma: temporal gaussian on the landmarks before alignment, frames (0: none).
        split: the ``split`` written into each record.
        vae: a diffusers ``AutoencoderKL`` folder; when set, latents are cached per clip.
        latent_batch: frames per VAE forward pass.
        audio_track: of a file with several audio tracks, the one to read, counted from 0 (None: the track marked
            default, else the first).
    """

    size: int = 256
    segment_s: float = 5.0
    min_segment_s: float = 2.0
    min_face_px: float = 64.0
    min_face_fraction: float = 0.9
    second_face_ratio: float = 0.5
    face_samples: int = 3
    silence_dbfs: float = -45.0
    min_voiced_fraction: float = 0.1
    smooth_sigma: float = 1.5
    split: str = "train"
    vae: str | None = None
    latent_batch: int = 16
    audio_track: int | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the setting and its value when one is out of range."""
        if int(self.size) != self.size or self.size < 32:
            raise ValueError(f"size must be an integer number of px >= 32, got {self.size!r}")
        if not (math.isfinite(self.segment_s) and self.segment_s * FPS >= 5):
            raise ValueError(f"segment_s must be at least 0.2 s (5 frames), got {self.segment_s!r}")
        if not 0 < self.min_segment_s <= self.segment_s:
            raise ValueError(f"min_segment_s must be in (0, segment_s={self.segment_s}], got {self.min_segment_s!r}")
        if not self.min_face_px >= 0:
            raise ValueError(f"min_face_px must be >= 0 px, got {self.min_face_px!r}")
        if not 0 < self.min_face_fraction <= 1:
            raise ValueError(f"min_face_fraction must be in (0, 1], got {self.min_face_fraction!r}")
        if not 0 < self.second_face_ratio <= 1:
            raise ValueError(f"second_face_ratio must be in (0, 1], got {self.second_face_ratio!r}")
        if int(self.face_samples) != self.face_samples or self.face_samples < 1:
            raise ValueError(f"face_samples must be an integer >= 1, got {self.face_samples!r}")
        if not (math.isfinite(self.silence_dbfs) and self.silence_dbfs < 0):
            raise ValueError(f"silence_dbfs must be a level below 0 dBFS, got {self.silence_dbfs!r}")
        if not 0 <= self.min_voiced_fraction <= 1:
            raise ValueError(f"min_voiced_fraction must be in [0, 1], got {self.min_voiced_fraction!r}")
        if not self.smooth_sigma >= 0:
            raise ValueError(f"smooth_sigma must be >= 0 frames, got {self.smooth_sigma!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(self.split)):
            raise ValueError(f"split must be a simple name like 'train', got {self.split!r}")
        if int(self.latent_batch) != self.latent_batch or self.latent_batch < 1:
            raise ValueError(f"latent_batch must be an integer >= 1, got {self.latent_batch!r}")
        if self.audio_track is not None and (int(self.audio_track) != self.audio_track or self.audio_track < 0):
            raise ValueError(f"audio_track must be a track number >= 0, got {self.audio_track!r}")

    def fingerprint(self) -> dict[str, Any]:
        """The settings that change what is written; a finished file is redone when they differ."""
        values = asdict(self)
        values.pop("latent_batch")
        if self.audio_track is None:  # the default track: files finished before the setting existed stay finished
            values.pop("audio_track")
        values["vae"] = os.path.abspath(self.vae) if self.vae else None
        values["outputs"] = OUTPUTS  # files prepared before the motion tracks existed are redone
        return values
