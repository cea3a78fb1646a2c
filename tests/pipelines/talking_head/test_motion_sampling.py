"""Sampling motion from speech: seeded, audio-driven, guided, seamless across windows, exact in length, controls."""

import numpy as np
import pytest
import torch

from avdiff.audio.clock import FrameClock
from avdiff.audio.io import Waveform
from avdiff.models.builders import build_motion_denoiser
from avdiff.models.motion import POSE_FIELDS
from avdiff.pipelines.talking_head.motion_sampling import iter_motion, sample_motion

from motion_model import quick_model

pytestmark = [pytest.mark.requires_espeak, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(task, a small model trained for 300 steps on synthetic speech: ~20 s)."""
    return quick_model(tmp_path_factory.mktemp("motion_run"))


@pytest.fixture(scope="module")
def model(trained):
    return trained[1]


@pytest.fixture(scope="module")
def speech(trained) -> Waveform:
    clip = trained[0].eval_clips()[0]
    return Waveform(clip.samples[None], clip.sample_rate)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_seeded_sampling_is_deterministic_and_the_seed_matters(model, speech):
    a = sample_motion(model, speech, 25, num_inference_steps=4, generator=gen(0))
    b = sample_motion(model, speech, 25, num_inference_steps=4, generator=gen(0))
    c = sample_motion(model, speech, 25, num_inference_steps=4, generator=gen(1))
    assert np.array_equal(a.as_array(), b.as_array())
    assert not np.array_equal(a.as_array(), c.as_array())


def test_the_audio_changes_the_mouth_and_guidance_zero_is_the_unconditional_branch(model, speech):
    quiet = Waveform(speech.samples * 0.0, speech.sample_rate)
    loud = sample_motion(model, speech, 25, num_inference_steps=4, generator=gen(0), guidance_scale=1.0)
    silent = sample_motion(model, quiet, 25, num_inference_steps=4, generator=gen(0), guidance_scale=1.0)
    assert np.abs(loud.mouth_open - silent.mouth_open).mean() > 0.01
    # guidance 0 ignores the audio: speech and silence give the same motion, which differs from the guided one
    twin_speech = sample_motion(model, speech, 25, num_inference_steps=4, generator=gen(0), guidance_scale=0.0)
    twin_silent = sample_motion(model, quiet, 25, num_inference_steps=4, generator=gen(0), guidance_scale=0.0)
    assert np.array_equal(twin_speech.as_array(), twin_silent.as_array())
    assert not np.allclose(twin_speech.as_array(), loud.as_array())


def test_guidance_combines_the_two_branches(model, speech):
    """The batched [null; cond] path at scale s equals null + s * (cond - null) of the separate branches, for one
    denoising step (steps=1: the output is the guided prediction itself, denormalised)."""
    null, cond, mixed = (
        sample_motion(model, speech, 25, guidance_scale=g, num_inference_steps=1, generator=gen(3)).as_array()
        for g in (0.0, 1.0, 2.5)
    )
    T = model.window_frames  # only the first window: later ones see different pasts
    assert np.allclose(mixed[:T], (null + 2.5 * (cond - null))[:T], atol=1e-4)


def test_consecutive_windows_join_without_a_jump(model, speech):
    """The change across each window seam is no larger than the frame-to-frame changes inside the windows."""
    twice = Waveform(speech.samples.repeat(1, 2), speech.sample_rate)
    motion = sample_motion(model, twice, 25, num_inference_steps=6, generator=gen(0), guidance_scale=1.5)
    x = motion.as_array()
    T = model.window_frames
    assert len(x) > 3 * T
    steps = np.abs(np.diff(x, axis=0))  # steps[i]: frame i -> i + 1
    seams = np.arange(T - 1, len(x) - 1, T)  # the step from a window's last frame to the next one's first
    inside = np.delete(steps, seams, axis=0)
    for col in range(x.shape[1]):
        limit = np.quantile(inside[:, col], 0.99) * 1.5 + 1e-4
        assert steps[seams, col].max() <= limit, (col, steps[seams, col], limit)


@pytest.mark.parametrize(
    "num_samples, fps, rate", [(16001, 25, 16000), (7919, "30000/1001", 16000), (22051, 24, 22050)]
)
def test_the_length_is_the_clocks_frame_count(model, num_samples, fps, rate):
    wav = Waveform(0.1 * torch.randn(1, num_samples, generator=gen(0)), rate)
    motion = sample_motion(model, wav, fps, num_inference_steps=2, generator=gen(0))
    assert len(motion) == FrameClock(fps, rate).num_frames(num_samples)
    assert np.isfinite(motion.as_array()).all()


@pytest.mark.parametrize("future_frames", [0, 5])
def test_a_model_that_hears_ahead_samples_to_the_clocks_length_and_hears_the_speech_after_its_window(future_frames):
    """future_frames: the last window (short, its speech ahead past the end) is sampled like the others, and the
    speech after a window changes that window's motion under the same noise only in a model that hears ahead."""
    small = {"hidden_dim": 8, "dilations": [1, 2], "audio_dim": 4, "audio_hidden": 4, "window_frames": 8,
             "past_frames": 2, "future_frames": future_frames}  # fmt: skip
    model = build_motion_denoiser(small, seed=0).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.out.weight.normal_(0, 0.3, generator=gen(1))
    n = 16000 * 13 // 10  # 32.5 frames: 4 windows and a bit
    wav = Waveform(0.1 * torch.randn(1, n, generator=gen(0)), 16000)
    motion = sample_motion(model, wav, 25, num_inference_steps=2, generator=gen(0))
    assert len(motion) == FrameClock(25, 16000).num_frames(n) and np.isfinite(motion.as_array()).all()
    changed = wav.samples.clone()
    # other speech from frame 12 on: past the first window (frames 0-7) and the 2 frames of mel context it hears
    changed[:, 7680:] = 0.1 * torch.randn(1, n - 7680, generator=gen(2))
    other = sample_motion(model, Waveform(changed, 16000), 25, num_inference_steps=2, generator=gen(0))
    heard = not np.allclose(motion.as_array()[:8], other.as_array()[:8], atol=1e-6)
    assert heard == (future_frames > 0)


def test_still_head_zeroes_the_pose_and_head_amount_scales_it(model, speech):
    still = sample_motion(model, speech, 25, num_inference_steps=4, generator=gen(0), still_head=True)
    for name in POSE_FIELDS:
        want = 1.0 if name == "scale" else 0.0
        assert np.all(getattr(still, name) == want), name
    assert still.mouth_open.std() > 0  # the mouth still moves
    calm = sample_motion(model, speech, 25, num_inference_steps=4, generator=gen(0), head_amount=0.3)
    lively = sample_motion(model, speech, 25, num_inference_steps=4, generator=gen(0), head_amount=3.0)
    assert lively.yaw.std() > calm.yaw.std()


def test_no_drift_over_a_minute(model, speech):
    """A minute of speech: the head pose of the last 10 s stays within the first 10 s's range (plus a margin)."""
    reps = int(np.ceil(60 * speech.sample_rate / speech.samples.shape[-1]))
    long = Waveform(speech.samples.repeat(1, reps), speech.sample_rate)
    m = sample_motion(model, long, 25, num_inference_steps=3, generator=gen(0))
    assert len(m) >= 1500
    for name in ("yaw", "pitch", "roll", "tx", "ty"):
        v = getattr(m, name)
        first, last = v[:250], v[-250:]
        spread = max(np.ptp(first), 1e-3)
        assert abs(last.mean() - first.mean()) < spread, name
        assert np.abs(last).max() < 3 * np.abs(first).max() + 1e-3, name


def test_bad_inputs_give_clear_errors():
    model = build_motion_denoiser({"hidden_dim": 8, "dilations": [1], "audio_dim": 4, "audio_hidden": 4})
    wav = Waveform(torch.zeros(1, 1600), 16000)
    with pytest.raises(ValueError, match="empty"):
        sample_motion(model, Waveform(torch.zeros(1, 0), 16000))
    with pytest.raises(ValueError, match="NaN"):
        sample_motion(model, Waveform(torch.full((1, 10), float("nan")), 16000))
    with pytest.raises(ValueError, match="guidance_scale"):
        sample_motion(model, wav, guidance_scale=-1)
    with pytest.raises(ValueError, match="head_amount"):
        sample_motion(model, wav, head_amount=float("inf"))
    with pytest.raises(ValueError, match="blink_rate_per_min"):
        sample_motion(model, wav, blink_rate_per_min="often")
    with pytest.raises(ValueError, match="num_inference_steps"):
        sample_motion(model, wav, num_inference_steps=0)
    with pytest.raises(ValueError, match="fps"):
        sample_motion(model, wav, fps=0)
    with pytest.raises(ValueError, match="scheduler"):
        sample_motion(model, wav, scheduler="euler")
    with pytest.raises(ValueError, match="MotionDenoiser"):
        sample_motion(torch.nn.Linear(2, 2), wav)
    with pytest.raises(ValueError, match="generator"):
        sample_motion(model, wav, generator=0)
    assert len(sample_motion(model, wav, scheduler="dpm", num_inference_steps=2)) == 3


def test_a_blink_rate_the_model_never_trained_on_is_said(caplog):
    model = build_motion_denoiser({"hidden_dim": 8, "dilations": [1], "audio_dim": 4, "audio_hidden": 4})
    assert tuple(model.config.blink_rate_range) == (7.0, 30.0)
    wav = Waveform(torch.zeros(1, 1600), 16000)
    for rate in (7, 15, 30):
        iter_motion(model, wav, blink_rate_per_min=rate)
    assert not caplog.records
    for rate in (0, 60):
        iter_motion(model, wav, blink_rate_per_min=rate)  # said before any window is sampled
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(said) == 2 and all("outside the 7-30 blinks a minute" in m for m in said), said
    assert "blink_rate_per_min=0 " in said[0] and "blink_rate_per_min=60 " in said[1]
    with pytest.raises(ValueError, match="blink_rate_range"):
        build_motion_denoiser({"hidden_dim": 8, "dilations": [1], "blink_rate_range": (30, 7)})


def test_the_denoiser_runs_on_one_thread_and_the_count_is_restored(model, speech, monkeypatch):
    """On a CPU the small denoiser runs with one torch thread (two threads on a shared CPU wait on each other at
    every op); the caller's thread count is what it was, between windows and after."""
    seen, forward = [], type(model).forward

    def counting(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "forward", counting)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the caller's
    try:
        for _ in iter_motion(model, speech, 25, num_inference_steps=2, generator=gen(0)):
            assert torch.get_num_threads() == 2  # between windows: the caller's count, while it renders
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_blink_clock_model_is_told_when_its_eyes_last_blinked():
    """The clock starts at half a mean gap (30 / rate) and restarts at each blink the model itself made."""
    from avdiff.video.motion import FIELDS

    small = {"hidden_dim": 16, "dilations": [1], "audio_dim": 8, "audio_hidden": 8, "window_frames": 12,
             "past_frames": 4, "blink_clock": True}  # fmt: skip
    model = build_motion_denoiser(small, seed=0).eval()
    seen, calls = [], {"n": 0}
    eye = [FIELDS.index("eye_left"), FIELDS.index("eye_right")]
    shut = model.normalize(torch.ones(len(FIELDS)))[eye]  # raw closure 1, as the network sees it

    def forward(sample, timestep, past, audio, controls, drop_audio=None):
        seen.append(float(controls[0, 2]))
        out = torch.zeros_like(sample)
        calls["n"] += 1
        if calls["n"] <= 2:  # the first window (2 steps): a blink rising through half shut at frame 5
            out[:, 5:8, eye] = shut
        return out

    model.forward = forward
    speech = Waveform(0.1 * torch.randn(1, 16000 * 2, generator=gen(0)), 16000)  # 50 frames: 5 windows
    sample_motion(model, speech, 25, num_inference_steps=2, guidance_scale=1.0, blink_rate_per_min=15,
                  generator=gen(0))  # fmt: skip
    per_window = seen[::2]
    assert per_window == pytest.approx([2.0, (12 - 5) / 25, (24 - 5) / 25, (36 - 5) / 25, (48 - 5) / 25])


@pytest.mark.parametrize("blinks_itself_at", [None, 100])
def test_a_blink_is_put_in_where_the_model_lets_the_eyes_stay_open_too_long(blinks_itself_at):
    """A model that never blinks gets a blink by inpainting each time one falls due (OVERDUE_BLINK_S after the last),
    and only its eyelids, only then: a blink of its own in time is kept, and rate 0 asks for none."""
    from avdiff.models.motion import blink_onsets
    from avdiff.pipelines.talking_head.motion_sampling import OVERDUE_BLINK_S
    from avdiff.video.motion import FIELDS

    small = {"hidden_dim": 16, "dilations": [1], "audio_dim": 8, "audio_hidden": 8, "window_frames": 16,
             "past_frames": 4, "blink_clock": True}  # fmt: skip
    model = build_motion_denoiser(small, seed=0).eval()
    eye = [FIELDS.index("eye_left"), FIELDS.index("eye_right")]
    shut = model.normalize(torch.ones(len(FIELDS)))[eye]
    open_ = model.normalize(torch.zeros(len(FIELDS)))[eye]
    frame = {"start": 0}

    def forward(sample, timestep, past, audio, controls, drop_audio=None):
        out = torch.zeros_like(sample)
        out[..., eye] = open_
        first = blinks_itself_at is not None and frame["start"] <= blinks_itself_at < frame["start"] + 16
        if first:
            out[:, blinks_itself_at - frame["start"] : blinks_itself_at - frame["start"] + 4, eye] = shut
        return out

    model.forward = forward
    speech = Waveform(0.1 * torch.randn(1, 16000 * 24, generator=gen(0)), 16000)  # 600 frames
    windows = []
    for window in iter_motion(model, speech, 25, num_inference_steps=2, guidance_scale=1.0, blink_rate_per_min=15,
                              generator=gen(0)):  # fmt: skip
        windows.append(window)
        frame["start"] += len(window)
    eyes = np.concatenate([(w.eye_left + w.eye_right) / 2 for w in windows])
    starts = blink_onsets(np.concatenate([[0.0], eyes])) - 1
    gaps = np.diff(np.concatenate([[-2.0 * 25], starts]))  # the clock starts half a mean gap (2 s) before the clip
    assert len(starts) >= 2 and gaps.max() <= OVERDUE_BLINK_S * 25 + 1, gaps
    if blinks_itself_at is not None:
        soon_after = (starts > blinks_itself_at) & (starts < blinks_itself_at + 20)
        assert blinks_itself_at in starts and not soon_after.any()  # its own blink kept, none put in beside it
    assert eyes.max() <= 1.0 + 1e-4  # a blink put in ends inside its window: no seam carries its closing on
    closed = np.zeros(len(eyes), bool)
    for s in starts:
        closed[max(s - 2, 0) : s + 6] = True  # the blink (7 frames, shut 2 frames in)
    np.testing.assert_allclose(eyes[~closed], 0.0, atol=0.01)  # elsewhere, the model's open eyes (a seam: < 0.01)
    quiet = sample_motion(model, speech, 25, num_inference_steps=2, guidance_scale=1.0, blink_rate_per_min=0,
                          generator=gen(0))  # fmt: skip
    if blinks_itself_at is None:
        assert not len(blink_onsets(np.concatenate([[0.0], (quiet.eye_left + quiet.eye_right) / 2])))


def test_a_guard_that_is_not_a_time_is_refused_and_one_it_cannot_keep_is_warned(caplog):
    from avdiff.pipelines.talking_head.motion_sampling import OVERDUE_BLINK_S

    model = build_motion_denoiser({"hidden_dim": 16, "dilations": [1], "audio_dim": 8, "audio_hidden": 8}, seed=0)
    speech = Waveform(0.1 * torch.randn(1, 16000, generator=gen(0)), 16000)
    for bad in (0, -1.0, "8", True):
        with pytest.raises(ValueError, match="max_open_s must be a number of seconds > 0"):
            sample_motion(model, speech, 25, max_open_s=bad, num_inference_steps=1)
    with caplog.at_level("WARNING", logger="avdiff.pipelines.talking_head.motion_sampling"):
        sample_motion(model, speech, 25, max_open_s=1.0, num_inference_steps=1, generator=gen(0))
        assert "max_open_s=1 s cannot be kept" in caplog.text  # under a window (32 frames: 1.28 s) and a blink
        sample_motion(model, speech, 4, max_open_s=OVERDUE_BLINK_S, num_inference_steps=1, generator=gen(0))
        assert "no frame of a 0.25 s blink shuts the eyes" in caplog.text
