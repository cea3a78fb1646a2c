"""The demo's scene tab through gradio_client: a crackle under a known loudness curve drives the prompt's word, the
tab shows the word choice with every candidate's score and the control curve, the video carries the sound; bad inputs
get one sentence. A saved random-weight tiny text-to-video pipeline stands in for the bundled scene model; the word
choice uses the bundled scene aligner (offline)."""

from __future__ import annotations

import gradio as gr
import gradio_client
import numpy as np
import pytest

from avdiff.audio.io import Waveform, save_audio
from avdiff.audio.scene_sounds import scene_sound
from avdiff.demo import build_app
from avdiff.demo.examples import example_files
from avdiff.demo.tabs import SceneTab
from avdiff.video import read_video

from demo_server import serving

pytestmark = pytest.mark.slow  # the scene tab served and driven through gradio_client

FPS = 8
SECONDS = 2.0


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    """A crackle and waves, each 2 s, whose loudness follows known curves (one value per video frame)."""
    folder = tmp_path_factory.mktemp("scene_sounds")
    frames = int(SECONDS * FPS)
    rising = np.linspace(0.1, 1.0, frames).astype(np.float32)
    pulse = (np.arange(frames) % 4 < 2).astype(np.float32) * 0.9 + 0.1
    crackle = save_audio(folder / "crackle.wav", Waveform(scene_sound("crackle", rising, fps=FPS, seed=3), 16000))
    waves = save_audio(folder / "waves.wav", Waveform(scene_sound("waves", pulse, fps=FPS, seed=4), 16000))
    return crackle, waves


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from avdiff.pipelines import TextToVideoPipeline

    folder = tmp_path_factory.mktemp("t2v")
    TextToVideoPipeline.from_preset("tiny", seed=0).save_pretrained(folder)
    return build_app(models={"scenes": str(folder)}, bundled=False, tabs=[SceneTab])


@pytest.fixture(scope="module")
def url(app):
    with serving(app) as url:
        yield url


def test_the_sound_chooses_its_word_and_the_video_carries_it(url, sounds):
    crackle, waves = sounds
    client = gradio_client.Client(url, verbose=False)
    video, choice, plot = client.predict(
        "a campfire on the left beside a lake at night",
        [gradio_client.handle_file(str(crackle)), gradio_client.handle_file(str(waves))],
        None,
        "",
        "user:scenes",
        1.5,
        0.0,
        "rms",
        4,
        0,
        api_name="/scene",
    )
    assert "Sound 1 chose **campfire**" in choice and "Sound 2 chose **lake**" in choice
    assert "candidates: campfire" in choice and "lake" in choice  # every candidate's score is shown, best first
    assert "left" not in choice and "night" not in choice  # a place and a time are no sound's source
    clip = read_video(video)
    assert clip.num_frames == round(SECONDS * FPS) and clip.audio is not None
    assert abs(clip.audio.duration_s - SECONDS) <= 1 / FPS
    assert plot  # the control curves as a picture


def test_a_word_given_by_the_user_overrides_the_choice(url, sounds):
    crackle, _ = sounds
    client = gradio_client.Client(url, verbose=False)
    _, choice, _ = client.predict(
        "a campfire on the left beside a lake at night",
        [gradio_client.handle_file(str(crackle))],
        None,
        "lake",
        "user:scenes",
        1.0,
        0.1,
        "onsets",
        4,
        1,
        api_name="/scene",
    )
    assert choice.startswith("Sound 1 drives **lake** (your choice).")


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))


def test_the_scene_reports_its_denoising_steps_as_it_runs(url, sounds):
    """gradio_client sees the job's progress: the denoising steps, as fractions that only grow up to 1."""
    crackle, _ = sounds
    client = gradio_client.Client(url, verbose=False)
    job = client.submit(
        "a campfire beside a lake",
        [gradio_client.handle_file(str(crackle))],
        None,
        "",
        "user:scenes",
        1.5,
        0.0,
        "rms",
        12,
        0,
        api_name="/scene",
    )
    job.result(timeout=600)
    updates = job.communicator.updates
    units = []
    while not updates.empty():
        update = updates.get_nowait()
        units += [u for u in getattr(update, "progress_data", None) or [] if u.unit == "steps"]
    fractions = [u.index / u.length for u in units]
    assert len(set(fractions)) >= 3, units  # several steps reported while it ran, not one "0.0 %" to the end
    assert fractions == sorted(fractions) and 0 < fractions[0] and fractions[-1] <= 1, fractions
    assert all(u.desc.startswith("batch ") and ", step " in u.desc for u in units), units


def test_a_sound_that_matches_no_object_says_so_on_the_page(app, sounds):
    """The demo's example speech under a campfire prompt: it matches no object (it chose "left" once); the choice
    says so, and the other sound's choice stands."""
    crackle, _ = sounds
    _, speech = example_files()
    tab = app.avdiff_tabs[0]
    _, choice, _ = tab.generate(
        "a campfire on the left beside a lake at night",
        [str(crackle), str(speech)],
        None,
        "",
        "user:scenes",
        1.0,
        0.0,
        "rms",
        4,
        0,
        progress=Recorder(),
    )
    first, second = choice.split("\n\n")[:2]
    assert first.startswith("Sound 1 chose **campfire**"), choice
    assert second.startswith("**Sound 2 matches no object of the prompt: its best word, "), choice
    assert "left" not in second.split("candidates:")[1], choice


def test_bad_inputs_get_one_sentence(app, sounds, tmp_path):
    tab = app.avdiff_tabs[0]
    crackle, waves = sounds
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVE" + bytes(200))
    base = ("a campfire beside a lake", [str(crackle)], None, "", "user:scenes", 1.0, 0.1, "rms", 4, 0)

    def call(**changes):
        args = dict(
            zip(
                [
                    "prompt",
                    "sounds",
                    "microphone",
                    "words",
                    "model",
                    "strength",
                    "smoothing_s",
                    "signal",
                    "steps",
                    "seed",
                ],
                base,
            )
        )
        args.update(changes)
        return lambda: tab.generate(**args, progress=Recorder())

    cases = [
        (call(prompt="  "), "Write a prompt first"),
        (call(sounds=None), "Give a sound first"),
        (call(sounds=[str(crackle)] * 5), "5 sounds were given; this app takes at most 4"),
        (call(words="campfire, lake"), "2 words were given for 1 sound(s)"),
        (call(words="dog"), "'dog'"),  # not a word of the prompt: the pipeline's sentence names it
        (call(sounds=[str(bad)]), "The audio file cannot be read"),
        (call(strength=float("nan")), "The strength must be a number from 0 to 10"),
        (call(signal="loudness"), "Choose a control signal among rms, onsets, percussive"),
        (call(model="bundled:nope"), "Choose a text-to-video model"),
    ]
    for fn, sentence in cases:
        with pytest.raises(gr.Error) as e:
            fn()
        assert sentence in e.value.message, (sentence, e.value.message)
