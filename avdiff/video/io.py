"""Read and write mp4 video with muxed audio, through PyAV (FFmpeg).

``write_video`` encodes H.264 (yuv420p) + AAC. It writes to a temporary file beside the target and renames it into
place, so a failure never leaves a half-written file. The audio is trimmed or zero-padded to the video's duration
(``num_frames / fps``) before encoding, so the two streams agree to within one AAC packet (1024 samples), under a
frame at any usual rate.
"""

from __future__ import annotations

import logging
import os
import tempfile
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

logger = logging.getLogger(__name__)

FramesLike = np.ndarray | torch.Tensor | Sequence[Image.Image]


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
        frames: uint8 tensor [F, H, W, 3], RGB.
        fps: frames per second, exact (e.g. Fraction(30000, 1001)).
        audio: the first audio track, or None when the file has none.
    """

    frames: torch.Tensor
    fps: Fraction
    audio: Waveform | None = None

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / float(self.fps)


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


def write_video(
    path: str | os.PathLike,
    frames: FramesLike,
    fps: FpsLike,
    audio: Waveform | str | os.PathLike | None = None,
    *,
    crf: int = 18,
    audio_bitrate: int = 128_000,
) -> Path:
    """Write frames (and optional audio) to an H.264 + AAC mp4, atomically.

    Args:
        path: output file; its folder is created if needed.
        frames: uint8 [F, H, W, 3] (numpy or torch) or a list of PIL images. Odd sizes are padded by one pixel by
            repeating the edge (H.264 in yuv420p needs even sizes).
        fps: frames per second (30000/1001 stays exact).
        audio: a Waveform or an audio file. It is made mono or stereo as given, trimmed or zero-padded to
            ``F / fps`` seconds, and encoded as AAC at its own sample rate.
        crf: x264 quality (0 lossless .. 51 worst); 18 is visually lossless.
        audio_bitrate: AAC bits per second.

    Returns:
        The path written.
    """
    path = Path(path)
    video = _pad_even(frames_to_uint8(frames))
    rate = as_fraction_fps(fps)
    if isinstance(audio, (str, os.PathLike)):
        audio = load_audio(audio, mono=False)
    if audio is not None and not isinstance(audio, Waveform):
        raise ValueError(f"audio must be a Waveform, a path or None, got {type(audio).__name__}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial.mp4", dir=path.parent)
    os.close(fd)
    try:
        _encode(tmp, video, rate, audio, crf, audio_bitrate)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("wrote %s: %d frames at %s fps%s", path, len(video), rate, " with audio" if audio else "")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pad_even(video: np.ndarray) -> np.ndarray:
    pad_h, pad_w = video.shape[1] % 2, video.shape[2] % 2
    if pad_h or pad_w:
        video = np.pad(video, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return video


def _encode(tmp: str, video: np.ndarray, fps: Fraction, audio: Waveform | None, crf: int, audio_bitrate: int) -> None:
    num_frames, height, width, _ = video.shape
    with av.open(tmp, mode="w", format="mp4") as out:
        vstream = out.add_stream("libx264", rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        vstream.options = {"crf": str(crf), "preset": "medium"}
        astream = None
        if audio is not None:
            samples = _fit_audio(audio, num_frames, fps)
            layout = "mono" if samples.shape[0] == 1 else "stereo"
            astream = out.add_stream("aac", rate=audio.sample_rate, layout=layout)
            astream.bit_rate = audio_bitrate
        for frame in video:
            out.mux(vstream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(vstream.encode(None))
        if astream is not None:
            encode_audio_frames(out, astream, samples, audio.sample_rate, layout)


def _fit_audio(audio: Waveform, num_frames: int, fps: Fraction) -> np.ndarray:
    """Audio as float32 [C<=2, N] with N exactly the video's duration in samples."""
    samples = audio.samples
    if samples.shape[0] > 2:
        samples = samples.mean(dim=0, keepdim=True)
    n = FrameClock(fps, audio.sample_rate).num_samples(num_frames)
    samples = samples[:, :n]
    if samples.shape[1] < n:
        samples = torch.nn.functional.pad(samples, (0, n - samples.shape[1]))
    return np.ascontiguousarray(samples.clamp(-1, 1).numpy(), dtype=np.float32)


def read_video(path: str | os.PathLike, *, max_frames: int | None = None, with_audio: bool = True) -> VideoClip:
    """Decode a video file into RGB frames and its first audio track.

    Args:
        path: any container FFmpeg reads.
        max_frames: stop after this many frames (the audio is still read whole).
        with_audio: decode the audio track too.

    Returns:
        A ``VideoClip``: frames uint8 [F, H, W, 3], the exact fps, and audio (None when the file has none).

    Raises:
        VideoError: missing file, not a video, no video stream, or no decodable frames.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError(path, "no such file")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise VideoError(path, f"not a video file FFmpeg can read ({e})") from e
    with container:
        if not container.streams.video:
            raise VideoError(path, "no video stream")
        stream = container.streams.video[0]
        fps = Fraction(stream.average_rate or stream.guessed_rate or 25)
        frames = []
        try:
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
        except av.error.FFmpegError as e:
            raise VideoError(path, f"corrupt video data after {len(frames)} frames ({e})") from e
    if not frames:
        raise VideoError(path, "no decodable video frames")
    audio = None
    if with_audio:
        try:
            with av.open(str(path)) as container:
                audio = decode_audio_stream(container, repr(str(path))) if container.streams.audio else None
        except AudioLoadError as e:
            logger.warning("ignoring the audio of %s: %s", path, e.reason)
    return VideoClip(torch.from_numpy(np.stack(frames)), fps, audio)
