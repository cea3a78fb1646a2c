"""Scene fidelity against known truth: the true masks score a scene's own caption perfectly and another's badly;
places, motion, and the change inside a segment versus elsewhere (issue 18's measure)."""

import numpy as np
import pytest

from avdiff.data.scenes import SceneObject, SceneSpec, label_of, render_scene, sample_scene
from avdiff.evaluation.scene import (
    aggregate_fidelity,
    object_motion,
    object_segment,
    prompt_fidelity,
    segment_change,
    segmentation_scores,
)


def scenes(n, split="train", seed=0):
    out = []
    for k in range(n):
        spec = sample_scene(np.random.default_rng([seed, 5, k]), split)
        out.append((spec, render_scene(spec)))
    return out


def record_of(spec):
    return {"objects": [o.to_dict() for o in spec.objects], "caption": spec.caption}


@pytest.mark.slow
def test_true_masks_score_their_own_caption_perfectly_and_a_shuffled_one_badly():
    clips = scenes(24)
    own, shuffled = [], []
    for k, (spec, r) in enumerate(clips):
        own.append(prompt_fidelity(r.frames, record_of(spec), labels=r.masks))
        other = clips[(k + 1) % len(clips)][0]
        shuffled.append(prompt_fidelity(r.frames, other.caption, labels=r.masks))
        from_caption = prompt_fidelity(r.frames, spec.caption, labels=r.masks)
        assert from_caption.presence == 1.0 and from_caption.absence == 1.0
    good, bad = aggregate_fidelity(own), aggregate_fidelity(shuffled)
    assert good["presence"] == 1.0 and good["absence"] == 1.0 and good["place"] == 1.0 and good["motion"] == 1.0
    assert good["stated_places"] > 10
    assert bad["presence"] < 0.4 and bad["absence"] < good["absence"]
    assert good["motion_sounding"] > 5 * good["motion_silent"]


def test_places_and_presence_by_construction():
    spec = SceneSpec(
        [
            SceneObject("car", "red", "left"),
            SceneObject("house", "white", "right"),
            SceneObject("sun", None, "centre"),
        ],
        "day",
        3,
    )
    r = render_scene(spec)
    fid = prompt_fidelity(r.frames, "a red car on the left and a house on the right and a sun", labels=r.masks)
    assert fid.objects["car"].place_holds and fid.objects["house"].place_holds
    assert fid.objects["sun"].place is None and fid.objects["sun"].place_holds is None
    assert fid.place == 1.0
    wrong = prompt_fidelity(r.frames, "a red car on the right and a house on the left", labels=r.masks)
    assert wrong.place == 0.0 and wrong.presence == 1.0 and wrong.absence == pytest.approx(9 / 10)  # the sun is extra
    missing = prompt_fidelity(r.frames, "a campfire and a red car", labels=r.masks)
    assert missing.presence == 0.5
    # a keyframe: no motion to judge
    key = prompt_fidelity(r.frames[:1], "a red car, a house and a sun", labels=r.masks[:1])
    assert key.motion is None and key.presence == 1.0


def test_segment_change_follows_a_known_curve_inside_and_stays_flat_elsewhere():
    curve = np.abs(np.sin(np.linspace(0, 3 * np.pi, 16))).astype(np.float32)
    spec = SceneSpec(
        [
            SceneObject("campfire", None, "left"),
            SceneObject("house", "blue", "right"),
            SceneObject("moon", None, "centre"),
        ],
        "night",
        4,
    )
    quiet = render_scene(spec, envelopes={"campfire": np.zeros(16, np.float32)})
    loud = render_scene(spec, envelopes={"campfire": curve})
    base = quiet.frames[0]
    mask = object_segment(base, "campfire", labels=quiet.masks[0])
    change = segment_change(loud.frames, base, mask, dilate=6)  # flames grow past the quiet outline
    assert np.corrcoef(change.inside, curve)[0, 1] > 0.8
    assert change.ratio > 3 and change.outside.max() < 0.002  # the moon and the house hold; flame tips aside
    # by hand: a change of 51/255 inside a square, none elsewhere
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    frames[1, 10:20, 10:20] = 51
    square = np.zeros((64, 64), bool)
    square[10:20, 10:20] = True
    hand = segment_change(frames, frames[0], square)
    assert hand.inside.tolist() == pytest.approx([0.0, 0.2, 0.0]) and hand.outside.tolist() == [0.0, 0.0, 0.0]
    assert hand.ratio == float("inf") and np.isnan(segment_change(frames[[0, 2]], frames[0], square).ratio)
    with pytest.raises(ValueError, match="empty"):
        segment_change(frames, frames[0], np.zeros((64, 64), bool))
    with pytest.raises(ValueError, match="whole frame"):
        segment_change(frames, frames[0], np.ones((64, 64), bool))
    with pytest.raises(ValueError, match="mask must be"):
        segment_change(frames, frames[0], np.ones((32, 32), bool))


def test_object_motion_and_segmentation_scores_known_cases():
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    frames[1, :2, :2] = 255
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[:, :2, :2] = 5
    assert object_motion(frames, labels, 5) == pytest.approx(1.0)  # all 4 pixels flip fully in both pairs
    assert object_motion(frames, labels, 0) == 0.0 and object_motion(frames[:1], labels[:1], 5) is None
    assert object_motion(frames, labels, 7) is None
    truth = np.array([[0, 0, 1, 1]])
    assert segmentation_scores(truth, truth, ["a", "b", "c"]) == {
        "pixel_accuracy": 1.0,
        "mean_iou": 1.0,
        "iou/a": 1.0,
        "iou/b": 1.0,
    }
    half = segmentation_scores(np.array([[0, 1, 1, 1]]), truth, ["a", "b", "c"])
    assert half["pixel_accuracy"] == 0.75 and half["iou/a"] == 0.5 and half["iou/b"] == pytest.approx(2 / 3)
    assert half["mean_iou"] == pytest.approx((0.5 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="one shape"):
        segmentation_scores(truth, truth[:, :2])


def test_bad_input_is_refused():
    frames = np.zeros((2, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        prompt_fidelity(frames.astype(np.float32), "a car", labels=np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="segmenter or the label maps"):
        prompt_fidelity(frames, "a car")
    with pytest.raises(ValueError, match="labels must be"):
        prompt_fidelity(frames, "a car", labels=np.zeros((1, 64, 64), np.uint8))
    with pytest.raises(TypeError, match="prompt must be"):
        prompt_fidelity(frames, 42, labels=np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="not a scene object"):
        object_segment(frames[0], "dragon", labels=np.zeros((64, 64)))
    with pytest.raises(ValueError, match="no results"):
        aggregate_fidelity([])
    assert label_of("campfire") == 2
