"""Video: reading and writing mp4 with muxed audio, and faces (detection, alignment, paste-back, motion, rendering).

Each name is imported on first use (PEP 562), so importing one submodule does not import the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from avdiff._lazy import lazy_exports

# name -> the module that defines it
_EXPORTS = {
    "AlignedFace": "avdiff.video.align",
    "FRAMINGS": "avdiff.video.align",
    "Face": "avdiff.video.face",
    "FaceRenderer": "avdiff.video.render",
    "Framing": "avdiff.video.align",
    "Motion": "avdiff.video.motion",
    "MultipleFacesError": "avdiff.video.face",
    "NoFaceError": "avdiff.video.face",
    "VideoClip": "avdiff.video.reader",
    "VideoError": "avdiff.video.errors",
    "align_face": "avdiff.video.align",
    "align_frames": "avdiff.video.align",
    "detect_face": "avdiff.video.face",
    "detect_faces": "avdiff.video.face",
    "load_image": "avdiff.video.image",
    "lower_face_mask": "avdiff.video.align",
    "motion_from_landmarks": "avdiff.video.motion",
    "mouth_mask": "avdiff.video.align",
    "paste_back": "avdiff.video.align",
    "read_video": "avdiff.video.reader",
    "smooth_landmarks": "avdiff.video.smoothing",
    "write_video": "avdiff.video.writer",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from avdiff.video.align import (
        FRAMINGS,
        AlignedFace,
        Framing,
        align_face,
        align_frames,
        lower_face_mask,
        mouth_mask,
        paste_back,
    )
    from avdiff.video.errors import VideoError
    from avdiff.video.face import Face, MultipleFacesError, NoFaceError, detect_face, detect_faces
    from avdiff.video.image import load_image
    from avdiff.video.motion import Motion, motion_from_landmarks
    from avdiff.video.reader import VideoClip, read_video
    from avdiff.video.render import FaceRenderer
    from avdiff.video.smoothing import smooth_landmarks
    from avdiff.video.writer import write_video

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
