"""Load any audio source into a :class:`Waveform`.

Files and bytes are decoded with PyAV (FFmpeg), so every container FFmpeg reads works: wav, flac, ogg, mp3, m4a
and the audio track of mp4/mov/webm. Arrays are taken as they are. Resampling uses torchaudio.

Every failure raises :class:`AudioLoadError`, whose message names the source and the reason.

The PyAV container, stream and frame helpers (and :class:`AudioFrameEncoder`) are in :mod:`avdiff.audio.container`;
the public ones are re-exported here.
"""

from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import av
import numpy as np
import torch
import torchaudio.functional as AF

from avdiff.audio.container import (
    AudioFrameEncoder,  # noqa: F401  (re-exported: avdiff.video.writer imports it from here)
    AudioLoadError,
    _check_max_duration,
    audio_stream_of,
    decoded_length,
    encode_audio_frames,
    iter_audio_frames,
    open_container,
)

logger = logging.getLogger(__name__)

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

    def to_mono(self) -> "Waveform":
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

    def resample(self, sample_rate: int) -> "Waveform":
        """Resample every channel to ``sample_rate`` Hz with torchaudio's band-limited sinc interpolation."""
        if sample_rate == self.sample_rate:
            return self
        samples = AF.resample(self.samples, self.sample_rate, sample_rate)
        return Waveform(samples.contiguous(), sample_rate)

    def slice_s(self, start_s: float, end_s: float | None = None) -> "Waveform":
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
        logger.warning("the mean of the %d audio channels keeps %.1f dB of their energy (they cancel: opposite "
                       "phase); using channel %d, the loudest, as the mono signal", len(channel_energy), kept,
                       loudest)  # fmt: skip
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


def decode_audio_stream(container: av.container.InputContainer, name: str, max_duration_s: float | None = None,
                        track: int | None = None, *, announce: bool = True) -> Waveform:  # fmt: skip
    """Decode an audio stream of an open PyAV container into a float32 ``Waveform`` [C, N]: audio track ``track``
    (counted from 0 among the audio streams), or, when None, the one marked default (else the first).

    Raises ``AudioLoadError`` for a container without audio (or without track ``track``), undecodable packets, or
    data that stops well short of the duration the container declares (a truncated file). ``announce``: log which
    track is read when there are several.
    """
    stream = audio_stream_of(container, name, max_duration_s, track, announce=announce)
    chunks: list[np.ndarray] = []
    rate = stream.codec_context.sample_rate or stream.rate
    for rate, chunk in iter_audio_frames(container, stream, name):
        chunks.append(chunk)
    samples = torch.from_numpy(np.concatenate(chunks, axis=1)) if chunks else torch.zeros(0, 0)
    n = decoded_length(container, stream, name, samples.shape[1], rate)
    return Waveform(samples[:, :n], int(rate))
