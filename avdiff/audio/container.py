"""Low-level PyAV (FFmpeg) audio I/O: opening a container, choosing its audio track (:func:`audio_stream_of`: the one
asked for, else the one marked default, else the first), decoding it frame by frame, and encoding float samples into an
output stream.

:func:`avdiff.audio.io.load_audio` and :func:`avdiff.audio.io.save_audio` are built on these, as are the streaming
reader (:mod:`avdiff.audio.stream`) and the video reader and writer. Every decoding failure raises
:class:`AudioLoadError`, whose message names the source and the reason (it is re-exported by :mod:`avdiff.audio.io`
and :mod:`avdiff.audio`).
"""

from __future__ import annotations

import io
import logging
import os
from fractions import Fraction

import av
import numpy as np

logger = logging.getLogger(__name__)
# A decoded stream may fall short of its declared duration by a packet or two (encoder padding, rounding in the
# header). Anything shorter than this fraction of the declared duration is a truncated file.
_TRUNCATION_TOLERANCE = 0.9


class AudioLoadError(ValueError):
    """Raised when an audio source cannot be loaded. The message names the source and the reason.

    Attributes:
        source: a short description of the source (a path, ``<bytes: N>`` or ``<array: shape>``).
        reason: what is wrong with it.
    """

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"cannot load audio from {source}: {reason}")


def _check_max_duration(duration_s: float, name: str, max_duration_s: float | None) -> None:
    if max_duration_s is not None and duration_s > max_duration_s:
        raise AudioLoadError(name, f"{duration_s:.2f} s is longer than max_duration_s={max_duration_s:g} s")


def encode_audio_frames(out, stream, samples: np.ndarray, sample_rate: int, layout: str, sample_fmt: str = "fltp") -> None:
    """Encode float samples [C, N] into an open PyAV output ``stream`` and flush it.

    Frames are cut to the encoder's frame size (1024 when it has none) and carry explicit timestamps.
    """
    encoder = AudioFrameEncoder(out, stream, sample_rate, layout, sample_fmt)
    encoder.push(samples)
    encoder.flush()


class AudioFrameEncoder:
    """Encode float samples pushed block by block ([C, n], any n) into an open PyAV output ``stream``: frames of the
    encoder's frame size (1024 when it has none) with explicit timestamps, the last one partial. :meth:`flush`
    ends the stream."""

    def __init__(self, out, stream, sample_rate: int, layout: str, sample_fmt: str = "fltp"):
        self.out, self.stream, self.sample_rate, self.layout, self.sample_fmt = out, stream, sample_rate, layout, sample_fmt
        self.chunk = stream.codec_context.frame_size or 1024
        self.pts = 0
        self._pending: list[np.ndarray] = []
        self._count = 0

    def push(self, samples: np.ndarray) -> None:
        """Queue samples [C, n] and encode every full frame."""
        self._pending.append(samples)
        self._count += samples.shape[1]
        if self._count < self.chunk:
            return
        joined = np.concatenate(self._pending, axis=1) if len(self._pending) > 1 else self._pending[0]
        full = (joined.shape[1] // self.chunk) * self.chunk
        for start in range(0, full, self.chunk):
            self._encode(joined[:, start : start + self.chunk])
        self._pending, self._count = [joined[:, full:]], joined.shape[1] - full

    def flush(self) -> None:
        """Encode what is left (a partial frame) and flush the encoder."""
        if self._count:
            self._encode(np.concatenate(self._pending, axis=1))
        self._pending, self._count = [], 0
        self.out.mux(self.stream.encode(None))

    def _encode(self, block: np.ndarray) -> None:
        n = block.shape[1]
        block = block.astype(np.float32)
        if self.sample_fmt == "s16":
            block = (block * 32767.0).round().astype(np.int16)
        if not self.sample_fmt.endswith("p"):  # packed formats interleave channels in one row
            block = block.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format=self.sample_fmt, layout=self.layout)
        frame.sample_rate = self.sample_rate
        frame.pts = self.pts
        frame.time_base = Fraction(1, self.sample_rate)
        self.out.mux(self.stream.encode(frame))
        self.pts += n


def open_container(file: str | io.BytesIO, name: str) -> av.container.InputContainer:
    """Open a file (or bytes) with PyAV for reading audio; ``AudioLoadError`` for a truncated wav or anything FFmpeg
    cannot open."""
    _check_wav_length(file, name)
    try:
        return av.open(file, mode="r")
    except av.error.FFmpegError as e:
        reason = _ffmpeg_reason(e)
        raise AudioLoadError(name, f"FFmpeg cannot open it: not audio, or corrupt or truncated ({reason})") from e


def _check_wav_length(file: str | io.BytesIO, name: str) -> None:
    """A RIFF/WAVE file whose data chunk declares more bytes than the file holds is truncated.

    FFmpeg's wav demuxer sizes the stream from the file, not the header, so the header is read here.
    """
    if isinstance(file, io.BytesIO):
        head, total = file.getvalue()[:4096], len(file.getvalue())
    else:
        with open(file, "rb") as f:
            head = f.read(4096)
        total = os.path.getsize(file)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if chunk == b"data":
            available = total - (pos + 8)
            if size != 0xFFFFFFFF and size > available:  # 0xFFFFFFFF: size unknown (streamed wav)
                raise AudioLoadError(name, f"truncated: the wav header declares {size} data bytes, the file holds {available}")
            return
        pos += 8 + size + (size & 1)


def audio_stream_of(container: av.container.InputContainer, name: str, max_duration_s: float | None = None,
                    track: int | None = None, *, announce: bool = True) -> av.AudioStream:  # fmt: skip
    """The audio stream of an open container to read (see :func:`choose_audio_track`); ``AudioLoadError`` when there
    is none, when ``track`` does not exist, or when the container declares a duration longer than ``max_duration_s``
    (checked before anything is decoded).

    Args:
        track: the audio track, counted from 0 among the audio streams; None: the default-disposition track.
        announce: log which track is used when there are several (once per source: the callers that open a file
            again to read it block by block pass False).
    """
    if not container.streams.audio:
        fmt = container.format.name
        if container.streams.video and set(fmt.split(",")) & _VIDEO_CONTAINERS:
            raise AudioLoadError(name, "a video file with no audio track")
        raise AudioLoadError(name, f"not audio: FFmpeg reads it as {container.format.long_name or fmt} with no audio stream")
    stream = container.streams.audio[choose_audio_track(container.streams.audio, name, track, announce)]
    declared_s = _declared_duration_s(container, stream)
    if declared_s is not None:
        _check_max_duration(declared_s, name, max_duration_s)
    return stream


def choose_audio_track(streams, name: str, track: int | None = None, announce: bool = True) -> int:
    """The index, among ``streams`` (a container's audio streams), of the track to read: ``track`` when given, else
    the first one whose disposition is *default* (the track a player plays), else the first. With several tracks,
    logs one line saying which was used (when ``announce``).

    Raises:
        AudioLoadError: ``track`` is not the number of one of the audio tracks.
    """
    count = len(streams)
    if track is not None:
        if isinstance(track, bool) or not isinstance(track, int) or not 0 <= track < count:
            tracks = "one audio track (track 0)" if count == 1 else f"{count} audio tracks (0 to {count - 1})"
            raise AudioLoadError(name, f"there is no audio track {track!r}: it has {tracks}")
        index, why = track, "as asked"
    else:
        default = [i for i, s in enumerate(streams) if s.disposition & av.stream.Disposition.default]
        index, why = (default[0], "default") if default else (0, "the first; none is marked default")
    if count > 1 and announce:
        logger.warning("%s has %d audio tracks; using track %d (%s)", name, count, index, why)
    return index


def iter_audio_frames(container: av.container.InputContainer, stream: av.AudioStream, name: str):
    """Decode ``stream`` frame by frame: yields ``(sample_rate, samples float32 [C, n])``; ``AudioLoadError`` for
    undecodable data. Nothing is held between frames (:mod:`avdiff.audio.stream` reads long files this way)."""
    try:
        for frame in container.decode(stream):
            yield frame.sample_rate, _frame_to_array(frame)
    except av.error.FFmpegError as e:
        raise AudioLoadError(name, f"corrupt or truncated audio data ({_ffmpeg_reason(e)})") from e


def decoded_length(container: av.container.InputContainer, stream: av.AudioStream, name: str, decoded: int,
                   rate: int | None) -> int:  # fmt: skip
    """The number of samples a decoded stream holds once a block codec's padding past the declared end is dropped
    (see :func:`_trimmed_length`); ``AudioLoadError`` for no rate, no samples, or a truncated file (less than
    90 % of the declared duration)."""
    if not rate:
        raise AudioLoadError(name, "the audio stream declares no sample rate")
    if decoded == 0:
        raise AudioLoadError(name, "zero length: the audio stream decodes to no samples")
    declared_s = _declared_duration_s(container, stream)
    n = decoded
    if declared_s is not None:
        n = _trimmed_length(decoded, round(declared_s * rate), stream)
    if declared_s is not None and declared_s > 0.05 and n / rate < _TRUNCATION_TOLERANCE * declared_s:
        raise AudioLoadError(name, f"truncated: decoded {n / rate:.3f} s of a declared {declared_s:.3f} s")
    return n


def _trimmed_length(decoded: int, declared: int, stream: av.AudioStream) -> int:
    """The length without the silence a block codec appends past the declared end (AAC pads to 1024-sample packets).

    Only an overhang shorter than two codec packets is trimmed: longer ones mean the header is an estimate
    (e.g. a VBR mp3 without a Xing header), and then the decoded length is the truth.
    """
    packet = stream.codec_context.frame_size or 1024
    overhang = decoded - declared
    return declared if 0 < overhang < 2 * packet else decoded


_VIDEO_CONTAINERS = {"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "flv", "mpegts", "mpeg", "asf", "ogg", "gif"}


def _frame_to_array(frame: av.AudioFrame) -> np.ndarray:
    """One decoded audio frame -> float32 array [C, n], whatever its sample format."""
    arr = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        arr = arr.reshape(channels, -1)
    else:  # packed: samples interleaved in one row
        arr = arr.reshape(-1, channels).T
    kind = arr.dtype
    if kind == np.int16:
        arr = arr.astype(np.float32) / 32768.0
    elif kind == np.int32:
        arr = arr.astype(np.float32) / 2147483648.0
    elif kind == np.uint8:
        arr = (arr.astype(np.float32) - 128.0) / 128.0
    elif kind == np.int64:
        arr = arr.astype(np.float64) / 9223372036854775808.0
    return np.ascontiguousarray(arr, dtype=np.float32)


def _declared_duration_s(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _ffmpeg_reason(error: av.error.FFmpegError) -> str:
    return getattr(error, "strerror", None) or str(error)
