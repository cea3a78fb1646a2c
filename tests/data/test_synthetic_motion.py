"""Synthetic clips in the "motion" style: the face does what its Motion truth says, measured back from the video."""

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from avdiff.audio.io import Waveform
from avdiff.audio.phonemes import PhonemeEvent
from avdiff.cli import main
from avdiff.data import motion_dataset
from avdiff.data.format import append_index, read_index
from avdiff.data.motion_dataset import data_folder_clips, speak_cached
from avdiff.data.motion_truth import JAW_PER_OPEN
from avdiff.data.synthetic import make_dataset, make_motion_clip
from avdiff.video import read_video
from avdiff.video.face import INNER_LIPS, detect_face, track_landmarks
from avdiff.video.motion import FIELDS, Motion, motion_from_landmarks

pytestmark = pytest.mark.requires_espeak

SENTENCE = "Peter Piper picked a peck of pickled peppers, and Bob bought a blue boat."


def test_speak_cached_serves_the_cache_only_to_the_same_espeak_version(tmp_path, monkeypatch):
    """An upgraded espeak-ng makes the speech again instead of serving what the old one made."""
    made = []

    def fake_speak(text, voice, speed_wpm, pitch, sample_rate):  # each synthesis sounds different from the last
        made.append(text)
        samples = torch.full((1, 160), float(len(made)) / 10)
        return Waveform(samples, sample_rate), [PhonemeEvent("p", 10, 50, 5)]

    monkeypatch.setattr(motion_dataset, "speak_with_phonemes", fake_speak)
    monkeypatch.setattr(motion_dataset, "espeak_version", lambda: "1.51")
    first, events = speak_cached("Bob", "en-us", 160, 50, 16000, tmp_path)
    again, cached_events = speak_cached("Bob", "en-us", 160, 50, 16000, tmp_path)
    assert len(made) == 1 and torch.equal(again.samples, first.samples) and cached_events == events
    monkeypatch.setattr(motion_dataset, "espeak_version", lambda: "1.52")
    upgraded, _ = speak_cached("Bob", "en-us", 160, 50, 16000, tmp_path)
    assert len(made) == 2 and not torch.equal(upgraded.samples, first.samples)
    assert len(list(tmp_path.glob("utt_*.npz"))) == 2  # one file per version
    monkeypatch.setattr(motion_dataset, "espeak_version", lambda: "1.51")  # the old version's file is still served
    assert torch.equal(speak_cached("Bob", "en-us", 160, 50, 16000, tmp_path)[0].samples, first.samples)
    assert len(made) == 2


def test_a_share_of_the_clips_speaks_with_a_new_intonation_and_its_truth_turns_the_head_with_it(tmp_path):
    """Only the speech and the head pose that follows its prosody change; the other draws (controls, blinks, the
    random sway) stay the same, and a clip not drawn for a new intonation is the clip it was."""
    utts = motion_dataset.synthetic_utterances("train", 2, 0, ["en-us"], 16000, cache_dir=tmp_path)
    plain = motion_dataset.synthetic_clips(utts, 25, 3)
    new = motion_dataset.synthetic_clips(utts, 25, 3, intonation_share=1.0, intonation_semitones=3.0)
    yaw, roll, mouth = FIELDS.index("yaw"), FIELDS.index("roll"), FIELDS.index("mouth_open")
    turned = 0
    for a, b in zip(plain, new, strict=True):
        assert a.controls == b.controls and a.events == b.events and np.array_equal(a.blink_starts, b.blink_starts)
        assert a.samples.shape == b.samples.shape and not torch.allclose(a.samples, b.samples, atol=1e-3)
        np.testing.assert_allclose(b.motion[:, mouth], a.motion[:, mouth], atol=1e-6)
        np.testing.assert_array_equal(b.motion[:, roll], a.motion[:, roll])  # the sway alone: the same draws
        if a.controls[1] > 0:
            turned += 1
            assert np.corrcoef(a.motion[:, yaw], b.motion[:, yaw])[0, 1] < 0.9
    assert turned >= 2
    half = motion_dataset.synthetic_clips(utts, 25, 3, intonation_share=0.5)
    kept = [np.array_equal(a.motion, h.motion) and torch.equal(a.samples, h.samples) for a, h in zip(plain, half)]
    assert 0 < sum(kept) < len(kept)  # the clips not drawn are as they were
    with pytest.raises(ValueError, match="intonation_share"):
        motion_dataset.synthetic_clips(utts, 25, 1, intonation_share=1.5)
    with pytest.raises(ValueError, match="intonation_heard"):
        motion_dataset.synthetic_clips(utts, 25, 1, intonation_heard="mel")
    # heard only as the F0: the clip keeps the original speech, the new one is its pitch samples, the truth the same
    by_pitch = motion_dataset.synthetic_clips(
        utts, 25, 3, intonation_share=1.0, intonation_semitones=3.0, intonation_heard="pitch"
    )
    for a, b, c in zip(plain, new, by_pitch, strict=True):
        assert torch.equal(c.samples, a.samples) and torch.equal(c.pitch_samples, b.samples)
        np.testing.assert_array_equal(c.motion, b.motion)
    assert all(h.pitch_samples is None for h in plain)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    out = tmp_path_factory.mktemp("motion_clip")
    record = make_motion_clip(
        out, "peter", skimage.data.astronaut(), SENTENCE, np.random.default_rng(3), blink_rate_per_min=20.0
    )
    return out, record


@pytest.mark.slow
def test_the_video_shows_its_motion_truth(clip):
    out, record = clip
    truth = Motion.load(out / record.motion)
    video = read_video(out / record.video)
    assert len(truth) == video.num_frames == record.num_frames and video.frames.shape[1:3] == (512, 512)
    assert abs(video.audio.duration_s - video.duration_s) <= 1 / 25
    np.testing.assert_array_equal(np.load(out / record.aperture), truth.mouth_open)
    photo = detect_face(skimage.data.astronaut()).points3d
    measured = motion_from_landmarks(track_landmarks(video.frames.numpy(), depth=True), photo)
    assert not measured.missing().any()
    assert np.corrcoef(measured.mouth_open, truth.mouth_open)[0, 1] >= 0.9
    blink = (truth.eye_left > 0.8) & (truth.eye_right > 0.8)
    assert blink.any() and measured.eye_left[blink].mean() > measured.eye_left[truth.eye_left < 0.05].mean() + 0.3
    assert np.corrcoef(measured.pitch, truth.pitch)[0, 1] >= 0.5
    assert np.corrcoef(measured.yaw, truth.yaw)[0, 1] >= 0.5
    assert record.source["style"] == "motion" and record.source["blink_rate_per_min"] == 20.0
    assert record.source["reference_open"] > 0.1  # the astronaut smiles with parted lips
    # the motion generator reads it with its jaw against a closed mouth, as it reads synthetic truth
    append_index(out, record)
    (clip,) = data_folder_clips(out, 25, 16000)
    jaw = clip.motion[:, FIELDS.index("jaw")]
    np.testing.assert_allclose(jaw, truth.jaw + JAW_PER_OPEN * record.source["reference_open"], atol=1e-5)


@pytest.mark.slow
def test_a_motion_dataset_is_seeded_and_shares_a_folder_with_loudness_clips(tmp_path):
    first = make_dataset(tmp_path / "a", 2, split="test", seed=1, style="motion", progress_bar=False)
    again = make_dataset(tmp_path / "b", 1, split="test", seed=1, style="motion", progress_bar=False)
    assert [r.id for r in first] == ["test_motion_001_00000", "test_motion_001_00001"]
    np.testing.assert_array_equal(
        Motion.load(tmp_path / "a" / first[0].motion).as_array(),
        Motion.load(tmp_path / "b" / again[0].motion).as_array(),
    )
    assert (tmp_path / "a" / first[0].video).read_bytes() == (tmp_path / "b" / again[0].video).read_bytes()
    assert first[0].source["head_amount"] != first[1].source["head_amount"]
    loud = make_dataset(tmp_path / "a", 1, split="test", seed=1, progress_bar=False)
    assert loud[0].motion is None and len(read_index(tmp_path / "a")) == 3


def test_bad_requests_fail_before_any_work(tmp_path, capsys):
    with pytest.raises(ValueError, match="not a safe file name"):
        make_motion_clip(tmp_path, "../x", skimage.data.astronaut(), "Hello.", np.random.default_rng(0))
    with pytest.raises(ValueError, match="style must be one of"):
        make_dataset(tmp_path, 1, style="phonemes")
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"")
    assert main(["synth", "--audio", str(audio), "--style", "motion", "--out", str(tmp_path)]) == 2
    assert "--style motion needs --text" in capsys.readouterr().err
    assert not (tmp_path / "clips").exists()


def test_teeth_and_tongue_are_drawn_inside_the_parted_lips_only(tmp_path, capsys):
    """A clip with ``teeth`` is the same clip (motion, speech, frames outside the mouth) with bright teeth where the
    renderer leaves its dark cavity."""
    photo = cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    made = {
        teeth: make_motion_clip(tmp_path, f"t{int(teeth)}", photo, "Open wide.", np.random.default_rng(5), teeth=teeth)
        for teeth in (False, True)
    }
    plain, drawn = (read_video(tmp_path / made[t].video).frames.numpy().astype(int) for t in (False, True))
    np.testing.assert_array_equal(
        Motion.load(tmp_path / made[False].motion).as_array(), Motion.load(tmp_path / made[True].motion).as_array()
    )
    assert made[True].source["teeth"] and not made[False].source["teeth"]
    lips = detect_face(photo).landmarks[INNER_LIPS]
    (x0, y0), (x1, y1) = np.floor(lips.min(axis=0) - 12).astype(int), np.ceil(lips.max(axis=0) + 12).astype(int)
    mouth = np.zeros(photo.shape[:2], bool)
    mouth[y0:y1, x0:x1] = True
    diff = np.abs(drawn - plain).max(axis=-1)  # [F, H, W]
    assert diff[:, ~mouth].mean() < 1.0  # elsewhere the same, up to the video codec
    widest = int(np.argmax(Motion.load(tmp_path / made[True].motion).mouth_open))
    assert drawn[widest][mouth].mean() > plain[widest][mouth].mean() + 5  # teeth where the cavity was dark
    assert main(["synth", "--text", "Hi.", "--style", "motion", "--teeth", "0.5", "--out", str(tmp_path / "x")]) == 2
    assert "--teeth 0 or 1" in capsys.readouterr().err
    assert main(["synth", "--dataset", "1", "--teeth", "1", "--out", str(tmp_path / "x")]) == 2
    assert "--teeth is for --style motion" in capsys.readouterr().err
    with pytest.raises(ValueError, match="teeth must be a share"):
        make_dataset(tmp_path / "x", 1, style="motion", teeth=1.5)
    assert not (tmp_path / "x").exists()
