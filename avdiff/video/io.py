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

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np
import torch
from PIL import Image

from avdiff.audio.clock import FpsLike, FrameClock, as_fraction_fps
from avdiff.audio.io import AudioLoadError, Waveform, decode_audio_stream, encode_audio_frames, load_audio
from avdiff.video.timeline import (
    apply_transform,
    audio_on_timeline,
    display_transform,
    place_on_grid,
    stream_start_s,
    transform_degrees,
)

logger = logging.getLogger(__name__)

FramesLike = np.ndarray | torch.Tensor | Sequence[Image.Image]
MAX_NOMINAL_FPS = 240  # a nominal rate above this is a time base, not a frame rate: the average rate is used instead
AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


class VideoError(ValueError):
    """Raised when a video cannot be read or written. The message names the path and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"video {self.path!r}: {reason}")


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
        with_audio: decode the first audio track too (a broken track is logged and left out, not fatal).
        max_frames: stop after this many frames.

    Attributes (known once the reader is open):
        fps, width, height: the grid's rate and the upright frame size.
        source_rate, average_rate: the stream's nominal and average rates.
        transform, rotation: the display transform applied, and the clockwise turn it makes in degrees.
        audio: a ``Waveform`` [C, N] at the track's own rate and channels, sample 0 at the first frame; or None.
        audio_offset_s: when the audio track starts, seconds after the first frame (before it when negative).
        duration_s: the container's declared duration (None when unknown).
        stats: after iterating, ``held`` (grid frames repeating a frame over timestamp gaps), ``dropped`` (source
            frames not shown) and ``source_frames``.

    Raises:
        VideoError: missing file, not a video, no video stream, no decodable frames, or corrupt data while iterating.
    """

    def __init__(self, path: str | os.PathLike, *, fps: FpsLike | None = None, with_audio: bool = True,
                 max_frames: int | None = None):  # fmt: skip
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
            self._open(fps, with_audio)
        except BaseException:
            self._container.close()
            raise

    def _open(self, fps: FpsLike | None, with_audio: bool) -> None:
        if not self._container.streams.video:
            raise VideoError(self.path, "no video stream")
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
            logger.info("%s: display matrix -> %s (frames turned upright, %d x %d)", self.path, self.transform,
                        self.width, self.height)  # fmt: skip
        start = first.time if first.time is not None else stream_start_s(stream)
        self.audio, self.audio_offset_s = None, 0.0
        if with_audio and self._container.streams.audio:
            self.audio_offset_s = stream_start_s(self._container.streams.audio[0]) - start
            try:
                with av.open(str(self.path)) as container:
                    audio = decode_audio_stream(container, repr(str(self.path)))
                self.audio = audio_on_timeline(audio, self.audio_offset_s, str(self.path))
            except (AudioLoadError, av.error.FFmpegError) as e:
                logger.warning("ignoring the audio of %s: %s", self.path, getattr(e, "reason", e))

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
        yield from place_on_grid(self._timed_frames(first), self.fps, 1 / float(self.source_rate), self.max_frames,
                                 self.stats)  # fmt: skip
        if self.stats.get("held") or self.stats.get("dropped"):
            logger.info("%s: %d source frames on a %s fps grid: %d grid frames held over timestamp gaps, %d source "
                        "frames dropped", self.path, self.stats["source_frames"], self.fps, self.stats["held"],
                        self.stats["dropped"])  # fmt: skip

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoReader":
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


def open_video(path: str | os.PathLike, *, fps: FpsLike | None = None, with_audio: bool = True,
               max_frames: int | None = None) -> VideoReader:  # fmt: skip
    """A :class:`VideoReader` (use it in a ``with`` block)."""
    return VideoReader(path, fps=fps, with_audio=with_audio, max_frames=max_frames)


def read_video(path: str | os.PathLike, *, fps: FpsLike | None = None, max_frames: int | None = None,
               with_audio: bool = True) -> VideoClip:  # fmt: skip
    """Decode a whole video: upright frames on a constant-rate grid and its first audio track on the same time line.

    Args:
        path: any container FFmpeg reads.
        fps: the grid's rate; None keeps the stream's nominal rate (see the module docstring).
        max_frames: stop after this many frames (the audio is still read whole).
        with_audio: decode the audio track too.

    Returns:
        A ``VideoClip``: frames uint8 [F, H, W, 3], the grid's exact fps, and the audio (None when the file has none).

    Raises:
        VideoError: missing file, not a video, no video stream, or no decodable frames.
    """
    with VideoReader(path, fps=fps, with_audio=with_audio, max_frames=max_frames) as video:
        frames = np.stack(list(video))
        return VideoClip(torch.from_numpy(frames), video.fps, video.audio, video.transform)


# --- writing -----------------------------------------------------------------------------------------------------------


def frames_to_uint8(frames: FramesLike) -> np.ndarray:
    """Frames as uint8 [F, H, W, 3] (numpy or torch), or a list of PIL images -> uint8 numpy [F, H, W, 3].

    Float frames are not guessed at: convert them to uint8 yourself (``(x.clamp(0, 1) * 255).round()``).
    """
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError("frames is an empty list")
        if not all(isinstance(f, Image.Image) for f in frames):
            raise ValueError("a list of frames must hold PIL images")
        sizes = {f.size for f in frames}
        if len(sizes) != 1:
            raise ValueError(f"all frames must have one size, got {sorted(sizes)}")
        return np.stack([np.asarray(f.convert("RGB")) for f in frames])
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"frames must be a uint8 array [F, H, W, 3] or a list of PIL images, got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape [F, H, W, 3], got {tuple(frames.shape)}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}; scale floats to 0..255 and cast first")
    if frames.shape[0] == 0:
        raise ValueError("frames has no frames (F = 0)")
    return np.ascontiguousarray(frames)


def frame_to_uint8(frame: np.ndarray | torch.Tensor | Image.Image) -> np.ndarray:
    """One frame, uint8 [H, W, 3] (numpy or torch) or a PIL image -> uint8 numpy [H, W, 3]."""
    if isinstance(frame, Image.Image):
        return np.asarray(frame.convert("RGB"))
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu().numpy()
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"a frame must be a uint8 array [H, W, 3] or a PIL image, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"a frame must have shape [H, W, 3], got {tuple(frame.shape)}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frame.dtype}; scale floats to 0..255 and cast first")
    return frame


class VideoWriter:
    """Encode frames one at a time into an H.264 + AAC mp4, written atomically.

    Example::

        with VideoWriter("out.mp4", fps=25, audio=speech) as out:
            for frame in frames:          # uint8 [H, W, 3]; the first frame sets the size
                out.write(frame)
        # out.mp4 now exists; on an exception inside the block nothing is written and an existing file is untouched

    Args:
        path: the output file; its folder is created if needed. It must not be a folder.
        fps: frames per second (30000/1001 stays exact).
        audio: a Waveform, an audio file, or None. Its channels and sample rate are kept (a rate AAC cannot carry is
            resampled to the next one it can; more than 8 channels are mixed to mono); it is trimmed or zero-padded
            to ``num_frames / fps`` seconds when the writer closes.
        crf: x264 quality (0 lossless .. 51 worst); 18 is visually lossless.
        preset: x264 speed preset.
        audio_bitrate: AAC bits per second.

    Odd frame sizes are padded by one pixel by repeating the edge (H.264 in yuv420p needs even sizes). Memory does not
    grow with the number of frames: each frame goes to the encoder as it is written.
    """

    def __init__(self, path: str | os.PathLike, fps: FpsLike, audio: Waveform | str | os.PathLike | None = None, *,
                 crf: int = 18, preset: str = "medium", audio_bitrate: int = 128_000):  # fmt: skip
        self.path = Path(path)
        if self.path.is_dir():
            raise VideoError(self.path, "is a folder; give a file name such as out.mp4")
        self.fps = as_fraction_fps(fps)
        if isinstance(audio, (str, os.PathLike)):
            audio = load_audio(audio, mono=False)
        if audio is not None and not isinstance(audio, Waveform):
            raise ValueError(f"audio must be a Waveform, a path or None, got {type(audio).__name__}")
        self.audio = audio
        self.crf, self.preset, self.audio_bitrate = crf, preset, audio_bitrate
        self.num_frames = 0
        self._out = self._video = self._audio = None
        self._size: tuple[int, int] | None = None
        self._tmp: str | None = None
        self._closed = False

    def _start(self, height: int, width: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".partial.mp4", dir=self.path.parent)
        os.close(fd)
        self._out = av.open(self._tmp, mode="w", format="mp4")
        self._video = self._out.add_stream("libx264", rate=self.fps)
        self._video.width, self._video.height, self._video.pix_fmt = width + width % 2, height + height % 2, "yuv420p"
        self._video.options = {"crf": str(self.crf), "preset": self.preset}
        if self.audio is not None:
            self.audio = aac_compatible(self.audio)
            self._audio = self._out.add_stream("aac", rate=self.audio.sample_rate,
                                               layout=AAC_LAYOUTS[self.audio.num_channels])  # fmt: skip
            self._audio.bit_rate = self.audio_bitrate
        self._size = (height, width)

    def write(self, frame: np.ndarray | torch.Tensor | Image.Image) -> None:
        """Encode one frame, uint8 [H, W, 3] (numpy or torch) or a PIL image, all of one size."""
        if self._closed:
            raise RuntimeError(f"the writer of {self.path} is closed")
        image = frame_to_uint8(frame)
        try:
            if self._size is None:
                self._start(*image.shape[:2])
            elif image.shape[:2] != self._size:
                raise ValueError(f"all frames must have one size: frame {self.num_frames} is {image.shape[1]}x"
                                 f"{image.shape[0]}, the first was {self._size[1]}x{self._size[0]}")  # fmt: skip
            pad_h, pad_w = image.shape[0] % 2, image.shape[1] % 2
            if pad_h or pad_w:
                image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            self._out.mux(self._video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
            self.num_frames += 1
        except BaseException:
            self.abort()
            raise

    def write_frames(self, frames: Iterable) -> None:
        """Encode every frame of an array [F, H, W, 3] or any iterable of frames."""
        for frame in frames:
            self.write(frame)

    def close(self) -> Path:
        """Flush the encoders, mux the audio (fitted to the video's length) and move the file into place."""
        if self._closed:
            return self.path
        if self.num_frames == 0:
            self.abort()
            raise ValueError(f"no frames were written to {self.path}")
        try:
            self._out.mux(self._video.encode(None))
            if self._audio is not None:
                layout = AAC_LAYOUTS[self.audio.num_channels]
                samples = _fit_audio(self.audio, self.num_frames, self.fps)
                encode_audio_frames(self._out, self._audio, samples, self.audio.sample_rate, layout)
            self._out.close()
            os.chmod(self._tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the permissions open() would
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        logger.info("wrote %s: %d frames at %s fps%s", self.path, self.num_frames, self.fps,
                    f" with {self.audio.num_channels} ch {self.audio.sample_rate} Hz audio" if self.audio else "")
        return self.path

    def abort(self) -> None:
        """Stop and remove the partial file; an existing file at ``path`` is left as it was."""
        self._closed = True
        if self._out is not None:
            try:
                self._out.close()
            except Exception:  # noqa: BLE001 - the partial file is removed anyway
                pass
        if self._tmp is not None:
            Path(self._tmp).unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(
    path: str | os.PathLike,
    frames: FramesLike | Iterable,
    fps: FpsLike,
    audio: Waveform | str | os.PathLike | None = None,
    *,
    crf: int = 18,
    audio_bitrate: int = 128_000,
) -> Path:
    """Write frames (and optional audio) to an H.264 + AAC mp4, atomically (see :class:`VideoWriter`).

    Args:
        path: output file; its folder is created if needed.
        frames: uint8 [F, H, W, 3] (numpy or torch), a list of PIL images, or any iterable of frames (a generator
            is encoded as it yields, never held whole).
        fps: frames per second (30000/1001 stays exact).
        audio: a Waveform or an audio file, kept at its own rate and channels, fitted to ``F / fps`` seconds.
        crf: x264 quality (0 lossless .. 51 worst); 18 is visually lossless.
        audio_bitrate: AAC bits per second.

    Returns:
        The path written.
    """
    if isinstance(frames, (np.ndarray, torch.Tensor, list, tuple)):
        frames = frames_to_uint8(frames)
    with VideoWriter(path, fps, audio, crf=crf, audio_bitrate=audio_bitrate) as out:
        out.write_frames(frames)
    return out.path


OUTPUT_SUFFIXES = (".mp4", ".m4v", ".mov")


def check_output_path(path: str | os.PathLike, inputs: dict[str, object] | None = None, name: str = "output_path") -> Path:
    """Check, before any work, that an mp4 can be written at ``path`` without destroying anything the user gave.

    It must name a file (not an existing folder) ending in one of :data:`OUTPUT_SUFFIXES`, in a folder that exists or
    can be made, and must not be one of ``inputs`` (name -> the value given; path values are compared as files, so a
    symlink or a hard link to an input is that input too). Writing itself is atomic (:class:`VideoWriter`), so an
    existing file that is not an input is replaced only when the new one is complete.

    Raises:
        ValueError: naming ``name``, the path and the reason.
    """
    given = os.fspath(path)
    target = Path(given)
    if target.is_dir():
        raise ValueError(f"{name} {given!r} is a folder; give a file name such as {str(target / 'talking.mp4')!r}")
    for input_name, value in (inputs or {}).items():
        if isinstance(value, (str, os.PathLike)) and os.path.exists(value) and target.exists():
            if os.path.samefile(value, target):
                raise ValueError(f"{name} {given!r} is the {input_name} {os.fspath(value)!r}; it would be overwritten. "
                                 "Choose another output file")  # fmt: skip
    if target.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"{name} {given!r}: the output is an mp4 video; give a name ending in "
                         f"{' or '.join(OUTPUT_SUFFIXES)}")  # fmt: skip
    folder = target.resolve().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {given!r}: cannot write in {str(folder)!r}")
    return target


def aac_compatible(audio: Waveform) -> Waveform:
    """``audio`` as AAC in mp4 can carry it: its channels (1..8; more are mixed to mono) and its sample rate, or the
    next rate AAC has (a rate above 96 kHz becomes 96 kHz)."""
    if audio.num_channels not in AAC_LAYOUTS:
        logger.warning("%d audio channels: AAC carries at most 8; mixed to mono", audio.num_channels)
        audio = audio.to_mono()
    rates = sorted(av.codec.Codec("aac", "w").audio_rates or (8000, 16000, 22050, 24000, 32000, 44100, 48000))
    if audio.sample_rate not in rates:
        rate = next((r for r in rates if r >= audio.sample_rate), rates[-1])
        logger.info("AAC cannot carry %d Hz; the audio is resampled to %d Hz", audio.sample_rate, rate)
        audio = audio.resample(rate)
    return audio


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fit_audio(audio: Waveform, num_frames: int, fps: Fraction) -> np.ndarray:
    """Audio as float32 [C, N] with N exactly the video's duration in samples."""
    samples = audio.samples
    n = FrameClock(fps, audio.sample_rate).num_samples(num_frames)
    samples = samples[:, :n]
    if samples.shape[1] < n:
        samples = torch.nn.functional.pad(samples, (0, n - samples.shape[1]))
    return np.ascontiguousarray(samples.clamp(-1, 1).numpy(), dtype=np.float32)
