"""The identity measure (dlib's face-recognition ResNet) on known pairs, and the face pool split by identity."""

import numpy as np
import pytest
import skimage.data
from PIL import Image

from avdiff.data.faces import GROUP_DISTANCE, face_pool, group_identities, lfw_photo, safe_name, split_identities
from avdiff.metrics.identity import (
    SAME_PERSON_THRESHOLD,
    FaceRecognizer,
    cosine_similarity,
    descriptor_distance,
    identity_scores,
    same_person,
)


@pytest.fixture(scope="module")
def recognizer():
    return FaceRecognizer.default()


@pytest.fixture(scope="module")
def lfw():
    return skimage.data.lfw_subset()


@pytest.mark.slow
def test_the_same_photo_rescaled_is_the_same_person(recognizer, lfw):
    astronaut = skimage.data.astronaut()
    small = np.asarray(Image.fromarray(astronaut).resize((200, 200), Image.LANCZOS))
    d = descriptor_distance(recognizer.descriptor(astronaut), recognizer.descriptor(small))
    assert d < 0.4 and same_person(astronaut, small, recognizer)  # measured 0.29
    face = lfw_photo(lfw[1])
    half = np.asarray(Image.fromarray(face).resize((128, 128), Image.LANCZOS))
    assert same_person(face, half, recognizer)  # measured 0.07


@pytest.mark.slow
def test_two_different_lfw_people_are_not(recognizer, lfw):
    # lfw_subset()[0] and [1] are two different men (distance 0.75); [0] and [36] are one man (0.36)
    a, b, c = (recognizer.descriptor(lfw_photo(lfw[i])) for i in (0, 1, 36))
    assert descriptor_distance(a, b) > SAME_PERSON_THRESHOLD
    assert descriptor_distance(a, c) < GROUP_DISTANCE
    assert same_person(lfw_photo(lfw[0]), skimage.data.astronaut(), recognizer) is False


@pytest.mark.slow
def test_no_face_means_no_descriptor_and_no_score(recognizer):
    rocket = skimage.data.rocket()
    assert recognizer.descriptor(rocket) is None
    assert same_person(rocket, skimage.data.astronaut(), recognizer) is None
    video = np.repeat(rocket[None, :256, :256], 6, axis=0)
    scores = identity_scores(video, skimage.data.astronaut(), recognizer)
    assert not scores.scored and scores.mean_distance is None and scores.valid_frames == 0
    assert "face in only 0 of 6 frames" in scores.reason
    no_reference = identity_scores(np.repeat(skimage.data.astronaut()[None], 6, axis=0), rocket, recognizer)
    assert not no_reference.scored and no_reference.reason == "no face in the reference photo"


@pytest.mark.slow
def test_identity_scores_of_a_video(recognizer, lfw):
    astronaut = skimage.data.astronaut()
    same = np.stack([astronaut, np.roll(astronaut, 3, axis=1)] * 3)  # (6, 512, 512, 3): the astronaut, moved
    scores = identity_scores(same, astronaut, recognizer)
    assert scores.scored and scores.valid_frames == 6 and scores.same_person_share == 1.0
    assert scores.mean_distance < 0.2 and scores.csim > 0.98
    other = np.repeat(lfw_photo(lfw[1])[None], 6, axis=0)
    scores = identity_scores(other, astronaut, recognizer)
    assert scores.same_person_share == 0.0 and scores.mean_distance > SAME_PERSON_THRESHOLD
    assert scores.to_dict()["same_person_share"] == 0.0


def test_distance_and_cosine():
    a, b = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([0.0, 1.0])
    np.testing.assert_allclose(descriptor_distance(a, b), [np.sqrt(2), 1.0])
    np.testing.assert_allclose(cosine_similarity(a, b), [0.0, 1.0])
    assert np.isnan(descriptor_distance(np.full(2, np.nan), b))


def test_grouping_and_split_by_identity():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 128))
    centres *= 1.0 / np.linalg.norm(centres, axis=1, keepdims=True)  # people ~1.4 apart
    members = np.concatenate([c + 0.01 * rng.normal(size=(3, 128)) for c in centres])  # 3 photos each
    members = np.concatenate([members, np.full((1, 128), np.nan)])  # and one without a face
    labels = group_identities(members)
    assert len(set(labels[:12])) == 4 and all(len(set(labels[3 * k : 3 * k + 3])) == 1 for k in range(4))
    assert labels[12] not in labels[:12]
    names = [f"id_{i}" for i in range(10)]
    split = split_identities(names, keep_in_train=("id_3",))
    assert split == split_identities(list(reversed(names)), keep_in_train=("id_3",))  # order-free, seed-free
    assert sum(v == "test" for v in split.values()) == 2 and split["id_3"] == "train"
    assert safe_name("../../etc/Passwd") == "etc_passwd" and safe_name("") == "face"


@pytest.mark.slow
def test_the_pool_splits_by_identity_and_keeps_the_astronaut_in_train(tmp_path):
    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "me.png")
    Image.fromarray(skimage.data.rocket()).save(tmp_path / "rocket.png")  # no face: left out
    pool = face_pool(tmp_path)
    names = {f.name for f in pool}
    assert "user_me" in names and "user_rocket" not in names and len(names) > 90
    by_name = {f.name: f for f in pool}
    assert by_name["astronaut"].split == "train"
    assert by_name["user_me"].identity == by_name["astronaut"].identity  # the same person, grouped by dlib
    train = {f.identity for f in pool if f.split == "train"}
    test = {f.identity for f in pool if f.split == "test"}
    assert not train & test and 10 <= len(test) <= 30
    assert [f.split for f in face_pool(tmp_path)] == [f.split for f in pool]  # deterministic


@pytest.mark.slow
def test_eval_lipsync_reports_identity_against_a_reference_image(tmp_path, capsys, lfw):
    import json

    from avdiff.audio import Waveform
    from avdiff.cli import main
    from avdiff.video import write_video

    astronaut = skimage.data.astronaut()
    Image.fromarray(astronaut).save(tmp_path / "astronaut.png")
    Image.fromarray(lfw_photo(lfw[1])).save(tmp_path / "other.png")
    t = np.arange(32000) / 16000
    speech = Waveform((0.3 * np.sin(2 * np.pi * 200 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32), 16000)
    video = write_video(tmp_path / "v.mp4", np.repeat(astronaut[None], 50, axis=0), 25, speech)
    for photo, share in (("astronaut.png", 1.0), ("other.png", 0.0)):
        main(["eval", "lipsync", str(video), "--reference-image", str(tmp_path / photo), "--json"])
        out = json.loads(capsys.readouterr().out)
        assert out["identity"]["same_person_share"] == share and out["identity"]["valid_frames"] == 50
    assert main(["eval", "lipsync", str(video), "--reference-image", str(tmp_path / "missing.png")]) == 2
    assert "--reference-image" in capsys.readouterr().err
