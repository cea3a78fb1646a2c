"""Mouth crops: a crop cut and pasted back is the frame again, and a paste touches only its mask."""

import numpy as np
import pytest
import skimage.data

from avdiff.video.mouth_crop import MouthCrop, mouth_crops


def test_cut_then_paste_gives_the_frame_back_and_touches_only_the_mask():
    frame = skimage.data.astronaut()
    crop = MouthCrop(cx=250.3, cy=180.7, side=64.0, size=64)  # native size: no resampling loss but subpixel shifts
    cut = crop.cut(frame)
    assert cut.shape == (64, 64, 3) and cut.dtype == np.uint8
    alpha = np.zeros(frame.shape[:2], np.float32)
    alpha[165:195, 235:265] = 1.0
    back = crop.paste(frame, cut, alpha)
    assert np.array_equal(back[alpha == 0], frame[alpha == 0])
    # bilinear twice over a half-pixel shift blurs a little, no more
    assert np.abs(back.astype(int) - frame)[alpha > 0].mean() < 8
    # the crop's centre is the frame's point (cx, cy)
    assert crop.matrix @ np.array([250.3, 180.7, 1.0]) == pytest.approx([31.5, 31.5])
    painted = crop.paste(frame, np.full_like(cut, 255), alpha)
    assert (painted[170:190, 240:260] == 255).all()


def test_crops_follow_the_mouth_at_one_scale():
    lips = np.zeros((3, 20, 2))
    lips[:, 0], lips[:, 10] = [100, 200], [140, 200]
    lips[2] += [5, -3]
    crops = mouth_crops(lips, 40.0, 1.5, 48)
    assert [c.side for c in crops] == [60.0] * 3 and (crops[2].cx, crops[2].cy) == (125.0, 197.0)
    with pytest.raises(ValueError, match="inner_lips"):
        mouth_crops(lips[:, :10], 40.0, 1.5, 48)
    with pytest.raises(ValueError, match="crop_scale"):
        mouth_crops(lips, 40.0, 0.9, 48)
    with pytest.raises(ValueError, match="mouth_width"):
        mouth_crops(lips, float("nan"), 1.5, 48)
