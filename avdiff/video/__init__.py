"""Video: reading and writing mp4 with muxed audio."""

from avdiff.video.io import VideoClip, VideoError, read_video, write_video

__all__ = ["VideoClip", "VideoError", "read_video", "write_video"]
