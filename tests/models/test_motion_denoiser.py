"""The motion denoiser: shapes, the null audio, the statistics in the config, the preset, clear errors."""

import json

import numpy as np
import pytest
import torch

from avdiff.models.builders import build_motion_denoiser, load_preset
from avdiff.models.motion import MotionDenoiser, neutral_motion
from avdiff.video.motion import FIELDS

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = {"hidden_dim": 16, "dilations": [1, 2], "audio_dim": 8, "audio_hidden": 8, "window_frames": 12,
         "past_frames": 4}  # fmt: skip


@pytest.fixture(scope="module")
def model() -> MotionDenoiser:
    return build_motion_denoiser(SMALL, seed=0).eval()


def inputs(model: MotionDenoiser, B: int = 2, seconds: float = 1.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    T, K = model.window_frames, model.past_frames
    mel = model.mel_features(0.1 * torch.randn(B, int(16000 * seconds), generator=g))
    audio = model.frame_windows(mel, model.frame_clock(25), -K, model.audio_frames)
    x = torch.randn(B, T, len(FIELDS), generator=g)
    past = torch.randn(B, K, len(FIELDS), generator=g)
    controls = torch.tensor([[15.0, 1.0]] * B)
    return x, past, audio, controls


def test_the_preset_builds_a_seeded_model_and_leaves_the_global_rng_alone():
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    a = build_motion_denoiser("tiny", seed=3)
    assert torch.equal(torch.rand(1), before)  # the caller's RNG was not touched
    b = build_motion_denoiser("tiny", seed=3)
    c = build_motion_denoiser("tiny", seed=4)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
    spec = load_preset("motion", "tiny")["denoiser"]
    assert a.window_frames == spec["window_frames"] and a.past_frames == spec["past_frames"]
    with pytest.raises(ValueError, match="unknown motion denoiser settings"):
        build_motion_denoiser({"hidden_dimm": 3})


def test_shapes_and_the_audio_windows_come_from_the_clock(model):
    x, past, audio, controls = inputs(model)
    T, K = model.window_frames, model.past_frames
    # 25 fps at 16 kHz with a 10 ms hop: 4 steps per frame, +-2 frames of context: 20 steps per window
    assert audio.shape == (2, K + T, model.config.n_mels, 20)
    # frames before the start are silence: the window of frame -K is the log floor everywhere
    assert torch.allclose(audio[:, 0], torch.full_like(audio[:, 0], float(np.log(model.mel.log_floor))))
    with torch.no_grad():
        out = model(x, 500, past, audio, controls)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_the_audio_and_the_null_audio_change_the_prediction(model):
    x, past, audio, controls = inputs(model)
    with torch.no_grad():
        model.null_audio.copy_(torch.randn_like(model.null_audio))  # a trained null is not zero
        cond = model(x, 10, past, audio, controls)
        other = model(x, 10, past, inputs(model, seed=1)[2], controls)
        null = model(x, 10, past, None, controls)
        dropped = model(x, 10, past, audio, controls, drop_audio=torch.tensor([True, False]))
    assert not torch.allclose(cond, other)
    assert not torch.allclose(cond, null)
    assert torch.allclose(dropped[0], null[0], atol=1e-6) and torch.allclose(dropped[1], cond[1], atol=1e-6)


def test_statistics_are_saved_in_the_config_and_round_trip(model, tmp_path):
    m = build_motion_denoiser(SMALL, seed=0)
    mean, std = np.linspace(-1, 1, len(FIELDS)), np.linspace(0.5, 2, len(FIELDS))
    m.set_statistics(mean, std)
    raw = torch.from_numpy(neutral_motion(3))
    assert torch.allclose(m.denormalize(m.normalize(raw)), raw, atol=1e-6)
    m.save_pretrained(tmp_path)
    loaded = MotionDenoiser.from_pretrained(tmp_path)
    assert np.allclose(loaded.config.field_std, std) and torch.allclose(loaded.normalize(raw), m.normalize(raw))
    x, past, audio, controls = inputs(m)
    with torch.no_grad():
        assert torch.equal(m.eval()(x, 3, past, audio, controls), loaded.eval()(x, 3, past, audio, controls))


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"hidden_dim": 0}, "hidden_dim"),
        ({"past_frames": 0}, "past_frames"),
        ({"dilations": []}, "dilations"),
        ({"field_std": [1.0] * 3}, "field_mean and field_std"),
        ({"field_std": [0.0] * len(FIELDS)}, "positive"),
        ({"scheduler": {"prediction_type": "epsilon"}}, "prediction_type"),
    ],
)
def test_bad_settings_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        build_motion_denoiser({**SMALL, **bad})


def test_bad_inputs_give_clear_errors(model):
    x, past, audio, controls = inputs(model)
    with pytest.raises(ValueError, match="sample must be"):
        model(x[..., :3], 1, past, audio, controls)
    with pytest.raises(ValueError, match="past must be"):
        model(x, 1, past[:1], audio, controls)
    with pytest.raises(ValueError, match="controls must be"):
        model(x, 1, past, audio, controls[:, :1])
    with pytest.raises(ValueError, match="audio must be"):
        model(x, 1, past, audio[:, 1:], controls)
    with pytest.raises(ValueError, match="clock runs at"):
        model.frame_windows(audio[:, 0], model.frame_clock(25).__class__(25, 22050), 0, 3)
    with pytest.raises(ValueError, match="scheduler kind"):
        model.make_scheduler("euler")
    with pytest.raises(ValueError, match="future_frames"):
        build_motion_denoiser({**SMALL, "future_frames": -1})


def test_a_model_that_hears_ahead_takes_the_audio_after_the_window_and_denoises_only_the_window():
    """future_frames A: the audio of K + T + A frames goes in and the T window frames come out, each from its own
    place (the prediction for frame j moves most with the noisy frame j); what is said after the window reaches the
    window's last frames more than its first ones; and the setting is saved and an old config loads without it."""
    ahead = build_motion_denoiser({**SMALL, "future_frames": 6}, seed=0).eval()
    with torch.no_grad():
        for block in ahead.blocks:  # a trained model's blocks are not the identity they start as
            block.out.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
    K, T = ahead.past_frames, ahead.window_frames
    assert ahead.audio_frames == K + T + 6 and build_motion_denoiser(SMALL).audio_frames == K + T
    x, past, audio, controls = inputs(ahead)
    assert audio.shape[1] == K + T + 6
    later = audio.clone()
    later[:, K + T :] = inputs(ahead, seed=5)[2][:, K + T :]  # other speech after the window, the same before
    with torch.no_grad():
        out = ahead(x, 10, past, audio, controls)
        assert out.shape == x.shape
        moved = (out - ahead(x, 10, past, later, controls)).abs().mean(dim=(0, 2))  # [T]
        assert moved[-1] > 2 * moved[0] > 0
        for j in (0, T // 2, T - 1):  # the output is the window's frames, in place
            poked = x.clone()
            poked[:, j] += 3.0
            change = (ahead(poked, 10, past, audio, controls) - out).abs().mean(dim=(0, 2))
            assert abs(int(change.argmax()) - j) <= 1  # (a slice off by the K or A frames is off by 4 or 6)
    with pytest.raises(ValueError, match=r"K\+T\+A=22"):
        ahead(x, 10, past, audio[:, : K + T], controls)


def test_future_frames_are_saved_and_a_model_saved_without_them_hears_none(tmp_path):
    build_motion_denoiser({**SMALL, "future_frames": 6}, seed=0).save_pretrained(tmp_path / "ahead")
    assert MotionDenoiser.from_pretrained(tmp_path / "ahead").future_frames == 6
    build_motion_denoiser(SMALL, seed=0).save_pretrained(tmp_path / "old")
    config = tmp_path / "old" / "config.json"
    values = json.loads(config.read_text())
    del values["future_frames"]  # as saved before the setting existed
    config.write_text(json.dumps(values))
    assert (
        MotionDenoiser.from_pretrained(tmp_path / "old").audio_frames == SMALL["past_frames"] + SMALL["window_frames"]
    )


def test_pitch_rows_follow_the_f0_where_the_speech_sounds_and_are_zero_outside_the_clip(tmp_path):
    """pitch_features: two rows under the mel bands, the F0 in semitones from the clip's median (over 6) and 2 where
    it sounds; a rising pitch reads as rising, the pause and the silence before the clip as 0; the mel bands are
    those of a model without the rows; the setting is saved and an old config loads without it."""
    pitched = build_motion_denoiser({**SMALL, "pitch_features": True}, seed=0).eval()
    plain = build_motion_denoiser(SMALL, seed=0).eval()
    assert pitched.audio_rows == plain.audio_rows + 2
    rate, seconds = 16000, 2.0
    s = np.arange(int(rate * seconds)) / rate
    f0 = 150.0 * 2 ** (4 * s / seconds / 12)  # 150 Hz rising 4 semitones over the clip
    wave = sum(np.sin(k * 2 * np.pi * np.cumsum(f0) / rate) / k for k in range(1, 12))
    wave[int(0.9 * rate) : int(1.1 * rate)] = 0.0  # a pause
    samples = torch.tensor(0.1 * wave, dtype=torch.float32)[None]
    mel = pitched.mel_features(samples)
    assert mel.shape == (1, pitched.audio_rows, samples.shape[1] // 160 + 1)
    assert torch.equal(mel[:, : plain.config.n_mels], plain.mel_features(samples))
    semitones, sounds = 6 * mel[0, -2].numpy(), mel[0, -1].numpy()
    steps = np.arange(mel.shape[-1]) * 0.01
    voiced = ((steps > 0.1) & (steps < 0.85)) | ((steps > 1.15) & (steps < 1.9))
    assert (sounds[voiced] == 2).all() and (sounds[(steps > 0.95) & (steps < 1.05)] == 0).all()
    truth = 4 * steps / seconds - np.median(4 * steps[sounds > 0] / seconds)
    assert np.abs(semitones[voiced] - truth[voiced]).max() < 0.3
    assert (semitones[sounds == 0] == 0).all()
    falling = torch.flip(samples, [1])  # the F0 read from other samples: the bands and the sounding row stay
    heard = pitched.mel_features(samples, pitch_samples=falling)
    assert torch.equal(heard[:, :-2], mel[:, :-2]) and torch.equal(heard[:, -1], mel[:, -1])
    assert np.corrcoef(heard[0, -2][voiced].numpy(), semitones[voiced])[0, 1] < -0.9
    with pytest.raises(ValueError, match="pitch_samples"):
        pitched.mel_features(samples, pitch_samples=samples[:, :-1])
    windows = pitched.frame_windows(mel, pitched.frame_clock(25), -pitched.past_frames, pitched.audio_frames)
    assert windows.shape[2] == pitched.audio_rows and (windows[:, 0, -2:] == 0).all()  # before the clip: no pitch
    edge = pitched.frame_windows(mel, pitched.frame_clock(25), 0, 1)[0, 0]  # frame 0: 2 frames of context before it
    assert (edge[-1, :8] == 0).all() and (edge[-1, 8:] == 2).all()  # silence before the clip, the tone in it
    assert (edge[: plain.config.n_mels, :8] == float(np.log(pitched.mel.log_floor))).all()
    x, past, _, controls = inputs(pitched, B=1)
    with torch.no_grad():
        assert pitched(x, 10, past, windows, controls).shape == x.shape
    with pytest.raises(ValueError, match="rows"):
        pitched(x, 10, past, windows[:, :, :-2], controls)
    pitched.save_pretrained(tmp_path / "pitched")
    assert MotionDenoiser.from_pretrained(tmp_path / "pitched").config.pitch_features
    assert not build_motion_denoiser(SMALL).config.pitch_features
    with pytest.raises(ValueError, match="hop_s"):
        build_motion_denoiser({**SMALL, "pitch_features": True, "hop_s": 0.02})
