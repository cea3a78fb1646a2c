"""The mouth warp suits every face: the mouth interior takes the photo's colour, and no seam shows."""

import numpy as np
import pytest
import skimage.data

from avdiff.data.faces import lfw_photo
from avdiff.video.face import detect_face
from avdiff.video.warp import MouthWarper


@pytest.fixture(scope="module", params=["astronaut", "lfw"])
def warper(request):
    image = skimage.data.astronaut() if request.param == "astronaut" else lfw_photo(skimage.data.lfw_subset()[1])
    return request.param, image, MouthWarper(image, detect_face(image))


def test_the_mouth_interior_takes_the_photos_colour(warper):
    name, image, w = warper
    out, gap = w.warp_with_gap(1.0)
    r, g, b = np.median(out[gap > 0.99].astype(int), axis=0)
    assert (gap > 0.99).sum() > 100 and np.array_equal(out, w.warp(1.0))
    if name == "lfw":  # a grey photo gets a grey mouth, not a maroon one
        assert max(r, g, b) - min(r, g, b) <= 2
    else:  # the astronaut's red lips give a warm, dark interior
        assert r > g + 8 and r > b + 8 and r < 110
    assert np.all(w.cavity_rgb <= 0.31 * 255)


def test_the_warp_leaves_no_seam(warper):
    _, image, w = warper
    out = w.warp(1.0).astype(int)
    y0, y1, x0, x1 = w._roi
    change = np.abs(out - image).sum(-1)
    assert change[y0:y1, x0:x1].max() > 100  # it does warp...
    border = np.concatenate([change[y0:y1, x0], change[y0:y1, x1 - 1], change[y0, x0:x1], change[y1 - 1, x0:x1]])
    assert border.max() <= 3  # ...and fades out before the edge of the box it is pasted into
    assert np.array_equal(np.delete(out, np.s_[y0:y1], axis=0), np.delete(image, np.s_[y0:y1], axis=0))


def test_the_jaw_shadow_is_stretched_not_crushed():
    image = skimage.data.astronaut()
    w = MouthWarper(image, detect_face(image))
    v = np.linspace(w._chin, w._chin + 1.2 * w._neck, 2000)  # px below the lip line, from the chin down the neck
    landed = v + w.max_open_px * w._jaw_weight(np.zeros_like(v), v)  # where each point lands, mouth wide open
    squeeze = np.diff(landed) / np.diff(v)
    assert squeeze.min() >= 0.55  # the neck is compressed by at most ~40 % (it was ~95 %), never folded
    assert landed[-1] == pytest.approx(v[-1])  # and below it nothing moves
