"""One file of ``avdiff prepare``: decoded by the one reader (:class:`avdiff.video.reader.VideoReader`, at 25 fps, upright,
the audio on the video's time line), cut into segments, each checked and written or dropped with a reason."""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from avdiff.audio.clock import FrameClock
from avdiff.audio.envelope import frame_power
from avdiff.audio.io import AudioLoadError, Waveform, load_audio
from avdiff.data.format import ClipRecord, save_motion, save_npy
from avdiff.data.prepare.config import DROPPED, ERROR, FPS, KEPT, SAMPLE_RATE, PrepareConfig
from avdiff.data.prepare.faces import align_track, face_box_px, several_faces
from avdiff.data.prepare.files import _remove_clip_files, segment_id
from avdiff.data.prepare.latents import _save_torch_atomic, encode_latents, load_vae
from avdiff.data.prepare.report import FileResult, SegmentResult, _count
from avdiff.video.errors import VideoError
from avdiff.video.face import track_landmarks
from avdiff.video.motion import motion_track
from avdiff.video.reader import NoVideoStreamError, VideoReader
from avdiff.video.writer import write_video

logger = logging.getLogger(__name__)


@dataclass
class _Job:
    path: str
    rel: str
    out_dir: str
    config: PrepareConfig
    size: int
    mtime_ns: int


def prepare_file(path: str | os.PathLike, rel: str, out_dir: str | os.PathLike, config: PrepareConfig) -> FileResult:
    """Prepare one video: write its kept segments under ``out_dir/clips`` and say what became of each.

    It does not touch the index (the caller does) and never raises for a bad file: an unreadable file gives
    ``status="error"``, and whatever it had written is removed.
    """
    import av

    path, out_dir = Path(path), Path(out_dir)
    stat = path.stat()
    result = FileResult(file=rel, status=ERROR, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
    tick = time.perf_counter()
    try:
        _prepare_file(path, rel, out_dir, config, result)
    except (VideoError, AudioLoadError, av.error.FFmpegError, OSError) as e:
        _discard(out_dir, result)
        result.status, result.reason, result.detail = ERROR, "unreadable", _one_line(e)
    except Exception as e:  # a bug, not the file's fault: reported, not marked done, retried on the next run
        _discard(out_dir, result)
        logger.error("preparing %s failed:\n%s", rel, traceback.format_exc())
        result.status, result.reason, result.detail = ERROR, "internal_error", f"{type(e).__name__}: {_one_line(e)}"
    result.seconds = round(time.perf_counter() - tick, 3)
    return result


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _discard(out_dir: Path, result: FileResult) -> None:
    for segment in result.segments:
        if segment.id:
            _remove_clip_files(out_dir, segment.id)
    result.segments, result.records = [], []


def _prepare_file(path: Path, rel: str, out_dir: Path, config: PrepareConfig, result: FileResult) -> None:
    try:
        video = VideoReader(path, fps=FPS, audio_track=config.audio_track)
    except NoVideoStreamError:
        result.status, result.reason, result.detail = ERROR, "no_video", "the file has no video stream"
        return
    with video:
        result.source_fps = float(video.source_rate)
        if video.audio is None:
            if video.audio_error:
                raise AudioLoadError(repr(str(path)), video.audio_error)
            result.status, result.reason, result.detail = DROPPED, "no_audio", "the file has no audio track"
            return
        result.source_sample_rate = video.audio.sample_rate
        audio = load_audio(video.audio, sample_rate=SAMPLE_RATE, mono=True)  # on the video's time line already
        clock = FrameClock(FPS, SAMPLE_RATE)
        audio_frames = audio.num_samples * FPS // SAMPLE_RATE  # frames fully covered by audio
        seg_len = max(5, round(config.segment_s * FPS))
        buffer: list[np.ndarray] = []
        index = 0
        for n, frame in enumerate(video):  # a VideoError here: corrupt video data
            if n >= audio_frames:
                break
            buffer.append(frame)
            if len(buffer) == seg_len:
                _segment(np.stack(buffer), index, rel, out_dir, config, audio, clock, result)
                buffer, index = [], index + 1
    if buffer:
        _segment(np.stack(buffer), index, rel, out_dir, config, audio, clock, result)
    if not result.segments:
        result.status, result.reason, result.detail = DROPPED, "too_short", "no decodable frames with audio"
        return
    _settle_status(result)


def _settle_status(result: FileResult) -> None:
    """A file is kept when a segment is; otherwise dropped for its segments' most common reason."""
    kept = result.kept_segments
    if kept:
        result.status, result.reason = KEPT, None
        result.detail = f"{len(kept)} of {len(result.segments)} segments kept"
        return
    reasons = Counter(s.reason for s in result.segments)
    main = [r for r, _ in reasons.most_common() if r != "too_short"] or ["too_short"]
    result.status, result.reason = DROPPED, main[0]
    first = next(s for s in result.segments if s.reason == main[0])
    counts = ", ".join(f"{r} {c}" for r, c in reasons.most_common())
    result.detail = f"{first.detail} ({_count(len(result.segments), 'segment')}: {counts})"


def _segment(
    frames: np.ndarray,
    index: int,
    rel: str,
    out_dir: Path,
    config: PrepareConfig,
    audio: Waveform,
    clock: FrameClock,
    result: FileResult,
) -> None:
    """Check one segment (frames uint8 [n, H, W, 3] at 25 fps) and write it when it passes."""
    n = len(frames)
    seg_len = max(5, round(config.segment_s * FPS))
    first = index * seg_len
    seg = SegmentResult(index=index, start_s=first / FPS, end_s=(first + n) / FPS, status=DROPPED)
    result.segments.append(seg)
    if n < round(config.min_segment_s * FPS):
        seg.reason, seg.detail = (
            "too_short",
            f"{n / FPS:.2f} s is shorter than min_segment_s={config.min_segment_s:g} s",
        )
        return
    samples = audio.samples[:, clock.frame_start(first) : clock.frame_start(first + n)]
    speech = Waveform(samples, SAMPLE_RATE)
    power = frame_power(speech, FPS)[:n]
    voiced = float((10 * np.log10(np.maximum(power, 1e-20)) > config.silence_dbfs).mean())
    seg.voiced_fraction = round(voiced, 4)
    if voiced < config.min_voiced_fraction:
        seg.reason = "silence"
        seg.detail = (
            f"only {voiced:.0%} of frames are louder than {config.silence_dbfs:g} dBFS "
            f"(min_voiced_fraction={config.min_voiced_fraction:g})"
        )
        return
    points3d = track_landmarks(frames, depth=True)  # (x, y, z): the motion track reads the depth
    landmarks = points3d[..., :2]
    found = np.isfinite(landmarks).all(axis=(1, 2))
    if found.mean() < config.min_face_fraction:
        seg.reason = "no_face"
        seg.detail = (
            "no face in any frame"
            if not found.any()
            else f"a face in only {found.mean():.0%} of frames (min_face_fraction={config.min_face_fraction:g})"
        )
        return
    several, why = several_faces(frames, config.face_samples, config.second_face_ratio)
    if several:
        seg.reason, seg.detail = "multiple_faces", why
        return
    face_px = float(np.median(face_box_px(landmarks[found])))
    seg.face_px = round(face_px, 1)
    if face_px < config.min_face_px:
        seg.reason = "face_too_small"
        seg.detail = f"the face is {face_px:.0f} px, under min_face_px={config.min_face_px:g}"
        return

    track = align_track(frames, landmarks, config.size, config.smooth_sigma)
    seg.id = clip_id = segment_id(rel, index)
    clips = out_dir / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    video, marks = f"clips/{clip_id}.mp4", f"clips/{clip_id}.landmarks.npy"
    save_npy(out_dir / marks, track.landmarks)
    motion_path = f"clips/{clip_id}.motion.npz"
    motion, reference = motion_track(points3d)  # in the source frames: alignment would take the head's motion away
    save_motion(out_dir / motion_path, motion)
    latents = None
    if config.vae:
        latents = f"clips/{clip_id}.latents.pt"
        _save_torch_atomic(out_dir / latents, encode_latents(load_vae(config.vae), track.crops, config.latent_batch))
    write_video(out_dir / video, track.crops, FPS, speech)
    seg.status = KEPT
    record = ClipRecord(
        id=clip_id,
        video=video,
        fps=float(FPS),
        sample_rate=SAMPLE_RATE,
        num_frames=n,
        duration_s=round(n / FPS, 6),
        split=config.split,
        source={
            "file": rel,
            "start_s": seg.start_s,
            "end_s": seg.end_s,
            "segment": index,
            "face_px": seg.face_px,
            "voiced_fraction": seg.voiced_fraction,
            "motion_reference": reference,
        },
        aligned=True,
        landmarks=marks,
        motion=motion_path,
        latents=latents,
    )
    result.records.append(asdict(record))


def _prepare_job(job: _Job) -> FileResult:
    return prepare_file(job.path, job.rel, job.out_dir, job.config)
