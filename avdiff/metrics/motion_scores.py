"""How well a generated mouth follows the phonemes: a generated :class:`~avdiff.video.motion.Motion` scored against
the motion truth of the same speech (:func:`avdiff.data.motion_truth.motion_truth`).

* ``mouth_open_r``, ``round_r``: Pearson r of ``mouth_open`` and of ``mouth_round`` with the truth's, over the frames;
* ``closure_recall``: the share of bilabial phonemes (p, b, m: viseme ``closed``) in the speech during which the
  generated lips close (``lip_closure >= CLOSED`` in at least one frame that shows the phoneme);
* ``closure_precision``: of the generated frames with closed lips while someone speaks (frames that show no pause),
  the share where the truth's lips are closed too, within ±1 frame;
* ``yaw_r``, ``pitch_r``: Pearson r of the head's yaw and pitch with the truth's (NaN where the truth's head keeps
  still: there is nothing to follow). Most of the synthetic truth's pose can be heard (it turns with the F0, leans
  with the loudness and nods on accented syllables), not its small random sway
  (:func:`avdiff.data.motion_truth.head_motion`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from avdiff.audio.clock import FpsLike
from avdiff.audio.phonemes import PhonemeEvent
from avdiff.audio.visemes import frames_of_event, viseme_of
from avdiff.metrics.lipsync import pearson
from avdiff.video.motion import Motion

logger = logging.getLogger(__name__)

CLOSED = 0.5  # lip_closure from which the lips count as closed


def motion_scores(
    generated: Motion, truth: Motion, events: Sequence[PhonemeEvent], fps: FpsLike, sample_rate: int
) -> dict[str, float]:
    """Scores of ``generated`` against ``truth`` (module doc).

    Args:
        generated, truth: motion of the same frames.
        events: the speech's phonemes, at ``sample_rate``.
        fps: the frame rate of both.
        sample_rate: the rate of the events' sample positions.

    Returns:
        ``{"mouth_open_r", "round_r", "closure_recall", "closure_precision", "yaw_r", "pitch_r", "bilabials",
        "closed_frames"}``; a recall with no bilabial phoneme, a precision with no closed generated frame, or a pose
        r against a still truth, is NaN.

    Raises:
        ValueError: the two motions differ in length.
    """
    if len(generated) != len(truth):
        raise ValueError(f"generated and truth must have the same frames, got {len(generated)} and {len(truth)}")
    n = len(truth)
    closed = generated.lip_closure >= CLOSED
    truth_closed = truth.lip_closure >= CLOSED
    near_truth_closed = truth_closed.copy()
    near_truth_closed[1:] |= truth_closed[:-1]
    near_truth_closed[:-1] |= truth_closed[1:]
    speaking = np.zeros(n, bool)
    hits, bilabials = 0, 0
    for e in events:
        frames = [f for f in frames_of_event(e, fps, sample_rate) if 0 <= f < n]
        kind = viseme_of(e.phoneme)
        if kind != "rest":
            speaking[frames] = True
        if kind == "closed" and frames:
            bilabials += 1
            hits += bool(closed[frames].any())
    chosen = closed & speaking
    return {
        "mouth_open_r": pearson(generated.mouth_open, truth.mouth_open),
        "round_r": pearson(generated.mouth_round, truth.mouth_round),
        "closure_recall": hits / bilabials if bilabials else float("nan"),
        "closure_precision": float(near_truth_closed[chosen].mean()) if chosen.any() else float("nan"),
        "yaw_r": _pose_r(generated.yaw, truth.yaw),
        "pitch_r": _pose_r(generated.pitch, truth.pitch),
        "bilabials": float(bilabials),
        "closed_frames": float(chosen.sum()),
    }


def _pose_r(generated: np.ndarray, truth: np.ndarray) -> float:
    """Pearson r of a pose angle with the truth's; NaN where the truth keeps still (constant)."""
    truth = np.asarray(truth, np.float64)
    if not np.isfinite(truth).any() or np.nanmax(truth) == np.nanmin(truth):
        return float("nan")
    return pearson(generated, truth)
