"""The motion generator's job: train :class:`~avdiff.models.motion.MotionDenoiser` and score it on held-out speech.

``avdiff train talking-head-motion --config configs/train/talking_head_motion.yaml [--data DATA]`` runs it through
the shared trainer (resume, DDP). It trains on synthetic speech with its motion truth (no video needed:
:func:`~avdiff.data.motion_dataset.synthetic_utterances` of the training sentences in the training voices) and on
the clips of DATA folders that have a motion track (``--data``), both cut into windows by
:class:`~avdiff.data.motion_dataset.MotionWindows`.

The loss: a timestep ``t`` drawn uniformly, the window noised by the model's schedule, the network predicts the clean
window (MSE on the normalised fields), the audio replaced by the null embedding in ``audio_dropout`` of the items
(classifier-free guidance).

:meth:`MotionTask.evaluate` samples the held-out utterances (the "test" sentences, in voices not trained on) with
guidance ``eval_guidance`` and with the audio dropped (guidance 0, the twin), and scores both against the truth
(:func:`~avdiff.metrics.motion_scores.motion_scores`): mouth-opening r, lip-closure recall and precision on
bilabials, rounding r, head yaw and pitch r, and how many clips the model wins over the twin on each. It also asks
for blinks: the held-out clips' speech in one track, sampled at each rate of ``eval_blink_rates`` with
``eval_blink_seeds`` seeds (:func:`blink_calibration`), gives the rate the model makes at each asked rate
(:func:`~avdiff.metrics.blinks.blink_stats`), the blinks' shortest and longest durations and the longest time the
eyes stay open.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from avdiff.audio.clock import parse_fps
from avdiff.audio.io import Waveform
from avdiff.data.motion_dataset import (
    MotionClip,
    MotionWindows,
    check_intonation,
    data_folder_clips,
    field_statistics,
    synthetic_clips,
    synthetic_utterances,
)
from avdiff.metrics.blinks import blink_stats
from avdiff.metrics.motion_scores import motion_scores
from avdiff.models.builders import build_motion_denoiser
from avdiff.models.motion import MotionDenoiser
from avdiff.pipelines.talking_head.motion_sampling import OVERDUE_BLINK_S, sample_motion
from avdiff.pipelines.talking_head.pipeline_motion_talking_head import MotionTalkingHeadPipeline
from avdiff.training.trainer import strict_from_dict
from avdiff.video.motion import Motion

logger = logging.getLogger(__name__)

SCORES = ("mouth_open_r", "closure_recall", "closure_precision", "round_r", "yaw_r", "pitch_r")
# espeak-ng voices (``en`` is the British English voice file, the one ``en-gb`` selects by language); the held-out
# ones are never trained on.
TRAIN_VOICES = (
    "en-us", "en-us+m2", "en-us+m3", "en-us+m4", "en-us+m5", "en-us+m6", "en-us+f1", "en-us+f2", "en-us+f3",
    "en-us+f5", "en", "en+m2", "en+m3", "en+m5", "en+f1", "en+f2", "en+f3",
    # more variants (each sounds unlike the others and the default): voices the model never heard are its weak spot
    "en-us+m7", "en-us+Andy", "en-us+Annie", "en-us+Alex", "en+Gene", "en+Michael", "en-us+klatt", "en+grandpa",
    "en-us+Lee", "en+Mike", "en-us+Jacky",
)  # fmt: skip
EVAL_VOICES = ("en-us+m1", "en+f4")


@dataclass
class MotionTaskConfig:
    """The ``task:`` section of a talking-head-motion YAML.

    Attributes:
        data: a DATA folder whose clips have motion tracks (``--data`` overrides it); None trains on synthetic speech
            only.
        split, max_clips: use only that split's clips of ``data``, at most this many.
        fps: frame rate of the motion.
        synthetic_utterances: espeak-ng utterances of the training sentences (0: none).
        variants: motion truths per utterance (each with its own blink rate and head amount).
        voices: voices of the training utterances; None: :data:`TRAIN_VOICES`.
        eval_voices: voices of the held-out utterances; None: :data:`EVAL_VOICES`.
        eval_utterances: held-out utterances ("test" sentences in ``eval_voices``) scored by ``evaluate``; 0: none.
        eval_guidance, eval_steps: guidance scale and DDIM steps of the evaluation's sampling.
        eval_blink_rates: blinks per minute asked of the model on the held-out speech (:func:`blink_calibration`);
            empty: not measured.
        eval_blink_seeds: seeds per asked rate.
        stride: frames between the starts of training windows.
        audio_dropout: share of items whose audio is replaced by the null (classifier-free guidance).
        gain_db: random speech gain per item, ± dB (a constant added to the log-mel).
        mel_shift: random shift of each item's mel bands, ± bands (a crude vocal-tract-length perturbation: voices
            the model never heard have their formants elsewhere).
        intonation_share: share of the synthetic clips that speak with a new intonation, their truth built from it
            (:func:`~avdiff.data.motion_dataset.synthetic_clips`): espeak-ng's own intonation follows from the words,
            so a model can learn to guess the F0 from them instead of hearing it.
        intonation_semitones: the standard deviation of the new intonation's contour (semitones). The re-intoned
            speech is made again each run (Praat, about 0.03 s an utterance), not cached.
        intonation_heard: ``"speech"``: a re-intoned clip's log-mel is the new speech's; ``"pitch"``: the log-mel
            stays the original speech's and only the pitch rows (``model: pitch_features``) hear the new intonation.
        data_seed: draws the utterances and their truths (the trainer's seed draws the rest).
        cache_dir: keep the synthesized speech here (None: synthesize every run).
        preset: the motion preset of the model; model: settings that override it.
    """

    data: str | None = None
    split: str | None = None
    max_clips: int | None = None
    fps: int = 25
    synthetic_utterances: int = 96
    variants: int = 3
    voices: list[str] | None = None
    eval_voices: list[str] | None = None
    eval_utterances: int = 8
    eval_guidance: float = 2.0
    eval_steps: int = 10
    eval_blink_rates: list[float] = field(default_factory=lambda: [8.0, 15.0, 25.0])
    eval_blink_seeds: int = 3
    stride: int = 4
    audio_dropout: float = 0.15
    gain_db: float = 6.0
    mel_shift: int = 2
    intonation_share: float = 0.0
    intonation_semitones: float = 2.0
    intonation_heard: str = "speech"
    data_seed: int = 0
    cache_dir: str | None = None
    preset: str = "tiny"
    model: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict) -> MotionTaskConfig:
        config = strict_from_dict(cls, values, "talking-head-motion task")
        parse_fps(config.fps)
        if not 0 <= config.audio_dropout < 1:
            raise ValueError(f"audio_dropout must be in [0, 1), got {config.audio_dropout}")
        if config.synthetic_utterances < 0 or config.eval_utterances < 0:
            raise ValueError("synthetic_utterances and eval_utterances must be >= 0")
        if config.synthetic_utterances == 0 and not config.data:
            raise ValueError("nothing to train on: set synthetic_utterances > 0 or give a DATA folder (--data)")
        if config.gain_db < 0 or config.mel_shift < 0:
            raise ValueError(f"gain_db and mel_shift must be >= 0, got {config.gain_db} and {config.mel_shift}")
        if any(not r > 0 for r in config.eval_blink_rates) or config.eval_blink_seeds < 1:
            raise ValueError(
                f"eval_blink_rates must be positive and eval_blink_seeds >= 1, got {config.eval_blink_rates} and "
                f"{config.eval_blink_seeds}"
            )
        check_intonation(config.intonation_share, config.intonation_semitones, config.intonation_heard)
        if config.stride < 1 or config.variants < 1:
            raise ValueError(f"stride and variants must be >= 1, got {config.stride} and {config.variants}")
        return config

    def held_out_voices(self) -> list[str]:
        return list(EVAL_VOICES if self.eval_voices is None else self.eval_voices)

    def train_voices(self) -> list[str]:
        return list(TRAIN_VOICES if self.voices is None else self.voices)


class MotionTask:
    """Trains a :class:`MotionDenoiser` (see the module docstring)."""

    def __init__(self, config: MotionTaskConfig, progress_bar: bool = True):
        self.config = config
        self.progress_bar = progress_bar
        self._clips: list[MotionClip] | None = None
        self._eval: list[MotionClip] | None = None
        self._helper: MotionDenoiser | None = None

    def config_dict(self) -> dict:
        return asdict(self.config)

    def _architecture(self) -> MotionDenoiser:
        """The recipe's model, untrained (seeded, built once): its sample rate, audio rows and windows."""
        if self._helper is None:
            self._helper = build_motion_denoiser({"preset": self.config.preset, **self.config.model}, seed=0)
        return self._helper

    def train_clips(self) -> list[MotionClip]:
        """The training clips (synthetic, then the DATA folder's), made once."""
        if self._clips is None:
            c, helper = self.config, self._architecture()
            sr = int(helper.sample_rate)
            if c.intonation_heard == "pitch" and c.intonation_share > 0 and not helper.config.pitch_features:
                raise ValueError(
                    "intonation_heard 'pitch' needs a model with pitch rows (model: pitch_features: true)"
                )
            clips: list[MotionClip] = []
            if c.synthetic_utterances:
                utts = synthetic_utterances(
                    "train", c.synthetic_utterances, c.data_seed, c.train_voices(), sr, cache_dir=c.cache_dir,
                    progress_bar=self.progress_bar,
                )  # fmt: skip
                clips += synthetic_clips(
                    utts, c.fps, c.variants, c.data_seed, intonation_share=c.intonation_share,
                    intonation_semitones=c.intonation_semitones, intonation_heard=c.intonation_heard,
                )  # fmt: skip
            if c.data:
                clips += data_folder_clips(c.data, c.fps, sr, c.split, c.max_clips)
            logger.info("motion training clips: %d (%d frames)", len(clips), sum(len(x.motion) for x in clips))
            self._clips = clips
        return self._clips

    def eval_clips(self) -> list[MotionClip]:
        """Held-out clips: "test" sentences in the held-out voices, truth at 15 blinks/min and head amount 1."""
        if self._eval is None:
            c = self.config
            utts = synthetic_utterances(
                "test", c.eval_utterances, c.data_seed + 1, c.held_out_voices(), int(self._architecture().sample_rate),
                cache_dir=c.cache_dir,
            )  # fmt: skip
            self._eval = synthetic_clips(utts, c.fps, 1, c.data_seed + 1, controls=(15.0, 1.0))
        return self._eval

    def build_model(self) -> MotionDenoiser:
        mean, std = field_statistics(self.train_clips())
        model = build_motion_denoiser({"preset": self.config.preset, **self.config.model}, seed=None)
        model.set_statistics(mean, std)
        return model

    def build_dataset(self) -> MotionWindows:
        dataset = MotionWindows(self.train_clips(), self._architecture(), self.config.fps, self.config.stride)
        logger.info("motion training windows: %d", len(dataset))
        return dataset

    def compute_loss(self, model, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        net: MotionDenoiser = getattr(model, "module", model)
        window, past = net.normalize(batch["window"]), net.normalize(batch["past"])
        B = window.shape[0]
        scheduler = self._scheduler(net)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (B,), device=window.device)
        noisy = scheduler.add_noise(window, torch.randn_like(window), t)
        drop = torch.rand(B, device=window.device) < self.config.audio_dropout
        k = int(net.config.n_mels)  # the gain and the band shift are the mel bands' (not the pitch rows')
        audio, floor = batch["audio"], math.log(net.mel.log_floor)
        audio = torch.cat(
            [augment_mel(audio[:, :, :k], self.config.gain_db, self.config.mel_shift, floor), audio[:, :, k:]], 2
        )
        pred = model(noisy, t, past, audio, batch["controls"], drop)
        per_field = F.mse_loss(pred.float(), window.float(), reduction="none").mean(dim=(0, 1))
        loss = per_field.mean()
        per_field = per_field.detach()
        return loss, {"loss_mouth": float(per_field[:5].mean()), "loss_pose": float(per_field[9:].mean())}

    def _scheduler(self, net: MotionDenoiser):
        if getattr(self, "_sched", None) is None:
            self._sched = net.make_scheduler("ddim")
        return self._sched

    def save_model(self, model: MotionDenoiser, path: Path) -> None:
        """A :class:`~avdiff.pipelines.talking_head.MotionTalkingHeadPipeline` folder (``model_index.json`` and
        ``motion_model/``), so ``avdiff talk --model RUN/final`` uses it as it is."""
        MotionTalkingHeadPipeline(motion_model=model).save_pretrained(path)

    @torch.no_grad()
    def evaluate(self, model: MotionDenoiser, step: int = 0) -> dict[str, float]:
        """Scores on the held-out clips with guidance ``eval_guidance`` and of the audio-dropped twin (``twin_``
        keys), means over clips, ``wins_<score>``: the share of clips where the model beats the twin, and the blinks
        made at each asked rate (:func:`blink_calibration`). Empty with ``eval_utterances: 0``."""
        c = self.config
        if not c.eval_utterances:
            return {}
        out = evaluate_motion(model, self.eval_clips(), c.fps, c.eval_guidance, c.eval_steps)
        if c.eval_blink_rates:
            out |= blink_calibration(model, self.eval_clips(), c.fps, c.eval_blink_rates, c.eval_blink_seeds,
                                     c.eval_guidance, c.eval_steps)  # fmt: skip
        return out


def augment_mel(windows: torch.Tensor, gain_db: float, shift: int, log_floor: float | None = None) -> torch.Tensor:
    """Log-mel windows [B, L, n_mels, W] with, per item, a random gain (± ``gain_db`` dB) and the bands shifted by a
    random whole number in [-shift, shift] (the edge band repeated). Draws from torch's global RNG.

    With ``log_floor`` (the log of the front end's amplitude floor, :attr:`LogMel.log_floor`), the gain acts as it
    would on the samples: nothing falls under the floor, and silence (a value at the floor: digital zeros, or the
    padding before and after a clip) stays at the floor, as it does at inference, however loud the speech. (Noise
    so quiet that the front end floored it stays floored too, where a real gain could lift it.)"""
    B = windows.shape[0]
    gain = ((torch.rand(B, device=windows.device) * 2 - 1) * gain_db * np.log(10) / 10).view(B, 1, 1, 1)
    out = windows + gain
    if log_floor is not None:  # (a tolerance, in case the front end's log rounds the floor otherwise)
        out = torch.where(windows <= log_floor + 1e-4, windows, out.clamp_min(log_floor))
    if shift:
        moves = torch.randint(-shift, shift + 1, (B,)).tolist()
        n = windows.shape[2]
        rows = []
        for b, k in enumerate(moves):
            index = (torch.arange(n) - k).clamp(0, n - 1).to(windows.device)
            rows.append(out[b].index_select(1, index))
        out = torch.stack(rows)
    return out


@torch.no_grad()
def evaluate_motion(
    model: MotionDenoiser, clips: list[MotionClip], fps: int, guidance: float = 2.0, steps: int = 10, seed: int = 0
) -> dict[str, float]:
    """Mean scores over ``clips`` (synthetic, with events) of the model at ``guidance`` and of its audio-dropped
    twin (guidance 0, ``twin_`` keys), and ``wins_<score>``: the share of clips where the model beats the twin."""
    model.eval()
    ours, twin = [], []
    for k, clip in enumerate(clips):
        if clip.events is None:
            raise ValueError(f"clip {clip.id} has no phoneme events; evaluation needs synthetic clips")
        speech = Waveform(clip.samples[None], clip.sample_rate)
        truth = Motion.from_array(clip.motion)
        scores = []
        for g in (guidance, 0.0):
            gen = sample_motion(
                model, speech, fps, num_inference_steps=steps, guidance_scale=g,
                generator=torch.Generator().manual_seed(seed + k), blink_rate_per_min=clip.controls[0],
                head_amount=clip.controls[1],
            )  # fmt: skip
            scores.append(motion_scores(gen, truth, clip.events, fps, clip.sample_rate))
        ours.append(scores[0])
        twin.append(scores[1])
    out = {"clips": float(len(clips))}
    for name in SCORES:
        a = np.array([s[name] for s in ours], np.float64)
        b = np.array([s[name] for s in twin], np.float64)
        out[name] = float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")
        out[f"twin_{name}"] = float(np.nanmean(b)) if np.isfinite(b).any() else float("nan")
        out[f"wins_{name}"] = float(np.mean(np.nan_to_num(a, nan=-np.inf) > np.nan_to_num(b, nan=-np.inf)))
    return out


@torch.no_grad()
def blink_calibration(
    model: MotionDenoiser,
    clips: list[MotionClip],
    fps: int,
    rates: list[float],
    seeds: int = 3,
    guidance: float = 2.0,
    steps: int = 10,
) -> dict[str, float]:
    """Blinks asked vs made: the clips' speech joined into one track (as a long talk is sampled: window after window,
    each continuing the last), sampled at each rate in ``rates`` with seeds ``0 .. seeds - 1``, its eyelids read by
    :func:`~avdiff.metrics.blinks.blink_stats` (the mean of both eyes).

    Returns:
        ``{"blink_minutes": minutes per rate (all seeds)}`` and, per rate ``R`` (``%g``): ``blinks_at_R`` (blinks a
        minute over all seeds), ``blink_s_min_at_R``, ``blink_s_max_at_R`` (the shortest and longest blink),
        ``longest_open_s_at_R`` (the longest stretch without a blink, any seed), as the pipelines sample (a blink the
        model leaves out past ``max_open_s`` put in: :func:`~avdiff.pipelines.talking_head.motion_sampling.iter_motion`),
        and ``model_blinks_at_R`` and ``model_longest_open_s_at_R``: the same of the model alone (nothing put in).

    Raises:
        ValueError: no clips, or clips at different sample rates.
    """
    if not clips:
        raise ValueError("blink_calibration needs at least one clip")
    if len({c.sample_rate for c in clips}) != 1:
        raise ValueError("the clips must share one sample rate to be joined")
    model.eval()
    speech = Waveform(torch.cat([c.samples for c in clips])[None], clips[0].sample_rate)
    out: dict[str, float] = {}
    for rate in rates:
        key = f"{rate:g}"
        for prefix, max_open_s in (("", OVERDUE_BLINK_S), ("model_", None)):
            made = []
            for seed in range(seeds):
                gen = sample_motion(
                    model, speech, fps, num_inference_steps=steps, guidance_scale=guidance,
                    generator=torch.Generator().manual_seed(seed), blink_rate_per_min=rate, max_open_s=max_open_s,
                )  # fmt: skip
                made.append(blink_stats((gen.eye_left + gen.eye_right) / 2, fps))
            minutes = sum(m["minutes"] for m in made)
            out[f"{prefix}blinks_at_{key}"] = sum(m["blinks"] for m in made) / minutes
            out[f"{prefix}longest_open_s_at_{key}"] = max(m["longest_open_s"] for m in made)
            if not prefix:
                out["blink_minutes"] = minutes
                shortest = [m["blink_s_min"] for m in made if m["blinks"]]
                longest = [m["blink_s_max"] for m in made if m["blinks"]]
                out[f"blink_s_min_at_{key}"] = min(shortest) if shortest else float("nan")
                out[f"blink_s_max_at_{key}"] = max(longest) if longest else float("nan")
    logger.info("blinks asked vs made: %s", {r: round(out[f"blinks_at_{r:g}"], 1) for r in rates})
    return out
