"""Motion from speech: sample a :class:`~avdiff.video.motion.Motion` track with a trained
:class:`~avdiff.models.motion.MotionDenoiser`, window by window.

:func:`sample_motion` walks the speech in windows of ``T = model.window_frames`` frames. Each window is denoised from
Gaussian noise (drawn from the caller's ``torch.Generator``) in a few DDIM (or DPM-Solver++) steps, conditioned on
the window's speech (per-frame log-mel cut by the :class:`~avdiff.audio.clock.FrameClock`; with the model's
``future_frames``, also the speech of that many frames after the window), on the ``K`` frames
generated just before it (clean: so the windows join without a seam) and on the controls. The first window's past is
the reference itself (every field 0, ``scale`` 1), as in training, where frames before a clip's start are the
reference and their audio silence.

Classifier-free guidance on the audio: ``guidance_scale`` (the user's "expressiveness") mixes the prediction with
the audio and the one with the learned null audio, ``null + s * (cond - null)``; 0 is the audio-dropped twin (the
model's unconditional branch, only that branch is run), 1 the plain conditional model (only that branch is run).

Blinks: a model with ``blink_clock`` is told, per window, the seconds since the last blink began (read off the
eyelids it generated, :func:`~avdiff.models.motion.blink_onsets`; at the clip's start half the mean gap,
``30 / blink_rate_per_min``), so its blinks follow the asked rate (the shipped model: 8.0, 10.6 and 19.7 a minute
when 8, 15 and 25 are asked, over 3 x 70 s of held-out speech; it was trained on 7-30 a minute). A model may still let a gap run longer
than any it saw: a window that would pass ``max_open_s`` (:data:`OVERDUE_BLINK_S`, the truth's longest) since the
last blink without one of its own is sampled again with a blink put in where it falls due, by inpainting (the eyelids of those frames
are held to :func:`~avdiff.data.motion_truth.blink_shape` in every denoising step's clean prediction, as MDM edits
motion, Tevet et al., 2023; everything else, including the rest of the lids, is the model's). So the eyes are never
open past that, as the truth's never are.

Seams: the past already makes each window continue the one before; what small step remains at a seam (a window's
first frame a little off the line its past was on) is taken out by :func:`join_seam`, which shifts the window's first
``seam_frames`` frames by the offset, fading to nothing (the model's own motion is kept, only the jump goes).

No drift: every field is relative to the reference photo (a head pose, not a head velocity), so nothing is
integrated from window to window; the past only keeps the windows continuous. Work and memory per window are
constant; the whole clip's log-mel (40 numbers per 10 ms) and the output are the only things that grow with the
audio.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import numpy as np
import torch

from avdiff.audio.clock import FpsLike, FrameClock, parse_fps
from avdiff.audio.io import Waveform
from avdiff.data.motion_truth import BLINK_S, MAX_GAP_S, blink_shape
from avdiff.models.motion import POSE_FIELDS, MotionDenoiser, blink_onsets, neutral_motion
from avdiff.pipelines.utils import check_generator, check_number, torch_threads
from avdiff.video.motion import FIELDS, Motion

logger = logging.getLogger(__name__)

SCHEDULERS = ("ddim", "dpm")
# the longest the truth's eyes stay open, from one blink's start to the next: the longest blink and the longest gap
OVERDUE_BLINK_S = BLINK_S[1] + MAX_GAP_S
_POSE_COLUMNS = [FIELDS.index(name) for name in POSE_FIELDS]
_EYE_COLUMNS = [FIELDS.index("eye_left"), FIELDS.index("eye_right")]


def iter_motion(
    model: MotionDenoiser,
    speech: Waveform,
    fps: FpsLike = 25,
    *,
    num_inference_steps: int = 10,
    guidance_scale: float = 2.0,
    generator: torch.Generator | None = None,
    blink_rate_per_min: float = 15.0,
    head_amount: float = 1.0,
    still_head: bool = False,
    scheduler: str = "ddim",
    seam_frames: int = 4,
    max_open_s: float | None = OVERDUE_BLINK_S,
) -> Iterator[Motion]:
    """Generate the face's motion for ``speech``, window by window: each window is yielded as soon as it is sampled,
    so a renderer can show its frames before the next one is denoised (the time to the first frame is one window's).

    Args:
        model: a trained :class:`~avdiff.models.motion.MotionDenoiser` (its device and dtype are used).
        speech: the speech (any rate and channels; mixed to mono and resampled to the model's rate).
        fps: the video's frame rate (1..120; ``"30000/1001"`` is exact).
        num_inference_steps: denoising steps per window (>= 1; 10 is plenty).
        guidance_scale: classifier-free guidance on the audio, >= 0 ("expressiveness"): 0 ignores the audio,
            1 is the conditional model, above 1 exaggerates what the audio asks for.
        generator: the only source of randomness (the initial noise of each window); None uses torch's global RNG.
        blink_rate_per_min: blinks per minute (>= 0; people blink 10-20 times a minute); a rate outside the model's
            ``blink_rate_range`` (the shipped model: 7-30) is logged as a warning, as the model never learned it.
        head_amount: head motion, >= 0 (0 still, 1 natural: turns, leans and nods with the speech); above the
            model's ``head_amount_max`` the pose is scaled up after sampling.
        still_head: zero head pose in every frame (yaw, pitch, roll, tx, ty 0 and scale 1), whatever ``head_amount``.
        scheduler: ``"ddim"`` or ``"dpm"`` (DPM-Solver++).
        seam_frames: frames over which a window's offset from its past's continuation fades out (:func:`join_seam`;
            0 leaves the windows as sampled).
        max_open_s: the longest the eyes stay open, in seconds from one blink's shutting (its closure passing 0.5)
            to the next one's (> 0; below a window and a blink, 1.68 s at 25 fps, a warning says it cannot be kept): a
            blink the model leaves out is put in by inpainting (module doc), at most one per window, and possibly a
            few frames early so that it ends inside its window. None leaves the blinks to the model alone (an
            evaluation's control); a ``blink_rate_per_min`` of 0 asks for none either way. Under about 6 fps no
            frame of a blink shuts the eyes, and none is put in (a warning says so).

    Returns:
        An iterator of :class:`Motion` windows (``model.window_frames`` frames each, the last one shorter) whose
        frames add up to exactly ``FrameClock(fps, speech.sample_rate).num_frames(N)``, N the speech's samples.

    Raises:
        ValueError: at the call, before any sampling: an empty speech, a model that is not a MotionDenoiser, or a
            setting out of range (naming it).
    """
    if not isinstance(model, MotionDenoiser):
        raise ValueError(f"model must be a MotionDenoiser, got {type(model).__name__}")
    if not isinstance(speech, Waveform):
        raise ValueError(f"speech must be an avdiff.audio.io.Waveform, got {type(speech).__name__}")
    if speech.samples.shape[-1] == 0:
        raise ValueError("speech is empty (0 samples): there is nothing to move the face to")
    if not torch.isfinite(speech.samples).all():
        raise ValueError("speech holds NaN or Inf samples")
    fps = parse_fps(fps)
    if int(num_inference_steps) != num_inference_steps or num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be an integer >= 1, got {num_inference_steps!r}")
    guidance_scale = check_number("guidance_scale", guidance_scale, 0.0, convert=True)
    blink_rate = check_number("blink_rate_per_min", blink_rate_per_min, 0.0, convert=True)
    low, high = model.config.blink_rate_range
    if not low <= blink_rate <= high:
        logger.warning(
            "blink_rate_per_min=%g is outside the %g-%g blinks a minute this motion model was trained on: its blinks "
            "will not follow it",
            blink_rate,
            low,
            high,
        )
    head_amount = check_number("head_amount", head_amount, 0.0, convert=True)
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
    if int(seam_frames) != seam_frames or seam_frames < 0:
        raise ValueError(f"seam_frames must be an integer >= 0, got {seam_frames!r}")
    if max_open_s is not None:
        if not isinstance(max_open_s, (int, float)) or isinstance(max_open_s, bool) or not max_open_s > 0:
            raise ValueError(f"max_open_s must be a number of seconds > 0, or None, got {max_open_s!r}")
        max_open_s = float(max_open_s)
        shortest = model.window_frames / float(fps) + BLINK_S[1]  # at most one blink is put in per window
        if max_open_s < shortest:
            logger.warning(
                "max_open_s=%g s cannot be kept: at most one blink is put in per window of %d frames (%.2f s with a "
                "blink at %g fps)", max_open_s, model.window_frames, shortest, float(fps),
            )  # fmt: skip
    check_generator(generator)

    num_frames = FrameClock(fps, speech.sample_rate).num_frames(speech.samples.shape[-1])
    if still_head:
        head_amount = 0.0
    return _windows(
        model,
        speech,
        fps,
        num_frames,
        int(num_inference_steps),
        guidance_scale,
        generator,
        blink_rate,
        head_amount,
        still_head,
        scheduler,
        int(seam_frames),
        max_open_s,
    )


@torch.no_grad()
def _windows(
    model: MotionDenoiser,
    speech: Waveform,
    fps,
    num_frames: int,
    num_inference_steps: int,
    guidance_scale: float,
    generator: torch.Generator | None,
    blink_rate: float,
    head_amount: float,
    still_head: bool,
    scheduler: str,
    seam_frames: int,
    max_open_s: float | None,
) -> Iterator[Motion]:
    """The windows of :func:`iter_motion` (its arguments checked)."""
    samples = speech.samples.float().mean(dim=0, keepdim=True)
    mono = Waveform(samples, speech.sample_rate).resample(model.sample_rate).samples  # [1, N']
    clock = model.frame_clock(fps)
    device, dtype = model.device, model.dtype
    threads = 1 if device.type == "cpu" else torch.get_num_threads()  # a small net: one thread is fastest on a CPU
    with torch_threads(threads):
        mel = model.mel_features(mono.to(device))  # [1, R, S]: the mel bands (and the pitch rows)

    head_max = float(model.config.head_amount_max)
    model_head = min(head_amount, head_max)
    pose_gain = head_amount / model_head if model_head > 0 else 1.0
    frame_s = 1.0 / float(parse_fps(fps))
    # before the clip: half a mean gap ago (half the longest allowed, for rates slower than it allows)
    guarded = max_open_s is not None and blink_rate > 0
    last_blink_s = -min(30.0 / max(blink_rate, 1.0), (max_open_s if guarded else math.inf) / 2)
    lead = _blink_lead(frame_s) if guarded else None
    if guarded and lead is None:
        logger.warning(
            "at %g fps no frame of a %.2f s blink shuts the eyes: no blink is put in", fps, np.mean(BLINK_S)
        )
    last_eyes = 0.0  # the reference's eyes are open
    rest = neutral_motion(1)[0, _POSE_COLUMNS]

    T, K = model.window_frames, model.past_frames
    neutral = model.normalize(torch.from_numpy(neutral_motion(1)).to(device=device, dtype=dtype))  # [1, D]
    past = neutral.expand(K, -1)[None].clone()  # [1, K, D]
    sched = model.make_scheduler(scheduler)
    for start in range(0, num_frames, T):
        audio = model.frame_windows(mel, clock, start - K, model.audio_frames).to(dtype)  # [1, K + T + A, R, W]
        since = start * frame_s - last_blink_s
        controls = torch.tensor([model.controls(blink_rate, model_head, since)], device=device, dtype=dtype)
        noise = torch.randn((1, T, len(FIELDS)), generator=generator, device=generator.device if generator else "cpu")
        noise = noise.to(device=device, dtype=dtype)

        args = (model, sched, noise, past, audio, controls, guidance_scale, num_inference_steps, threads)
        seam = min(seam_frames, T) if start > 0 else 0
        x = join_seam(past, _denoise(*args), seam)
        due = int(np.floor((last_blink_s + (max_open_s or 0.0)) / frame_s + 1e-6)) - start  # the last frame to shut by
        # put in here unless the next window can still shut the eyes in time (it begins a blink at its first frame)
        shut_by = min(due, T - 1)
        if (
            lead is not None
            and due < min(T + lead, num_frames - start)
            and not _blinks_in(model, x, last_eyes, shut_by)
        ):
            lids, first = _blink_lids(model, shut_by, T, frame_s, lead)
            x = join_seam(past, _denoise(*args, lids=lids.to(device=device, dtype=dtype)), seam)
            logger.debug("no blink for %.1f s: one put in at frame %d", max_open_s, start + first)
        if still_head:
            x[..., _POSE_COLUMNS] = neutral[..., _POSE_COLUMNS]
        past = x[:, -K:] if K <= T else torch.cat([past, x], dim=1)[:, -K:]
        motion = model.denormalize(x[0, : num_frames - start]).float().cpu().numpy()
        eyes = np.concatenate([[last_eyes], motion[:, _EYE_COLUMNS].mean(axis=1)])
        onsets = blink_onsets(eyes)
        onsets = onsets[onsets > 0]  # frame 0 is the previous window's last frame
        if len(onsets):
            last_blink_s = (start + int(onsets[-1]) - 1) * frame_s
        last_eyes = float(eyes[-1])
        if still_head:
            motion[:, _POSE_COLUMNS] = rest
        elif pose_gain != 1.0:
            motion[:, _POSE_COLUMNS] = rest + pose_gain * (motion[:, _POSE_COLUMNS] - rest)
        logger.debug(
            "sampled frames %d-%d of %d (guidance %.2f, %d steps)",
            start,
            start + len(motion),
            num_frames,
            guidance_scale,
            num_inference_steps,
        )
        yield Motion.from_array(np.ascontiguousarray(motion))


def sample_motion(model: MotionDenoiser, speech: Waveform, fps: FpsLike = 25, **kwargs) -> Motion:
    """The whole track of :func:`iter_motion` (same arguments) as one :class:`Motion` of exactly
    ``FrameClock(fps, speech.sample_rate).num_frames(N)`` frames. Raises ValueError as it does."""
    windows = [w.as_array() for w in iter_motion(model, speech, fps, **kwargs)]
    return Motion.from_array(np.concatenate(windows))


def join_seam(past: torch.Tensor, window: torch.Tensor, frames: int) -> torch.Tensor:
    """``window`` [B, T, D] with the jump from ``past`` [B, K, D] taken out over its first ``frames`` frames.

    The jump is the window's first frame minus where the past was heading (its last frame plus its last step); the
    first frame is moved by all of it, the next ones by less (a half cosine), frame ``frames`` on by nothing."""
    if frames <= 0:
        return window
    last = past[:, -1]
    step = past[:, -1] - past[:, -2] if past.shape[1] > 1 else torch.zeros_like(last)
    jump = window[:, 0] - (last + step)  # [B, D]
    k = torch.arange(frames, device=window.device, dtype=window.dtype)
    fade = 0.5 + 0.5 * torch.cos(torch.pi * k / frames)  # 1 at the seam ... near 0
    out = window.clone()
    out[:, :frames] -= fade[None, :, None] * jump[:, None, :]
    return out


def _denoise(
    model: MotionDenoiser,
    sched,
    noise: torch.Tensor,
    past: torch.Tensor,
    audio: torch.Tensor,
    controls: torch.Tensor,
    guidance_scale: float,
    num_inference_steps: int,
    threads: int,
    lids: torch.Tensor | None = None,
) -> torch.Tensor:
    """One window [1, T, D] (normalized) denoised from ``noise``; with ``lids`` ([1, T, 2], NaN where free), the
    eyelids' clean prediction is held to them at every step (inpainting)."""
    x = noise * sched.init_noise_sigma
    sched.set_timesteps(num_inference_steps, device=noise.device)
    with torch_threads(threads):
        for t in sched.timesteps:
            pred = _guided(model, sched.scale_model_input(x, t), t, past, audio, controls, guidance_scale)
            if lids is not None:
                pred[..., _EYE_COLUMNS] = torch.where(torch.isnan(lids), pred[..., _EYE_COLUMNS], lids)
            x = sched.step(pred, t, x).prev_sample
    return x


def _blinks_in(model: MotionDenoiser, x: torch.Tensor, last_eyes: float, before: int) -> bool:
    """Whether the window x [1, T, D] (normalized) blinks (:func:`~avdiff.models.motion.blink_onsets`) at or before
    its frame ``before``."""
    eyes = model.denormalize(x[0]).float().cpu().numpy()[:, _EYE_COLUMNS].mean(axis=1)
    onsets = blink_onsets(np.concatenate([[last_eyes], eyes]))
    return bool(np.any((onsets > 0) & (onsets - 1 <= before)))


def _blink_lead(frame_s: float) -> int | None:
    """Frames from the start of a blink of the truth's mean length until it shuts past 0.5 (:func:`blink_onsets`);
    None where no frame of it does (a frame rate under about 6 fps)."""
    shut = blink_shape(np.arange(1, 100) * frame_s / float(np.mean(BLINK_S))) >= 0.5
    return int(np.argmax(shut)) + 1 if shut.any() else None


def _blink_lids(
    model: MotionDenoiser, shut_by: int, window: int, frame_s: float, lead: int
) -> tuple[torch.Tensor, int]:
    """The lids of a blink of the truth's mean length that shuts (:func:`blink_onsets`, ``lead`` frames after it
    begins) by frame ``shut_by`` of a window, begun earlier where it would otherwise not end inside the window (the
    next window's seam would carry its closing on) and at frame 0 at the latest: normalized, float [1, window, 2], NaN
    on the frames left to the model, and the frame it begins at."""
    duration = float(np.mean(BLINK_S))
    length = int(np.ceil(duration / frame_s))
    first = max(min(shut_by - lead, window - length - 1), 0)  # a frame of open eyes after it: no step at the seam
    x = (np.arange(window) - first) * frame_s / duration
    inside = (x >= 0) & (x < 1)
    raw = torch.zeros(window, len(FIELDS))
    raw[:, _EYE_COLUMNS] = torch.from_numpy(blink_shape(x))[:, None]
    lids = model.normalize(raw)[:, _EYE_COLUMNS]
    lids[~torch.from_numpy(inside)] = float("nan")
    return lids[None], first


def _guided(
    model: MotionDenoiser,
    x: torch.Tensor,
    t: torch.Tensor,
    past: torch.Tensor,
    audio: torch.Tensor,
    controls: torch.Tensor,
    guidance_scale: float,
) -> torch.Tensor:
    """The guided clean-window prediction [1, T, D]: the null branch alone at scale 0, the audio branch alone at 1,
    else both in one batch of 2 and ``null + scale * (cond - null)``."""
    if guidance_scale == 0:
        return model(x, t, past, None, controls)
    if guidance_scale == 1:
        return model(x, t, past, audio, controls)
    drop = torch.tensor([True, False], device=x.device)
    both = model(x.repeat(2, 1, 1), t, past.repeat(2, 1, 1), audio.repeat(2, 1, 1, 1), controls.repeat(2, 1), drop)
    null, cond = both.chunk(2)
    return null + guidance_scale * (cond - null)
