"""Reactive curves: per-frame envelopes and positions from the one clock, against known truth on plain data."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from avdiff.audio.curves import CurveSpec, curve_envelope, curve_position, follow, plot_curves, step_frames

from rhythms import rhythm_of


def test_linear_is_a_ramp_per_interval():
    r = rhythm_of(100)
    t = curve_position(r, [0, 40, 100], source="linear")
    assert t.dtype == np.float32 and t.shape == (100,)
    np.testing.assert_allclose(t[:40], np.arange(40) / 40, atol=1e-7)
    np.testing.assert_allclose(t[40:], np.arange(60) / 59, atol=1e-7)  # the last interval ends on its end keyframe


def test_beats_step_on_the_frame_nearest_each_beat():
    # beats at 0.50, 1.01 (nearest frame 25), 1.53 (38), 2.0 s at 25 fps; one interval [0, 60)
    r = rhythm_of(60, beats_s=[0.5, 1.01, 1.53, 2.0])
    assert step_frames(r).tolist() == [12, 25, 38, 50]
    t = curve_position(r, [0, 60], source="beats", ease="none")
    expected = np.zeros(60)
    for f in (12, 25, 38, 50):
        expected[f:] += 0.25
    np.testing.assert_allclose(t, expected, atol=1e-7)
    eased = curve_position(r, [0, 60], source="beats", ease="out", ease_s=0.12)  # 3 frames per step
    jumps = np.diff(eased, prepend=0)
    assert set(np.flatnonzero(jumps > 0.1)) == {12, 25, 38, 50}  # the biggest move on the beat's own frame
    assert jumps[13] > 0 and jumps[14] > 0 and jumps[15] == 0 and eased[16] == pytest.approx(0.25, abs=1e-6)


def test_an_interval_ends_one_step_short_of_its_end_keyframe():
    # the beat on the boundary frame (40) is the last step of the first interval: it lands on the next one's start
    r = rhythm_of(80, beats_s=[0.4, 0.8, 1.2, 1.6, 2.0, 2.4, 2.8])  # frames 10, 20, 30, 40, 50, 60, 70
    t = curve_position(r, [0, 40, 80], source="beats", ease="none")
    assert t[39] == pytest.approx(0.75) and t[40] == 0.0 and t[79] == pytest.approx(1.0)  # last: no frame 80
    assert np.all(np.diff(t[:40]) >= 0) and np.all(np.diff(t[40:]) >= 0)


def test_every_nth_beat_counts_from_the_first_downbeat():
    beats = 0.5 + 0.5 * np.arange(12)  # frames 12, 25, 37 ... at 25 fps
    r = rhythm_of(175, beats_s=beats, downbeats_s=beats[1::4])  # bars start on the second beat (a pickup)
    assert step_frames(r, 4).tolist() == np.round(beats[1::4] * 25).astype(int).tolist()
    t = curve_position(r, [0, 175], source="beats", every=4, ease="none")
    assert set(np.flatnonzero(np.diff(t, prepend=0))) == set(np.round(beats[1::4] * 25).astype(int))
    no_bars = rhythm_of(175, beats_s=beats)
    assert step_frames(no_bars, 4).tolist() == np.round(beats[0::4] * 25).astype(int).tolist()


def test_percussive_position_is_the_normalised_cumulative_energy():
    # stable-diffusion-videos' T: the cumulative percussive energy, normalised, blended with linear by `smooth`
    energy = np.zeros(50, np.float32)
    energy[[10, 30]] = [1.0, 0.25]
    r = rhythm_of(50, percussive=energy)
    t = curve_position(r, [0, 50], source="percussive")
    np.testing.assert_allclose(t, np.where(np.arange(50) >= 30, 1.0, np.where(np.arange(50) >= 10, 0.8, 0.0)))
    half = curve_position(r, [0, 50], source="percussive", smooth=0.5)
    np.testing.assert_allclose(half, 0.5 * t + 0.5 * np.arange(50) / 49, atol=1e-6)
    silent = curve_position(rhythm_of(50), [0, 50], source="rms")  # nothing to follow: linear
    np.testing.assert_allclose(silent, np.arange(50) / 49, atol=1e-7)


@pytest.mark.parametrize("source, field", [("onsets", "onset_strength"), ("rms", "rms")])
def test_each_source_reads_its_envelope(source, field):
    x = np.random.default_rng(0).random(40).astype(np.float32)
    np.testing.assert_allclose(curve_envelope(rhythm_of(40, **{field: x}), source=source), x, atol=1e-7)


def test_bands_choose_their_row():
    bands = np.stack([np.full(10, v, np.float32) for v in (0.1, 0.5, 0.9)])
    r = rhythm_of(10, bands=bands)
    for band, v in [("low", 0.1), ("mid", 0.5), ("high", 0.9)]:
        np.testing.assert_allclose(curve_envelope(r, source="bands", band=band), v)


def test_gain_threshold_and_the_follower():
    x = np.array([0.2, 0.4, 0.6, 0.8], np.float32)
    r = rhythm_of(4, rms=x)
    np.testing.assert_allclose(curve_envelope(r, source="rms", gain=2.0), [0.4, 0.8, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(curve_envelope(r, source="rms", threshold=0.5), [0, 0, 0.2, 0.6], atol=1e-6)
    # an impulse with release 0.1 s at 100 fps falls to 1/e after 10 frames; a step with attack 0.1 s rises to 1 - 1/e
    impulse = np.zeros(50)
    impulse[5] = 1.0
    y = follow(impulse, 100.0, 0.0, 0.1)
    assert y[5] == 1.0 and y[15] == pytest.approx(math.exp(-1), rel=1e-9)
    step = np.zeros(50)
    step[5:] = 1.0
    z = follow(step, 100.0, 0.1, 0.0)
    assert z[4] == 0 and z[14] == pytest.approx(1 - math.exp(-1), rel=1e-9)
    r = rhythm_of(100, fps=100.0, beats_s=[0.2])
    pulse = curve_envelope(r, source="beats", release_s=0.1)
    assert pulse[20] == 1.0 and pulse[30] == pytest.approx(math.exp(-1), rel=1e-6) and pulse[19] == 0


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"source": "loudness"}, "curve source must be one of"),
        ({"every": 0}, "every must be an integer >= 1 (a step every N beats), got 0"),
        ({"smooth": 1.5}, "smooth must be a number >= 0 and <= 1, got 1.5"),
        ({"gain": 0}, "gain must be a number > 0"),
        ({"threshold": 1.0}, "threshold must be a number >= 0 and < 1, got 1.0"),
        ({"band": "sub"}, "band must be one of"),
        ({"release_s": float("nan")}, "release_s must be a number >= 0"),
        ({"ease": "bounce"}, "ease must be one of"),
    ],
)
def test_bad_specs_name_the_field_and_value(fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        CurveSpec(**fields).check()


def test_edges_must_tile_the_frames():
    r = rhythm_of(10)
    for edges in ([0, 5], [1, 10], [0, 5, 5, 10], [0, 11]):
        with pytest.raises(ValueError, match="edges must rise strictly from 0 to the 10 frames"):
            curve_position(r, edges, source="linear")


@pytest.mark.slow
def test_the_plot_marks_every_beat():
    r = rhythm_of(100, beats_s=[0.6, 1.4, 2.2, 3.0, 3.8])  # no downbeats: five grey lines
    image = plot_curves(r, width_px=600, height_px=200)
    assert image.shape == (200, 600, 3) and image.dtype == np.uint8
    rgb = image.astype(int)
    flat = (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])
    grey = flat & (rgb[..., 0] > 150) & (rgb[..., 0] < 235)  # the thin light-grey beat lines (antialiased)
    columns = np.flatnonzero(grey.sum(axis=0) > 50)
    runs = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1)
    assert len(runs) == 5
    centres = np.array([run.mean() for run in runs])
    assert np.allclose(np.diff(centres), np.diff(centres).mean(), atol=2)  # evenly spaced, as the beats are
    with_curves = plot_curves(r, np.linspace(0, 1, 100, dtype=np.float32), np.zeros(100, np.float32), [0, 50, 100])
    assert not np.array_equal(with_curves[:, :, 2], plot_curves(r)[:, :, 2])
