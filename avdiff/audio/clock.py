"""The frame clock: the one place where audio samples meet video frames.

Every pipeline and dataset asks a :class:`FrameClock` which audio samples, or which feature steps, belong to video
frame ``i``. All arithmetic is on integers and exact fractions, so a clock at 30000/1001 fps and 48 kHz is exact to
the sample after an hour (a float accumulator drifts by whole samples; stable-diffusion-videos #75 is this bug).

Conventions:
    * Frame ``i`` covers the half-open sample range ``[floor(i * sr / fps), floor((i + 1) * sr / fps))``. The
      ranges of consecutive frames tile the sample axis with no gap and no overlap.
    * A feature computed with hop ``h`` samples and centred windows (torchaudio's and librosa's ``center=True``)
      has its step ``j`` centred on sample ``j * h``. Step ``j`` belongs to the frame that contains sample ``j * h``.
    * ``num_frames(n)`` is the number of frames needed to show ``n`` samples: ``ceil(n * fps / sr)``. The last
      frame may be partly past the end of the audio; windows are padded there.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from typing import Literal

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

FpsLike = int | float | str | Fraction


def as_fraction_fps(fps: FpsLike) -> Fraction:
    """Turn 25, 29.97, "30000/1001" or Fraction(30000, 1001) into an exact Fraction.

    Floats that are NTSC rates to 3 decimals (23.976, 29.97, 59.94, 119.88) become their exact x/1001 forms.
    """
    if isinstance(fps, Fraction):
        value = fps
    elif isinstance(fps, str):
        value = Fraction(fps.strip())
    elif isinstance(fps, int):
        value = Fraction(fps)
    elif isinstance(fps, float):
        if not math.isfinite(fps):
            raise ValueError(f"fps must be finite, got {fps!r}")
        ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
        is_ntsc = fps != round(fps) and ntsc > 0 and abs(float(ntsc) - fps) < 5e-3
        value = ntsc if is_ntsc else Fraction(fps).limit_denominator(1001)
    else:
        raise TypeError(f"fps must be a number, a 'num/den' string or a Fraction, got {type(fps).__name__}")
    if value <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return value


MIN_FPS, MAX_FPS = 1, 120  # the frame rates video is made at: from 1 fps slideshows to 120 fps slow motion


def parse_fps(value: FpsLike, name: str = "fps") -> Fraction:
    """A frame rate given by a user (``25``, ``29.97``, ``"30000/1001"``, ``"25"``), checked: an exact Fraction in
    ``[MIN_FPS, MAX_FPS]`` (1 to 120 frames per second).

    Strings without a slash are read as numbers, so ``"29.97"`` is NTSC's 30000/1001 as :func:`as_fraction_fps` makes
    it. The range is checked here, at the interface, before any work: 1e9 fps would allocate billions of frames.

    Raises:
        ValueError: naming ``name`` and the value as given: not a number (``"abc"``, ``"1/0"``, NaN) or out of range.
    """
    given = value
    try:
        if isinstance(value, str) and "/" not in value:
            value = float(value)
        if isinstance(value, (int, float)) and math.isfinite(value) and not MIN_FPS <= value <= MAX_FPS:
            raise OverflowError  # out of range: reported below, before any conversion
        fps = as_fraction_fps(value)
    except OverflowError:
        fps = None
    except (TypeError, ValueError, ZeroDivisionError) as e:
        raise ValueError(f"{name} must be a frame rate such as 25, 29.97 or 30000/1001, got {given!r}") from e
    if fps is None or not MIN_FPS <= fps <= MAX_FPS:
        raise ValueError(f"{name} must be between {MIN_FPS} and {MAX_FPS} frames per second, got {given!r}")
    return fps


class FrameClock:
    """Maps video frames at ``fps`` to audio samples at ``sample_rate`` Hz, exactly.

    Args:
        fps: frames per second, an int, a float, a ``"num/den"`` string or a ``Fraction`` (30000/1001 is exact).
        sample_rate: audio samples per second (Hz).
    """

    def __init__(self, fps: FpsLike, sample_rate: int):
        if int(sample_rate) != sample_rate or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer number of Hz, got {sample_rate!r}")
        self.fps = as_fraction_fps(fps)
        self.sample_rate = int(sample_rate)
        # samples per frame = sr / fps = _num / _den, kept as integers for exact floor division.
        ratio = Fraction(self.sample_rate) / self.fps
        self._num, self._den = ratio.numerator, ratio.denominator

    def __repr__(self) -> str:
        return f"FrameClock(fps={self.fps}, sample_rate={self.sample_rate})"

    @property
    def samples_per_frame(self) -> Fraction:
        """Exact audio samples per video frame (e.g. 640 at 25 fps and 16 kHz, 8008/5 at 29.97 fps and 48 kHz)."""
        return Fraction(self._num, self._den)

    # --- frames and samples -------------------------------------------------------------------------------------

    def frame_start(self, i: int) -> int:
        """First sample of frame ``i`` (``i`` may be negative or past the end; no clamping)."""
        return (i * self._num) // self._den

    def sample_range(self, i: int) -> tuple[int, int]:
        """Half-open sample range ``(start, stop)`` of frame ``i``."""
        return self.frame_start(i), self.frame_start(i + 1)

    def num_frames(self, num_samples: int) -> int:
        """Frames needed to cover ``num_samples`` samples: ``ceil(num_samples * fps / sample_rate)``."""
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        return -((-num_samples * self._den) // self._num)

    def num_samples(self, num_frames: int) -> int:
        """Samples spanned by ``num_frames`` frames (the start of frame ``num_frames``)."""
        return self.frame_start(num_frames)

    def frame_of_sample(self, n: int) -> int:
        """The frame that contains sample ``n``: the last ``i`` with ``frame_start(i) <= n``.

        That is ``ceil((n + 1) * fps / sr) - 1``, not ``floor(n * fps / sr)``: when a frame is not a whole number of
        samples the two differ at frame starts (at 30000/1001 fps and 16 kHz, sample 5338 starts frame 10, and the
        floor says 9).
        """
        return -((-(n + 1) * self._den) // self._num) - 1

    def frame_of_time(self, t_s: float) -> int:
        """The frame shown at time ``t_s`` seconds."""
        return math.floor(Fraction(t_s) * self.fps)

    def frame_times_s(self, num_frames: int) -> torch.Tensor:
        """Start time of each frame in seconds, float64 [F]."""
        return torch.arange(num_frames, dtype=torch.float64) * float(1 / self.fps)

    # --- frames and feature steps -------------------------------------------------------------------------------

    def step_starts(self, num_frames: int, hop_length: int = 1, first_frame: int = 0) -> torch.Tensor:
        """First feature step of each frame, int64 [num_frames + 1] (the last entry ends the last frame).

        Step ``j`` (centred on sample ``j * hop_length``) belongs to frame ``i`` when
        ``frame_start(i) <= j * hop_length < frame_start(i + 1)``, so frame ``i`` owns steps
        ``[ceil(frame_start(i) / hop), ceil(frame_start(i + 1) / hop))``. With ``hop_length=1`` these are samples.
        """
        if hop_length < 1 or int(hop_length) != hop_length:
            raise ValueError(f"hop_length must be a positive integer number of samples, got {hop_length!r}")
        i = torch.arange(first_frame, first_frame + num_frames + 1, dtype=torch.int64)
        starts = torch.div(i * self._num, self._den, rounding_mode="floor")
        return -torch.div(-starts, int(hop_length), rounding_mode="floor")  # ceil division

    def step_range(self, i: int, hop_length: int = 1) -> tuple[int, int]:
        """Half-open range of feature steps (hop ``hop_length`` samples) that belong to frame ``i``."""
        start, stop = self.sample_range(i)
        return -(-start // hop_length), -(-stop // hop_length)

    def window_length(self, context: int = 0, hop_length: int = 1) -> int:
        """Fixed number of steps in a frame window with ``context`` frames on each side.

        ``ceil((2 * context + 1) * samples_per_frame / hop_length)``: every window covers its frames fully.
        """
        return math.ceil((2 * context + 1) * self.samples_per_frame / hop_length)

    def windows(
        self,
        x: torch.Tensor,
        num_frames: int | None = None,
        context: int = 0,
        hop_length: int = 1,
        pad: Literal["zeros", "edge"] = "zeros",
    ) -> torch.Tensor:
        """Per-frame windows of a per-sample or per-hop sequence, with ``context`` frames on each side.

        Args:
            x: tensor [..., T] with time last: samples (``hop_length=1``) or feature steps ``hop_length`` samples
                apart, e.g. a waveform [C, N] or a log-mel [B, n_mels, T].
            num_frames: frames to cut. Defaults to the frames that cover ``T * hop_length`` samples.
            context: frames of context on each side (±k).
            hop_length: samples between steps of ``x``.
            pad: fill outside ``x`` with zeros, or repeat the edge values.

        Returns:
            Tensor [..., F, W] with ``W = window_length(context, hop_length)``. Window ``i`` starts at the first
            step of frame ``i - context``. Positions outside ``x`` are padded.
        """
        if context < 0:
            raise ValueError(f"context must be >= 0 frames, got {context}")
        if hop_length < 1 or int(hop_length) != hop_length:
            raise ValueError(f"hop_length must be a positive integer number of samples, got {hop_length!r}")
        if x.ndim < 1 or x.shape[-1] == 0:
            raise ValueError(f"x must have a non-empty last (time) axis, got shape {tuple(x.shape)}")
        T = x.shape[-1]
        if num_frames is None:
            num_frames = self.num_frames(T * hop_length)
        W = self.window_length(context, hop_length)
        starts = self.step_starts(num_frames, hop_length, first_frame=-context)[:-1]  # [F]
        lo = max(0, -int(starts.min()))
        hi = max(0, int(starts.max()) + W - T)
        if lo or hi:
            mode = "constant" if pad == "zeros" else "replicate"
            flat = x.reshape(-1, 1, T)
            if mode == "replicate" and x.dtype in (torch.int64, torch.int32, torch.bool):
                flat = flat.float()
            x = F.pad(flat, (lo, hi), mode=mode).to(x.dtype).reshape(*x.shape[:-1], T + lo + hi)
        index = (starts + lo).to(x.device)[:, None] + torch.arange(W, device=x.device)[None, :]  # [F, W]
        return x[..., index]
