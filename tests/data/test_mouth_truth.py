"""The synthetic mouth's inside: teeth under the upper lip, a tongue that rises for t/d/n/l/s, nothing outside the
lips."""

import numpy as np
import pytest
import skimage.data

from avdiff.audio.phonemes import PhonemeEvent
from avdiff.data.mouth_truth import TONGUE_HEIGHT, draw_mouth_interior, tongue_track
from avdiff.video.face import INNER_LIPS, detect_face
from avdiff.video.motion import FIELDS, Motion
from avdiff.video.render import FaceRenderer


@pytest.fixture(scope="module")
def open_mouth():
    photo = skimage.data.astronaut()
    renderer = FaceRenderer(photo, detect_face(photo))
    fields = {k: getattr(renderer.neutral(1), k).copy() for k in FIELDS}
    fields["mouth_open"][:], fields["lip_closure"][:] = 0.45, 0.0
    motion = Motion.from_dict(fields)
    frame, interior = renderer.render(motion, 0, return_interior=True)
    return frame, interior, renderer.target_landmarks(motion, 0)[INNER_LIPS]


def test_the_tongue_rises_for_alveolars_and_lies_low_for_open_vowels():
    rate = 16000  # 25 fps: 640 samples a frame
    events = [
        PhonemeEvent("a", 0, 6400, 0),
        PhonemeEvent("t", 6400, 12800, 6400),
        PhonemeEvent("_", 12800, 19200, 12800),
    ]
    tongue = tongue_track(events, 30, 25, rate)
    assert tongue.shape == (30,) and tongue.dtype == np.float32
    assert tongue[2:8].max() < 0.05 and tongue[12:18].min() > 0.95  # "a" low, "t" up
    assert tongue[27:] == pytest.approx(TONGUE_HEIGHT["rest"], abs=0.02)  # past the events: rest
    assert tongue_track([], 0, 25, rate).shape == (0,)
    with pytest.raises(ValueError, match="num_frames"):
        tongue_track(events, -1, 25, rate)


def test_teeth_and_tongue_are_drawn_inside_the_lips_only(open_mouth):
    frame, interior, lips = open_mouth
    low, high = draw_mouth_interior(frame, lips, interior, 0.0), draw_mouth_interior(frame, lips, interior, 1.0)
    outside = interior == 0
    assert np.array_equal(low[outside], frame[outside]) and np.array_equal(high[outside], frame[outside])
    inside = interior > 0.99
    # the renderer's cavity is dark; the truth shows bright teeth in it
    assert frame[inside].mean() < 90 and (low[inside].mean(axis=1) > 170).mean() > 0.2
    # the raised tongue (red over green) covers more of the mouth than the lying one
    red = lambda im: ((im[..., 0].astype(int) - im[..., 1]) > 50) & inside  # noqa: E731
    assert red(high).sum() > red(low).sum() > 0
    assert np.array_equal(draw_mouth_interior(frame, lips, np.zeros_like(interior), 1.0), frame)


def test_bad_inputs_are_refused(open_mouth):
    frame, interior, lips = open_mouth
    with pytest.raises(ValueError, match="frame"):
        draw_mouth_interior(frame.astype(np.float32), lips, interior, 0.5)
    with pytest.raises(ValueError, match="inner_lips"):
        draw_mouth_interior(frame, lips[:10], interior, 0.5)
    with pytest.raises(ValueError, match="interior"):
        draw_mouth_interior(frame, lips, interior[:-1], 0.5)
