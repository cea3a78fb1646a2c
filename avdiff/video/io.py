"""The one video decoder and encoder, through PyAV (FFmpeg).

Reading. :class:`VideoReader` streams a file's frames, upright, on a constant-rate grid, with its first audio track
placed on the same time line; :func:`read_video` collects them into a :class:`VideoClip`. Everything the container
says about time and orientation is honoured (the rules are in :mod:`avdiff.video.timeline`):

* per-frame timestamps: a variable-frame-rate file (a phone's, or one with dropped frames) is put on a constant grid,
  the previous frame held over a gap, so picture and sound stay in sync;
* the display matrix (rotation by any multiple of 90 degrees, mirroring), applied as FFmpeg's ``autorotate`` does;
* the streams' start times: audio sample 0 is at the first video frame.

The grid's rate, unless the caller asks for one, is the stream's *nominal* rate (FFmpeg's ``guessed_rate``, which is
``r_frame_rate`` checked against the average): for a file with dropped frames that is the rate it was shot at, where
the average over its duration (``avg_frame_rate``) would be lower and make every later frame early.

Writing. :class:`VideoWriter` encodes H.264 (yuv420p) + AAC frame by frame, so no caller has to hold a whole video,
and :func:`write_video` writes an array or any iterable of frames through it. The file is written to a temporary
name beside the target and renamed into place on success, so a failure never leaves a half-written file (and never
touches an existing one). The audio keeps its channels and sample rate (resampled only when AAC cannot carry the
rate), and is trimmed or zero-padded to the video's duration (``num_frames / fps``), so the two streams agree to
within one AAC packet (1024 samples).
"""

from avdiff.video.reader import (
    NoVideoStreamError,
    VideoClip,
    VideoError,
    VideoReader,
    nominal_rate,
    open_video,
    read_video,
)
from avdiff.video.writer import (
    AAC_LAYOUTS,
    OUTPUT_SUFFIXES,
    FramesLike,
    VideoWriter,
    aac_compatible,
    check_output_path,
    frame_to_uint8,
    frames_to_uint8,
    write_video,
)

__all__ = [
    "AAC_LAYOUTS",
    "OUTPUT_SUFFIXES",
    "FramesLike",
    "NoVideoStreamError",
    "VideoClip",
    "VideoError",
    "VideoReader",
    "VideoWriter",
    "aac_compatible",
    "check_output_path",
    "frame_to_uint8",
    "frames_to_uint8",
    "nominal_rate",
    "open_video",
    "read_video",
    "write_video",
]
