"""AudioVideoUNet: inflation is exact, sizes match the published models, audio enters through a zero gate and
matters once trained, checkpoints round-trip, CFG dropout and gradient checkpointing behave."""

from __future__ import annotations

import accelerate
import pytest
import torch
import yaml
from diffusers import DDPMScheduler, MotionAdapter, UNet2DConditionModel

from avdiff.models import (
    AudioAttnProcessor2_0,
    AudioVideoUNet,
    CFGDropout,
    ConditionDropout,
    Conditions,
    cfg_conditions,
    classifier_free_guidance,
)
from avdiff.models.builders import build_unet, load_preset
from avdiff.models.cfg import replace_by_null
from avdiff.models.unet import quiet_empty_fp32_warning, zero_motion_proj_out

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread for the module

SD15_UNET_PARAMS = 859_520_964  # the published stable-diffusion-v1-5 unet: 859.52M


@pytest.fixture(scope="module")
def tiny_cfg() -> dict:
    return load_preset("unet", "tiny")


def random_unet2d(cfg: dict, seed: int = 0) -> UNet2DConditionModel:
    """A tiny 2D UNet with every weight random and non-zero (diffusers zero-inits nothing we rely on)."""
    g = torch.Generator().manual_seed(seed)
    unet = UNet2DConditionModel(**cfg["unet2d"])
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return unet.eval()


def inputs(model: AudioVideoUNet, batch=2, frames=4, size=8, seed=1, t_a=3) -> dict:
    g = torch.Generator().manual_seed(seed)
    c, d_t, d_a = model.latent_channels, model.unet.config.cross_attention_dim, model.config.audio_dim
    return {
        "sample": torch.randn(batch, c, frames, size, size, generator=g),
        "timestep": torch.tensor([10, 500])[:batch],
        "encoder_hidden_states": torch.randn(batch, 5, d_t, generator=g),
        "audio_tokens": torch.randn(batch, frames, t_a, d_a, generator=g),
        "reference_latents": torch.randn(batch, model.config.reference_channels, size, size, generator=g),
        "motion_latents": torch.randn(batch, model.config.motion_channels, frames, size, size, generator=g),
        "mask": (torch.rand(batch, 1, frames, size, size, generator=g) > 0.5).float(),
    }


def set_gates(model: AudioVideoUNet, value: float) -> None:
    with torch.no_grad():
        for gate in model.audio_gates().values():
            gate.fill_(value)


def per_frame_2d(unet2d: UNet2DConditionModel, x: dict) -> torch.Tensor:
    """Run the 2D UNet on every frame: [B, C, F, H, W] -> [B, C, F, H, W]."""
    b, c, f, h, w = x["sample"].shape
    frames = x["sample"].permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    t = x["timestep"].repeat_interleave(f)
    text = x["encoder_hidden_states"].repeat_interleave(f, dim=0)
    out = unet2d(frames, t, encoder_hidden_states=text).sample
    return out.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


# --- structure ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
@torch.no_grad()
def test_inflated_model_reproduces_2d_unet_per_frame(tiny_cfg):
    unet2d = random_unet2d(tiny_cfg)
    model = AudioVideoUNet.from_unet2d(unet2d, motion_adapter_config=tiny_cfg["motion_adapter"], audio_dim=32).eval()
    x = inputs(model)  # audio, reference, motion frames and mask all given, all non-zero
    expected = per_frame_2d(unet2d, x)
    out = model(**x).sample
    assert out.shape == expected.shape == (2, 4, 4, 8, 8)
    err = (out - expected).abs().max().item()
    print(f"inflated vs 2D UNet per frame: max |diff| = {err:.2e}")
    assert err < 1e-5

    # the check has teeth: a motion adapter that is not zero-initialised, or open gates, change the output
    adapter = MotionAdapter(**tiny_cfg["motion_adapter"])
    unzeroed = AudioVideoUNet.from_unet2d(unet2d, adapter, audio_dim=32).eval()
    assert (unzeroed(**x).sample - expected).abs().max() > 1e-3
    set_gates(model, 0.5)
    assert (model(**x).sample - expected).abs().max() > 1e-3


@pytest.mark.slow
def test_tiny_preset_is_small_seeded_and_zero_initialised(tiny_cfg):
    a, b = build_unet("tiny", seed=0), build_unet("tiny", seed=0)
    state_a, state_b = a.state_dict(), b.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    c = build_unet("tiny", seed=1)
    assert not torch.equal(c.unet.conv_out.weight, a.unet.conv_out.weight)
    counts = a.parameter_counts()
    print("tiny parameters:", counts)
    assert counts["total"] < 5_000_000
    assert a.latent_channels == 4 and a.unet.config.in_channels == 4 + 4 + 4 + 1
    assert a.unet.conv_in.weight[:, 4:].abs().sum() == 0
    gates = a.audio_gates()
    assert len(gates) == len(expected_cross_attention_widths(tiny_cfg["unet2d"]))
    assert all(g == 0 for g in gates.values())
    procs = [p for p in a.unet.attn_processors.values() if isinstance(p, AudioAttnProcessor2_0)]
    assert len(procs) == len(gates)


def expected_cross_attention_widths(unet2d_cfg: dict) -> list[int]:
    """Channel width of every spatial cross-attention layer of a UNet2DConditionModel config (1 transformer layer
    per attention block): down blocks have layers_per_block, the mid block 1, up blocks layers_per_block + 1."""
    channels, layers = unet2d_cfg["block_out_channels"], unet2d_cfg["layers_per_block"]
    widths = [c for t, c in zip(unet2d_cfg["down_block_types"], channels) if "CrossAttn" in t for _ in range(layers)]
    widths.append(channels[-1])
    ups = zip(unet2d_cfg["up_block_types"], reversed(channels))
    return widths + [c for t, c in ups if "CrossAttn" in t for _ in range(layers + 1)]


def expected_added_params(cfg: dict) -> dict[str, int]:
    """What audio and the new input channels add, computed from a preset: per cross-attention layer, audio
    key and value projections (audio_dim x width, no bias) and one gate; conv_in gains 3x3 kernels per new channel."""
    widths = expected_cross_attention_widths(cfg["unet2d"])
    audio = sum(2 * cfg["audio_dim"] * w + 1 for w in widths)
    extra = cfg["reference_channels"] + cfg["motion_channels"] + cfg["mask_channels"]
    return {"audio": audio, "new_channels": cfg["unet2d"]["block_out_channels"][0] * extra * 3 * 3}


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["sd15", "tiny"])
def test_parameter_counts(preset):
    cfg = load_preset("unet", preset)
    with accelerate.init_empty_weights(include_buffers=True):  # meta tensors: counts without allocating
        unet2d = UNet2DConditionModel(**cfg["unet2d"])
        adapter = MotionAdapter(**cfg["motion_adapter"])
        model = build_unet(preset)
    spatial = sum(p.numel() for p in unet2d.parameters())
    motion = sum(p.numel() for p in adapter.parameters())
    counts, added = model.parameter_counts(), expected_added_params(cfg)
    print(
        f"{preset}: spatial {spatial:,} motion {motion:,} audio {counts['audio']:,} "
        f"new channels {counts['new_channels']:,} total {counts['total']:,}"
    )
    if preset == "sd15":
        assert spatial == SD15_UNET_PARAMS and round(spatial / 1e6, 2) == 859.52
        assert round(motion / 1e6, 1) == 453.2  # AnimateDiff v1-5-2 motion modules
        assert added == {"audio": 19_169_296, "new_channels": 25_920}
    assert counts == {"spatial": spatial, "motion": motion, **added, "total": spatial + motion + sum(added.values())}


# --- audio gate, checkpoints ---------------------------------------------------------------------------------------


@pytest.mark.slow
@torch.no_grad()
def test_audio_changes_the_output_only_through_an_open_gate():
    model = build_unet("tiny").eval()
    x = inputs(model)
    other_audio = torch.randn_like(x["audio_tokens"])
    base = model(**x).sample
    assert torch.equal(base, model(**{**x, "audio_tokens": other_audio}).sample)
    assert torch.equal(base, model(**{**x, "audio_tokens": None}).sample)

    set_gates(model, 0.5)
    with_audio = model(**x).sample
    assert (with_audio - model(**{**x, "audio_tokens": other_audio}).sample).abs().max() > 1e-3
    assert (with_audio - base).abs().max() > 1e-3
    # all-zero audio (the CFG null) adds exactly nothing: the audio key/values have no bias
    assert torch.equal(base, model(**{**x, "audio_tokens": torch.zeros_like(other_audio)}).sample)
    # frame f sees only its own audio tokens
    changed = x["audio_tokens"].clone()
    changed[:, 2] += 1.0
    delta = (model(**{**x, "audio_tokens": changed}).sample - with_audio).abs().amax(dim=(0, 1, 3, 4))
    assert delta[2] > 1e-3


@pytest.mark.slow
def test_save_pretrained_round_trip_is_exact(tmp_path):
    model = build_unet("tiny").eval()
    set_gates(model, 0.3)
    with torch.no_grad():
        for p in model.audio_parameters():
            p.add_(0.1)
    model.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = AudioVideoUNet.from_pretrained(tmp_path / "ckpt").eval()
    assert type(loaded.unet.attn_processors[next(iter(model.audio_gates()))]) is AudioAttnProcessor2_0
    gates = {k: v.item() for k, v in model.audio_gates().items()}
    assert {k: v.item() for k, v in loaded.audio_gates().items()} == gates
    x = inputs(model)
    with torch.no_grad():
        assert torch.equal(model(**x).sample, loaded(**x).sample)


@pytest.mark.slow
def test_an_inflated_model_loads_back_exactly_into_aligned_memory_of_its_own(tmp_path, tiny_cfg):
    # every weight random, the motion modules and the audio layers included, so that every layer matters
    model = AudioVideoUNet.from_unet2d(
        random_unet2d(tiny_cfg), motion_adapter_config=tiny_cfg["motion_adapter"], audio_dim=32
    ).eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    model.save_pretrained(tmp_path / "ckpt")
    loaded = AudioVideoUNet.from_pretrained(tmp_path / "ckpt").eval()
    # diffusers maps the safetensors file and hands out views at their byte offsets in it; unaligned operands may
    # take other BLAS paths (other rounding), so the loaded model owns aligned copies, as the saved one did
    tensors = dict(loaded.named_parameters()) | dict(loaded.named_buffers())
    unaligned = [name for name, t in tensors.items() if t.data_ptr() % 64]
    assert not unaligned, f"{len(unaligned)} of {len(tensors)} tensors are not 64-byte aligned, e.g. {unaligned[:3]}"
    assert {type(p).__name__ for p in loaded.unet.attn_processors.values()} == {
        type(p).__name__ for p in model.unet.attn_processors.values()
    }
    for batch, frames, size in ((2, 4, 8), (1, 8, 16)):
        x = inputs(model, batch=batch, frames=frames, size=size)
        with torch.no_grad():
            assert torch.equal(model(**x).sample, loaded(**x).sample)


@pytest.mark.slow
def test_from_sd15_loads_local_folders_and_the_preset_pretrained_section(tmp_path, tiny_cfg):
    unet2d = random_unet2d(tiny_cfg, seed=3)
    unet2d.save_pretrained(tmp_path / "unet")  # the layout of a diffusers pipeline repo: <repo>/unet
    adapter = MotionAdapter(**tiny_cfg["motion_adapter"])
    zero_motion_proj_out(adapter)
    adapter.save_pretrained(tmp_path / "adapter")
    options = {k: tiny_cfg[k] for k in ("audio_dim", "reference_channels", "motion_channels", "mask_channels")}

    model = AudioVideoUNet.from_sd15(tmp_path, tmp_path / "adapter", **options).eval()
    x = inputs(model)
    with torch.no_grad():
        assert (model(**x).sample - per_frame_2d(unet2d, x)).abs().max() < 1e-5

    preset = {**tiny_cfg, "pretrained": {"unet": str(tmp_path / "unet"), "motion_adapter": str(tmp_path / "adapter")}}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(preset))
    from_file = build_unet(tmp_path / "mine.yaml", pretrained=True)
    assert torch.equal(from_file.unet.conv_out.weight, unet2d.conv_out.weight)


@pytest.mark.slow
def test_bad_inputs_raise_value_errors_that_name_the_argument():
    model = build_unet("tiny")
    x = inputs(model)
    bad = {
        "sample": torch.randn(2, 3, 4, 8, 8),
        "audio_tokens": torch.randn(2, 5, 3, 32),
        "encoder_hidden_states": torch.randn(2, 5, 31),
        "reference_latents": torch.randn(2, 4, 4, 8, 8),
        "motion_latents": torch.randn(2, 4, 8, 8),
        "mask": torch.randn(2, 2, 4, 8, 8),
        "timestep": torch.tensor([1, 2, 3]),
    }
    for name, value in bad.items():
        with pytest.raises(ValueError, match=name):
            model(**{**x, name: value})
    with pytest.raises(ValueError, match="motion_max_seq_length"):
        model(**{**x, "sample": torch.randn(1, 4, 33, 8, 8)})
    with pytest.raises(FileNotFoundError, match="presets"):
        build_unet("no-such-preset")


# --- CFG ----------------------------------------------------------------------------------------------------------


def test_cfg_dropout_keeps_nulls_and_is_reproducible():
    x = torch.randn(64, 8, 3, 16)
    keep, drop = ConditionDropout(0.0).train(), ConditionDropout(1.0).train()
    assert torch.equal(keep(x, torch.Generator().manual_seed(0)), x)
    assert torch.equal(drop(x, torch.Generator().manual_seed(0)), torch.zeros_like(x))
    half = ConditionDropout(0.5).train()
    a, b = half(x, torch.Generator().manual_seed(7)), half(x, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    dropped = (a == 0).flatten(1).all(1)
    assert torch.equal(a[~dropped], x[~dropped]) and 10 < dropped.sum() < 54  # per sample, about half
    assert not torch.equal(a, half(x, torch.Generator().manual_seed(8)))
    assert torch.equal(half.eval()(x), x)  # inference: untouched

    learned = ConditionDropout(1.0, null_shape=(3, 16)).train()
    with torch.no_grad():
        learned.null.fill_(2.0)
    assert torch.equal(learned(x), torch.full_like(x, 2.0))

    cond = Conditions(text=torch.randn(4, 5, 32), audio=torch.randn(4, 8, 3, 32))
    cfg = CFGDropout({"audio": 1.0, "text": 0.0}).train()
    out = cfg(cond, torch.Generator().manual_seed(0))
    assert torch.equal(out.text, cond.text) and torch.equal(out.audio, torch.zeros_like(cond.audio))
    assert out.reference is None
    with pytest.raises(ValueError, match="condition names"):
        CFGDropout({"sound": 0.1})


def test_replace_by_null_swaps_whole_items_for_zeros_or_a_learned_null():
    x = torch.randn(3, 4, 5)
    drop = torch.tensor([True, False, True])
    zeroed = replace_by_null(x, drop)
    assert torch.equal(zeroed[1], x[1]) and not zeroed[[0, 2]].any()
    learned = replace_by_null(x, drop, torch.full((4, 5), 2.0))
    assert torch.equal(learned[1], x[1]) and torch.equal(learned[0], torch.full((4, 5), 2.0))
    with pytest.raises(ValueError, match=r"drop must be bool \[B=3\]"):
        replace_by_null(x, torch.tensor([True, False]))


@pytest.mark.slow
@torch.no_grad()
def test_cfg_batch_runs_null_and_conditional_in_one_call():
    model = build_unet("tiny").eval()
    set_gates(model, 0.5)
    x = inputs(model, batch=1)
    cond = Conditions(text=x["encoder_hidden_states"], audio=x["audio_tokens"], reference=x["reference_latents"])
    empty_prompt = torch.randn(1, 1, 32)
    null = cond.with_null("audio", "text", nulls={"text": empty_prompt})
    assert torch.equal(null.text, empty_prompt.expand(1, 5, 32)) and null.audio.abs().sum() == 0
    assert torch.equal(null.reference, cond.reference)  # guidance on audio and text only
    doubled = cfg_conditions(cond, null)
    pred = model(torch.cat([x["sample"]] * 2), x["timestep"], **doubled.as_kwargs()).sample
    guided = classifier_free_guidance(pred, 3.0)
    uncond = model(x["sample"], x["timestep"], **null.as_kwargs()).sample
    conditional = model(x["sample"], x["timestep"], **cond.as_kwargs()).sample
    torch.testing.assert_close(guided, uncond + 3.0 * (conditional - uncond), atol=1e-5, rtol=1e-5)


# --- training machinery -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_gradient_checkpointing_same_output_and_gradients_reach_audio():
    model = build_unet("tiny").train()
    x = inputs(model, frames=4, size=8)

    def run() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.zero_grad()
        out = model(**x).sample
        out.square().mean().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if "audio" in n or "gate" in n}

    out_zero, grads_zero = run()  # closed gates: the gates get a gradient, the audio key/values cannot yet
    assert all(g.abs() > 0 for n, g in grads_zero.items() if n.endswith("gate"))
    assert all(g.abs().sum() == 0 for n, g in grads_zero.items() if "to_v_audio" in n)

    set_gates(model, 0.5)
    out_plain, grads_plain = run()
    model.enable_gradient_checkpointing()
    assert model.unet.down_blocks[0].gradient_checkpointing
    out_ckpt, grads_ckpt = run()
    model.disable_gradient_checkpointing()
    torch.testing.assert_close(out_ckpt, out_plain, atol=1e-6, rtol=0)
    assert grads_ckpt.keys() == grads_plain.keys() and len(grads_ckpt) == 3 * len(model.audio_gates())
    for name, grad in grads_ckpt.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(grad, grads_plain[name], atol=1e-6, rtol=1e-4)


@pytest.mark.slow
@torch.no_grad()
def test_bf16_forward_on_cpu():
    model = build_unet("tiny").eval()
    set_gates(model, 0.5)
    x = inputs(model, batch=1)
    reference = model(**x).sample
    with quiet_empty_fp32_warning():
        model.to(torch.bfloat16)
    x16 = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in x.items()}
    out = model(**x16).sample
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert (out.float() - reference).abs().mean() < 0.05 * reference.abs().mean()


# --- audio matters --------------------------------------------------------------------------------------------------


def toy_batch(g: torch.Generator, direction: torch.Tensor, batch=4, frames=8, size=8):
    """Per-frame loudness l in {-1, +1} sets the clean latent of frame f to l_f everywhere; the audio tokens of
    frame f carry l_f along a fixed direction, plus noise. Returns (x0 [B, 4, F, H, W], audio [B, F, 2, 32], l)."""
    loud = torch.randint(0, 2, (batch, frames), generator=g).float() * 2 - 1  # (B, F)
    x0 = loud[:, None, :, None, None].expand(batch, 4, frames, size, size).contiguous()
    audio = loud[..., None, None] * direction + 0.1 * torch.randn(batch, frames, 2, 32, generator=g)
    return x0, audio, loud


def train_toy(use_audio: bool, steps: int, seed: int = 0) -> tuple[AudioVideoUNet, float, torch.Tensor]:
    """Train tiny to predict x0 from noisy latents; the no-audio twin sees zeroed audio tokens. Returns the model and
    its x0 loss on a held-out set at every noise level, and the audio direction of the task."""
    model = build_unet("tiny", seed=seed).train()
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(torch.randn(32, generator=g), dim=0) * 4

    def loss_on(x0, audio, t, noise):
        noisy = scheduler.add_noise(x0, noise, t)
        audio = audio if use_audio else torch.zeros_like(audio)
        return (model(noisy, t, audio_tokens=audio).sample - x0).square().mean()

    for _ in range(steps):
        x0, audio, _ = toy_batch(g, direction)
        t = torch.randint(0, 1000, (4,), generator=g)
        loss = loss_on(x0, audio, t, torch.randn(x0.shape, generator=g))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    held = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        losses = []
        for t0 in range(0, 1000, 125):
            x0, audio, _ = toy_batch(held, direction)
            t = torch.full((4,), t0 + 62)
            losses.append(loss_on(x0, audio, t, torch.randn(x0.shape, generator=held)).item())
    return model, sum(losses) / len(losses), direction


@pytest.mark.slow
def test_audio_matters_after_training():
    steps = 80
    with_audio, loss_audio, direction = train_toy(use_audio=True, steps=steps)
    _, loss_silent, _ = train_toy(use_audio=False, steps=steps)
    print(f"held-out x0 loss after {steps} steps: with audio {loss_audio:.4f}, audio zeroed {loss_silent:.4f}")
    assert loss_audio < 0.5 * loss_silent

    g = torch.Generator().manual_seed(99)
    x0, audio, loud = toy_batch(g, direction)
    noise = torch.randn(x0.shape, generator=g)
    noisy = DDPMScheduler(num_train_timesteps=1000).add_noise(x0, noise, torch.tensor([900]))
    with torch.no_grad():
        out = with_audio(noisy, 900, audio_tokens=audio).sample.mean(dim=(1, 3, 4))  # (B, F) predicted loudness
        flipped = with_audio(noisy, 900, audio_tokens=-audio).sample.mean(dim=(1, 3, 4))
    assert (out.sign() == loud).float().mean() > 0.9
    assert (flipped.sign() == -loud).float().mean() > 0.9
    assert (out - flipped).abs().mean() > 0.5
