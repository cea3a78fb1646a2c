"""Ten minutes of speech through the shipped motion model: nothing drifts. The same half minute of held-out speech
(unseen voices) is said twenty times over, so the first and the last minute hear the same sentences (in another
order of their half-minute cycle) and a difference between their motion is drift, not other speech."""

import numpy as np
import pytest
import torch

from avdiff.audio.io import Waveform
from avdiff.data.motion_dataset import synthetic_utterances
from avdiff.pipelines import MotionTalkingHeadPipeline
from avdiff.pipelines.talking_head import sample_motion
from avdiff.training.talking_head_motion import EVAL_VOICES

pytestmark = [pytest.mark.slow, pytest.mark.requires_espeak]

FPS = 25
MINUTE = 60 * FPS


@pytest.fixture(scope="module")
def ten_minutes():
    """The motion of 10+ minutes of speech."""
    pipe = MotionTalkingHeadPipeline.from_pretrained("avdiff/talking-head-motion")
    utterances = synthetic_utterances("test", 10, seed=7, voices=EVAL_VOICES)
    sr = utterances[0].speech.sample_rate
    pause = torch.zeros(int(0.4 * sr))
    once = torch.cat([torch.cat([u.speech.samples.float().mean(dim=0), pause]) for u in utterances])
    reps = int(np.ceil(600 * sr / len(once)))
    motion = sample_motion(pipe.motion_model, Waveform(once.repeat(reps)[None], sr), FPS,
                           generator=torch.Generator().manual_seed(0))  # fmt: skip
    return motion


def test_ten_minutes_do_not_drift(ten_minutes):
    motion = ten_minutes
    assert len(motion) >= 10 * MINUTE
    first, last = slice(0, MINUTE), slice(len(motion) - MINUTE, len(motion))
    for name in ("yaw", "pitch", "roll", "tx", "ty", "mouth_open", "eye_left", "eye_right"):
        v = getattr(motion, name)
        sd = max(v.std(), 1e-4)
        shift = abs(v[last].mean() - v[first].mean()) / sd
        assert shift < 0.5, (name, shift)  # the mean moved by less than half the whole track's sd
        ratio = v[last].std() / max(v[first].std(), 1e-4)
        assert 0.6 < ratio < 1.6, (name, ratio)  # and the motion is as lively at the end as at the start
    for name in ("yaw", "pitch", "roll"):
        assert np.abs(getattr(motion, name)).max() < np.radians(15), name  # the head never wanders off


def test_ten_minutes_blink_at_a_natural_rate_and_never_stare_for_10_s(ten_minutes):
    """Blinks 10-20 a minute (15 asked), each 100-400 ms as the measure sees them at 25 fps, and never 10 s without
    one: the model's own, or one put in where it left a blink out (iter_motion's max_open_s)."""
    from avdiff.metrics.blinks import blink_stats

    stats = blink_stats((ten_minutes.eye_left + ten_minutes.eye_right) / 2, FPS)
    assert 10 <= stats["blinks_per_min"] <= 20, stats
    assert 0.06 <= stats["blink_s_min"] and stats["blink_s_max"] <= 0.44, stats
    assert stats["longest_open_s"] < 10, stats
