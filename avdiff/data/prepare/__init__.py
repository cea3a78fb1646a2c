"""Turn a folder of talking-face videos into the DATA format: ``avdiff prepare --videos DIR --out DATA``.

Each video (any container FFmpeg reads, any frame rate or sample rate) is

1. decoded by the one reader, :class:`avdiff.video.reader.VideoReader`, at 25 fps: frames upright (display matrix
   applied), placed on a 25 fps grid by their timestamps (variable frame rate included), with its first audio track
   at 16 kHz mono placed on the video's time line by the streams' start times;
2. cut into consecutive segments of ``segment_s`` seconds (a last, shorter piece is kept when it is at least
   ``min_segment_s`` long);
3. checked, segment by segment, in this order, and dropped with a reason when it fails:

   ``silence``         fewer than ``min_voiced_fraction`` of its frames are louder than ``silence_dbfs`` (RMS over the
                       frame's own samples, as :class:`~avdiff.audio.clock.FrameClock` assigns them);
   ``no_face``         mediapipe tracks a face in fewer than ``min_face_fraction`` of its frames;
   ``multiple_faces``  on any of ``face_samples`` evenly spaced frames, a second face's box is at least
                       ``second_face_ratio`` the size (square root of the box area) of the largest one. A much smaller
                       face (a poster, a distant passer-by) does not count;
   ``face_too_small``  the median size of the tracked face's landmark box (its longer side) is under ``min_face_px``
                       source pixels at the decoded resolution;

4. aligned: the tracked landmarks are smoothed over time (a gaussian of ``smooth_sigma`` frames, frames without a
   face interpolated) and every frame is warped into a ``size`` px crop with the eyes and mouth on
   :func:`avdiff.video.align.canonical_points` (chin and lower face included);
5. written as ``clips/ID.mp4`` (25 fps H.264, 16 kHz mono AAC), ``clips/ID.landmarks.npy`` (float32 [F, 478, 2]: the
   unsmoothed tracked landmarks, moved into crop pixels by each frame's alignment), ``clips/ID.motion.npz`` (the
   :class:`~avdiff.video.motion.Motion` of the face in the source frames, before alignment takes the head's motion
   away, against the segment's most neutral frame, :func:`~avdiff.video.motion.neutral_frame`, whose index is
   ``source["motion_reference"]``) and, with a VAE, cached latents ``clips/ID.latents.pt``; the index gets one :class:`~avdiff.data.format.ClipRecord` per segment with
   ``aligned=True`` and ``source = {file, start_s, end_s, segment, ...}``.

Files are processed in parallel worker processes (spawned; mediapipe is created inside each). Only the parent
process writes ``index.jsonl``. A file is finished when its completion marker ``DATA/.prepare/<hash>.json`` exists,
written atomically after all its segments are written and indexed; a re-run skips a file whose marker matches its
size, modification time and the output settings. A file that cannot be read is reported and skipped, never fatal.
``DATA/prepare_report.json`` (and a human summary, ``prepare_report.txt``) say what was kept and dropped, and why.

Clip ids are stable: the file's relative path made safe (``[a-z0-9_]``), a short hash of that path (so ``a b.mp4``
and ``a_b.mp4`` do not collide) and the segment number: ``speaker1_talk_3f2a9c1e_000``.

The code is split by role: :mod:`.config` (settings, reason codes), :mod:`.report` (results and the report),
:mod:`.files` (finding videos, ids, markers, the index), :mod:`.faces` (tracking, several faces, alignment),
:mod:`.latents` (VAE latents), :mod:`.segments` (one file) and :mod:`.runner` (many files in parallel).
"""

from avdiff.data.prepare.config import (
    DROPPED,
    ERROR,
    FPS,
    KEPT,
    MARKER_DIR,
    REPORT_JSON,
    REPORT_TXT,
    RETRY_REASONS,
    SAMPLE_RATE,
    SEGMENT_REASONS,
    VIDEO_EXTENSIONS,
    PrepareConfig,
)
from avdiff.data.prepare.faces import FaceTrack, align_track, face_box_px, face_track, several_faces
from avdiff.data.prepare.files import (
    clip_id_prefix,
    file_key,
    find_videos,
    relative_name,
    replace_file_records,
    segment_id,
)
from avdiff.data.prepare.latents import encode_latents, load_vae, vae_downsample
from avdiff.data.prepare.report import FileResult, PrepareReport, SegmentResult
from avdiff.data.prepare.runner import WorkerCrashed, default_workers, prepare_videos, run_parallel
from avdiff.data.prepare.segments import prepare_file

__all__ = [
    "DROPPED",
    "ERROR",
    "FPS",
    "KEPT",
    "MARKER_DIR",
    "REPORT_JSON",
    "REPORT_TXT",
    "RETRY_REASONS",
    "SAMPLE_RATE",
    "SEGMENT_REASONS",
    "VIDEO_EXTENSIONS",
    "FaceTrack",
    "FileResult",
    "PrepareConfig",
    "PrepareReport",
    "SegmentResult",
    "WorkerCrashed",
    "align_track",
    "clip_id_prefix",
    "default_workers",
    "encode_latents",
    "face_box_px",
    "face_track",
    "file_key",
    "find_videos",
    "load_vae",
    "prepare_file",
    "prepare_videos",
    "relative_name",
    "replace_file_records",
    "run_parallel",
    "segment_id",
    "several_faces",
    "vae_downsample",
]
