"""Issue 3's acceptance: synthetic pairs, the lip-sync metric, the warp baseline, on real mediapipe landmarks."""

import json

import numpy as np
import pytest
import skimage.data

from avdiff.audio import Waveform, load_audio
from avdiff.cli import main
from avdiff.data.format import read_index
from avdiff.data.synthetic import FaceAugment, make_dataset, sentences
from avdiff.pipelines import WarpBaselinePipeline
from avdiff.video import read_video, write_video

pytestmark = pytest.mark.requires_espeak  # every test makes speech with espeak-ng

SENTENCE = "Please call Stella and ask her to bring these things with her from the store."


def eval_lipsync(capsys, video, *extra) -> dict:
    assert main(["eval", "lipsync", str(video), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    assert main(["synth", "--text", SENTENCE, "--out", str(out), "--id", "stella"]) == 0
    (record,) = read_index(out)
    return out, record


@pytest.mark.slow
def test_synth_writes_a_clip_whose_durations_agree(clip):
    out, record = clip
    video = read_video(out / record.video)
    assert video.fps == 25 and video.audio.sample_rate == 16000
    assert abs(video.audio.duration_s - video.duration_s) <= 1 / 25
    aperture = np.load(out / record.aperture)
    assert aperture.shape == (video.num_frames,) == (record.num_frames,)
    # the mouth moves with the speech and is closed in the silences
    assert aperture.max() - aperture.min() > 0.2
    assert np.isclose(aperture[0], aperture.min())


@pytest.mark.slow
def test_measured_openness_matches_the_ground_truth(clip, capsys):
    out, record = clip
    report = eval_lipsync(capsys, out / record.video, "--reference-aperture", str(out / record.aperture))
    assert report["r_reference"] >= 0.9
    assert abs(report["offset_frames"]) <= 1
    assert report["r_envelope"] > 0.6


@pytest.mark.slow
def test_delayed_audio_is_found_at_plus_5_frames(clip, capsys, tmp_path):
    out, record = clip
    video = read_video(out / record.video)
    delay = int(0.2 * 16000)  # 200 ms = 5 frames at 25 fps
    samples = np.pad(video.audio.samples.numpy(), ((0, 0), (delay, 0)))
    delayed = write_video(tmp_path / "delayed.mp4", video.frames, 25, Waveform(samples, 16000))
    report = eval_lipsync(capsys, delayed)
    assert abs(report["offset_frames"] - 5) <= 1  # + means the audio lags the video


@pytest.mark.slow
def test_a_still_image_does_not_correlate_with_the_speech(clip, capsys, tmp_path):
    out, record = clip
    video = read_video(out / record.video)
    still = np.repeat(skimage.data.astronaut()[None], video.num_frames, axis=0)
    path = write_video(tmp_path / "still.mp4", still, 25, video.audio)
    report = eval_lipsync(capsys, path)
    assert abs(report["r_envelope"]) < 0.2


def unseen_face() -> np.ndarray:
    """A face no part of avdiff was built around: an LFW portrait (25 x 25 px, grey) upscaled to 256 px."""
    from PIL import Image

    face = (skimage.data.lfw_subset()[0] * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(face).resize((256, 256), Image.BICUBIC).convert("RGB"))


@pytest.mark.slow
def test_baseline_on_an_unseen_photo_follows_the_speech(tmp_path, capsys):
    from avdiff.audio.tts import speak

    speech = tmp_path / "speech.wav"
    from avdiff.audio import save_audio

    save_audio(
        speech, speak("Good morning everyone, and welcome to the meeting about the new library.", voice="en-gb+m3")
    )
    photo = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(unseen_face()).save(photo)
    out = tmp_path / "talk.mp4"
    assert main(["talk", "--baseline", "--image", str(photo), "--audio", str(speech), "--out", str(out)]) == 0
    capsys.readouterr()
    video = read_video(out)
    assert abs(video.audio.duration_s - load_audio(speech).duration_s) <= 1 / 25
    report = eval_lipsync(capsys, out)
    assert report["r_envelope"] >= 0.6


@pytest.mark.slow
def test_baseline_python_api_is_deterministic_and_audio_driven():
    from avdiff.audio.tts import speak

    pipe = WarpBaselinePipeline()
    pipe.set_progress_bar_config(disable=True)
    image = skimage.data.astronaut()
    a = pipe(image, speak("Hello there, how are you?"))
    b = pipe(image, speak("Hello there, how are you?"))
    c = pipe(image, speak("Bye.", speed_wpm=120))
    assert np.array_equal(a.frames, b.frames)
    assert a.frames.shape[1:] == (512, 512, 3) and a.num_frames != c.num_frames
    moving = np.abs(a.frames.astype(int) - image.astype(int)).reshape(a.num_frames, -1).max(axis=1)
    assert (moving > 0).sum() > a.num_frames // 3  # the mouth moves in many frames...
    assert moving[-1] == 0  # ...and is shut (the photo, untouched) in espeak's trailing 0.4 s of silence


@pytest.mark.slow
def test_dataset_is_varied_reproducible_and_resumable(tmp_path):
    records = make_dataset(tmp_path, 3, split="test", seed=1, progress_bar=False)
    assert len({r.text for r in records} | {r.source["voice"] for r in records}) >= 3
    assert all(r.split == "test" for r in records)
    assert len(read_index(tmp_path)) == 3
    first = (tmp_path / records[0].video).stat().st_mtime_ns
    again = make_dataset(tmp_path, 3, split="test", seed=1, progress_bar=False)
    assert [r.id for r in again] == [r.id for r in records]
    assert (tmp_path / records[0].video).stat().st_mtime_ns == first  # finished clips are not remade


@pytest.mark.slow
def test_a_clip_of_several_sentences_starts_with_the_one_sentence_clips_draw(tmp_path, capsys):
    one = make_dataset(tmp_path, 1, split="test", seed=1, progress_bar=False)[0]
    # what this clip has said since before there were several sentences: datasets made then are made the same now
    assert (one.text, one.source["voice"], one.source["speed_wpm"], one.source["pitch"]) == (
        "Put the blue vase on the table by the window.",
        "en-gb+m5",
        182,
        68,
    )
    three = make_dataset(tmp_path, 1, split="test", seed=1, sentences_per_clip=3, progress_bar=False)[0]
    assert three.id == one.id + "_s3" and len(read_index(tmp_path)) == 2  # a clip of its own, beside the first
    said = [s for s in sentences("test") if s in three.text]
    assert three.text.startswith(one.text) and len(said) == 3 and len(three.text) == len(" ".join(said))
    assert three.source == one.source  # the same voice, speed, pitch, face and augmentation
    assert three.duration_s > 2 * one.duration_s
    for bad, match in [(13, r"must be in \[1, 12\]"), (0, r"must be in \[1, 12\]"), (2.0, "whole"), (True, "whole")]:
        with pytest.raises(ValueError, match=match):
            make_dataset(tmp_path / "bad", 1, split="test", sentences_per_clip=bad)
    assert not (tmp_path / "bad").exists()
    assert main(["synth", "--text", "Hello.", "--sentences", "2", "--out", str(tmp_path / "bad")]) == 2
    assert "--sentences is for --dataset" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert (
        main(["synth", "--dataset", "1", "--split", "test", "--sentences", "13", "--out", str(tmp_path / "bad")]) == 2
    )
    assert "--sentences 13: the test split has 12 sentences" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_face_augment_changes_pixels_but_keeps_the_shape():
    image = skimage.data.astronaut()
    out = FaceAugment(flip=True, brightness=1.1, scale=1.1, shift=(0.05, -0.02)).apply(image)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - image.astype(int)).mean() > 10
    assert np.array_equal(FaceAugment().apply(image), image)


@pytest.mark.slow
def test_mouth_interior_follows_the_aperture_and_survives_blur(clip, capsys):
    """The interior measure reads the synthetic mouth as well as the aperture does, and still reads it when the face
    is blurred the way a 64 px generated crop pasted into a 512 px photo is."""
    import cv2

    from avdiff.metrics.lipsync import pearson
    from avdiff.metrics.mouth import mouth_signals

    out, record = clip
    frames = read_video(out / record.video).frames.numpy()
    truth = np.load(out / record.aperture)
    openness, interior = mouth_signals(frames)
    assert pearson(interior, truth) > 0.95 and pearson(openness, truth) > 0.9
    assert np.nanmin(interior) < 0.05 < 0.15 < np.nanmax(interior)  # closed: no dark mouth; open: a good share
    blurred = np.stack(
        [
            cv2.resize(
                cv2.resize(f, (96, 96), interpolation=cv2.INTER_AREA), (512, 512), interpolation=cv2.INTER_CUBIC
            )
            for f in frames
        ]
    )
    blurred_openness, blurred_interior = mouth_signals(blurred)
    assert pearson(blurred_interior, truth) > 0.9
    # docs/results.md: on the blurred copy the mesh's inner-lip aperture reads the mouth far worse (measured
    # 0.97 -> -0.15 with this test run alone, 0.97 -> 0.54 after test_the_warp_suits_unseen_grey_faces in the same
    # process, which we have not explained); this is why the proof reports the interior beside it.
    assert pearson(blurred_openness, truth) < pearson(openness, truth) - 0.3
    report = eval_lipsync(capsys, out / record.video, "--reference-aperture", str(out / record.aperture))
    assert report["interior"]["r_reference"] > 0.95 and abs(report["interior"]["offset_reference"]) <= 1
    print(
        f"r vs truth: interior {pearson(interior, truth):.3f} -> {pearson(blurred_interior, truth):.3f} blurred; "
        f"openness {pearson(openness, truth):.3f} -> {pearson(blurred_openness, truth):.3f}"
    )


@pytest.mark.slow
def test_the_warp_suits_unseen_grey_faces(tmp_path):
    """Tried as a new user would: small grey LFW faces (112 px) animated by the warp follow the speech nearly as well
    as the astronaut (r 0.89). Before the mouth interior took the photo's colour and the seam was blended away,
    these faces scored r 0.53-0.73 and a grey photo got a maroon mouth."""
    from PIL import Image

    from avdiff.audio.tts import speak
    from avdiff.metrics.lipsync import score_video

    speech = speak("Good morning everyone, and welcome to the meeting about the new library.", voice="en-gb+m3")
    pipe = WarpBaselinePipeline()
    pipe.set_progress_bar_config(disable=True)
    scores = []
    for i in (0, 1, 2, 3, 5):  # lfw_subset()[4] has no face mediapipe finds at 112 px
        face = (skimage.data.lfw_subset()[i] * 255).astype(np.uint8)
        photo = np.asarray(Image.fromarray(face).resize((112, 112), Image.BICUBIC).convert("RGB"))
        path = pipe(photo, speech).save(tmp_path / f"lfw{i}.mp4")
        scores.append(score_video(read_video(path)).r_envelope)
    print("r vs speech on unseen grey 112 px faces:", np.round(scores, 3))
    assert min(scores) > 0.7 and np.mean(scores) > 0.85  # measured 0.81, 0.97, 0.95, 0.96, 0.87 (mean 0.91)
