"""Motion truth of synthetic faces: natural blink statistics, a head that follows the speech's prosody and nods on
accents (or keeps still), and lips that follow the phonemes."""

import numpy as np
import pytest
import torch

from avdiff.audio.io import Waveform
from avdiff.audio.phonemes import PhonemeEvent
from avdiff.data.motion_truth import (
    BLINK_S,
    LEAN_DEGREES,
    MAX_GAP_S,
    YAW_PER_SEMITONE,
    blink_gap_scale,
    blink_rate_limits,
    blink_track,
    head_motion,
    motion_truth,
    speech_prosody,
)
from avdiff.video.motion import CLOSED_APERTURE

FPS = 25
CLIPS = 4000  # short clips per rate: enough that the counts sampling noise (about 2 %) sits well inside 5 %


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blinks_have_natural_rates_and_durations_and_never_a_10_s_gap(seed):
    closure, blinks = blink_track(FPS * 600, FPS, np.random.default_rng(seed))  # ten minutes
    rate = len(blinks) / 10
    assert 10 <= rate <= 20, rate
    durations = np.array([d for _, d in blinks])
    assert BLINK_S[0] <= durations.min() and durations.max() <= BLINK_S[1]
    starts = np.array([s for s, _ in blinks])
    assert starts[0] < 0 <= starts[1] and np.diff(starts).max() <= MAX_GAP_S + BLINK_S[1]  # start to start
    shut = closure > 0.9
    assert shut.any() and closure.min() == 0 and closure.max() <= 1
    assert shut.mean() < 0.1  # eyes are open almost all the time


def test_blinks_are_seeded_and_the_rate_can_be_set():
    a, _ = blink_track(500, FPS, np.random.default_rng(7))
    b, _ = blink_track(500, FPS, np.random.default_rng(7))
    c, _ = blink_track(500, FPS, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    _, slow = blink_track(FPS * 600, FPS, np.random.default_rng(0), rate_per_min=7)
    _, fast = blink_track(FPS * 600, FPS, np.random.default_rng(0), rate_per_min=30)
    assert len(slow) < len(fast)
    with pytest.raises(ValueError, match="rate_per_min"):
        blink_track(10, FPS, np.random.default_rng(0), rate_per_min=0)


@pytest.mark.parametrize("rate", [8.0, 15.0, 25.0])
def test_the_rate_made_is_the_rate_asked_on_short_clips_as_on_long_ones(rate):
    """A model learns the rate from 1-2 s windows of 2-5 s sentences: the truth must show the asked rate there, at a
    clip's start as later (the process is stationary), not only over ten minutes."""
    rng = np.random.default_rng(3)
    counts, first_second, seconds = 0, 0, 0.0
    for _ in range(CLIPS):
        num_frames = int(rng.integers(2 * FPS, 5 * FPS))
        _, blinks = blink_track(num_frames, FPS, rng, rate_per_min=rate)
        starts = np.array([s for s, _ in blinks])
        counts += int((starts >= 0).sum())
        first_second += int(((starts >= 0) & (starts < 1.0)).sum())
        seconds += num_frames / FPS
    assert counts / seconds * 60 == pytest.approx(rate, rel=0.05)
    assert first_second / CLIPS * 60 == pytest.approx(rate, rel=0.12)  # the first second is like any other
    _, long = blink_track(FPS * 1200, FPS, rng, rate_per_min=rate)
    starts = np.array([s for s, _ in long])
    assert len(starts) / 20 == pytest.approx(rate, rel=0.05) and np.diff(starts).max() < 10.0


def test_rates_the_gap_bounds_cannot_average_are_refused():
    low, high = blink_rate_limits()
    assert 6 < low < 7 and high > 60
    assert blink_gap_scale(10.0) > blink_gap_scale(20.0) > 0  # rarer blinks: longer gaps
    for rate in (low - 0.1, high + 1):
        with pytest.raises(ValueError, match="rate_per_min must be in"):
            blink_track(100, FPS, np.random.default_rng(0), rate_per_min=rate)


def test_the_head_follows_the_prosody_nods_on_accents_and_keeps_still_when_asked():
    n = FPS * 10
    t = np.arange(n) / FPS
    prosody = {"f0": (3 * np.sin(2 * np.pi * 0.3 * t)).astype(np.float32), "loudness": (t < 5).astype(np.float32)}
    accents = [2.0, 5.0, 8.0]
    head = head_motion(n, FPS, np.random.default_rng(0), prosody, accents)
    sway = head_motion(n, FPS, np.random.default_rng(0))  # the same random sway, nothing heard
    yaw = np.rad2deg(head["yaw"] - sway["yaw"])
    np.testing.assert_allclose(yaw, YAW_PER_SEMITONE * prosody["f0"], atol=1e-4)  # turned by the F0
    assert np.abs(np.diff(np.rad2deg(head["yaw"]))).max() < 0.5  # degrees; smooth from frame to frame
    near = np.any([np.abs(t - a - 0.125) < 0.06 for a in accents], axis=0)
    lean = np.rad2deg(head["pitch"] - sway["pitch"]) - LEAN_DEGREES * prosody["loudness"]
    assert lean[near].min() > 1.5 and np.abs(lean[~near]).mean() < 0.3  # a pitch pulse on each accent only
    assert head["brow"][near].min() > 0
    assert 0.2 < np.rad2deg(sway["yaw"]).std() < 1.5  # the sway no audio predicts is the smaller part
    still = head_motion(n, FPS, np.random.default_rng(0), prosody, accents, amount=0)
    assert all(not v.any() for v in still.values())
    with pytest.raises(ValueError, match="prosody must have 250 frames"):
        head_motion(n, FPS, np.random.default_rng(0), {k: v[:-1] for k, v in prosody.items()})


def test_prosody_reads_a_known_intonation_without_its_slow_trend_and_a_drop_in_loudness():
    rate, seconds = 16000, 4.0
    s = np.arange(int(rate * seconds)) / rate
    accent = 2 * np.sin(2 * np.pi * 0.8 * s)  # semitones: rises and falls as accents make them
    f0 = 120 * 2 ** ((accent + 4 * s / seconds) / 12)  # on a slow glide up 4 semitones
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6)) * np.where(s < 3.0, 0.3, 0.03)  # -20 dB after 3 s
    speech = Waveform(torch.from_numpy(voice.astype(np.float32))[None], rate)
    vowel = [PhonemeEvent("a", 0, len(s), 0)]
    n = int(seconds * FPS)
    prosody = speech_prosody(vowel, speech, n, FPS)
    t = np.arange(n) / FPS
    inner = (t > 0.5) & (t < 3.5)  # away from the ends (the track is smoothed)
    truth = 2 * np.sin(2 * np.pi * 0.8 * t)
    measured = prosody["f0"][inner]
    assert np.corrcoef(measured, truth[inner])[0, 1] > 0.95  # the accents, read
    gain = np.polyfit(truth[inner], measured, 1)[0]
    assert 0.7 < gain < 1.05  # in semitones (a little less: smoothed by PROSODY_SMOOTH_S)
    assert abs(np.polyfit(t[inner], measured - gain * truth[inner], 1)[0]) < 0.2  # the glide's 1 st/s: gone
    assert prosody["loudness"][t < 2.7].min() > 0.9
    assert prosody["loudness"][t > 3.3] == pytest.approx(1 - 20 / 30, abs=0.05)  # 20 dB of the 30 dB scale
    silent = speech_prosody([PhonemeEvent("_", 0, len(s), 0)], speech, n, FPS)  # no vowel: no F0 to follow
    assert not silent["f0"].any()
    with pytest.raises(ValueError, match="num_frames must be >= 0"):
        speech_prosody(vowel, speech, -1, FPS)


@pytest.mark.requires_espeak
def test_the_truths_lips_close_on_each_p_and_open_on_each_a():
    from avdiff.audio.clock import FrameClock
    from avdiff.audio.phonemes import speak_with_phonemes

    speech, events = speak_with_phonemes("pa pa pa", sample_rate=16000)
    motion = motion_truth(events, speech, FPS, np.random.default_rng(0))
    clock = FrameClock(FPS, 16000)
    assert len(motion) == clock.num_frames(speech.samples.shape[-1])
    assert np.isfinite(motion.as_array()).all()
    ps = [e for e in events if e.phoneme == "p"]
    vowels = [e for e in events if e.phoneme == "A:"]
    assert len(ps) == 3 and len(vowels) == 3
    for p, a in zip(ps, vowels):  # a p's closure starts before its event (the silence before the burst)
        closed = range(clock.frame_of_sample(p.closure_sample), clock.frame_of_sample(p.end_sample - 1) + 1)
        vowel = range(clock.frame_of_sample(a.start_sample), clock.frame_of_sample(a.end_sample - 1) + 1)
        assert motion.lip_closure[closed].max() > 0.9 and motion.lip_closure[vowel].min() < 0.1
        assert motion.mouth_open[vowel].max() > 0.2 > motion.mouth_open[closed].min()  # face sizes
    assert np.array_equal(motion.jaw > 0, motion.mouth_open > 0)
    # the measure's rules hold: closure read from the aperture, rounding includes the width's narrowing
    np.testing.assert_allclose(motion.lip_closure, np.clip(1 - motion.mouth_open / CLOSED_APERTURE, 0, 1), atol=1e-6)
    assert (motion.mouth_round >= np.maximum(-motion.mouth_width, 0) - 1e-7).all()
    photo_open = motion_truth(events, speech, FPS, np.random.default_rng(0), reference_open=0.1)
    np.testing.assert_allclose(photo_open.jaw, motion.jaw - 0.3 * 0.1, atol=1e-6)  # the jaw is relative to the photo
    still = motion_truth(events, speech, FPS, np.random.default_rng(0), head_amount=0)
    assert not still.yaw.any() and np.array_equal(still.mouth_open, motion.mouth_open)


@pytest.mark.requires_espeak
@pytest.mark.parametrize("voice,speed_wpm,pitch", [("en-us+f3", 166, 38), ("en-gb+m5", 145, 50)])
def test_three_sentences_of_truth_are_timed_by_the_loudness_within_a_frame(voice, speed_wpm, pitch):
    """The loudness offset (``avdiff eval lipsync``'s) of a truth saying three held-out sentences: within a frame of 0,
    and the speech moved by 4 frames (about a syllable, what a single sentence can be off by) is found 4 off."""
    from avdiff.audio.envelope import speech_envelope
    from avdiff.audio.phonemes import speak_with_phonemes
    from avdiff.data.synthetic import sentences
    from avdiff.metrics.lipsync import lipsync_scores

    held_out = sentences("test")
    text = " ".join(s for s in held_out if s.startswith(("Put the blue vase", "Heavy trucks", "We opened the box")))
    speech, events = speak_with_phonemes(text, voice=voice, speed_wpm=speed_wpm, pitch=pitch, sample_rate=16000)
    aperture = motion_truth(events, speech, FPS, np.random.default_rng(6)).mouth_open
    envelope = speech_envelope(speech, FPS)
    assert len(aperture) > 6 * FPS  # three sentences
    assert abs(lipsync_scores(aperture, envelope).offset_frames) <= 1
    for k in (4, -4):  # +k: the audio lags the video by k frames
        moved = np.roll(envelope, k)
        moved[: max(k, 0)] = 0
        moved[len(moved) + min(k, 0) :] = 0
        assert abs(lipsync_scores(aperture, moved).offset_frames - k) <= 1
