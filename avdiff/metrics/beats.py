"""Beat alignment of a music video: do its visual changes land on the music's beats?

The picture's beats are the peaks of its per-frame visual change: the mean absolute difference of consecutive frames
in grey levels (``method="diff"``), or the mean optical-flow magnitude (Farneback, ``method="flow"``). The change into
frame ``f`` is placed at ``f / fps``, when the new picture appears. The music's beats come from the video's own
audio track (:func:`~avdiff.audio.rhythm.analyze_rhythm`), or are given.

Scores, with ``sigma = 50 ms`` (AIST++'s 3 frames at 60 fps, in seconds so that any frame rate compares):

* **Beat Align Score** (BAS, as AIST++ / Bailando compute it: Li et al., ICCV 2021): the mean over the visual peaks
  of ``exp(-d^2 / (2 sigma^2))``, ``d`` the distance to the nearest music beat;
* the same in the other direction, the mean over the music beats with ``d`` to the nearest visual peak (papers use
  both under one name; this one punishes beats with no visual change, the first punishes changes off the beat);
* **hit rate**: the share of music beats with a visual peak within one frame (``|d| <= 1 / fps``);
* **chance**: the BAS of peaks spread uniformly in time over the beats' span, for these beats (a picture that
  ignores the music scores about this).

No score comes from nothing: with fewer than :data:`MIN_BEATS` music beats or :data:`MIN_PEAKS` visual peaks (a still
video, silence, no audio track) the result says why and holds no numbers (``scored`` False).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import cv2
import numpy as np
import scipy.signal

from avdiff.audio.rhythm import analyze_rhythm
from avdiff.video.reader import VideoReader

logger = logging.getLogger(__name__)

SIGMA_S = 0.05  # AIST++: sigma = 3 frames at 60 fps
MIN_BEATS = 4
MIN_PEAKS = 2
# Below this a frame did not visibly change (encoder noise): mean |difference| in grey levels, or mean flow in px.
MIN_CHANGE = {"diff": 0.25, "flow": 0.05}
METHODS = ("diff", "flow")


@dataclass
class BeatAlignment:
    """The beat alignment of a video (see the module docstring).

    Attributes:
        scored: whether there are scores; when not, ``reason`` says why and the scores are None.
        reason: why there is no score, or None.
        beat_align_score: BAS, mean over visual peaks (None when not scored).
        beat_align_score_music: the mean over music beats.
        hit_rate: share of music beats with a visual peak within ±1 frame.
        chance: the BAS of peaks spread uniformly over the beats' span.
        sigma_s: the Gaussian's sigma, seconds.
        fps: the video's frame rate.
        num_beats, num_peaks: how many of each.
        beat_times_s, peak_times_s: the beats and the visual peaks, seconds.
        change: the per-frame visual change (grey levels, or px of flow), float32 [F].
        method: ``"diff"`` or ``"flow"``.
    """

    scored: bool
    reason: str | None
    beat_align_score: float | None
    beat_align_score_music: float | None
    hit_rate: float | None
    chance: float | None
    sigma_s: float
    fps: float
    num_beats: int
    num_peaks: int
    beat_times_s: np.ndarray = field(repr=False)
    peak_times_s: np.ndarray = field(repr=False)
    change: np.ndarray = field(repr=False)
    method: str = "diff"

    def to_dict(self, with_series: bool = False) -> dict:
        """A JSON-ready dict (the beat and peak times and the change curve only with ``with_series``)."""
        out = {
            "scored": self.scored,
            "reason": self.reason,
            "beat_align_score": self.beat_align_score,
            "beat_align_score_music": self.beat_align_score_music,
            "hit_rate": self.hit_rate,
            "chance": self.chance,
            "sigma_s": self.sigma_s,
            "fps": self.fps,
            "num_beats": self.num_beats,
            "num_peaks": self.num_peaks,
            "method": self.method,
        }
        if with_series:
            out.update(
                beat_times_s=self.beat_times_s.tolist(),
                peak_times_s=self.peak_times_s.tolist(),
                change=self.change.tolist(),
            )
        return out


def visual_change(frames, method: str = "diff", max_side: int = 256) -> np.ndarray:
    """Per-frame visual change of any iterable of uint8 frames [H, W, 3], float32 [F] (``change[0] = 0``): the mean
    absolute grey-level difference from the previous frame, or the mean Farneback optical-flow magnitude in pixels
    (of frames scaled to at most ``max_side`` px). Frames are read one at a time."""

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    out = []
    previous = None
    for frame in frames:
        gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        if method == "flow" and max(gray.shape) > max_side:
            scale = max_side / max(gray.shape)
            gray = cv2.resize(
                gray,
                (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale))),
                interpolation=cv2.INTER_AREA,
            )
        if previous is None:
            out.append(0.0)
        elif method == "diff":
            out.append(float(np.abs(gray.astype(np.int16) - previous.astype(np.int16)).mean()))
        else:
            flow = cv2.calcOpticalFlowFarneback(previous, gray, None, 0.5, 3, 15, 3, 5, 1.2, 0)
            out.append(float(np.hypot(flow[..., 0], flow[..., 1]).mean()))
        previous = gray
    return np.asarray(out, dtype=np.float32)


def change_peaks(change: np.ndarray, min_change: float = MIN_CHANGE["diff"]) -> np.ndarray:
    """The frames where the visual change peaks: local maxima at least ``min_change`` high and standing out from
    their surroundings by a tenth of the change's spread (``scipy.signal.find_peaks`` prominence), int64 [P]."""
    change = np.asarray(change, dtype=np.float64)
    if len(change) < 3:
        return np.zeros(0, dtype=np.int64)
    spread = float(np.percentile(change, 99) - np.percentile(change, 1))
    peaks, _ = scipy.signal.find_peaks(change, height=min_change, prominence=max(0.1 * spread, 1e-6))
    return peaks.astype(np.int64)


def alignment_scores(peak_times_s: np.ndarray, beat_times_s: np.ndarray, fps: float, sigma_s: float = SIGMA_S) -> dict:
    """``{"beat_align_score", "beat_align_score_music", "hit_rate", "chance"}`` of visual peaks against music beats
    (see the module docstring); the caller checks there are enough of both."""
    peaks = np.sort(np.asarray(peak_times_s, dtype=np.float64))
    beats = np.sort(np.asarray(beat_times_s, dtype=np.float64))
    d_peaks = _nearest_distance(peaks, beats)
    d_beats = _nearest_distance(beats, peaks)
    g = lambda d: np.exp(-(d**2) / (2 * sigma_s**2))  # noqa: E731
    grid = np.linspace(beats[0], beats[-1], max(1000, int((beats[-1] - beats[0]) * 1000)))
    return {
        "beat_align_score": float(g(d_peaks).mean()),
        "beat_align_score_music": float(g(d_beats).mean()),
        "hit_rate": float((d_beats <= 1.0 / fps + 1e-9).mean()),
        "chance": float(g(_nearest_distance(grid, beats)).mean()),
    }


def _nearest_distance(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """For each of ``x``, the distance to the nearest of the sorted ``ref``."""
    i = np.clip(np.searchsorted(ref, x), 1, len(ref) - 1) if len(ref) > 1 else np.zeros(len(x), dtype=int)
    left, right = ref[np.maximum(i - 1, 0)], ref[i]
    return np.minimum(np.abs(x - left), np.abs(x - right))


def beat_alignment(
    change: np.ndarray, fps: float, beat_times_s: np.ndarray, sigma_s: float = SIGMA_S, method: str = "diff"
) -> BeatAlignment:
    """Score a visual-change curve [F] at ``fps`` against music beats (seconds)."""
    beats = np.asarray(beat_times_s, dtype=np.float64)
    peaks = change_peaks(change, MIN_CHANGE[method]) / float(fps)
    result = dict(
        sigma_s=sigma_s,
        fps=float(fps),
        num_beats=len(beats),
        num_peaks=len(peaks),
        beat_times_s=beats,
        peak_times_s=peaks,
        change=np.asarray(change, dtype=np.float32),
        method=method,
    )
    reason = None
    if len(beats) < MIN_BEATS:
        reason = f"the music has {len(beats)} beat(s); at least {MIN_BEATS} are needed"
    elif len(peaks) < MIN_PEAKS:
        unit = "grey levels" if method == "diff" else "px of optical flow"
        reason = (
            f"the picture has {len(peaks)} visual-change peak(s) (changes of at least {MIN_CHANGE[method]:g} "
            f"{unit}); at least {MIN_PEAKS} are needed"
        )
    if reason is not None:
        return BeatAlignment(False, reason, None, None, None, None, **result)
    return BeatAlignment(True, None, **alignment_scores(peaks, beats, fps, sigma_s), **result)


def score_video(
    path: str | os.PathLike, method: str = "diff", beat_times_s: np.ndarray | None = None, sigma_s: float = SIGMA_S
) -> BeatAlignment:
    """The beat alignment of a video file: its frames streamed (never held), its own audio track's beats (or
    ``beat_times_s``). A video without a (readable) audio track and no beats given is not scored."""

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    with VideoReader(path) as video:
        fps = float(video.fps)
        audio = video.audio
        change = visual_change(video, method)
    if beat_times_s is None:
        if audio is None:
            beats = np.zeros(0)
            result = beat_alignment(change, fps, beats, sigma_s, method)
            result.scored, result.reason = False, "the video has no (readable) audio track to find the beats in"
            result.beat_align_score = result.beat_align_score_music = result.hit_rate = result.chance = None
            return result
        beats = analyze_rhythm(audio, fps=fps).beat_times_s
    else:
        beats = np.asarray(beat_times_s, dtype=np.float64)
    return beat_alignment(change, fps, beats, sigma_s, method)
