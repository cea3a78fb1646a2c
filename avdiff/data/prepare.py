"""Turn a folder of talking-face videos into the DATA format: ``avdiff prepare --videos DIR --out DATA``.

Each video (any container FFmpeg reads, any frame rate or sample rate) is

1. decoded at 25 fps (the source frame nearest each output frame's time; rotation metadata is applied) with its
   first audio track at 16 kHz mono, the audio placed on the video's time line by the streams' start times;
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
   unsmoothed tracked landmarks, moved into crop pixels by each frame's alignment) and, with a VAE, cached latents
   ``clips/ID.latents.pt``; the index gets one :class:`~avdiff.data.format.ClipRecord` per segment with
   ``aligned=True`` and ``source = {file, start_s, end_s, segment, ...}``.

Files are processed in parallel worker processes (spawned; mediapipe is created inside each). Only the parent
process writes ``index.jsonl``. A file is finished when its completion marker ``DATA/.prepare/<hash>.json`` exists,
written atomically after all its segments are written and indexed; a re-run skips a file whose marker matches its
size, modification time and the output settings. A file that cannot be read is reported and skipped, never fatal.
``DATA/prepare_report.json`` (and a human summary, ``prepare_report.txt``) say what was kept and dropped, and why.

Clip ids are stable: the file's relative path made safe (``[a-z0-9_]``), a short hash of that path (so ``a b.mp4``
and ``a_b.mp4`` do not collide) and the segment number: ``speaker1_talk_3f2a9c1e_000``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import re
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from avdiff.audio.clock import FrameClock
from avdiff.audio.envelope import frame_power
from avdiff.audio.io import AudioLoadError, Waveform, load_audio
from avdiff.data.format import ClipRecord, read_index, save_npy
from avdiff.video.align import align_frames, transform_points
from avdiff.video.smoothing import smooth_landmarks
from avdiff.video.face import detect_faces, track_landmarks
from avdiff.video.io import VideoError, write_video

logger = logging.getLogger(__name__)

FPS = 25
SAMPLE_RATE = 16000
VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv", ".wmv",
    ".3gp", ".ogv", ".mxf",
})
MARKER_DIR = ".prepare"
REPORT_JSON = "prepare_report.json"
REPORT_TXT = "prepare_report.txt"

# Statuses of a file or a segment.
KEPT, DROPPED, ERROR = "kept", "dropped", "error"
# Reasons. Files: unreadable, no_video, no_audio, internal_error, worker_crashed, or their segments' reason.
# Segments: too_short, silence, no_face, multiple_faces, face_too_small.
SEGMENT_REASONS = ("too_short", "silence", "no_face", "multiple_faces", "face_too_small")
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

    def fingerprint(self) -> dict[str, Any]:
        """The settings that change what is written; a finished file is redone when they differ."""
        values = asdict(self)
        values.pop("latent_batch")
        values["vae"] = os.path.abspath(self.vae) if self.vae else None
        return values


@dataclass
class SegmentResult:
    """What became of one segment. Times are seconds on the 25 fps time line of the source file."""

    index: int
    start_s: float
    end_s: float
    status: str
    reason: str | None = None
    detail: str | None = None
    id: str | None = None
    voiced_fraction: float | None = None
    face_px: float | None = None


@dataclass
class FileResult:
    """What became of one source file.

    Attributes:
        file: path relative to the videos folder, with ``/`` separators.
        status: ``kept`` (at least one segment kept), ``dropped`` (none kept) or ``error`` (not readable).
        reason: why it was dropped or failed (a reason code; see the module docstring), None when kept.
        detail: a human-readable explanation.
        segments: one entry per segment.
        records: the index records of the kept segments (as dicts).
        size, mtime_ns: the file's size and modification time when it was processed.
        seconds: processing time.
        source_fps, source_sample_rate: the file's own rates (None when unknown).
        skipped: True when this run found the file finished and did not redo it.
    """

    file: str
    status: str
    reason: str | None = None
    detail: str | None = None
    segments: list[SegmentResult] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    size: int = 0
    mtime_ns: int = 0
    seconds: float = 0.0
    source_fps: float | None = None
    source_sample_rate: int | None = None
    skipped: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "FileResult":
        values = dict(values)
        values["segments"] = [SegmentResult(**s) for s in values.get("segments", [])]
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @property
    def kept_segments(self) -> list[SegmentResult]:
        return [s for s in self.segments if s.status == KEPT]


@dataclass
class PrepareReport:
    """The outcome of a run: one :class:`FileResult` per video, the ignored non-video files, and totals."""

    videos_dir: str
    out_dir: str
    config: dict
    files: list[FileResult]
    ignored: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def totals(self) -> dict[str, Any]:
        """Counts of files by status, segments kept and dropped, kept footage in seconds, and reasons."""
        status = Counter(f.status for f in self.files)
        segments = [s for f in self.files for s in f.segments]
        return {
            "files": len(self.files),
            "kept_files": status[KEPT],
            "dropped_files": status[DROPPED],
            "error_files": status[ERROR],
            "skipped_files": sum(f.skipped for f in self.files),
            "ignored_files": len(self.ignored),
            "segments_kept": sum(s.status == KEPT for s in segments),
            "segments_dropped": sum(s.status == DROPPED for s in segments),
            "kept_duration_s": round(sum(s.end_s - s.start_s for s in segments if s.status == KEPT), 3),
            "dropped_reasons": dict(Counter(f.reason for f in self.files if f.status == DROPPED)),
            "error_reasons": dict(Counter(f.reason for f in self.files if f.status == ERROR)),
            "segment_reasons": dict(Counter(s.reason for s in segments if s.status == DROPPED)),
        }

    def to_dict(self) -> dict:
        return {
            "version": 1,
            "videos_dir": self.videos_dir,
            "out_dir": self.out_dir,
            "config": self.config,
            "seconds": round(self.seconds, 3),
            "totals": self.totals(),
            "files": [f.to_dict() for f in self.files],
            "ignored": self.ignored,
        }

    def summary(self) -> str:
        """A human-readable summary: totals, then every file that was not kept with its reason."""
        t = self.totals()
        reasons = lambda counts: ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"  # noqa: E731
        lines = [
            f"prepare: {t['files']} videos in {self.videos_dir} -> {self.out_dir} ({self.seconds:.1f} s)",
            f"  kept:     {_count(t['kept_files'], 'file')}, {_count(t['segments_kept'], 'segment')}, "
            f"{t['kept_duration_s'] / 60:.2f} min of aligned footage",
            f"  dropped:  {_count(t['dropped_files'], 'file')} ({reasons(t['dropped_reasons'])})",
            f"  errors:   {_count(t['error_files'], 'file')} ({reasons(t['error_reasons'])})",
            f"  segments dropped: {t['segments_dropped']} ({reasons(t['segment_reasons'])})",
            f"  skipped:  {_count(t['skipped_files'], 'file')} already prepared (--force redoes them)",
        ]
        if self.ignored:
            lines.append(f"  ignored:  {_count(len(self.ignored), 'file')} without a video extension")
        not_kept = [f for f in self.files if f.status != KEPT]
        if not_kept:
            lines.append("  not kept:")
            width = max(len(f.file) for f in not_kept)
            for f in not_kept:
                lines.append(f"    {f.file:<{width}}  {f.status:<7}  {f.reason}: {f.detail}")
        lines.append(f"  report:   {Path(self.out_dir) / REPORT_JSON}")
        return "\n".join(lines) + "\n"


def _count(n: int, noun: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


# --- finding files, ids and markers --------------------------------------------------------------------------------


def find_videos(videos_dir: str | os.PathLike, exclude: str | os.PathLike | None = None) -> tuple[list[Path], list[Path]]:
    """Video files under ``videos_dir`` (recursively, sorted), and the other files found there.

    Hidden files and folders (starting with ``.``) are skipped, as is everything under ``exclude`` (the output folder,
    when it lies inside the videos folder). A video is recognised by its extension (:data:`VIDEO_EXTENSIONS`).
    """
    root = Path(videos_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"--videos {str(root)!r}: no such folder")
    skip = Path(exclude).resolve() if exclude is not None else None
    videos, others = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (skip is None or (here / d).resolve() != skip))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = here / name
            (videos if path.suffix.lower() in VIDEO_EXTENSIONS else others).append(path)
    return sorted(videos), sorted(others)


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators."""
    return path.relative_to(root).as_posix()


def file_key(rel: str) -> str:
    """A short stable hash of a relative path (16 hex digits)."""
    return hashlib.sha1(rel.encode("utf-8")).hexdigest()[:16]


def clip_id_prefix(rel: str) -> str:
    """The id prefix of every segment of a file: ``<safe path>_<8 hex>_``."""
    stem = rel.rsplit(".", 1)[0] if "." in Path(rel).name else rel
    slug = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")[:60] or "video"
    return f"{slug}_{file_key(rel)[:8]}_"


def segment_id(rel: str, index: int) -> str:
    """The id of segment ``index`` of the file ``rel``: stable across runs and machines."""
    return f"{clip_id_prefix(rel)}{index:03d}"


def _marker_path(out_dir: Path, rel: str) -> Path:
    return out_dir / MARKER_DIR / f"{file_key(rel)}.json"


def _read_marker(out_dir: Path, rel: str, size: int, mtime_ns: int, fingerprint: dict) -> FileResult | None:
    """The stored result of a finished file, or None when it is not finished or has changed since."""
    path = _marker_path(out_dir, rel)
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
        result = FileResult.from_dict(marker["result"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        logger.warning("ignoring the unreadable completion marker %s (%s)", path, e)
        return None
    if marker.get("file") != rel or result.size != size or result.mtime_ns != mtime_ns:
        logger.info("%s changed since it was prepared; redoing it", rel)
        return None
    if marker.get("config") != fingerprint:
        logger.info("%s was prepared with other settings; redoing it", rel)
        return None
    return result


def _write_marker(out_dir: Path, result: FileResult, fingerprint: dict) -> None:
    path = _marker_path(out_dir, result.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps({"file": result.file, "config": fingerprint, "result": result.to_dict()}, indent=1))
    os.replace(tmp, path)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def replace_file_records(out_dir: Path, prefix: str, records: list[ClipRecord]) -> list[str]:
    """Swap a file's records in ``index.jsonl`` (those whose id starts with ``prefix``) for ``records``, atomically.

    Returns the ids that were in the index and are no longer (segments a changed file lost).
    """
    old = read_index(out_dir)
    new_ids = {r.id for r in records}
    removed = [r.id for r in old if r.id.startswith(prefix) and r.id not in new_ids]
    kept = [r for r in old if not r.id.startswith(prefix)]
    _write_text_atomic(out_dir / "index.jsonl", "".join(json.dumps(asdict(r)) + "\n" for r in kept + records))
    return removed


def _remove_clip_files(out_dir: Path, clip_id: str) -> None:
    for suffix in (".mp4", ".landmarks.npy", ".latents.pt"):
        (out_dir / "clips" / f"{clip_id}{suffix}").unlink(missing_ok=True)


# --- decoding ------------------------------------------------------------------------------------------------------


def iter_frames(container, stream, fps: int = FPS) -> Iterator[np.ndarray]:
    """Decode a PyAV video stream into RGB frames uint8 [H, W, 3] at ``fps``, upright.

    Output frame ``i`` (time ``i / fps`` after the first decoded frame) is the source frame whose timestamp is
    nearest to it, so 25 fps sources pass through one to one, 50 fps drops every other frame and 30 fps repeats
    none and skips one in six. The last source frame is held for its own duration. Frames tagged with a display
    rotation (phone videos) are turned upright, as FFmpeg's players do.
    """
    period = Fraction(1, fps)
    src_rate = stream.average_rate or stream.guessed_rate or fps
    prev, prev_t, t0, i = None, 0.0, None, 0
    for j, frame in enumerate(container.decode(stream)):
        t = frame.time if frame.time is not None else j / float(src_rate)
        if t0 is None:
            t0 = t
        t -= t0
        image = frame.to_ndarray(format="rgb24")
        turns = round(getattr(frame, "rotation", 0) / 90) % 4
        if turns:
            image = np.ascontiguousarray(np.rot90(image, turns))
        if prev is not None:
            boundary = (prev_t + t) / 2
            while float(i * period) < boundary - 1e-6:
                yield prev
                i += 1
        prev, prev_t = image, t
    if prev is not None:
        end = prev_t + 1.0 / float(src_rate)
        while float(i * period) < end - 1e-6:
            yield prev
            i += 1


def stream_start_s(stream) -> float:
    """A stream's start time in seconds (0 when the container does not say)."""
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def resample_frames(frames: np.ndarray, fps: float | Fraction, target_fps: int = FPS) -> np.ndarray:
    """Frames [F, ...] at ``fps`` -> frames at ``target_fps``, each output frame the nearest-in-time source frame.

    The in-memory counterpart of :func:`iter_frames` (same rule, for frames already decoded).
    """
    fps = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    if fps == target_fps:
        return frames
    n_src = len(frames)
    n_out = math.ceil(n_src * target_fps / fps - 1e-6)
    src_t = np.arange(n_src) / float(fps)
    out_t = np.arange(n_out) / float(target_fps)
    index = np.clip(np.searchsorted((src_t[:-1] + src_t[1:]) / 2, out_t - 1e-6, side="left"), 0, n_src - 1)
    return frames[index]


# --- faces ---------------------------------------------------------------------------------------------------------


@dataclass
class FaceTrack:
    """Aligned crops of a face through a clip.

    Attributes:
        crops: uint8 [F, size, size, 3].
        matrices: float64 [F, 2, 3], frame px -> crop px.
        landmarks: float32 [F, 478, 2] in crop px (the tracked, unsmoothed landmarks; missing frames interpolated).
        raw: float32 [F, 478, 2] in frame px as tracked, NaN where no face was found.
    """

    crops: np.ndarray
    matrices: np.ndarray
    landmarks: np.ndarray
    raw: np.ndarray


def align_track(frames: np.ndarray, landmarks: np.ndarray, size: int, smooth_sigma: float = 1.5,
                framing: str = "face") -> FaceTrack:  # fmt: skip
    """Align every frame on temporally smoothed landmarks.

    Args:
        frames: uint8 [F, H, W, 3].
        landmarks: float32 [F, 478, 2] frame px, NaN where no face (at least one frame must have one).
        size: crop side, px.
        smooth_sigma: gaussian over time on the landmarks used for alignment, in frames.
        framing: the crops' framing, ``"face"`` (what ``avdiff prepare`` writes) or ``"lower_face"``.

    Raises:
        NoFaceError: no frame has a face.
    """
    smooth = smooth_landmarks(landmarks, sigma_frames=smooth_sigma)
    crops, matrices = align_frames(frames, smooth, size, framing)
    filled = smooth_landmarks(landmarks, sigma_frames=0)
    in_crop = np.stack([transform_points(p, m) for p, m in zip(filled, matrices)]).astype(np.float32)
    return FaceTrack(crops, matrices, in_crop, landmarks.astype(np.float32))


def face_track(frames: np.ndarray, size: int, smooth_sigma: float = 1.5, framing: str = "face") -> FaceTrack:
    """Track the (largest) face through ``frames`` uint8 [F, H, W, 3] with mediapipe and align it (see
    :func:`align_track`). This is how ``prepare`` crops faces, and how the SyncNet scores crop any video."""
    return align_track(frames, track_landmarks(frames), size, smooth_sigma, framing)


def face_box_px(landmarks: np.ndarray) -> np.ndarray:
    """Longer side of each frame's landmark box in px, float32 [F], for landmarks [F, 478, 2] of found faces."""
    extent = landmarks.max(axis=1) - landmarks.min(axis=1)  # [F, 2]
    return extent.max(axis=-1)


def several_faces(frames: np.ndarray, samples: int, ratio: float) -> tuple[bool, str]:
    """Whether any of ``samples`` evenly spaced frames shows a second face comparable to the largest one.

    Two faces are comparable when the smaller's size (square root of its box area) is at least ``ratio`` of the
    larger's. Returns the verdict and a description.
    """
    positions = np.linspace(0, len(frames) - 1, samples + 2)[1:-1].round().astype(int)
    for pos in positions:
        faces = detect_faces(frames[pos], max_faces=5)
        if len(faces) >= 2:
            second = math.sqrt(faces[1].area / max(faces[0].area, 1e-9))
            if second >= ratio:
                return True, f"{len(faces)} faces in frame {pos}; the second is {second:.2f} the size of the first"
    return False, ""


# --- latents ---------------------------------------------------------------------------------------------------------

_VAE_CACHE: dict[str, Any] = {}


def load_vae(path: str | os.PathLike):
    """A diffusers ``AutoencoderKL`` from a local folder (cached per process), in eval mode on the CPU.

    ``path`` is the VAE's own folder, or a pipeline folder with the VAE in its ``vae/`` subfolder (Stable Diffusion's
    layout).

    Raises:
        ValueError: the folder is missing or holds no loadable AutoencoderKL.
    """
    key = os.path.abspath(path)
    if key not in _VAE_CACHE:
        if not os.path.isdir(key):
            raise ValueError(f"--latents {os.fspath(path)!r}: no such folder (give a diffusers AutoencoderKL folder)")
        from diffusers import AutoencoderKL

        subfolder = "vae" if os.path.isfile(os.path.join(key, "vae", "config.json")) else None
        try:
            vae = AutoencoderKL.from_pretrained(key, subfolder=subfolder)
        except (OSError, ValueError) as e:
            raise ValueError(f"--latents {os.fspath(path)!r}: not a diffusers AutoencoderKL folder ({e})") from e
        _VAE_CACHE[key] = vae.eval().requires_grad_(False)
    return _VAE_CACHE[key]


def vae_downsample(vae) -> int:
    """The VAE's spatial downsampling factor (8 for Stable Diffusion's)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


@torch.no_grad()
def encode_latents(vae, crops: np.ndarray, batch: int = 16) -> dict[str, Any]:
    """Encode crops uint8 [F, S, S, 3] with a VAE.

    Returns:
        ``{"mean": float16 [F, C, S/d, S/d], "std": float16 [F, C, S/d, S/d], "scaling_factor": float,
        "shift_factor": float}``: the posterior's mean and standard deviation, already shifted and scaled
        (``(z - shift_factor) * scaling_factor``, the convention of :class:`avdiff.models.codec.DiffusersVAECodec`,
        whose ``encode`` is ``mean``), so ``mean + std * noise`` is a latent the UNet trains on.
    """
    scale = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
    shift = float(getattr(vae.config, "shift_factor", None) or 0.0)
    means, stds = [], []
    for start in range(0, len(crops), batch):
        x = torch.from_numpy(crops[start : start + batch]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        dist = vae.encode(x).latent_dist
        means.append(((dist.mean - shift) * scale).half())
        stds.append((dist.std * scale).half())
    return {"mean": torch.cat(means), "std": torch.cat(stds), "scaling_factor": scale, "shift_factor": shift}


def _save_torch_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# --- one file --------------------------------------------------------------------------------------------------------


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
    import av

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise VideoError(path, f"not a video file FFmpeg can read ({_one_line(e)})") from e
    with container:
        if not container.streams.video:
            result.status, result.reason, result.detail = ERROR, "no_video", "the file has no video stream"
            return
        vstream = container.streams.video[0]
        vstream.thread_type = "AUTO"
        result.source_fps = float(vstream.average_rate) if vstream.average_rate else None
        if not container.streams.audio:
            result.status, result.reason, result.detail = DROPPED, "no_audio", "the file has no audio track"
            return
        astream = container.streams.audio[0]
        result.source_sample_rate = astream.codec_context.sample_rate or None
        offset_s = stream_start_s(astream) - stream_start_s(vstream)
        audio = _audio_on_video_timeline(path, offset_s)
        clock = FrameClock(FPS, SAMPLE_RATE)
        audio_frames = audio.num_samples * FPS // SAMPLE_RATE  # frames fully covered by audio
        seg_len = max(5, round(config.segment_s * FPS))
        buffer: list[np.ndarray] = []
        index = 0
        for n, frame in enumerate(iter_frames(container, vstream)):  # an FFmpegError here: corrupt video data
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


def _audio_on_video_timeline(path: Path, offset_s: float) -> Waveform:
    """The first audio track at 16 kHz mono, shifted so that sample 0 is at the first video frame."""
    audio = load_audio(path, sample_rate=SAMPLE_RATE, mono=True)
    shift = round(offset_s * SAMPLE_RATE)
    if shift > 0:  # the audio starts after the video: silence before it
        audio = Waveform(torch.nn.functional.pad(audio.samples, (shift, 0)), SAMPLE_RATE)
    elif shift < 0:
        audio = Waveform(audio.samples[:, -shift:], SAMPLE_RATE)
    if shift:
        logger.info("%s: audio starts %+.3f s from the video; placed on the video's time line", path, offset_s)
    return audio


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
        seg.reason, seg.detail = "too_short", f"{n / FPS:.2f} s is shorter than min_segment_s={config.min_segment_s:g} s"
        return
    samples = audio.samples[:, clock.frame_start(first) : clock.frame_start(first + n)]
    speech = Waveform(samples, SAMPLE_RATE)
    power = frame_power(speech, FPS)[:n]
    voiced = float((10 * np.log10(np.maximum(power, 1e-20)) > config.silence_dbfs).mean())
    seg.voiced_fraction = round(voiced, 4)
    if voiced < config.min_voiced_fraction:
        seg.reason = "silence"
        seg.detail = (f"only {voiced:.0%} of frames are louder than {config.silence_dbfs:g} dBFS "
                      f"(min_voiced_fraction={config.min_voiced_fraction:g})")
        return
    landmarks = track_landmarks(frames)
    found = np.isfinite(landmarks).all(axis=(1, 2))
    if found.mean() < config.min_face_fraction:
        seg.reason = "no_face"
        seg.detail = ("no face in any frame" if not found.any() else
                      f"a face in only {found.mean():.0%} of frames (min_face_fraction={config.min_face_fraction:g})")
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
        source={"file": rel, "start_s": seg.start_s, "end_s": seg.end_s, "segment": index, "face_px": seg.face_px,
                "voiced_fraction": seg.voiced_fraction},
        aligned=True,
        landmarks=marks,
        latents=latents,
    )
    result.records.append(asdict(record))


def _prepare_job(job: _Job) -> FileResult:
    return prepare_file(job.path, job.rel, job.out_dir, job.config)


# --- many files --------------------------------------------------------------------------------------------------------


class WorkerCrashed(RuntimeError):
    """A worker process died (a crash in native code) while handling an item."""


def _worker_init(threads: int) -> None:
    import cv2

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def run_parallel(fn: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Iterator[tuple[Any, Any, BaseException | None]]:
    """Apply ``fn`` to every item in ``workers`` spawned processes; yield ``(item, result, error)`` as each finishes.

    ``fn`` must be a picklable module-level function. With ``workers <= 1`` it runs in this process. An exception
    raised by ``fn`` comes back as ``error``. When a worker process dies, the items that were in flight are redone
    one at a time in fresh processes, so the item that kills its process is found and reported with a
    :class:`WorkerCrashed` error while the others finish normally.
    """
    items = list(items)
    if workers <= 1:
        for item in items:
            try:
                yield item, fn(item), None
            except Exception as e:
                yield item, None, e
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    broken = yield from _pool_pass(fn, items, workers, threads, context)
    for item in broken:  # isolate the culprit: each suspect alone in a fresh process
        retry = yield from _pool_pass(fn, [item], 1, threads, context)
        if retry:
            yield item, None, WorkerCrashed(f"the worker process died while handling {item!r}")


def _pool_pass(fn, items, workers, threads, context):
    """Run ``items`` through one pool; yield finished ones; return the items lost to a dead worker."""
    broken = []
    pool = ProcessPoolExecutor(min(workers, len(items)), mp_context=context, initializer=_worker_init, initargs=(threads,))
    try:
        futures = {pool.submit(fn, item): item for item in items}
        for future in as_completed(futures):
            item = futures[future]
            try:
                result = future.result()
            except BrokenProcessPool:
                broken.append(item)
                continue
            except Exception as e:
                yield item, None, e
                continue
            yield item, result, None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return broken


def default_workers() -> int:
    """``min(4, cpu_count)``."""
    return max(1, min(4, os.cpu_count() or 1))


def prepare_videos(
    videos_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: PrepareConfig | None = None,
    *,
    workers: int | None = None,
    force: bool = False,
    progress_bar: bool = True,
) -> PrepareReport:
    """Turn every video under ``videos_dir`` into aligned clips in the DATA folder ``out_dir``.

    Args:
        videos_dir: a folder of talking-face videos (searched recursively).
        out_dir: the DATA folder (created); may already hold clips, which are kept.
        config: settings; the defaults when None.
        workers: processes working on files at once (default :func:`default_workers`); 1 works in this process.
        force: redo files that are already finished.
        progress_bar: a tqdm bar over files.

    Returns:
        The :class:`PrepareReport`, also written to ``out_dir/prepare_report.json`` and ``prepare_report.txt``.

    Raises:
        FileNotFoundError: ``videos_dir`` is not a folder.
        ValueError: a setting is out of range, or ``config.vae`` is not a loadable AutoencoderKL folder.
    """
    tick = time.perf_counter()
    config = config or PrepareConfig()
    config.validate()
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    root, out = Path(videos_dir), Path(out_dir)
    videos, others = find_videos(root, exclude=out)
    if config.vae:
        factor = vae_downsample(load_vae(config.vae))  # fail now, with a clear message, not once per file
        if config.size % factor:
            raise ValueError(f"size={config.size} must be a multiple of the VAE's downsampling factor {factor}")
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = config.fingerprint()

    results: dict[str, FileResult] = {}
    jobs: list[_Job] = []
    for path in videos:
        rel, stat = relative_name(path, root), path.stat()
        done = None if force else _read_marker(out, rel, stat.st_size, stat.st_mtime_ns, fingerprint)
        if done is not None:
            done.skipped = True
            results[rel] = done
        else:
            jobs.append(_Job(str(path), rel, str(out), config, stat.st_size, stat.st_mtime_ns))
    logger.info("prepare: %d videos, %d finished before, %d to do with %d workers", len(videos),
                len(results), len(jobs), workers)

    bar = tqdm(total=len(videos), initial=len(results), desc="prepare", unit="file", disable=not progress_bar)
    for job, result, error in run_parallel(_prepare_job, jobs, min(workers, max(1, len(jobs)))):
        if error is not None:
            reason = "worker_crashed" if isinstance(error, WorkerCrashed) else "internal_error"
            result = FileResult(job.rel, ERROR, reason, f"{type(error).__name__}: {_one_line(error)}",
                                size=job.size, mtime_ns=job.mtime_ns)
        _finish_file(out, result, fingerprint)
        results[job.rel] = result
        bar.update(1)
        bar.set_postfix_str(f"{job.rel}: {result.status}")
    bar.close()

    report = PrepareReport(
        videos_dir=str(root), out_dir=str(out), config=asdict(config),
        files=[results[relative_name(p, root)] for p in videos],
        ignored=[relative_name(p, root) for p in others], seconds=time.perf_counter() - tick,
    )
    _write_text_atomic(out / REPORT_JSON, json.dumps(report.to_dict(), indent=2) + "\n")
    _write_text_atomic(out / REPORT_TXT, report.summary())
    return report


def _finish_file(out: Path, result: FileResult, fingerprint: dict) -> None:
    """Index the file's kept segments (parent process only), then mark it finished."""
    records = [ClipRecord(**r) for r in result.records]
    if result.reason not in RETRY_REASONS:
        for stale in replace_file_records(out, clip_id_prefix(result.file), records):
            _remove_clip_files(out, stale)
        _write_marker(out, result, fingerprint)

