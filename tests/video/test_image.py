"""The one image reader: ``max_side`` gives the photo at a working size, after EXIF orientation."""

import numpy as np
import pytest
from PIL import Image

from avdiff.video.image import fit_within, load_image


def test_max_side_bounds_the_longer_side_and_keeps_the_aspect(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (300, 600, 3), dtype=np.uint8)
    path = tmp_path / "wide.png"
    Image.fromarray(rgb).save(path)
    out = load_image(path, max_side=200)
    assert out.shape == (100, 200, 3) and out.dtype == np.uint8
    # the area filter averages: the mean colour survives the downscale
    assert np.abs(out.mean(axis=(0, 1)) - rgb.mean(axis=(0, 1))).max() < 2
    assert np.array_equal(load_image(path), rgb)  # no bound: the image as it is


def test_an_image_that_fits_is_returned_unchanged():
    rgb = np.full((40, 30, 3), 7, np.uint8)
    assert fit_within(rgb, 40) is rgb
    assert load_image(rgb, max_side=1000).shape == (40, 30, 3)


def test_exif_orientation_is_applied_before_the_bound(tmp_path):
    rgb = np.zeros((100, 400, 3), np.uint8)
    rgb[:, :200] = 255  # left half white
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    path = tmp_path / "rotated.jpg"
    im.save(path, exif=exif, quality=95)
    out = load_image(path, max_side=200)
    assert out.shape == (200, 50, 3)  # upright: tall, then bounded
    assert out[:80].mean() > 200 and out[-80:].mean() < 50  # the white half is on top


@pytest.mark.parametrize("max_side", [None, 64])
def test_a_missing_file_names_the_path(tmp_path, max_side):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png", max_side=max_side)
