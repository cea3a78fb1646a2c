"""SyncNet scores of any video file: its frames resampled to the model's rate, its face tracked and aligned as
``avdiff prepare`` does (:mod:`avdiff.data.prepare`), then scored by :mod:`avdiff.metrics.syncnet_scores`."""

from __future__ import annotations

import logging
import os

import numpy as np

from avdiff.data.prepare import face_track
from avdiff.data.video_dataset import resize_crops
from avdiff.metrics.syncnet_scores import SyncScores, TooFewFramesError, syncnet_scores
from avdiff.video.face import NoFaceError
from avdiff.video.reader import VideoClip, read_video
from avdiff.video.timeline import resample_frames

logger = logging.getLogger(__name__)


def face_crops_for(model, frames: np.ndarray, fps: float, aligned: bool = False) -> np.ndarray:
    """Frames of any video -> aligned crops uint8 [F', S, S, 3] at the model's fps and crop size.

    Frames are resampled to the model's fps (nearest frame in time); unless ``aligned``, the face is tracked and
    aligned as ``avdiff prepare`` does.

    Raises:
        NoFaceError: no frame shows a face.
    """
    frames = resample_frames(np.asarray(frames), fps, model.config.fps)
    if aligned:
        return resize_crops(frames, model.config.crop_size)
    return face_track(frames, model.config.crop_size).crops


def syncnet_scores_for_video(
    model, path: str | os.PathLike, *, aligned: bool = False, max_offset: int = 15
) -> SyncScores:
    """Read a video file (any fps, any audio rate) and score its sync with ``model``.

    Raises:
        VideoError: the file cannot be read. ValueError: it has no audio. NoFaceError: no face is found.
    """
    clip = read_video(path)
    if clip.audio is None:
        raise ValueError(f"{os.fspath(path)!r} has no (readable) audio track; SyncNet scores need the speech")
    return syncnet_scores_for_clip(model, clip, aligned=aligned, max_offset=max_offset)


def syncnet_scores_for_clip(model, clip: VideoClip, *, aligned: bool = False, max_offset: int = 15) -> SyncScores:
    """Score a decoded clip's sync with ``model`` (:func:`face_crops_for`, then
    :func:`~avdiff.metrics.syncnet_scores.syncnet_scores`).

    Raises:
        ValueError: the clip has no audio.
        TooFewFramesError: fewer frames with audio than the model's window (a ValueError).
        NoFaceError: no frame shows a face.
    """
    if clip.audio is None:
        raise ValueError("the clip has no audio; SyncNet scores need the speech")
    crops = face_crops_for(model, clip.frames.numpy(), clip.fps, aligned=aligned)
    return syncnet_scores(model, crops, clip.audio.to_mono(), max_offset=max_offset)


def syncnet_scores_or_reason(model, clip: VideoClip, max_offset: int = 15) -> tuple[SyncScores | None, str | None]:
    """``(scores, None)`` of :func:`syncnet_scores_for_clip`, or ``(None, why)`` where the SyncNet cannot read the
    clip (no face it can track, fewer frames than its window): a video left unscored with its reason, as
    ``avdiff eval talking-head`` and the demo page report it.

    Raises:
        ValueError: the clip has no audio.
    """
    try:
        return syncnet_scores_for_clip(model, clip, max_offset=max_offset), None
    except (NoFaceError, TooFewFramesError) as e:
        logger.warning("no SyncNet score: %s", e)
        return None, str(e)
