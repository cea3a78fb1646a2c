"""The one video decoder, through PyAV (FFmpeg).

:class:`VideoReader` streams a file's frames, upright, on a constant-rate grid, with its first audio track
placed on the same time line; :func:`read_video` collects them into a :class:`VideoClip`. Everything the container
says about time and orientation is honoured (the rules are in :mod:`avdiff.video.timeline`):

* per-frame timestamps: a variable-frame-rate file (a phone's, or one with dropped frames) is put on a constant grid,
  the previous frame held over a gap, so picture and sound stay in sync;
* the display matrix (rotation by any multiple of 90 degrees, mirroring), applied as FFmpeg's ``autorotate`` does;
* the streams' start times: audio sample 0 is at the first video frame.

The grid's rate, unless the caller asks for one, is the stream's *nominal* rate (FFmpeg's ``guessed_rate``, which is
``r_frame_rate`` checked against the average): for a file with dropped frames that is the rate it was shot at, where
the average over its duration (``avg_frame_rate``) would be lower and make every later frame early.

The encoder is :mod:`avdiff.video.writer`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from avdiff.audio.clock import FpsLike, as_fraction_fps
from avdiff.audio.io import AudioLoadError, Waveform, choose_audio_track, decode_audio_stream
from avdiff.video.errors import VideoError
from avdiff.video.timeline import (
    apply_transform,
    audio_on_timeline,
    display_transform,
    place_on_grid,
    stream_start_s,
    transform_degrees,
)

logger = logging.getLogger(__name__)

MAX_NOMINAL_FPS = 240  # a nominal rate above this is a time base, not a frame rate: the average rate is used instead


class NoVideoStreamError(VideoError):
    """The file is readable but holds no video stream (an audio file, say)."""


@dataclass
class VideoClip:
    """Decoded video.

    Attributes:
        frames: uint8 tensor [F, H, W, 3], RGB, upright.
        fps: frames per second of the grid the frames are on, exact (e.g. Fraction(30000, 1001)).
        audio: the first audio track on the video's time line (sample 0 at frame 0), or None when there is none.
        transform: the display transform applied to the stored frames (see :mod:`avdiff.video.timeline`).
    """

    frames: torch.Tensor
    fps: Fraction
    audio: Waveform | None = None
    transform: str = "none"

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / float(self.fps)


def nominal_rate(stream) -> Fraction:
    """A video stream's nominal frame rate: ``guessed_rate`` (else ``base_rate``), or the average rate when the
    nominal one is missing or is really a time base (over :data:`MAX_NOMINAL_FPS`); 25 when nothing is known."""
    for rate in (stream.guessed_rate, stream.base_rate):
        if rate and 0 < rate <= MAX_NOMINAL_FPS:
            return Fraction(rate)
    if stream.average_rate and stream.average_rate > 0:
        return Fraction(stream.average_rate)
    return Fraction(25)


class VideoReader:
    """Stream a video's frames, upright and on a constant-rate grid, with its first audio track on the same time line.

    Example::

        with VideoReader("phone.mov", fps=25) as video:
            video.fps, video.width, video.height, video.audio   # grid rate, upright size, Waveform or None
            for frame in video:                                 # uint8 [H, W, 3], one per 1/fps s
                ...

    Args:
        path: any container FFmpeg reads.
        fps: the grid's rate; None takes the stream's nominal rate (see the module docstring).
        with_audio: decode an audio track too (a broken track is logged and left out, not fatal).
        audio_track: which audio track, counted from 0 among the file's audio tracks (None: the one marked default,
            else the first; a file with several logs which one it used). A track that does not exist is an
            ``AudioLoadError``.
        max_frames: stop after this many frames.

    Attributes (known once the reader is open):
        fps, width, height: the grid's rate and the upright frame size.
        source_rate, average_rate: the stream's nominal and average rates.
        transform, rotation: the display transform applied, and the clockwise turn it makes in degrees.
        audio: a ``Waveform`` [C, N] at the track's own rate and channels, sample 0 at the first frame; or None.
        audio_offset_s: when the audio track starts, seconds after the first frame (before it when negative).
        audio_error: why a file's audio track could not be decoded (then ``audio`` is None), or None.
        duration_s: the container's declared duration (None when unknown).
        stats: after iterating, ``held`` (grid frames repeating a frame over timestamp gaps), ``dropped`` (source
            frames not shown) and ``source_frames``.

    Raises:
        VideoError: missing file, not a video, no video stream, no decodable frames, or corrupt data while iterating.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: FpsLike | None = None,
        with_audio: bool = True,
        max_frames: int | None = None,
        audio_track: int | None = None,
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoError(self.path, "no such file" if not self.path.exists() else "not a file")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or None, got {max_frames!r}")
        self.max_frames = max_frames
        self.stats: dict = {}
        try:
            self._container = av.open(str(self.path))
        except av.error.FFmpegError as e:
            raise VideoError(self.path, f"not a video file FFmpeg can read ({_reason(e)})") from e
        try:
            self._open(fps, with_audio, audio_track)
        except BaseException:
            self._container.close()
            raise

    def _open(self, fps: FpsLike | None, with_audio: bool, audio_track: int | None = None) -> None:
        if not self._container.streams.video:
            raise NoVideoStreamError(self.path, "no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self.source_rate = nominal_rate(stream)
        self.average_rate = Fraction(stream.average_rate) if stream.average_rate else None
        self.fps = as_fraction_fps(fps) if fps is not None else self.source_rate
        duration = stream.duration * stream.time_base if stream.duration and stream.time_base else None
        if duration is None and self._container.duration:
            duration = self._container.duration / av.time_base
        self.duration_s = float(duration) if duration else None
        self._decoded = self._container.decode(stream)
        try:
            first = next(self._decoded, None)
        except av.error.FFmpegError as e:
            raise VideoError(self.path, f"corrupt video data before the first frame ({_reason(e)})") from e
        if first is None:
            raise VideoError(self.path, "no decodable video frames")
        self._first = first
        self.transform = _frame_transform(first)
        self.rotation = transform_degrees(self.transform)
        self.width, self.height = first.width, first.height
        if self.transform in ("clock", "cclock", "clock_flip", "cclock_flip"):
            self.width, self.height = self.height, self.width
        if self.transform != "none":
            logger.info(
                "%s: display matrix -> %s (frames turned upright, %d x %d)",
                self.path,
                self.transform,
                self.width,
                self.height,
            )
        start = first.time if first.time is not None else stream_start_s(stream)
        self.audio, self.audio_offset_s, self.audio_error = None, 0.0, None
        if with_audio and self._container.streams.audio:
            name = repr(str(self.path))
            track = choose_audio_track(self._container.streams.audio, name, audio_track)  # a bad track: an error
            self.audio_offset_s = stream_start_s(self._container.streams.audio[track]) - start
            try:
                with av.open(str(self.path)) as container:
                    audio = decode_audio_stream(container, name, track=track, announce=False)
                self.audio = audio_on_timeline(audio, self.audio_offset_s, str(self.path))
            except (AudioLoadError, av.error.FFmpegError) as e:
                self.audio_error = str(getattr(e, "reason", None) or _reason(e))
                logger.warning("ignoring the audio of %s: %s", self.path, self.audio_error)

    @property
    def num_frames_hint(self) -> int | None:
        """The number of grid frames the declared duration implies (None when the container declares none)."""
        return None if self.duration_s is None else round(self.duration_s * float(self.fps))

    def _timed_frames(self, frame) -> Iterator[tuple[float | None, np.ndarray]]:
        transform, n = self.transform, 0
        while frame is not None:
            if frame.side_data:  # the matrix may change mid-stream (a concatenation); follow it
                transform = _frame_transform(frame, transform)
            yield frame.time, apply_transform(frame.to_ndarray(format="rgb24"), transform)
            n += 1
            try:
                frame = next(self._decoded, None)
            except av.error.FFmpegError as e:
                raise VideoError(self.path, f"corrupt video data after {n} frames ({_reason(e)})") from e

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._first is None:
            raise RuntimeError("a VideoReader can be iterated once; open the file again")
        first, self._first = self._first, None
        yield from place_on_grid(
            self._timed_frames(first), self.fps, 1 / float(self.source_rate), self.max_frames, self.stats
        )
        if self.stats.get("held") or self.stats.get("dropped"):
            logger.info(
                "%s: %d source frames on a %s fps grid: %d grid frames held over timestamp gaps, %d source "
                "frames dropped",
                self.path,
                self.stats["source_frames"],
                self.fps,
                self.stats["held"],
                self.stats["dropped"],
            )

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _frame_transform(frame, default: str = "none") -> str:
    """The display transform of a decoded frame's display-matrix side data (``default`` when it carries none)."""
    try:
        data = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    except (AttributeError, KeyError, ValueError):
        data = None
    if data is None:
        return default
    return display_transform(bytes(data))


def _reason(error: BaseException) -> str:
    return " ".join(str(getattr(error, "strerror", None) or error).split())


def open_video(
    path: str | os.PathLike,
    *,
    fps: FpsLike | None = None,
    with_audio: bool = True,
    max_frames: int | None = None,
    audio_track: int | None = None,
) -> VideoReader:
    """A :class:`VideoReader` (use it in a ``with`` block)."""
    return VideoReader(path, fps=fps, with_audio=with_audio, max_frames=max_frames, audio_track=audio_track)


def read_video(
    path: str | os.PathLike,
    *,
    fps: FpsLike | None = None,
    max_frames: int | None = None,
    with_audio: bool = True,
    audio_track: int | None = None,
) -> VideoClip:
    """Decode a whole video: upright frames on a constant-rate grid and its audio track (the one marked default, or
    ``audio_track``) on the same time line.

    Args:
        path: any container FFmpeg reads.
        fps: the grid's rate; None keeps the stream's nominal rate (see the module docstring).
        max_frames: stop after this many frames (the audio is still read whole).
        with_audio: decode the audio track too.
        audio_track: the audio track to decode, counted from 0 (None: the one marked default, else the first).

    Returns:
        A ``VideoClip``: frames uint8 [F, H, W, 3], the grid's exact fps, and the audio (None when the file has none).

    Raises:
        VideoError: missing file, not a video, no video stream, or no decodable frames.
    """
    with VideoReader(path, fps=fps, with_audio=with_audio, max_frames=max_frames, audio_track=audio_track) as video:
        frames = np.stack(list(video))
        return VideoClip(torch.from_numpy(frames), video.fps, video.audio, video.transform)
