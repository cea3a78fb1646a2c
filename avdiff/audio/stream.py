"""Audio read block by block: a long song is analysed and muxed without ever being held whole.

:class:`AudioStream` wraps any audio source :func:`avdiff.audio.io.load_audio` takes. It checks the source when it is
made, with exactly the errors ``load_audio`` raises (a missing, corrupt, truncated, empty, NaN-holding or too long
source is an :class:`~avdiff.audio.io.AudioLoadError` before any work), and measures what a mono downmix needs (the
energy of each channel and of their average, for the opposite-phase rule of :meth:`Waveform.to_mono`). Then
:meth:`AudioStream.blocks` reads it again as often as needed, one block at a time: a file is decoded frame by frame,
downmixed and resampled (soxr, streamed: the blocks join into exactly what resampling the whole gives) as it goes.
A 10-minute song at 44.1 kHz stereo is 212 MB as float32; read this way it costs one block (a few hundred kB).

In-memory sources (a Waveform, an array, bytes) are the caller's already; their blocks are views or small copies.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avdiff.audio.io import (
    AudioLoadError,
    AudioSource,
    Waveform,
    _check_max_duration,
    audio_stream_of,
    decoded_length,
    describe_source,
    iter_audio_frames,
    load_audio,
    mono_channel,
    open_container,
)

logger = logging.getLogger(__name__)

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
