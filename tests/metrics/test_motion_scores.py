"""Scores of generated motion against the truth: the head's yaw and pitch r (and NaN against a still head)."""

import numpy as np
import pytest

from avdiff.audio.phonemes import speak_with_phonemes
from avdiff.data.motion_truth import motion_truth
from avdiff.metrics.motion_scores import motion_scores

pytestmark = pytest.mark.requires_espeak


@pytest.fixture(scope="module")
def spoken():
    return speak_with_phonemes("Bob bought a big map of Rome.", sample_rate=16000)


def test_head_pose_r_follows_the_truths_yaw_and_pitch(spoken):
    speech, events = spoken
    truth = motion_truth(events, speech, 25, np.random.default_rng(0))
    same = motion_scores(truth, truth, events, 25, 16000)
    assert same["yaw_r"] == pytest.approx(1.0) and same["pitch_r"] == pytest.approx(1.0)
    assert same["mouth_open_r"] == pytest.approx(1.0) and same["closure_recall"] == 1.0
    turned = truth.replace(yaw=-truth.yaw, pitch=truth.pitch[::-1].copy())
    got = motion_scores(turned, truth, events, 25, 16000)
    assert got["yaw_r"] == pytest.approx(-1.0) and got["pitch_r"] < 0.9


def test_head_pose_r_is_nan_against_a_still_head(spoken):
    speech, events = spoken
    still = motion_truth(events, speech, 25, np.random.default_rng(0), head_amount=0.0)
    moving = motion_truth(events, speech, 25, np.random.default_rng(0))
    got = motion_scores(moving, still, events, 25, 16000)
    assert np.isnan(got["yaw_r"]) and np.isnan(got["pitch_r"])
    assert got["mouth_open_r"] == pytest.approx(1.0)
