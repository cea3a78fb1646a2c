"""Log-mel features with parameters named in units, aligned to the frame clock.

``LogMel`` is a torch module (torchaudio's ``MelSpectrogram`` underneath), so it runs batched on whatever device its
input lives on. Its steps are centred on samples ``j * hop_length``, the convention :class:`FrameClock` uses, so
``LogMel.frame_windows`` gives each video frame the mel steps that belong to it (± context frames).
"""

from __future__ import annotations

import logging
import math

import torch
import torchaudio
from torch import nn

from avdiff.audio.clock import FrameClock

logger = logging.getLogger(__name__)


def seconds_to_samples(seconds: float, sample_rate: int, what: str) -> int:
    """Round a duration to whole samples; warn if that changes it by more than 1 %."""
    n = round(seconds * sample_rate)
    if n < 1:
        raise ValueError(f"{what}={seconds} s is under one sample at {sample_rate} Hz")
    if abs(n - seconds * sample_rate) > 0.01 * seconds * sample_rate:
        logger.warning("%s=%g s is %d samples at %d Hz (%.4f s)", what, seconds, n, sample_rate, n / sample_rate)
    return n


class LogMel(nn.Module):
    """Log-mel spectrogram: waveform [..., N] -> [..., n_mels, T], with ``T = N // hop_length + 1``.

    Args:
        sample_rate: input rate in Hz.
        n_mels: mel bands.
        win_s: analysis window in seconds (or give ``win_length`` in samples).
        hop_s: step between frames in seconds (or give ``hop_length`` in samples). For exact alignment with video,
            choose a hop that divides the samples per video frame (e.g. 10 ms = 160 samples at 16 kHz, 4 per
            frame at 25 fps).
        f_min_hz, f_max_hz: band edges in Hz (``f_max_hz=None`` is Nyquist).
        n_fft: FFT size; defaults to the next power of two at or above the window.
        log_floor: amplitude floor before the log (log(max(mel, floor))).
        win_length, hop_length: the same in samples; they take precedence over ``win_s``/``hop_s``.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 80,
        win_s: float = 0.025,
        hop_s: float = 0.01,
        f_min_hz: float = 55.0,
        f_max_hz: float | None = 7600.0,
        n_fft: int | None = None,
        log_floor: float = 1e-5,
        *,
        win_length: int | None = None,
        hop_length: int | None = None,
    ):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.win_length = win_length or seconds_to_samples(win_s, sample_rate, "win_s")
        self.hop_length = hop_length or seconds_to_samples(hop_s, sample_rate, "hop_s")
        self.n_fft = n_fft or 2 ** math.ceil(math.log2(self.win_length))
        self.n_mels = n_mels
        self.log_floor = log_floor
        if f_max_hz is not None and f_max_hz > sample_rate / 2:
            raise ValueError(f"f_max_hz={f_max_hz} is above Nyquist ({sample_rate / 2} Hz)")
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            win_length=self.win_length,
            hop_length=self.hop_length,
            f_min=f_min_hz,
            f_max=f_max_hz,
            n_mels=n_mels,
            power=2.0,
            center=True,
            pad_mode="reflect",
            norm="slaney",
            mel_scale="slaney",
        )

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        """[..., N] float waveform -> [..., n_mels, T] natural-log mel power."""
        mel = self.mel(samples.float())
        return torch.log(mel.clamp_min(self.log_floor))

    def num_steps(self, num_samples: int) -> int:
        """Mel steps T for ``num_samples`` samples."""
        return num_samples // self.hop_length + 1

    def frame_windows(
        self, mel: torch.Tensor, clock: FrameClock, context: int = 2, num_frames: int | None = None
    ) -> torch.Tensor:
        """Cut ``mel`` [..., n_mels, T] into per-video-frame windows [..., F, n_mels, W] with ±``context`` frames.

        The padding value is the log floor (silence), not zero.
        """
        if clock.sample_rate != self.sample_rate:
            raise ValueError(f"clock runs at {clock.sample_rate} Hz but the features at {self.sample_rate} Hz")
        if num_frames is None:
            num_frames = clock.num_frames((mel.shape[-1] - 1) * self.hop_length)
        floor = math.log(self.log_floor)
        windows = clock.windows(mel - floor, num_frames, context, self.hop_length) + floor  # [..., n_mels, F, W]
        return windows.movedim(-2, -3)


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def log_mel(
    samples: torch.Tensor,
    sample_rate: int,
    device: torch.device | str | None = None,
    **kwargs,
) -> torch.Tensor:
    """One-shot log-mel of a waveform or batch [..., N] on ``device`` (default: GPU when present).

    Keyword arguments go to :class:`LogMel`. Returns [..., n_mels, T] on that device.
    """
    device = torch.device(device) if device is not None else default_device()
    return LogMel(sample_rate, **kwargs).to(device)(samples.to(device))
