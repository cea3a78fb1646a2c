"""AADiff's parts: the token-reweighting attention processor against a hand computation, and the control curve."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from avdiff.audio.clock import FrameClock
from avdiff.audio.curves import CurveSpec, control_curve, quantize, smoothing_frames, source_signal
from avdiff.audio.io import Waveform
from avdiff.audio.rhythm import analyze_rhythm
from avdiff.audio.synth import drum_track
from avdiff.models.attention import TokenReweightAttnProcessor, reweighting
from avdiff.pipelines.audio_scene.pipeline_audio_scene import plan_units


def attention_layer() -> Attention:
    torch.manual_seed(0)
    return Attention(query_dim=8, cross_attention_dim=6, heads=2, dim_head=4, bias=False).eval()


def by_hand(attn: Attention, x: torch.Tensor, ctx: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """sum_j s_j softmax(q k^T / sqrt(d))_j v_j per head, then to_out: the documented mapping, written out."""
    q, k, v = attn.to_q(x), attn.to_k(ctx), attn.to_v(ctx)  # (N, HW, 8), (N, T, 8)
    heads = []
    for h in range(2):
        qh, kh, vh = (t[..., h * 4 : (h + 1) * 4].double() for t in (q, k, v))
        p = torch.softmax(qh @ kh.transpose(1, 2) / 2.0, dim=-1)  # (N, HW, T); sqrt(4) = 2
        heads.append((p * scales[:, None, :].double()) @ vh)
    return attn.to_out[0](torch.cat(heads, dim=-1).float())


def test_processor_scales_the_target_tokens_values_and_leaves_other_rows_bit_for_bit():
    attn = attention_layer()
    x, ctx = torch.randn(3, 5, 8), torch.randn(3, 4, 6)
    scales = torch.ones(3, 4)
    scales[1, 2] = 3.0
    scales[2, 1], scales[2, 3] = 0.5, 2.0
    with torch.no_grad():
        base = AttnProcessor2_0()(attn, x, ctx)
        out = TokenReweightAttnProcessor()(attn, x, ctx, token_scales=scales)
        expected = by_hand(attn, x, ctx, scales)
    assert torch.equal(out[0], base[0])  # a row with all scales 1 is the base pass itself
    torch.testing.assert_close(out[1:], expected[1:], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out[1], base[1], atol=1e-3)
    # no renormalisation: the change is exactly (s - 1) P_j v_j, linear in the scale
    with torch.no_grad():
        twice = TokenReweightAttnProcessor()(attn, x, ctx, token_scales=torch.where(scales == 3.0, 5.0, scales))
    torch.testing.assert_close(twice[1] - base[1], 2 * (out[1] - base[1]), rtol=1e-4, atol=1e-5)


def test_processor_leaves_self_attention_alone_and_checks_the_shape():
    attn = Attention(query_dim=8, heads=2, dim_head=4).eval()
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        assert torch.equal(
            TokenReweightAttnProcessor()(attn, x, token_scales=torch.full((2, 4), 3.0)), AttnProcessor2_0()(attn, x)
        )
        cross = attention_layer()
        with pytest.raises(ValueError, match=r"token_scales must have shape \(2, 4\)"):
            TokenReweightAttnProcessor()(cross, x, torch.randn(2, 4, 6), token_scales=torch.ones(3, 4))


@pytest.mark.slow
def test_reweighting_sets_the_spatial_layers_only_and_puts_the_processors_back():
    from avdiff.pipelines import TextToVideoPipeline

    unet = TextToVideoPipeline.from_preset("tiny", seed=0).unet.unet
    before = dict(unet.attn_processors)
    with reweighting(unet):
        now = unet.attn_processors
        spatial = [n for n in now if ".attentions." in n]
        assert spatial and all(isinstance(now[n], TokenReweightAttnProcessor) for n in spatial)
        assert all(now[n] is before[n] for n in now if ".attentions." not in n)  # motion layers untouched
    assert all(unet.attn_processors[n] is before[n] for n in before)


def stepped_sound(levels: list[float], seconds_each: float = 0.5, sr: int = 16000) -> Waveform:
    """A 330 Hz tone whose amplitude holds each value of ``levels`` for ``seconds_each``."""
    n = int(seconds_each * sr)
    env = np.repeat(levels, n)
    t = np.arange(len(env)) / sr
    return Waveform(torch.tensor(np.sin(2 * np.pi * 330 * t) * env, dtype=torch.float32), sr)


def test_control_curve_follows_the_loudness_by_the_frame_clock():
    wav = stepped_sound([0.0, 0.25, 1.0, 0.5], seconds_each=0.5)
    curve = control_curve(wav, fps=8, signal="rms")
    assert len(curve) == FrameClock(8, 16000).num_frames(wav.num_samples) == 16
    assert curve.max() == pytest.approx(1.0) and curve.min() >= 0.0
    steps = curve.reshape(4, 4)[:, 1:3].mean(axis=1)  # the inner frames of each 0.5 s step
    assert steps[0] < 0.02 and steps[1] == pytest.approx(0.25, abs=0.05) and steps[3] == pytest.approx(0.5, abs=0.05)
    padded = control_curve(wav, fps=8, signal="rms", num_frames=20)
    assert np.array_equal(padded[:16], curve) and not padded[16:].any()
    silence = control_curve(Waveform(torch.zeros(1, 8000), 16000), fps=8)
    assert not silence.any()


@pytest.mark.parametrize("signal", ["rms", "onsets", "percussive"])
def test_control_curve_equals_the_rhythm_analysis_signal(signal):
    # the curve reads the step features directly; it is exactly the rhythm analysis's per-frame signal, normalised
    wav = drum_track(120, duration_s=3.0, sample_rate=16000).waveform
    raw = source_signal(analyze_rhythm(wav, 25), CurveSpec(source=signal))
    assert np.array_equal(control_curve(wav, fps=25, signal=signal), (raw / raw.max()).clip(0, 1).astype(np.float32))


def test_smoothing_trades_response_for_coherence():
    wav = stepped_sound([0.0, 1.0] * 4, seconds_each=0.25)
    raw = control_curve(wav, fps=16, signal="rms")
    smooth = control_curve(wav, fps=16, signal="rms", smoothing_s=0.5)
    assert smoothing_frames(0.5, 16) == 9 and smoothing_frames(0, 16) == 1
    assert np.abs(np.diff(smooth)).sum() < 0.5 * np.abs(np.diff(raw)).sum()  # steadier
    assert np.ptp(smooth) < np.ptp(raw)  # and responds less
    with pytest.raises(ValueError, match="signal must be one of"):
        control_curve(wav, fps=16, signal="loudness")


def test_onsets_is_the_one_spelling_and_the_old_onset_still_works_with_a_warning():
    wav = stepped_sound([0.0, 1.0] * 4, seconds_each=0.25)
    onsets = control_curve(wav, fps=16, signal="onsets")
    assert onsets.max() == pytest.approx(1.0)
    with pytest.warns(FutureWarning, match="signal='onset' is deprecated.*'onsets'"):
        old = control_curve(wav, fps=16, signal="onset")
    assert np.array_equal(old, onsets)


def test_levels_and_the_units_that_are_rendered():
    curves = np.array([[0.0, 0.5, 0.51, 1.0, 0.0], [0.0, 0.0, 0.0, 0.2, 1.0]])
    q = quantize(curves, levels=5)
    assert q.tolist() == [[0, 2, 2, 4, 0], [0, 0, 0, 1, 4]]
    units, index = plan_units(q)
    assert [u.tolist() for u in units] == [
        [[0, 0]],
        [[2, 0]],
        [[4, 1]],
        [[0, 4]],
    ]  # the base first, then by appearance
    assert np.array_equal(np.concatenate([units[i] for i in index]).T, q)
    units, index = plan_units(np.array([[3, 3, 1]]))
    assert [u.tolist() for u in units] == [[[0]], [[3]], [[1]]] and index.tolist() == [1, 1, 2]
    naive, index = plan_units(np.array([[3, 3, 1]]), share=False)
    assert len(naive) == 4 and index.tolist() == [1, 2, 3]
    chunks, index = plan_units(np.array([[0, 0, 5, 5, 0, 0, 5]]), chunk_frames=2)
    assert [u.ravel().tolist() for u in chunks] == [[0], [0, 0], [5, 5], [5]] and index.tolist() == [1, 2, 1, 3]
    with pytest.raises(ValueError, match="levels must be >= 2"):
        quantize(curves, levels=1)
    with pytest.raises(ValueError, match="chunk_frames must be >= 1"):
        plan_units(q, chunk_frames=0)
