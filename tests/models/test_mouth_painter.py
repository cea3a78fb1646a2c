"""The mouth painter as a model: built from its preset, sized by its fold, its masks grow over the hole's edge, the
hole is blanked in what it is given, and it saves and loads."""

import pytest
import torch

from avdiff.models.builders import build_mouth_painter, load_preset
from avdiff.models.mouth_painter import MouthPainter


@pytest.fixture(scope="module")
def painter():
    return build_mouth_painter("tiny", seed=0)


def test_the_preset_builds_a_seeded_painter_sized_by_its_fold(painter):
    assert painter.codec.latent_channels == 48 and painter.size_multiple == 8  # 4x fold, one UNet downsampling
    again = build_mouth_painter("tiny", seed=0)
    assert all(torch.equal(a, b) for a, b in zip(painter.parameters(), again.parameters()))
    other = build_mouth_painter("tiny", seed=1)
    assert any(not torch.equal(a, b) for a, b in zip(painter.parameters(), other.parameters()))
    spec = load_preset("mouth_painter", "tiny")
    with pytest.raises(ValueError, match="unknown keys"):
        build_mouth_painter({**spec, "framing": "face"})
    with pytest.raises(ValueError, match="multiple of codec_factor"):
        build_mouth_painter({**spec, "pixel_size": 50})
    with pytest.raises(ValueError, match="max_pixel_size"):
        build_mouth_painter({**spec, "max_pixel_size": 40})
    for key, size in (("pixel_size", 52), ("max_pixel_size", 92)):  # multiples of the fold, not of the UNet's 8
        with pytest.raises(ValueError, match=f"{key} \\({size}\\) must be a positive multiple of 8"):
            build_mouth_painter({**spec, key: size})


def test_a_mouth_is_painted_at_its_native_size_within_the_painters_range(painter):
    spec = load_preset("mouth_painter", "tiny")
    ranged = build_mouth_painter({**spec, "pixel_size": 48, "max_pixel_size": 96})
    # rounded to the UNet's multiple of 8, clamped to 48 .. 96
    assert [ranged.paint_size(s) for s in (20.0, 47.0, 51.9, 52.0, 60.0, 64.2, 67.9, 68.1, 95.0, 300.0)] == [
        48,
        48,
        48,
        56,
        64,
        64,
        64,
        72,
        96,
        96,
    ]  # fmt: skip (halves up)
    fixed = build_mouth_painter({**spec, "pixel_size": 48, "max_pixel_size": None})
    assert {fixed.paint_size(s) for s in (20.0, 64.2, 300.0)} == {48}  # one size: a painter trained at one scale
    for bad in (0.0, -3.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="native_side"):
            ranged.paint_size(bad)
    ranged.check_size(72)
    with pytest.raises(ValueError, match="the crop's side \\(68\\) must be a positive multiple of 8"):
        ranged.check_size(68)
    # the UNet paints any of those sizes: latents of 64 px crops are 16 wide
    z = ranged.encode(torch.zeros(1, 3, 2, 64, 64))
    known = ranged.encode(torch.zeros(1, 3, 2, 64, 64))
    mask = torch.zeros(1, 1, 2, 16, 16)
    out = ranged(z, torch.tensor([10]), torch.zeros(1, 2, 40, 5), z[:, :, 0], known, mask)
    assert out.shape == z.shape == (1, 48, 2, 16, 16)


def test_the_hole_is_painted_with_its_edge_and_blanked_in_what_the_unet_sees(painter):
    holes = torch.zeros(1, 1, 2, 48, 48)
    holes[..., 20:24, 20:28] = 1.0
    holes[..., 19, 20:28] = 0.3  # the renderer's soft edge
    paint = painter.pixel_mask(holes)
    assert paint[..., 18:25, 19:29].eq(1).all() and paint.sum() == 2 * 7 * 10  # the edge and one pixel more
    latent = painter.latent_mask(paint)
    assert latent.shape == (1, 1, 2, 12, 12) and latent[..., 4:7, 4:8].eq(1).all() and latent.sum() == 2 * 3 * 4
    crops = torch.rand(1, 3, 2, 48, 48) * 2 - 1
    known, mask, ref = painter.conditions(crops, holes, crops[:, :, 0])
    assert torch.equal(mask, latent) and ref.shape == (1, 48, 12, 12)
    pixels = painter.decode(known)
    assert pixels[..., 18:25, 19:29].eq(0).all()  # nothing of the hole's inside is given away
    assert torch.equal(pixels * (1 - paint), crops * (1 - paint))  # the rest is given exactly


def test_it_saves_and_loads_and_the_audio_can_be_dropped(painter, tmp_path):
    painter.save_pretrained(tmp_path)
    loaded = MouthPainter.from_pretrained(tmp_path).eval()
    z = torch.randn(2, 48, 4, 12, 12)
    args = (z, torch.tensor([10, 900]), torch.randn(2, 4, 40, 20), z[:, :, 0], z, torch.ones(2, 1, 4, 12, 12))
    with torch.no_grad():
        assert torch.equal(painter(*args), loaded(*args))
        dropped = painter(*args, drop_audio=torch.tensor([True, True]))
        silent = painter(*args[:2], torch.zeros(2, 4, 40, 20) + 5.0, *args[3:], drop_audio=torch.tensor([True, True]))
        assert torch.equal(dropped, silent) and not torch.equal(dropped, painter(*args))


def test_bad_sizes_are_refused(painter):
    unet = dict(painter.config.unet_config)
    speech = dict(painter.config.speech_config)
    with pytest.raises(ValueError, match="crop_scale"):
        MouthPainter(unet, speech, crop_scale=1.0)
    with pytest.raises(ValueError, match="codec's"):
        MouthPainter(unet, speech, codec_factor=2, pixel_size=48)
    with pytest.raises(ValueError, match="audio_dim"):
        MouthPainter(unet, {**speech, "audio_dim": 16})


@pytest.mark.parametrize("kind", ["sample", "v_prediction"])
def test_clean_latents_reads_each_prediction_type_as_the_scheduler_does(kind):
    spec = load_preset("mouth_painter", "tiny")
    painter = build_mouth_painter({**spec, "scheduler": {**spec["scheduler"], "prediction_type": kind}})
    assert painter.prediction_type == kind
    scheduler = painter.make_scheduler()
    g = torch.Generator().manual_seed(0)
    clean, noise = torch.randn(3, 48, 2, 6, 6, generator=g), torch.randn(3, 48, 2, 6, 6, generator=g)
    t = torch.tensor([3, 500, 990])
    noisy = scheduler.add_noise(clean, noise, t)
    target = {"sample": clean, "v_prediction": scheduler.get_velocity(clean, noise, t)}[kind]
    # the scheduler's training target stands for the clean latents, at every noise level
    torch.testing.assert_close(painter.clean_latents(target, noisy, t), clean, atol=2e-4, rtol=1e-4)
    # and DDIM's own reading of one output agrees (without its clipping: unclipped latents)
    scheduler = type(scheduler).from_config(scheduler.config, clip_sample=False)
    scheduler.set_timesteps(4)
    step = scheduler.step(target[1:2], t[1], noisy[1:2])
    torch.testing.assert_close(painter.clean_latents(target[1:2], noisy[1:2], t[1:2]), step.pred_original_sample)


@pytest.mark.parametrize("kind", ["epsilon", "flow"])
def test_a_prediction_type_the_loss_cannot_take_is_refused(kind):
    # the loss is on the clean crop; read from a predicted noise it would weigh the last steps about 1e3 times more
    spec = load_preset("mouth_painter", "tiny")
    with pytest.raises(ValueError, match="prediction_type must be 'sample' or 'v_prediction'"):
        build_mouth_painter({**spec, "scheduler": {**spec["scheduler"], "prediction_type": kind}})
