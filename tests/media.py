"""Helpers that write small media files for the tests, with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from avdiff.audio.io import Waveform, encode_audio_frames

# container -> (format, video codec, audio codec, audio sample format)
CONTAINERS = {
    "mp4": ("mp4", "libx264", "aac", "fltp"),
    "mov": ("mov", "libx264", "aac", "fltp"),
    "webm": ("webm", "libvpx", "libopus", "flt"),
}


def write_av_file(path: Path, audio: Waveform, fps: int = 25, size: int = 32) -> Path:
    """A video of gray frames with ``audio`` as its track, in the container named by the suffix."""
    fmt, vcodec, acodec, sample_fmt = CONTAINERS[path.suffix[1:]]
    num_frames = int(round(audio.duration_s * fps))
    with av.open(str(path), "w", format=fmt) as out:
        v = out.add_stream(vcodec, rate=fps)
        v.width = v.height = size
        v.pix_fmt = "yuv420p"
        a = out.add_stream(acodec, rate=audio.sample_rate, layout="mono")
        frame = np.full((size, size, 3), 128, np.uint8)
        for _ in range(num_frames):
            out.mux(v.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(v.encode(None))
        encode_audio_frames(out, a, audio.samples.numpy(), audio.sample_rate, "mono", sample_fmt)
    return path


def riff_wav(samples: np.ndarray, sample_rate: int, fmt_code: int = 3) -> bytes:
    """A float32 (fmt_code 3) mono wav as bytes, written by hand so NaNs and odd headers are possible."""
    data = samples.astype("<f4").tobytes()
    fmt = (fmt_code).to_bytes(2, "little") + (1).to_bytes(2, "little") + sample_rate.to_bytes(4, "little")
    fmt += (sample_rate * 4).to_bytes(4, "little") + (4).to_bytes(2, "little") + (32).to_bytes(2, "little")
    body = b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt + b"data" + len(data).to_bytes(4, "little") + data
    return b"RIFF" + len(body).to_bytes(4, "little") + body


__all__ = ["CONTAINERS", "Fraction", "riff_wav", "write_av_file"]


def bursts(seconds: float, seed: int) -> Waveform:
    """Speech-like noise bursts (syllable-like loudness at 3 + seed Hz), 16 kHz mono, seeded."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * 16000)) / 16000
    envelope = np.clip(np.sin(2 * np.pi * (3 + seed) * t), 0, None) ** 2
    return Waveform(torch.from_numpy((0.3 * envelope * rng.standard_normal(len(t)))[None].astype(np.float32)), 16000)
