"""Motion truth for synthetic talking faces: what the face does, frame by frame, drawn from speech and from natural
statistics, as a :class:`~avdiff.video.motion.Motion` (the representation measured on real video).

* **Mouth** from phonemes: :func:`avdiff.audio.visemes.viseme_track` (visemes with Cohen-Massaro coarticulation) in
  [0, 1], scaled into the units :func:`~avdiff.video.motion.motion_from_landmarks` measures (:data:`MOUTH_SCALE`),
  and made to agree with that measure's own rules, so a renderer can show exactly the truth: the lips' pressing
  shuts the aperture (``mouth_open`` times ``1 - lip_closure``), ``lip_closure`` is then read from the aperture as
  the measure reads it (:func:`~avdiff.video.motion.closure_from_aperture`), ``mouth_round`` is the width's
  narrowing plus the protrusion, and ``jaw`` is the chin's drop from the photo's (:data:`JAW_PER_OPEN` of the
  opening beyond the photo's own).
* **Blinks** (:func:`blink_track`): a rate drawn per clip in 10-20 per minute, each blink 100-400 ms, the lid closing
  in its first third and opening in the rest (closing is faster than opening in human blinks: Evinger et al., 1991,
  "Eyelid movements", Invest. Ophthalmol. Vis. Sci. 32(2)); the gaps between blinks from a gamma distribution, kept
  within [:data:`MIN_GAP_S`, :data:`MAX_GAP_S`], whose scale is set (:func:`blink_gap_scale`) so that the clipped
  gaps still average ``60 / rate`` from blink to blink. The blinks are a stationary process: they start
  :data:`BURN_IN_S` before the clip, so a clip of any length (a 3 s sentence as much as ten minutes) shows the asked
  rate, at its start as in its middle, and a model trained on its windows learns the rate it is told.
* **Head** (:func:`head_motion`): visual prosody. Speakers move their heads with their intonation and stress (Graf
  et al., 2002, "Visual prosody: facial movements accompanying speech", FG; Munhall et al., 2004, "Visual prosody and
  speech intelligibility", Psychol. Sci. 15(2): head motion correlated with F0 at r ~0.6; Busso et al., 2007, "Rigid
  head motion in expressive speech animation", IEEE TASLP 15(3)). :func:`speech_prosody` measures the speech's F0
  (semitones around its own slow trend: the accents, not the declination) and loudness per frame; the head turns
  (yaw) with the F0 contour, leans forward (pitch) with the loudness, nods (a pitch pulse, 0.25 s, with a small brow
  raise) on each accented syllable (:func:`accent_times`: the loudest vowels), and on top of that sways slowly and a
  little, a sum of sinusoids at 0.05-0.4 Hz with random phases that no audio predicts (:data:`SWAY_DEGREES`; roll is
  sway alone). The speech-locked part carries most of the motion, so a model that hears the speech can follow the
  truth's pose.

Every draw comes from the ``numpy.random.Generator`` passed in, so a seed gives the same motion.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence

import numpy as np
import scipy.ndimage
import torch

from avdiff.audio.clock import FpsLike, FrameClock, parse_fps
from avdiff.audio.io import Waveform
from avdiff.audio.phonemes import PhonemeEvent
from avdiff.audio.pitch import speech_f0
from avdiff.audio.visemes import viseme_of, viseme_track
from avdiff.video.motion import FIELDS, Motion, closure_from_aperture

logger = logging.getLogger(__name__)

BLINKS_PER_MIN = (10.0, 20.0)  # the clip's rate is drawn uniformly in this range
BLINK_S = (0.10, 0.40)  # each blink's duration
MIN_GAP_S = 0.6  # no blink starts within this of the previous one's end
MAX_GAP_S = 8.5  # nor more than this after it: never 10 s without a blink, with room for a model's error
GAP_SHAPE = 4.0  # the gamma's shape: regular, not memoryless
BURN_IN_S = 60.0  # the blinks start this long before the clip (several gaps: the clip sees a stationary process)
SWAY_DEGREES = {"yaw": 0.5, "pitch": 0.5, "roll": 0.8}  # the slow random sway's standard deviation
SWAY_HZ = (0.05, 0.4)
YAW_PER_SEMITONE = 2.0  # degrees of yaw per semitone of F0 above its slow trend
SEMITONE_LIMIT = 6.0  # F0 is clipped to the clip's median +- this (pitch trackers' octave errors)
F0_DETREND_S = 0.5  # the head follows the intonation around its own slow trend (Gaussian sigma): the accents that
# the speech around them tells, not the declination over a whole clip, which a window of speech cannot hear
LEAN_DEGREES = 1.5  # pitch (forward) at full loudness
LOUDNESS_DB = 30.0  # frame RMS from the clip's loud level (its 95th percentile) down this many dB maps 1 ... 0
PROSODY_SMOOTH_S = 0.12  # the head follows the prosody this smoothly (Gaussian sigma)
NOD_DEGREES = 2.0  # pitch pulse (down) on an accented syllable
NOD_S = 0.25
BROW_RAISE = 0.02  # face sizes, with each nod
# viseme parameter in [0, 1] -> the Motion field: value = scale * (v - offset)
MOUTH_SCALE = {
    "mouth_open": (0.3, 0.0),  # a wide-open vowel ~0.27 of the face size
    "mouth_width": (0.3, 0.5),  # spread +0.15, rounded -0.1 of the photo's width
    "mouth_round": (0.15, 0.2),  # the protrusion part, clipped at 0 (the narrowing is added as measured)
    "lip_closure": (1.0, 0.0),
}
JAW_PER_OPEN = 0.3  # the chin drops by this much of the mouth opening (beyond the photo's)


def _frame_times(num_frames: int, fps: FpsLike) -> np.ndarray:
    return np.arange(num_frames) / float(parse_fps(fps))


def blink_rate_limits() -> tuple[float, float]:
    """The blink rates (per minute) that gaps within [:data:`MIN_GAP_S`, :data:`MAX_GAP_S`] and blinks of
    :data:`BLINK_S` can make on average: (all gaps the longest, all the shortest), open at both ends."""
    duration = float(np.mean(BLINK_S))
    return 60.0 / (MAX_GAP_S + duration), 60.0 / (MIN_GAP_S + duration)


def _clipped_gamma_mean(scale: float) -> float:
    """E[clip(G, MIN_GAP_S, MAX_GAP_S)] for G ~ Gamma(GAP_SHAPE, scale): MIN + the integral of P(G > x) over
    [MIN, MAX] (the gamma's CDF by the trapezoid rule on a fine grid)."""
    x = np.linspace(0.0, MAX_GAP_S, 4001)
    z = np.maximum(x / scale, 1e-300)
    logpdf = (GAP_SHAPE - 1) * np.log(z) - z - math.lgamma(GAP_SHAPE) - math.log(scale)
    pdf = np.where(x > 0, np.exp(logpdf), 0.0)
    cdf = np.concatenate([[0.0], np.cumsum((pdf[1:] + pdf[:-1]) / 2 * np.diff(x))])
    inside = x >= MIN_GAP_S
    survival = 1.0 - cdf[inside]
    return MIN_GAP_S + float(np.sum((survival[1:] + survival[:-1]) / 2 * np.diff(x[inside])))


@functools.lru_cache(maxsize=4096)
def blink_gap_scale(rate_per_min: float) -> float:
    """The gamma scale (s) of the gaps that makes blinks of :data:`BLINK_S` with gaps clipped to
    [:data:`MIN_GAP_S`, :data:`MAX_GAP_S`] come ``rate_per_min`` times a minute on average (bisection: the clipped
    mean grows with the scale).

    Raises:
        ValueError: a rate outside :func:`blink_rate_limits` (no gaps within the bounds average that).
    """
    low, high = blink_rate_limits()
    if not low < rate_per_min < high:
        raise ValueError(
            f"rate_per_min must be in ({low:.2f}, {high:.2f}) blinks a minute (gaps of {MIN_GAP_S}-{MAX_GAP_S} s "
            f"between blinks of {BLINK_S[0]}-{BLINK_S[1]} s), got {rate_per_min}"
        )
    target = 60.0 / rate_per_min - float(np.mean(BLINK_S))
    a, b = 1e-3, 100.0
    for _ in range(60):
        mid = math.sqrt(a * b)
        a, b = (mid, b) if _clipped_gamma_mean(mid) < target else (a, mid)
    return math.sqrt(a * b)


def blink_track(
    num_frames: int, fps: FpsLike, rng: np.random.Generator, rate_per_min: float | None = None
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Eyelid closure per frame (0 open ... 1 shut) with natural blinks, ``rate_per_min`` on average over any span of
    the clip (a stationary process begun :data:`BURN_IN_S` before it; module doc).

    Args:
        num_frames: frames, >= 0.
        fps: frame rate.
        rng: draws the rate (unless given), the gaps and the durations.
        rate_per_min: blinks per minute, within :func:`blink_rate_limits`; None draws it in :data:`BLINKS_PER_MIN`.

    Returns:
        ``(closure float32 [num_frames], blinks [(start_s, duration_s)])``: the blinks the clip shows, in order,
        after the last one that ended before the clip (a negative start; one in progress at the first frame has a
        negative start too).

    Raises:
        ValueError: ``num_frames`` < 0 or a rate that is not positive or out of :func:`blink_rate_limits`.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    rate = rng.uniform(*BLINKS_PER_MIN) if rate_per_min is None else float(rate_per_min)
    if not rate > 0:
        raise ValueError(f"rate_per_min must be positive, got {rate_per_min}")
    scale = blink_gap_scale(rate)
    times = _frame_times(num_frames, fps)
    end_s = num_frames / float(parse_fps(fps))
    blinks, before, t = [], None, -BURN_IN_S + rng.uniform(0.0, 60.0 / rate)
    while t < end_s:
        duration = rng.uniform(*BLINK_S)
        if t + duration > 0:
            blinks.append((float(t), float(duration)))
        else:
            before = (float(t), float(duration))
        gap = rng.gamma(GAP_SHAPE, scale)
        t += duration + float(np.clip(gap, MIN_GAP_S, MAX_GAP_S))
    if before is not None:
        blinks.insert(0, before)  # the last blink before the clip: when the eyes last blinked is known everywhere
    closure = np.zeros(num_frames, np.float32)
    for start, duration in blinks:
        closure = np.maximum(closure, blink_shape((times - start) / duration))
    return closure, blinks


def blink_shape(x: np.ndarray) -> np.ndarray:
    """Eyelid closure of one blink at ``x`` (float [N], 0 ... 1 over the blink; 0 outside it): the lid closes in the
    first third (a half cosine up to 1) and opens in the rest (module doc), float32 [N]."""
    x = np.asarray(x, np.float64)
    shape = np.where(x < 1 / 3, 0.5 - 0.5 * np.cos(np.pi * 3 * x), 0.5 + 0.5 * np.cos(np.pi * (x - 1 / 3) * 1.5))
    return np.where((x >= 0) & (x < 1), shape, 0.0).astype(np.float32)


def accent_times(events: Sequence[PhonemeEvent], speech: Waveform, top: float = 1 / 3) -> np.ndarray:
    """Times (s) of accented syllables: the starts of the vowels (visemes open, spread or rounded) whose RMS is in the
    loudest ``top`` share of the vowels."""
    samples = speech.samples.mean(dim=0).numpy() if speech.samples.ndim == 2 else speech.samples.numpy()
    vowels = [
        e for e in events if viseme_of(e.phoneme) in ("open", "spread", "rounded") and e.phoneme not in ("w", "j")
    ]
    if not vowels:
        return np.zeros(0)
    rms = np.array([np.sqrt(np.mean(samples[e.start_sample : e.end_sample] ** 2) + 1e-12) for e in vowels])
    cut = np.quantile(rms, 1 - top)
    return np.array([e.start_sample / speech.sample_rate for e, r in zip(vowels, rms) if r >= cut])


def speech_prosody(events: Sequence[PhonemeEvent], speech: Waveform, num_frames: int, fps: FpsLike) -> dict:
    """The speech's prosody per frame, as the head follows it (module doc).

    Args:
        events: the speech's phonemes, at ``speech``'s rate: F0 is read over the vowels only.
        speech: mono [N] or [C, N] waveform.
        num_frames: frames, >= 0 (frame ``i`` at ``i / fps`` s).
        fps: frame rate.

    Returns:
        ``{"loudness", "f0"}``, float32 [num_frames] each, smoothed by :data:`PROSODY_SMOOTH_S`: ``loudness`` in [0, 1]
        (frame RMS in dB above the clip's 95th percentile minus :data:`LOUDNESS_DB`, over :data:`LOUDNESS_DB`);
        ``f0`` in semitones from the median F0 of the clip's vowels (YIN, :func:`~avdiff.audio.pitch.speech_f0`,
        median-filtered, clipped to +-:data:`SEMITONE_LIMIT`, held across consonants and pauses), less
        its own slow trend (a Gaussian of :data:`F0_DETREND_S`); all zero for speech without vowels.

    Raises:
        ValueError: ``num_frames`` < 0.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    samples = speech.samples.mean(dim=0) if speech.samples.ndim == 2 else speech.samples
    samples = samples.float()
    rate = speech.sample_rate
    times = _frame_times(num_frames, fps)
    sigma = PROSODY_SMOOTH_S * float(parse_fps(fps))
    if num_frames == 0 or samples.numel() < rate // 50:
        return {"loudness": np.zeros(num_frames, np.float32), "f0": np.zeros(num_frames, np.float32)}

    hop = rate // 100  # 10 ms
    padded = torch.nn.functional.pad(samples, (2 * hop, 2 * hop))
    rms = padded.unfold(0, 4 * hop, hop).pow(2).mean(dim=1).add(1e-10).sqrt().numpy()  # 40 ms windows
    db = 20 * np.log10(rms)
    loud = np.clip((db - (np.percentile(db, 95) - LOUDNESS_DB)) / LOUDNESS_DB, 0.0, 1.0)
    loudness = np.interp(times, np.arange(len(loud)) * hop / rate, loud)

    f0_times, f0 = speech_f0(samples.numpy(), rate)
    vowel = np.zeros(len(f0), bool)
    for e in events:
        if viseme_of(e.phoneme) in ("open", "spread", "rounded"):
            vowel |= (f0_times >= e.start_sample / rate) & (f0_times < e.end_sample / rate)
    vowel &= np.interp(f0_times, np.arange(len(loud)) * hop / rate, loud) > 0.3  # a sounding vowel
    if vowel.sum() < 3:
        semitones = np.zeros(num_frames)
    else:
        st = 12 * np.log2(np.maximum(f0[vowel], 1.0) / np.median(f0[vowel]))
        st = np.clip(scipy.ndimage.median_filter(st, size=7, mode="nearest"), -SEMITONE_LIMIT, SEMITONE_LIMIT)
        semitones = np.interp(times, f0_times[vowel], st)
        semitones = semitones - scipy.ndimage.gaussian_filter1d(
            semitones, F0_DETREND_S * float(parse_fps(fps)), mode="nearest"
        )
    return {
        "loudness": scipy.ndimage.gaussian_filter1d(loudness, sigma, mode="nearest").astype(np.float32),
        "f0": scipy.ndimage.gaussian_filter1d(semitones, sigma, mode="nearest").astype(np.float32),
    }


def head_motion(
    num_frames: int,
    fps: FpsLike,
    rng: np.random.Generator,
    prosody: dict | None = None,
    accents_s: Sequence[float] = (),
    amount: float = 1.0,
) -> dict[str, np.ndarray]:
    """Head pose per frame: turned by the F0, leaning with the loudness, a nod on each accent, and a little random
    sway (module doc).

    Args:
        num_frames: frames, >= 0.
        fps: frame rate.
        rng: draws the sway's frequencies and phases.
        prosody: :func:`speech_prosody` of the speech (arrays [num_frames]); None is silence (sway alone).
        accents_s: times (s) of accented syllables (:func:`accent_times`): a downward pitch pulse each.
        amount: scales all of it; 0 is a still head.

    Returns:
        ``{"yaw", "pitch", "roll"}`` in radians and ``{"tx", "ty"}`` in face sizes, float32 [num_frames] each, and
        ``"brow"``: the brow raise that goes with the nods (face sizes).

    Raises:
        ValueError: ``num_frames`` < 0, a negative ``amount`` or prosody arrays of another length.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if not amount >= 0:
        raise ValueError(f"amount must be >= 0, got {amount}")
    if prosody is not None and any(len(prosody[k]) != num_frames for k in ("loudness", "f0")):
        raise ValueError(f"prosody must have {num_frames} frames, got {[len(v) for v in prosody.values()]}")
    t = _frame_times(num_frames, fps)
    out = {}
    for name, degrees in SWAY_DEGREES.items():
        freqs = rng.uniform(*SWAY_HZ, size=3)
        phases = rng.uniform(0, 2 * np.pi, size=3)
        wave = np.sin(2 * np.pi * freqs[:, None] * t[None] + phases[:, None]).sum(axis=0) / np.sqrt(1.5)
        out[name] = np.deg2rad(degrees) * wave  # sd of a sum of 3 unit sines is sqrt(1.5)
    if prosody is not None:
        out["yaw"] = out["yaw"] + np.deg2rad(YAW_PER_SEMITONE) * prosody["f0"]
        out["pitch"] = out["pitch"] + np.deg2rad(LEAN_DEGREES) * prosody["loudness"]
    pulses = np.zeros(num_frames)
    for a in accents_s:
        pulses += np.exp(-0.5 * ((t - a - NOD_S / 2) / (NOD_S / 4)) ** 2)
    pulses = np.minimum(pulses, 1.0)
    out["pitch"] = out["pitch"] + np.deg2rad(NOD_DEGREES) * pulses
    out["tx"] = 0.2 * out["yaw"]  # the head turns about the neck: the face shifts a little with yaw
    out["ty"] = 0.2 * out["pitch"]
    out["brow"] = BROW_RAISE * pulses
    return {k: (amount * v).astype(np.float32) for k, v in out.items()}


def motion_truth(
    events: Sequence[PhonemeEvent],
    speech: Waveform,
    fps: FpsLike,
    rng: np.random.Generator,
    *,
    head_amount: float = 1.0,
    blink_rate_per_min: float | None = None,
    reference_open: float = 0.0,
) -> Motion:
    """:func:`motion_truth_with_blinks` (same arguments and errors), the :class:`~avdiff.video.motion.Motion` alone."""
    return motion_truth_with_blinks(
        events, speech, fps, rng, head_amount=head_amount, blink_rate_per_min=blink_rate_per_min,
        reference_open=reference_open,
    )[0]  # fmt: skip


def motion_truth_with_blinks(
    events: Sequence[PhonemeEvent],
    speech: Waveform,
    fps: FpsLike,
    rng: np.random.Generator,
    *,
    head_amount: float = 1.0,
    blink_rate_per_min: float | None = None,
    reference_open: float = 0.0,
) -> tuple[Motion, list[tuple[float, float]]]:
    """The motion of a synthetic face saying ``speech``: its mouth from the phonemes, natural blinks, a head that
    follows the speech's prosody (module doc); one frame per :class:`~avdiff.audio.clock.FrameClock` frame of the audio.

    Args:
        events: the speech's phonemes (:func:`avdiff.audio.phonemes.speak_with_phonemes`), at ``speech``'s rate.
        speech: the waveform the events belong to.
        fps: frame rate.
        rng: draws the blinks and the sway.
        head_amount: scales the head's motion (0: a still head).
        blink_rate_per_min: None draws it in :data:`BLINKS_PER_MIN`.
        reference_open: the photo's own ``mouth_open`` (``inner_lip_aperture``), in face sizes: the jaw is relative
            to the photo, so it is raised where the mouth is shut tighter than in the photo.

    Returns:
        ``(motion, blinks)``: a :class:`~avdiff.video.motion.Motion` of ``FrameClock(fps, rate).num_frames(N)``
        frames and its blinks as :func:`blink_track` gives them (``(start_s, duration_s)``, the first before the
        clip).
    """
    num_frames = FrameClock(fps, speech.sample_rate).num_frames(speech.samples.shape[-1])
    mouth = viseme_track(events, num_frames, fps, speech.sample_rate)
    fields = {name: np.zeros(num_frames, np.float32) for name in FIELDS}
    for name, (scale, offset) in MOUTH_SCALE.items():
        fields[name] = (scale * (mouth[name] - offset)).astype(np.float32)
    fields["mouth_open"] = fields["mouth_open"] * (1.0 - fields["lip_closure"])  # pressed lips shut the aperture
    fields["lip_closure"] = closure_from_aperture(fields["mouth_open"])  # as measured
    fields["mouth_round"] = np.maximum(-fields["mouth_width"], 0) + np.maximum(fields["mouth_round"], 0)
    fields["jaw"] = JAW_PER_OPEN * (fields["mouth_open"] - float(reference_open))
    fields = {name: np.asarray(value, np.float32) for name, value in fields.items()}
    eyes, blinks = blink_track(num_frames, fps, rng, blink_rate_per_min)
    fields["eye_left"] = fields["eye_right"] = eyes
    prosody = speech_prosody(events, speech, num_frames, fps)
    head = head_motion(num_frames, fps, rng, prosody, accent_times(events, speech), head_amount)
    for name in ("yaw", "pitch", "roll", "tx", "ty"):
        fields[name] = head[name]
    fields["brow_left"] = fields["brow_right"] = head["brow"]
    fields["scale"] = np.ones(num_frames, np.float32)
    return Motion.from_dict(fields), blinks
