"""The motion generator's denoiser: a small temporal network over windows of :class:`~avdiff.video.motion.Motion`.

:class:`MotionDenoiser` denoises a window of ``T`` frames of motion ([B, T, D], D = 15 fields of
:data:`~avdiff.video.motion.FIELDS`, normalised by the statistics in its config) given

* **speech**: per-frame log-mel windows [B, K + T + A, R, W] (R: the mel bands, and the pitch rows below), cut by the :class:`~avdiff.audio.clock.FrameClock`
  (:meth:`MotionDenoiser.frame_windows`: each frame's mel steps with ``audio_context_frames`` frames of context on
  each side), encoded per frame by a small conv head. A learned null embedding stands in for the audio where it is
  dropped (condition dropout in training, the unconditional branch of classifier-free guidance at sampling);
* **the pitch**, with ``pitch_features``: two rows under the mel bands (:func:`pitch_rows`): YIN's F0 in semitones from
  the clip's median over its sounding steps, and whether a step sounds, after FastSpeech 2 (Ren et al., 2021,
  "FastSpeech 2: Fast and High-Quality End-to-End Text to Speech"), which hears the pitch beside the spectrum. A
  log-mel front end that treats the bands as channels barely hears a pitch that moves (a moved pitch is another
  pattern of channels); trained on espeak-ng's speech it guesses the intonation from the words instead. Pitch rows
  together with training speech given a new intonation (:mod:`avdiff.audio.intonation`) made it follow the F0 it
  hears (docs: the motion generator);
* **past motion**: the ``K`` frames just before the window, clean (the previous window's output), so consecutive
  windows join without a seam;
* **the speech ahead**: with ``future_frames`` ``A``, the audio of the ``A`` frames after the window too (their
  motion input is 0, the mean of the normalised motion, and flagged as not to be denoised), so the window's last
  frames hear what comes next as its middle ones do: a mouth shapes the next sound before it is heard, and the
  head's turns follow the intonation around its slow trend, which reaches past a window;
* **the diffusion timestep** and **controls**: blinks per minute and the head-motion amount (the synthetic truth's
  ``head_amount``: 0 still ... 1 natural), and with ``blink_clock`` the seconds since the last blink began, at
  the window's first frame (:data:`BLINK_CLOCK`). The past shows only ``K`` frames (a third of a second), too little
  to know when the eyes last blinked; without the clock each window can only blink at a constant chance, so the
  gaps come out memoryless (some far longer than 10 s) and the rate drifts from the asked one. With it the network
  learns the blinks' timing as a renewal process: unlikely just after a blink, certain within 8.9 s of the last.

The network is a 1-D convolutional stack over the ``K + T + A`` frames (past, window and the frames ahead together, a
flag channel telling them apart: 1, 0 and -1): residual blocks of dilated convolutions, each modulated (FiLM) by the
timestep and the controls, and the audio added per frame. It predicts the clean window (``prediction_type="sample"``), which suits few-step DDIM.

The normalisation statistics (``field_mean``, ``field_std``) and the scheduler's settings live in the config, so a
saved model (``save_pretrained``) is all a sampler needs (:mod:`avdiff.pipelines.talking_head.motion_sampling`).
"""

from __future__ import annotations

import functools
import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, DDIMScheduler, DPMSolverMultistepScheduler, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from avdiff.audio.clock import FrameClock
from avdiff.audio.features import LogMel
from avdiff.audio.pitch import HOP_S, speech_f0
from avdiff.models.cfg import replace_by_null
from avdiff.models.speech import clock_windows
from avdiff.video.motion import FIELDS

logger = logging.getLogger(__name__)

PITCH_ROWS = 2  # the rows pitch_features adds under the mel bands: the F0 and whether the step sounds
SOUNDING_NEPERS = 3.0  # a step sounds when its mean log-mel power is within this of the clip's 95th percentile
PITCH_CLIP_ST = 12.0  # the F0 row's range, semitones either side of the clip's median (an octave slip at most)

CONTROLS = ("blink_rate_per_min", "head_amount")
CONTROL_SCALES = (20.0, 1.0)  # the controls are divided by these before the network sees them
# with blink_clock: a third control, seconds since the last blink began at the window's first frame (clipped at
# BLINK_CLOCK_MAX_S: the truth never waits 10 s), divided by BLINK_CLOCK_SCALE
BLINK_CLOCK = "seconds_since_blink"
BLINK_CLOCK_MAX_S = 12.0
BLINK_CLOCK_SCALE = 10.0
POSE_FIELDS = ("yaw", "pitch", "roll", "tx", "ty", "scale")
DEFAULT_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "sample",
    "clip_sample": False,
    # the first of n sampling steps at the last training timestep, however few the steps (Lin et al., 2024, "Common
    # Diffusion Noise Schedules and Sample Steps are Flawed"): "leading" would start 1 step at t = 0
    "timestep_spacing": "trailing",
}


def neutral_motion(num_frames: int) -> np.ndarray:
    """Raw motion float32 [num_frames, D] of the reference itself: every field 0, ``scale`` 1."""
    out = np.zeros((num_frames, len(FIELDS)), np.float32)
    out[:, FIELDS.index("scale")] = 1.0
    return out


def pitch_rows(mel: torch.Tensor, samples: np.ndarray, sample_rate: int) -> torch.Tensor:
    """The pitch rows of one clip, aligned with its log-mel steps (10 ms, centred).

    Args:
        mel: the clip's natural-log mel power [n_mels, S].
        samples: its mono waveform [N] at ``sample_rate`` (``S = N // hop + 1``).
        sample_rate: Hz.

    Returns:
        float32 [2, S] on ``mel``'s device: the F0 (YIN, :func:`~avdiff.audio.pitch.speech_f0`) in semitones from the
        median over the sounding steps, clipped to +-:data:`PITCH_CLIP_ST`, over 6, and 0 on the steps that do not
        sound; and 2 where a step sounds (its mean log-mel power within :data:`SOUNDING_NEPERS`, about 13 dB, of the
        clip's 95th percentile), 0 elsewhere. A clip too short for YIN's window has an F0 of 0 throughout.

    "Sounds" is loudness, not voicing: a loud fricative or burst gets YIN's reading of it (clipped), and a passage
    more than 13 dB under the clip's loudest reads as silent. The F0 is read in blocks of 30 s, so YIN's memory does
    not grow with the clip.
    """
    S = mel.shape[-1]
    energy = mel.float().mean(dim=0).cpu().numpy()
    sounding = energy > np.percentile(energy, 95) - SOUNDING_NEPERS
    _, f0 = speech_f0(np.asarray(samples, np.float32), sample_rate)
    if len(f0) == 0:
        semitones = np.zeros(S)
    else:
        f0 = np.pad(f0, (0, max(0, S - len(f0))), mode="edge")[:S]
        semitones = 12 * np.log2(np.maximum(f0, 1.0))
        semitones -= np.median(semitones[sounding]) if sounding.any() else 0.0
        semitones = np.where(sounding, np.clip(semitones, -PITCH_CLIP_ST, PITCH_CLIP_ST), 0.0)
    rows = np.stack([semitones / 6.0, 2.0 * sounding])
    return torch.tensor(rows, dtype=torch.float32, device=mel.device)


def blink_onsets(closure: np.ndarray, shut: float = 0.5) -> np.ndarray:
    """Frames where a blink begins in an eyelid-closure track [F] (0 open ... 1 shut): where the closure rises to
    ``shut`` from below (frame 0 counts if it is already shut). Int64 [N], ascending."""
    closure = np.nan_to_num(np.asarray(closure, np.float64))
    if closure.ndim != 1:
        raise ValueError(f"closure must be 1-D, got shape {closure.shape}")
    up = closure >= shut
    rises = np.flatnonzero(up[1:] & ~up[:-1]) + 1
    return np.concatenate([[0], rises]).astype(np.int64) if len(up) and up[0] else rises.astype(np.int64)


class _Block(nn.Module):
    """GroupNorm -> FiLM(cond) -> GELU -> dilated conv -> GELU -> 1x1 conv, residual. x [B, H, L], cond [B, C]."""

    def __init__(self, hidden: int, cond_dim: int, dilation: int):
        super().__init__()
        self.norm = nn.GroupNorm(8 if hidden % 8 == 0 else 1, hidden)
        self.film = nn.Linear(cond_dim, 2 * hidden)
        self.conv = nn.Conv1d(hidden, hidden, 3, padding=dilation, dilation=dilation)
        self.out = nn.Conv1d(hidden, hidden, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(cond)[:, :, None].chunk(2, dim=1)
        h = self.norm(x) * (1 + scale) + shift
        h = self.out(F.gelu(self.conv(F.gelu(h))))
        return x + h


class MotionDenoiser(ModelMixin, ConfigMixin):
    """Denoises windows of normalised motion, conditioned on speech, past motion, the timestep and controls.

    Args:
        window_frames: T, frames denoised per window.
        past_frames: K, clean frames before the window it conditions on (>= 1).
        future_frames: A, frames after the window whose audio it hears (>= 0; module doc).
        hidden_dim: channels of the temporal stack (a multiple of 8 for its GroupNorm, or any).
        dilations: one residual block per entry, with that dilation (frames).
        audio_dim: width of the per-frame audio embedding.
        audio_hidden: channels of the audio head's convolutions.
        sample_rate, n_mels, win_s, hop_s: the log-mel (16 kHz, 10 ms hop: 4 steps per frame at 25 fps).
        audio_context_frames: frames of mel context on each side of a frame.
        mel_mean, mel_std: fixed normalisation of the natural-log mel power.
        field_mean, field_std: per-field statistics of raw motion (length D), the network sees
            ``(motion - mean) / std``; None: 0 and 1.
        head_amount_max: the largest head amount seen in training; larger requests are scaled after sampling.
        blink_rate_range: the blink rates seen in training (a minute, ``(low, high)``); the sampler warns of a rate
            outside them, which the model never learned to make.
        blink_clock: take a third control, the seconds since the last blink began (module doc; :meth:`controls`).
        pitch_features: hear two pitch rows under the mel bands (module doc; :func:`pitch_rows`).
        scheduler: the noise schedule (a diffusers scheduler config; ``prediction_type`` must be ``"sample"``).

    Raises:
        ValueError: sizes that are not positive, statistics of the wrong length or a non-positive std.
    """

    @register_to_config
    def __init__(
        self,
        window_frames: int = 32,
        past_frames: int = 8,
        future_frames: int = 0,
        hidden_dim: int = 96,
        dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2),
        audio_dim: int = 64,
        audio_hidden: int = 64,
        sample_rate: int = 16000,
        n_mels: int = 40,
        win_s: float = 0.025,
        hop_s: float = 0.01,
        audio_context_frames: int = 2,
        mel_mean: float = -6.0,
        mel_std: float = 4.0,
        field_mean: list[float] | None = None,
        field_std: list[float] | None = None,
        head_amount_max: float = 1.5,
        blink_rate_range: tuple[float, float] = (7.0, 30.0),
        blink_clock: bool = False,
        pitch_features: bool = False,
        scheduler: dict | None = None,
    ):
        super().__init__()
        for name, value in [
            ("window_frames", window_frames),
            ("past_frames", past_frames),
            ("hidden_dim", hidden_dim),
            ("audio_dim", audio_dim),
            ("audio_hidden", audio_hidden),
            ("n_mels", n_mels),
        ]:
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if int(future_frames) != future_frames or future_frames < 0:
            raise ValueError(f"future_frames must be an integer >= 0, got {future_frames!r}")
        if int(audio_context_frames) != audio_context_frames or audio_context_frames < 0:
            raise ValueError(f"audio_context_frames must be an integer >= 0, got {audio_context_frames!r}")
        if not dilations or any(int(d) != d or d < 1 for d in dilations):
            raise ValueError(f"dilations must be a non-empty list of positive integers, got {dilations!r}")
        if not mel_std > 0:
            raise ValueError(f"mel_std must be positive, got {mel_std!r}")
        if len(blink_rate_range) != 2 or not 0 <= blink_rate_range[0] <= blink_rate_range[1]:
            raise ValueError(f"blink_rate_range must be (low, high) with 0 <= low <= high, got {blink_rate_range!r}")
        D = len(FIELDS)
        mean = np.zeros(D) if field_mean is None else np.asarray(field_mean, dtype=np.float64)
        std = np.ones(D) if field_std is None else np.asarray(field_std, dtype=np.float64)
        if mean.shape != (D,) or std.shape != (D,):
            raise ValueError(f"field_mean and field_std must have {D} entries (one per field of {FIELDS})")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ValueError(f"field_std must be positive and the statistics finite, got mean {mean}, std {std}")
        sched = {**DEFAULT_SCHEDULER, **(scheduler or {})}
        if sched["prediction_type"] != "sample":
            raise ValueError(f"the denoiser predicts the clean sample: prediction_type must be 'sample', got {sched}")
        self.register_to_config(scheduler=sched)
        self.register_buffer("_mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("_std", torch.tensor(std, dtype=torch.float32), persistent=False)

        self.mel = LogMel(sample_rate, n_mels=n_mels, win_s=win_s, hop_s=hop_s)
        if pitch_features and self.mel.hop_length != round(HOP_S * sample_rate):
            raise ValueError(f"pitch_features needs the F0's step, hop_s={HOP_S}, got hop_s={hop_s}")
        self.audio_head = nn.Sequential(
            nn.Conv1d(n_mels + (PITCH_ROWS if pitch_features else 0), audio_hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(audio_hidden, audio_hidden, 3, padding=1, stride=2),
            nn.GELU(),
            nn.AdaptiveAvgPool1d(4),
            nn.Flatten(),
            nn.Linear(4 * audio_hidden, audio_dim),
            nn.LayerNorm(audio_dim),
        )
        self.null_audio = nn.Parameter(torch.zeros(audio_dim))
        cond_dim = 4 * hidden_dim
        self.time_proj = Timesteps(hidden_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(hidden_dim, cond_dim)
        scales = (*CONTROL_SCALES, BLINK_CLOCK_SCALE) if blink_clock else CONTROL_SCALES
        self.control_embed = nn.Sequential(nn.Linear(len(scales), cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.register_buffer("control_scales", torch.tensor(scales), persistent=False)
        self.audio_proj = nn.Conv1d(audio_dim, hidden_dim, 1)
        self.in_proj = nn.Conv1d(D + 1, hidden_dim, 3, padding=1)
        self.blocks = nn.ModuleList([_Block(hidden_dim, cond_dim, int(d)) for d in dilations])
        self.out_norm = nn.GroupNorm(8 if hidden_dim % 8 == 0 else 1, hidden_dim)
        self.out_proj = nn.Conv1d(hidden_dim, D, 3, padding=1)

    # --- sizes and normalisation ------------------------------------------------------------------------------

    @property
    def window_frames(self) -> int:
        return int(self.config.window_frames)

    @property
    def past_frames(self) -> int:
        return int(self.config.past_frames)

    @property
    def future_frames(self) -> int:
        return int(self.config.future_frames)

    @property
    def audio_frames(self) -> int:
        """Frames of audio a window hears: ``K + T + A`` (past, window, ahead), from ``K`` frames before it."""
        return self.past_frames + self.window_frames + self.future_frames

    @property
    def audio_rows(self) -> int:
        """Rows of the per-frame audio windows: the mel bands, and :data:`PITCH_ROWS` with ``pitch_features``."""
        return int(self.config.n_mels) + (PITCH_ROWS if self.config.pitch_features else 0)

    @property
    def sample_rate(self) -> int:
        return int(self.config.sample_rate)

    @property
    def control_names(self) -> tuple[str, ...]:
        """The controls :meth:`forward` takes, in order: :data:`CONTROLS`, and :data:`BLINK_CLOCK` with
        ``blink_clock``."""
        return (*CONTROLS, BLINK_CLOCK) if self.config.blink_clock else CONTROLS

    def controls(self, blink_rate_per_min: float, head_amount: float, seconds_since_blink: float) -> list[float]:
        """One item's controls as :meth:`forward` takes them (the clock clipped at :data:`BLINK_CLOCK_MAX_S`, and
        left out without ``blink_clock``)."""
        out = [float(blink_rate_per_min), float(head_amount)]
        if self.config.blink_clock:
            out.append(min(max(float(seconds_since_blink), 0.0), BLINK_CLOCK_MAX_S))
        return out

    def set_statistics(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Set the per-field normalisation ([D] each; std > 0), in the buffers and the config (so it is saved)."""
        mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
        if mean.shape != (len(FIELDS),) or std.shape != (len(FIELDS),) or not (std > 0).all():
            raise ValueError(
                f"need mean and std of shape ({len(FIELDS)},) with std > 0, got {mean.shape}, {std.shape}"
            )
        self.register_to_config(field_mean=mean.tolist(), field_std=std.tolist())
        self._mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self._std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def normalize(self, motion: torch.Tensor) -> torch.Tensor:
        """Raw motion [..., D] -> what the network sees."""
        return (motion - self._mean.to(motion)) / self._std.to(motion)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised motion [..., D] -> raw motion (Motion's units)."""
        return x * self._std.to(x) + self._mean.to(x)

    def make_scheduler(self, kind: str = "ddim") -> DDIMScheduler | DPMSolverMultistepScheduler:
        """A fresh sampling scheduler with this model's noise schedule: ``"ddim"`` or ``"dpm"`` (DPM-Solver++)."""
        classes = {"ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler}
        if kind not in classes:
            raise ValueError(f"scheduler kind must be one of {sorted(classes)}, got {kind!r}")
        return classes[kind].from_config(dict(self.config.scheduler))

    # --- audio ------------------------------------------------------------------------------------------------

    def frame_clock(self, fps) -> FrameClock:
        """The clock of video at ``fps`` against the model's sample rate."""
        return FrameClock(fps, self.sample_rate)

    def mel_features(self, samples: torch.Tensor, pitch_samples: torch.Tensor | None = None) -> torch.Tensor:
        """samples [B, N] at ``sample_rate`` -> natural-log mel power [B, n_mels, N // hop + 1] (float32), with
        ``pitch_features`` followed by each item's :func:`pitch_rows` ([B, :attr:`audio_rows`, N // hop + 1]).

        ``pitch_samples`` [B, N] (training only): read the F0 from these instead (the same speech with another
        intonation, :func:`~avdiff.data.motion_dataset.synthetic_clips`); whether a step sounds stays ``samples``'.

        Raises:
            ValueError: ``samples`` not [B, N], or ``pitch_samples`` not its shape.
        """
        if samples.ndim != 2:
            raise ValueError(f"samples must have shape (B, N), got {tuple(samples.shape)}")
        if pitch_samples is not None and pitch_samples.shape != samples.shape:
            raise ValueError(f"pitch_samples must be {tuple(samples.shape)}, got {tuple(pitch_samples.shape)}")
        mel = self.mel.float()
        out = mel(samples.float().to(mel.mel.spectrogram.window.device))
        if not self.config.pitch_features:
            return out
        waves = (samples if pitch_samples is None else pitch_samples).float().cpu().numpy()
        rows = [pitch_rows(out[b], waves[b], self.sample_rate) for b in range(len(waves))]
        return torch.cat([out, torch.stack(rows)], dim=1)

    def frame_windows(self, mel: torch.Tensor, clock: FrameClock, first_frame: int, num_frames: int) -> torch.Tensor:
        """mel [B, R, S] (:meth:`mel_features`, R = :attr:`audio_rows`) -> per-frame windows [B, num_frames, R, W] of
        frames ``first_frame ..`` (which may start before 0 or run past the end: silence there, its pitch rows 0),
        ±``audio_context_frames``, cut by ``clock``."""
        if clock.sample_rate != self.sample_rate:
            raise ValueError(f"clock runs at {clock.sample_rate} Hz but the model at {self.sample_rate} Hz")
        k = int(self.config.n_mels)
        cut = functools.partial(
            clock_windows,
            clock=clock,
            first_frame=first_frame,
            num_frames=num_frames,
            context=int(self.config.audio_context_frames),
            hop_length=self.mel.hop_length,
        )
        windows = cut(mel[:, :k], pad_value=math.log(self.mel.log_floor))  # [B, n_mels, n, W]: the floor is silence
        if self.config.pitch_features:  # and the silence has no pitch and does not sound
            windows = torch.cat([windows, cut(mel[:, k:], pad_value=0.0)], dim=1)
        return windows.movedim(-2, 1)

    def encode_audio(self, windows: torch.Tensor) -> torch.Tensor:
        """Per-frame audio windows [B, L, R, W] (R = :attr:`audio_rows`) -> audio embeddings [B, L, audio_dim]."""
        if windows.ndim != 4 or windows.shape[2] != self.audio_rows:
            raise ValueError(f"audio windows must be [B, L, {self.audio_rows} rows, W], got {tuple(windows.shape)}")
        b, n, m, w = windows.shape
        x = windows.reshape(b * n, m, w).to(self.dtype)
        k = int(self.config.n_mels)  # the mel bands are normalised; the pitch rows come scaled
        x = torch.cat([(x[:, :k] - self.config.mel_mean) / self.config.mel_std, x[:, k:]], dim=1)
        return self.audio_head(x).reshape(b, n, -1)

    # --- the network --------------------------------------------------------------------------------------------

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int,
        past: torch.Tensor,
        audio: torch.Tensor | None,
        controls: torch.Tensor,
        drop_audio: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the clean window.

        Args:
            sample: noisy normalised motion [B, T, D].
            timestep: diffusion step, an int or [B].
            past: clean normalised motion of the K frames before the window [B, K, D].
            audio: audio windows [B, K + T + A, R, W] of the past frames, the window and the frames ahead
                (:attr:`audio_frames` from frame ``-K``, :meth:`frame_windows`), or
                None for the unconditional branch (the learned null everywhere).
            controls: [B, C] blinks per minute and head amount (:data:`CONTROLS`), and with ``blink_clock`` the
                seconds since the last blink began (:meth:`controls`), in their own units.
            drop_audio: bool [B], True where the audio is replaced by the null (condition dropout, CFG).

        Returns:
            The predicted clean normalised window [B, T, D].

        Raises:
            ValueError: inconsistent shapes.
        """
        if sample.ndim != 3 or sample.shape[-1] != len(FIELDS):
            raise ValueError(f"sample must be [B, T, {len(FIELDS)}], got {tuple(sample.shape)}")
        B, T, D = sample.shape
        if past.ndim != 3 or past.shape[0] != B or past.shape[2] != D or past.shape[1] < 1:
            raise ValueError(f"past must be [B={B}, K>=1, {D}], got {tuple(past.shape)}")
        K = past.shape[1]
        names = self.control_names
        if controls.shape != (B, len(names)):
            raise ValueError(f"controls must be [B={B}, {len(names)}] ({names}), got {tuple(controls.shape)}")
        A = self.future_frames
        L = K + T + A
        null = self.null_audio.to(sample.dtype).expand(B, L, -1)
        if audio is None:
            emb = null
        else:
            if audio.shape[:2] != (B, L):
                raise ValueError(f"audio must be [B={B}, K+T+A={L}, R, W], got {tuple(audio.shape)}")
            emb = self.encode_audio(audio)
            if drop_audio is not None:
                emb = replace_by_null(emb, drop_audio, null)
        t = torch.as_tensor(timestep, device=sample.device)
        t = t.expand(B) if t.ndim == 0 else t
        cond = self.time_embed(self.time_proj(t).to(sample.dtype))
        cond = cond + self.control_embed((controls / self.control_scales.to(controls)).to(sample.dtype))
        ahead = torch.zeros(B, A, D, dtype=sample.dtype, device=sample.device)  # no motion: only audio there
        x = torch.cat([past.to(sample.dtype), sample, ahead], dim=1)  # [B, L, D]
        flag = torch.zeros(B, L, 1, dtype=sample.dtype, device=sample.device)
        flag[:, :K] = 1.0
        flag[:, K + T :] = -1.0
        h = self.in_proj(torch.cat([x, flag], dim=-1).transpose(1, 2)) + self.audio_proj(emb.transpose(1, 2))
        for block in self.blocks:
            h = block(h, cond)
        out = self.out_proj(F.gelu(self.out_norm(h))).transpose(1, 2)  # [B, L, D]
        return out[:, K : K + T]
