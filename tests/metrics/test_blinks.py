"""Blinks read from an eyelid track: the truth's own blinks come back, twitches do not count, and the longest time
the eyes stay open is measured from the start to the end."""

import numpy as np
import pytest

from avdiff.data.motion_truth import blink_track
from avdiff.metrics.blinks import blink_events, blink_stats

FPS = 25


def test_the_truths_blinks_are_found_where_and_as_long_as_they_are():
    closure, blinks = blink_track(FPS * 120, FPS, np.random.default_rng(4), rate_per_min=15)
    found = blink_events(closure, FPS)
    truth = [(s, d) for s, d in blinks if s > 1 / FPS and s + d < 120 - 1 / FPS]  # whole blinks inside the clip
    assert len(found) == len([b for b in blinks if (b[0] + b[1]) > 0])
    starts = np.array([s for s, _ in found])
    for s, d in truth:
        k = int(np.argmin(np.abs(starts - s)))
        assert abs(starts[k] - s) <= 2 / FPS  # the lid passes 0.1 within a frame or two of the blink's start
        assert found[k][1] == pytest.approx(d, abs=3 / FPS)


def test_stats_count_blinks_not_twitches_and_time_the_open_stretches():
    closure = np.zeros(FPS * 60)
    closure[50:55] = [0.3, 0.8, 1.0, 0.6, 0.2]  # a blink at 2 s, 0.2 s long
    closure[300:303] = [0.2, 0.4, 0.2]  # a twitch: the lid never gets half shut
    closure[1000:1004] = [0.5, 1.0, 0.9, 0.3]  # a blink at 40 s
    s = blink_stats(closure, FPS)
    assert s["blinks"] == 2 and s["blinks_per_min"] == pytest.approx(2.0)
    assert s["blink_s_min"] == pytest.approx(0.16) and s["blink_s_max"] == pytest.approx(0.2)
    assert s["longest_open_s"] == pytest.approx((1000 - 55) / FPS)  # between the two blinks
    assert blink_stats(np.zeros(FPS * 30), FPS)["longest_open_s"] == pytest.approx(30.0)
    assert np.isnan(blink_stats(np.zeros(10), FPS)["blink_s_mean"])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        blink_stats(np.zeros((2, 3)), FPS)
