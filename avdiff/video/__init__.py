"""Video: reading and writing mp4 with muxed audio, and faces (detection, alignment, paste-back)."""

from avdiff.video.align import FRAMINGS, AlignedFace, Framing, align_face, align_frames
from avdiff.video.masks import lower_face_mask, mouth_mask, paste_back
from avdiff.video.smoothing import smooth_landmarks
from avdiff.video.face import MultipleFacesError, NoFaceError, detect_face, detect_faces
from avdiff.video.landmarks import Face
from avdiff.video.image import load_image
from avdiff.video.reader import VideoClip, VideoError, read_video
from avdiff.video.writer import write_video

__all__ = [
    "AlignedFace",
    "FRAMINGS",
    "Framing",
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
    "lower_face_mask",
    "mouth_mask",
    "paste_back",
    "read_video",
    "smooth_landmarks",
    "write_video",
]
