"""Load any audio source into a :class:`Waveform`, save one, and the PyAV (FFmpeg) audio I/O under both.

Files and bytes are decoded with PyAV (FFmpeg), so every container FFmpeg reads works: wav, flac, ogg, mp3, m4a
and the audio track of mp4/mov/webm. Arrays are taken as they are. Resampling uses torchaudio.

Every failure raises :class:`AudioLoadError`, whose message names the source and the reason. A long source is read
block by block by :class:`AudioStream` (below).

The low-level parts are here too, for the streaming reader (:class:`AudioStream`) and the video reader and writer:
opening a container, choosing its audio track (:func:`audio_stream_of`: the one asked for, else the one marked
default, else the first), decoding it frame by frame, and encoding float samples into an output stream
(:class:`AudioFrameEncoder`).

Audio read block by block: a long song is analysed and muxed without ever being held whole. :class:`AudioStream` wraps
any audio source :func:`load_audio` takes. It checks the source when it is
made, with exactly the errors ``load_audio`` raises (a missing, corrupt, truncated, empty, NaN-holding or too long
source is an :class:`AudioLoadError` before any work), and measures what a mono downmix needs (the
energy of each channel and of their average, for the opposite-phase rule of :meth:`Waveform.to_mono`). Then
:meth:`AudioStream.blocks` reads it again as often as needed, one block at a time: a file is decoded frame by frame,
downmixed and resampled (soxr, streamed: the blocks join into exactly what resampling the whole gives) as it goes.
A 10-minute song at 44.1 kHz stereo is 212 MB as float32; read this way it costs one block (a few hundred kB).

In-memory sources (a Waveform, an array, bytes) are the caller's already; their blocks are views or small copies.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Union

import av
import numpy as np
import torch
import torchaudio.functional as AF

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


def encode_audio_frames(
    out, stream, samples: np.ndarray, sample_rate: int, layout: str, sample_fmt: str = "fltp"
) -> None:
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
        self.out, self.stream, self.sample_rate, self.layout, self.sample_fmt = (
            out,
            stream,
            sample_rate,
            layout,
            sample_fmt,
        )
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
                raise AudioLoadError(
                    name, f"truncated: the wav header declares {size} data bytes, the file holds {available}"
                )
            return
        pos += 8 + size + (size & 1)


def audio_stream_of(
    container: av.container.InputContainer,
    name: str,
    max_duration_s: float | None = None,
    track: int | None = None,
    *,
    announce: bool = True,
) -> av.AudioStream:
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
        raise AudioLoadError(
            name, f"not audio: FFmpeg reads it as {container.format.long_name or fmt} with no audio stream"
        )
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
    undecodable data. Nothing is held between frames (:class:`AudioStream` reads long files this way)."""
    try:
        for frame in container.decode(stream):
            yield frame.sample_rate, _frame_to_array(frame)
    except av.error.FFmpegError as e:
        raise AudioLoadError(name, f"corrupt or truncated audio data ({_ffmpeg_reason(e)})") from e


def decoded_length(
    container: av.container.InputContainer, stream: av.AudioStream, name: str, decoded: int, rate: int | None
) -> int:
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


_VIDEO_CONTAINERS = {
    "mov",
    "mp4",
    "m4a",
    "3gp",
    "3g2",
    "mj2",
    "matroska",
    "webm",
    "avi",
    "flv",
    "mpegts",
    "mpeg",
    "asf",
    "ogg",
    "gif",
}


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


AudioSource = Union[str, os.PathLike, bytes, bytearray, np.ndarray, torch.Tensor, "Waveform"]

# A mono downmix whose energy falls this far below the channels' mean energy has cancelled (opposite phase).
MONO_CANCEL_DB = -20.0


@dataclass
class Waveform:
    """Audio samples and their rate.

    Attributes:
        samples: float32 tensor [C, N], nominally in [-1, 1].
        sample_rate: samples per second per channel (Hz).
    """

    samples: torch.Tensor
    sample_rate: int

    def __post_init__(self):
        if not isinstance(self.samples, torch.Tensor):  # numpy arrays and lists are taken as they are
            self.samples = torch.as_tensor(np.asarray(self.samples, dtype=np.float32))
        if self.samples.ndim == 1:
            self.samples = self.samples.unsqueeze(0)
        self.sample_rate = int(self.sample_rate)

    @property
    def num_channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[-1])

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate

    def to_mono(self) -> Waveform:
        """Average the channels: [C, N] -> [1, N].

        When the average loses almost all of the channels' energy (its energy is more than
        :data:`MONO_CANCEL_DB` below the mean channel energy: channels in opposite phase, as a wrongly wired
        microphone or a phase-inverted stereo track gives), the loudest channel is taken instead, with a warning. A
        stereo recording of any ordinary kind loses at most ~3 dB (two unrelated channels) and is averaged.
        """
        if self.num_channels == 1:
            return self
        mix = self.samples.mean(dim=0, keepdim=True)
        channel_energy = self.samples.double().pow(2).mean(dim=1)  # [C]
        loudest = mono_channel(channel_energy.tolist(), float(mix.double().pow(2).mean()))
        if loudest is not None:
            return Waveform(self.samples[loudest : loudest + 1].clone(), self.sample_rate)
        return Waveform(mix, self.sample_rate)

    def resample(self, sample_rate: int) -> Waveform:
        """Resample every channel to ``sample_rate`` Hz with torchaudio's band-limited sinc interpolation."""
        if sample_rate == self.sample_rate:
            return self
        samples = AF.resample(self.samples, self.sample_rate, sample_rate)
        return Waveform(samples.contiguous(), sample_rate)

    def slice_s(self, start_s: float, end_s: float | None = None) -> Waveform:
        """The part from ``start_s`` to ``end_s`` seconds (sample-exact: floor of time × rate)."""
        start = max(0, int(math.floor(start_s * self.sample_rate)))
        stop = self.num_samples if end_s is None else int(math.floor(end_s * self.sample_rate))
        return Waveform(self.samples[:, start:stop], self.sample_rate)


def mono_channel(channel_energy: list[float], mix_energy: float) -> int | None:
    """The mono rule of :meth:`Waveform.to_mono`, from energies: None to average the channels, or the index of the
    loudest channel when the average keeps less than :data:`MONO_CANCEL_DB` of the channels' mean energy (they cancel),
    with a warning.

    Args:
        channel_energy: the mean square of each channel [C].
        mix_energy: the mean square of the channels' average.
    """
    if len(channel_energy) < 2:
        return None
    mean_energy = float(np.mean(channel_energy))
    if mean_energy > 0 and mix_energy < mean_energy * 10 ** (MONO_CANCEL_DB / 10):
        loudest = int(np.argmax(channel_energy))
        kept = 10 * math.log10(max(mix_energy, 1e-30) / mean_energy)
        logger.warning(
            "the mean of the %d audio channels keeps %.1f dB of their energy (they cancel: opposite "
            "phase); using channel %d, the loudest, as the mono signal",
            len(channel_energy),
            kept,
            loudest,
        )
        return loudest
    return None


# Encoder per file extension for save_audio: (container format, codec, sample format).
_WRITERS = {
    ".wav": ("wav", "pcm_s16le", "s16"),
    ".flac": ("flac", "flac", "s16"),
    ".mp3": ("mp3", "libmp3lame", "fltp"),
    ".ogg": ("ogg", "libopus", "flt"),
    ".opus": ("ogg", "libopus", "flt"),
    ".m4a": ("ipod", "aac", "fltp"),
}


def save_audio(path: str | os.PathLike, waveform: Waveform, *, bitrate: int = 192_000) -> Path:
    """Encode ``waveform`` (mono or stereo) to wav, flac, mp3, ogg/opus or m4a by the file's extension.

    Opus only takes 8/12/16/24/48 kHz; other rates are resampled to 48 kHz. Written atomically (temp + rename).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _WRITERS:
        raise ValueError(f"cannot write audio as {suffix!r}; use one of {sorted(_WRITERS)}")
    fmt, codec, sample_fmt = _WRITERS[suffix]
    if codec == "libopus" and waveform.sample_rate not in (8000, 12000, 16000, 24000, 48000):
        waveform = waveform.resample(48000)
    if waveform.num_channels > 2:
        waveform = waveform.to_mono()
    layout = "mono" if waveform.num_channels == 1 else "stereo"
    samples = waveform.samples.clamp(-1, 1).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        options = {"movflags": "+faststart"} if fmt == "ipod" else {}  # m4a: the index before the data, as in mp4s
        with av.open(str(tmp), mode="w", format=fmt, options=options) as out:
            stream = out.add_stream(codec, rate=waveform.sample_rate, layout=layout)
            if codec not in ("pcm_s16le", "flac"):
                stream.bit_rate = bitrate
            encode_audio_frames(out, stream, samples, waveform.sample_rate, layout, sample_fmt)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def describe_source(source: object) -> str:
    """A short human-readable name for an audio source, used in error messages."""
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    if isinstance(source, (bytes, bytearray)):
        return f"<bytes: {len(source)}>"
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return f"<array: shape {tuple(source.shape)}>"
    if isinstance(source, Waveform):
        return f"<Waveform: {source.num_channels}x{source.num_samples} @ {source.sample_rate} Hz>"
    return f"<{type(source).__name__}>"


def load_audio(
    source: AudioSource,
    sample_rate: int | None = None,
    mono: bool = True,
    max_duration_s: float | None = None,
    *,
    source_sample_rate: int | None = None,
    audio_track: int | None = None,
) -> Waveform:
    """Load audio from a path, raw bytes, an array or a :class:`Waveform`.

    Args:
        source: a file path (any container FFmpeg reads; of several audio tracks, the one marked default), the bytes
            of such a file, a float array [N] or [C, N] (numpy or torch; give ``source_sample_rate``), or a
            ``Waveform``.
        sample_rate: resample to this rate in Hz. ``None`` keeps the source's rate.
        mono: average the channels into one (the loudest channel instead when they cancel; see
            :meth:`Waveform.to_mono`).
        max_duration_s: refuse sources longer than this many seconds (checked before decoding where the container
            declares a duration, so a huge file is not decoded only to be refused).
        source_sample_rate: the rate of an array source, in Hz. Required for arrays, ignored otherwise.
        audio_track: for a file or bytes, the audio track to read, counted from 0 among its audio tracks (None: the
            one marked default, else the first; a file with several logs which one it used). Ignored for arrays.

    Returns:
        A ``Waveform`` with float32 samples [C, N] (C = 1 when ``mono``).

    Raises:
        AudioLoadError: missing file, not audio (or a video without an audio track), corrupt or truncated data,
            zero length, NaN/Inf samples, longer than ``max_duration_s``, or no audio track ``audio_track``.
    """
    name = describe_source(source)
    if sample_rate is not None and sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    if isinstance(source, Waveform):
        wav = Waveform(_as_float_tensor(source.samples, name), source.sample_rate)
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        if source_sample_rate is None or source_sample_rate <= 0:
            raise AudioLoadError(name, "an array source needs source_sample_rate (Hz)")
        wav = Waveform(_as_float_tensor(source, name), int(source_sample_rate))
    elif isinstance(source, (bytes, bytearray)):
        wav = _decode(io.BytesIO(bytes(source)), name, max_duration_s, audio_track)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise AudioLoadError(name, "no such file")
        if path.is_dir():
            raise AudioLoadError(name, "is a directory, not an audio file")
        wav = _decode(str(path), name, max_duration_s, audio_track)
    else:
        raise AudioLoadError(name, "unsupported source type; give a path, bytes, an array or a Waveform")

    _validate(wav, name, max_duration_s)
    if mono and wav.num_channels > 1:
        wav = wav.to_mono()
    if sample_rate is not None:
        wav = wav.resample(int(sample_rate))
    logger.debug("loaded %s: %d ch, %.3f s @ %d Hz", name, wav.num_channels, wav.duration_s, wav.sample_rate)
    return wav


def _as_float_tensor(array: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """Array [N] or [C, N] -> float32 tensor [C, N]. Integer PCM is scaled to [-1, 1]."""
    t = torch.as_tensor(np.asarray(array) if isinstance(array, np.ndarray) else array).detach().cpu()
    if t.ndim == 1:
        t = t.unsqueeze(0)
    if t.ndim != 2:
        raise AudioLoadError(name, f"expected an array of shape [N] or [C, N], got {tuple(t.shape)}")
    if t.shape[0] > t.shape[1] and 0 < t.shape[1] <= 8:
        raise AudioLoadError(name, f"shape {tuple(t.shape)} looks like [N, C]; transpose it to [C, N]")
    if not (t.is_floating_point() or t.dtype in (torch.int16, torch.int32, torch.uint8)):
        raise AudioLoadError(name, f"unsupported sample dtype {t.dtype}")
    if t.dtype == torch.int16:
        t = t.float() / 32768.0
    elif t.dtype == torch.int32:
        t = t.float() / 2147483648.0
    elif t.dtype == torch.uint8:
        t = (t.float() - 128.0) / 128.0
    return t.to(torch.float32).contiguous()


def _validate(wav: Waveform, name: str, max_duration_s: float | None) -> None:
    if wav.num_samples == 0:
        raise AudioLoadError(name, "zero length: no samples")
    if not torch.isfinite(wav.samples).all():
        bad = int((~torch.isfinite(wav.samples)).sum())
        raise AudioLoadError(name, f"{bad} samples are NaN or Inf")
    _check_max_duration(wav.duration_s, name, max_duration_s)


def _decode(file: str | io.BytesIO, name: str, max_duration_s: float | None, track: int | None = None) -> Waveform:
    """Decode an audio stream of a container with PyAV (``track``, or the default one)."""
    with open_container(file, name) as container:
        return decode_audio_stream(container, name, max_duration_s, track)


def decode_audio_stream(
    container: av.container.InputContainer,
    name: str,
    max_duration_s: float | None = None,
    track: int | None = None,
    *,
    announce: bool = True,
) -> Waveform:
    """Decode an audio stream of an open PyAV container into a float32 ``Waveform`` [C, N]: audio track ``track``
    (counted from 0 among the audio streams), or, when None, the one marked default (else the first).

    Raises ``AudioLoadError`` for a container without audio (or without track ``track``), undecodable packets, or
    data that stops well short of the duration the container declares (a truncated file). ``announce``: log which
    track is read when there are several.
    """
    stream = audio_stream_of(container, name, max_duration_s, track, announce=announce)
    chunks: list[np.ndarray] = []
    rate = stream.codec_context.sample_rate or stream.rate
    # the last frame's rate is the one used after the loop
    for rate, chunk in iter_audio_frames(container, stream, name):  # noqa: B007
        chunks.append(chunk)
    samples = torch.from_numpy(np.concatenate(chunks, axis=1)) if chunks else torch.zeros(0, 0)
    n = decoded_length(container, stream, name, samples.shape[1], rate)
    return Waveform(samples[:, :n], int(rate))


# --- audio read block by block (the module docstring) ----------------------------------------------------------------


BLOCK_SAMPLES = 1 << 16  # samples per block at the source's rate: 1.5 s at 44.1 kHz


@dataclass(frozen=True)
class AudioInfo:
    """What a scan of an audio source found.

    Attributes:
        sample_rate: Hz.
        num_channels: C.
        num_samples: N per channel (a block codec's padding past the declared end dropped, as ``load_audio`` does).
        channel_energy: the mean square of each channel, [C].
        mix_energy: the mean square of the channels' average.
    """

    sample_rate: int
    num_channels: int
    num_samples: int
    channel_energy: tuple[float, ...]
    mix_energy: float

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate


class AudioStream:
    """An audio source, checked once and read block by block as often as needed.

    Args:
        source: a path, bytes, a float array [N] or [C, N] (with ``source_sample_rate``), a ``Waveform``, or another
            ``AudioStream`` (shared, not scanned again).
        max_duration_s: refuse longer sources.
        source_sample_rate: the rate of an array source, Hz.
        audio_track: for a file or bytes, the audio track to read, counted from 0 (None: the one marked default, else
            the first; a source with several logs which one it used, once).

    Raises:
        AudioLoadError: as :func:`~avdiff.audio.io.load_audio` raises it, naming the source and the reason.

    Example::

        song = AudioStream("song.flac")                 # scanned: checked, measured; nothing held
        for block in song.blocks(sample_rate=22050, mono=True):
            ...                                          # float32 [1, n]
    """

    def __init__(
        self,
        source: AudioSource | AudioStream,
        *,
        max_duration_s: float | None = None,
        source_sample_rate: int | None = None,
        audio_track: int | None = None,
    ):
        if isinstance(source, AudioStream):
            self.name, self._file, self._waveform, self.info = source.name, source._file, source._waveform, source.info
            self._track = source._track
            if hasattr(source, "_mono"):
                self._mono = source._mono
            _check_max_duration(self.info.duration_s, self.name, max_duration_s)
            return
        self.name = describe_source(source)
        self._file: str | bytes | None = None
        self._waveform: Waveform | None = None
        self._track = audio_track
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.exists():
                raise AudioLoadError(self.name, "no such file")
            if path.is_dir():
                raise AudioLoadError(self.name, "is a directory, not an audio file")
            self._file = str(path)
        elif isinstance(source, (bytes, bytearray)):
            self._file = bytes(source)
        else:
            self._waveform = load_audio(
                source, mono=False, max_duration_s=max_duration_s, source_sample_rate=source_sample_rate
            )
        self.info = self._scan(max_duration_s)

    @property
    def path(self) -> str | None:
        """The file it reads, or None for an in-memory source."""
        return self._file if isinstance(self._file, str) else None

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate

    @property
    def num_channels(self) -> int:
        return self.info.num_channels

    @property
    def num_samples(self) -> int:
        return self.info.num_samples

    @property
    def duration_s(self) -> float:
        return self.info.duration_s

    def __repr__(self) -> str:
        i = self.info
        return f"AudioStream({self.name}: {i.num_channels} ch, {i.duration_s:.3f} s @ {i.sample_rate} Hz)"

    # --- reading ------------------------------------------------------------------------------------------------

    def blocks(
        self, sample_rate: int | None = None, mono: bool = False, block_samples: int = BLOCK_SAMPLES
    ) -> Iterator[np.ndarray]:
        """The samples, block by block: float32 [C, n] (C = 1 with ``mono``), in order, ``n <= block_samples`` at the
        source's rate (resampled blocks vary a little around that).

        Args:
            sample_rate: resample to this rate (soxr HQ, streamed; the total is ``round(N * rate / source_rate)``
                samples); None keeps the source's rate.
            mono: the channels' average, or the loudest channel when they cancel (:meth:`Waveform.to_mono`'s rule).
            block_samples: samples per block at the source's rate.
        """
        if block_samples < 1:
            raise ValueError(f"block_samples must be >= 1, got {block_samples}")
        raw = self._raw_blocks(block_samples)
        if mono and self.num_channels > 1:
            channel = self.mono_channel()
            raw = (b[channel : channel + 1] if channel is not None else b.mean(axis=0, keepdims=True) for b in raw)
        if sample_rate is None or int(sample_rate) == self.sample_rate:
            yield from (np.ascontiguousarray(b, dtype=np.float32) for b in raw)
            return
        import soxr

        channels = 1 if mono else self.num_channels
        resampler = soxr.ResampleStream(self.sample_rate, int(sample_rate), channels, dtype="float32", quality="HQ")
        pending = next(raw, None)
        while pending is not None:
            following = next(raw, None)
            out = resampler.resample_chunk(np.ascontiguousarray(pending.T, dtype=np.float32), last=following is None)
            if len(out):
                yield np.ascontiguousarray(out.T)
            pending = following

    def load(self, sample_rate: int | None = None, mono: bool = False) -> Waveform:
        """The whole source as a Waveform (what ``load_audio`` gives; resampled blocks with soxr)."""
        if self._waveform is not None and sample_rate in (None, self.sample_rate):
            return self._waveform.to_mono() if mono else self._waveform
        parts = list(self.blocks(sample_rate=sample_rate, mono=mono))
        rate = self.sample_rate if sample_rate is None else int(sample_rate)
        return Waveform(torch.from_numpy(np.concatenate(parts, axis=1)), rate)

    def mono_channel(self) -> int | None:
        """None when the mono downmix averages the channels; the loudest channel's index when they cancel."""
        if not hasattr(self, "_mono"):  # decided (and warned about) once per source
            self._mono = mono_channel(list(self.info.channel_energy), self.info.mix_energy)
        return self._mono

    # --- internals ----------------------------------------------------------------------------------------------

    def _raw_blocks(self, block_samples: int) -> Iterator[np.ndarray]:
        """Blocks [C, n] at the source's rate, exactly ``num_samples`` in all."""
        if self._waveform is not None:
            x = self._waveform.samples
            for start in range(0, self.num_samples, block_samples):
                yield x[:, start : start + block_samples].numpy()
            return
        remaining = self.num_samples
        pending: list[np.ndarray] = []
        count = 0
        with self._open() as (container, stream):
            for _, chunk in iter_audio_frames(container, stream, self.name):
                chunk = chunk[:, :remaining]
                remaining -= chunk.shape[1]
                pending.append(chunk)
                count += chunk.shape[1]
                while count >= block_samples:
                    joined = np.concatenate(pending, axis=1)
                    yield joined[:, :block_samples]
                    pending, count = [joined[:, block_samples:]], joined.shape[1] - block_samples
                if remaining <= 0:
                    break
        if count:
            yield np.concatenate(pending, axis=1)

    def _open(self):
        source = self._file if isinstance(self._file, str) else io.BytesIO(self._file)
        container = open_container(source, self.name)
        return _Opened(container, audio_stream_of(container, self.name, track=self._track, announce=False))

    def _scan(self, max_duration_s: float | None) -> AudioInfo:
        if self._waveform is not None:  # measured block by block: a float64 copy of a long song would be large
            x = self._waveform.samples
            sums, mix = np.zeros(x.shape[0]), 0.0
            for start in range(0, x.shape[1], BLOCK_SAMPLES):
                block = x[:, start : start + BLOCK_SAMPLES].double()
                sums += block.pow(2).sum(dim=1).numpy()
                mix += float(block.mean(dim=0).pow(2).sum())
            n = x.shape[1]
            energy = tuple(float(v) / n for v in sums)
            return AudioInfo(
                self._waveform.sample_rate, x.shape[0], n, energy, mix / n if x.shape[0] > 1 else energy[0]
            )
        source = self._file if isinstance(self._file, str) else io.BytesIO(self._file)
        container = open_container(source, self.name)
        with container:
            stream = audio_stream_of(container, self.name, max_duration_s, self._track)
            rate = stream.codec_context.sample_rate or stream.rate
            sums = mix = 0.0
            decoded = bad = 0
            channels = None
            # the last frame's rate is the one used after the loop
            for rate, chunk in iter_audio_frames(container, stream, self.name):  # noqa: B007
                finite = np.isfinite(chunk)
                if not finite.all():
                    bad += int((~finite).sum())
                    chunk = np.where(finite, chunk, 0.0)
                c64 = chunk.astype(np.float64)
                sums = sums + (c64 * c64).sum(axis=1)
                mix += float((c64.mean(axis=0) ** 2).sum())
                decoded += chunk.shape[1]
                channels = chunk.shape[0]
            n = decoded_length(container, stream, self.name, decoded, rate)
        if bad:
            raise AudioLoadError(self.name, f"{bad} samples are NaN or Inf")
        _check_max_duration(n / rate, self.name, max_duration_s)
        energy = tuple(float(s) / n for s in np.atleast_1d(sums))
        return AudioInfo(int(rate), int(channels), int(n), energy, mix / n if channels > 1 else energy[0])


class _Opened:
    """``with _Opened(container, stream) as (container, stream)``: closes the container on the way out."""

    def __init__(self, container, stream):
        self.container, self.stream = container, stream

    def __enter__(self):
        return self.container, self.stream

    def __exit__(self, *exc) -> None:
        self.container.close()


def as_stream(source: AudioSource | AudioStream, max_duration_s: float | None = None) -> AudioStream:
    """``source`` as an :class:`AudioStream` (an AudioStream is returned as it is)."""
    if isinstance(source, AudioStream):
        if max_duration_s is not None:
            _check_max_duration(source.duration_s, source.name, max_duration_s)
        return source
    return AudioStream(source, max_duration_s=max_duration_s)
