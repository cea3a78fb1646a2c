"""Video: reading and writing mp4 with muxed audio, and faces (detection, alignment, paste-back)."""

from avdiff.video.align import AlignedFace, align_face, align_frames, mouth_mask, paste_back, smooth_landmarks
from avdiff.video.face import Face, MultipleFacesError, NoFaceError, detect_face, detect_faces, load_image
from avdiff.video.io import VideoClip, VideoError, read_video, write_video

__all__ = [
    "AlignedFace",
    "Face",
    "MultipleFacesError",
    "NoFaceError",
    "VideoClip",
    "VideoError",
    "align_face",
    "align_frames",
    "detect_face",
    "detect_faces",
    "load_image",
    "mouth_mask",
    "paste_back",
    "read_video",
    "smooth_landmarks",
    "write_video",
]
