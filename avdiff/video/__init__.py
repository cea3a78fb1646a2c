"""Video: reading and writing mp4 with muxed audio, and faces (detection, alignment, paste-back).

Each name is imported on first use (PEP 562), so importing one submodule does not import the others."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# name -> the module that defines it
_EXPORTS = {
    "AlignedFace": "avdiff.video.align",
    "FRAMINGS": "avdiff.video.align",
    "Face": "avdiff.video.landmarks",
    "Framing": "avdiff.video.align",
    "MultipleFacesError": "avdiff.video.face",
    "NoFaceError": "avdiff.video.face",
    "VideoClip": "avdiff.video.reader",
    "VideoError": "avdiff.video.errors",
    "align_face": "avdiff.video.align",
    "align_frames": "avdiff.video.align",
    "detect_face": "avdiff.video.face",
    "detect_faces": "avdiff.video.face",
    "load_image": "avdiff.video.image",
    "lower_face_mask": "avdiff.video.masks",
    "mouth_mask": "avdiff.video.masks",
    "paste_back": "avdiff.video.masks",
    "read_video": "avdiff.video.reader",
    "smooth_landmarks": "avdiff.video.smoothing",
    "write_video": "avdiff.video.writer",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from avdiff.video.align import FRAMINGS, AlignedFace, Framing, align_face, align_frames
    from avdiff.video.errors import VideoError
    from avdiff.video.face import MultipleFacesError, NoFaceError, detect_face, detect_faces
    from avdiff.video.image import load_image
    from avdiff.video.landmarks import Face
    from avdiff.video.masks import lower_face_mask, mouth_mask, paste_back
    from avdiff.video.reader import VideoClip, read_video
    from avdiff.video.smoothing import smooth_landmarks
    from avdiff.video.writer import write_video


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
