"""The one video encoder, through PyAV (FFmpeg).

:class:`VideoWriter` encodes H.264 (yuv420p) + AAC frame by frame, so no caller has to hold a whole video,
and :func:`write_video` writes an array or any iterable of frames through it. The file is written to a temporary
name beside the target and renamed into place on success, so a failure never leaves a half-written file (and never
touches an existing one). The audio keeps its channels and sample rate (resampled only when AAC cannot carry the
rate), and is trimmed or zero-padded to the video's duration (``num_frames / fps``), so the two streams agree to
within one AAC packet (1024 samples).

The decoder is :mod:`avdiff.video.reader`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from avdiff.audio.clock import FpsLike, FrameClock, as_fraction_fps
from avdiff.audio.io import AudioFrameEncoder, AudioStream, Waveform, as_stream
from avdiff.video.errors import VideoError

logger = logging.getLogger(__name__)

FramesLike = np.ndarray | torch.Tensor | Sequence[Image.Image]
AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


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
        raise ValueError(
            f"frames must be a uint8 array [F, H, W, 3] or a list of PIL images, got {type(frames).__name__}"
        )
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
    """Encode frames one at a time into an H.264 + AAC mp4, written atomically and faststart (``moov`` before
    ``mdat``, so a browser can start playing before the whole file has arrived).

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

    def __init__(
        self,
        path: str | os.PathLike,
        fps: FpsLike,
        audio: Waveform | AudioStream | str | os.PathLike | None = None,
        *,
        crf: int = 18,
        preset: str = "medium",
        audio_bitrate: int = 128_000,
    ):
        self.path = Path(path)
        if self.path.is_dir():
            raise VideoError(self.path, "is a folder; give a file name such as out.mp4")
        self.fps = as_fraction_fps(fps)
        if audio is not None and not isinstance(audio, (Waveform, AudioStream, str, os.PathLike)):
            raise ValueError(f"audio must be a Waveform, an AudioStream, a path or None, got {type(audio).__name__}")
        # checked now (a bad audio file fails before any frame is made); read block by block when the file is closed
        self.audio: AudioStream | None = None if audio is None else as_stream(audio)
        self._audio_rate, self._audio_mono = 0, False
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
        # faststart: the index (moov) goes before the media data (mdat), so a browser plays the file while it loads
        self._out = av.open(self._tmp, mode="w", format="mp4", options={"movflags": "+faststart"})
        self._video = self._out.add_stream("libx264", rate=self.fps)
        self._video.width, self._video.height, self._video.pix_fmt = width + width % 2, height + height % 2, "yuv420p"
        self._video.options = {"crf": str(self.crf), "preset": self.preset}
        if self.audio is not None:
            self._audio_rate, self._audio_mono = aac_format(self.audio.sample_rate, self.audio.num_channels)
            channels = 1 if self._audio_mono else self.audio.num_channels
            self._audio = self._out.add_stream("aac", rate=self._audio_rate, layout=AAC_LAYOUTS[channels])
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
                raise ValueError(
                    f"all frames must have one size: frame {self.num_frames} is {image.shape[1]}x"
                    f"{image.shape[0]}, the first was {self._size[1]}x{self._size[0]}"
                )
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
                self._mux_audio()
            self._out.close()
            os.chmod(self._tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the permissions open() would
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        logger.info(
            "wrote %s: %d frames at %s fps%s",
            self.path,
            self.num_frames,
            self.fps,
            f" with {self.audio.num_channels} ch {self._audio_rate} Hz audio" if self.audio else "",
        )
        return self.path

    def _mux_audio(self) -> None:
        """Encode the audio, fitted to the video's duration (``num_frames / fps``: trimmed, or padded with silence),
        block by block: the song is never held whole."""
        rate, mono = self._audio_rate, self._audio_mono
        layout = AAC_LAYOUTS[1 if mono else self.audio.num_channels]
        encoder = AudioFrameEncoder(self._out, self._audio, rate, layout)
        n = FrameClock(self.fps, rate).num_samples(self.num_frames)
        written = 0
        for block in self.audio.blocks(sample_rate=rate, mono=mono):
            block = block[:, : n - written]
            encoder.push(np.clip(block, -1.0, 1.0))
            written += block.shape[1]
            if written >= n:
                break
        channels = 1 if mono else self.audio.num_channels
        while written < n:
            pad = min(n - written, 1 << 16)
            encoder.push(np.zeros((channels, pad), dtype=np.float32))
            written += pad
        encoder.flush()

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

    def __enter__(self) -> VideoWriter:
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


def check_output_path(
    path: str | os.PathLike,
    inputs: dict[str, object] | None = None,
    name: str = "output_path",
    suffixes: tuple[str, ...] | None = OUTPUT_SUFFIXES,
) -> Path:
    """Check, before any work, that an mp4 can be written at ``path`` without destroying anything the user gave.

    It must name a file (not an existing folder) ending in one of ``suffixes`` (:data:`OUTPUT_SUFFIXES`; None: any
    name, for an output that is not a video), in a folder that exists or can be made, and must not be one of
    ``inputs`` (name -> the value given; path values are compared as files, so a symlink or a hard link to an input is
    that input too). Writing itself is atomic (:class:`VideoWriter`), so an existing file that is not an input is
    replaced only when the new one is complete. A command with several outputs checks them all, and against each
    other, with :func:`avdiff.video.outputs.check_outputs`.

    Raises:
        ValueError: naming ``name``, the path and the reason.
    """
    given = os.fspath(path)
    target = Path(given)
    if target.is_dir():
        raise ValueError(f"{name} {given!r} is a folder; give a file name such as {str(target / 'talking.mp4')!r}")
    lexical = Path(os.path.normpath(os.path.abspath(given)))  # "new/../speech.wav" is speech.wav once "new" is made
    for input_name, value in (inputs or {}).items():
        if not (isinstance(value, (str, os.PathLike)) and os.path.exists(value)):
            continue
        for candidate in (target, lexical):
            if candidate.exists() and os.path.samefile(value, candidate):
                raise ValueError(
                    f"{name} {given!r} is the {input_name} {os.fspath(value)!r}; it would be "
                    "overwritten. Choose another output file"
                )
    if suffixes is not None and target.suffix.lower() not in suffixes:
        raise ValueError(
            f"{name} {given!r}: the output is an mp4 video; give a name ending in {' or '.join(suffixes)}"
        )
    folder = target.resolve().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {given!r}: cannot write in {str(folder)!r}")
    return target


def aac_format(sample_rate: int, num_channels: int) -> tuple[int, bool]:
    """``(rate, mono)``: the rate AAC in mp4 carries audio at ``sample_rate`` with (that rate, or the next one AAC has:
    a rate above 96 kHz becomes 96 kHz), and whether the channels must be mixed to mono (more than 8)."""
    mono = num_channels not in AAC_LAYOUTS
    if mono:
        logger.warning("%d audio channels: AAC carries at most 8; mixed to mono", num_channels)
    rates = sorted(av.codec.Codec("aac", "w").audio_rates or (8000, 16000, 22050, 24000, 32000, 44100, 48000))
    rate = sample_rate
    if sample_rate not in rates:
        rate = next((r for r in rates if r >= sample_rate), rates[-1])
        logger.info("AAC cannot carry %d Hz; the audio is resampled to %d Hz", sample_rate, rate)
    return rate, mono


def aac_compatible(audio: Waveform) -> Waveform:
    """``audio`` as AAC in mp4 can carry it: its channels (1..8; more are mixed to mono) and its sample rate, or the
    next rate AAC has (a rate above 96 kHz becomes 96 kHz)."""
    rate, mono = aac_format(audio.sample_rate, audio.num_channels)
    if mono:
        audio = audio.to_mono()
    return audio.resample(rate) if rate != audio.sample_rate else audio


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
