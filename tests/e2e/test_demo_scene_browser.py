"""The demo's scene tab (AADiff) in a real browser: Python playwright drives Debian's headless chromium against the app
(the scene tab alone, a saved random-weight tiny text-to-video pipeline as its model; the word choice by the bundled
scene aligner). A crackle under a known loudness curve chooses "campfire"; the page shows the choice with the
candidates' scores, the control plot, and a video as long as the sound. Screenshots go to outputs/test-artifacts/."""

from __future__ import annotations

import re

import numpy as np
import pytest

from avdiff.audio.io import Waveform, save_audio
from avdiff.audio.scene_sounds import scene_sound
from avdiff.demo import build_app
from avdiff.demo.tabs import SceneTab
from avdiff.video import read_video

from demo_server import chromium_skip_reason, download, open_page, serving, set_slider

_skip = chromium_skip_reason()
pytestmark = [pytest.mark.browser, pytest.mark.skipif(_skip is not None, reason=_skip or "")]

FPS = 8
SECONDS = 2.0


@pytest.fixture(scope="module")
def crackle(tmp_path_factory):
    envelope = np.linspace(0.1, 1.0, int(SECONDS * FPS)).astype(np.float32)
    path = tmp_path_factory.mktemp("scene_browser") / "crackle.wav"
    return save_audio(path, Waveform(scene_sound("crackle", envelope, fps=FPS, seed=3), 16000))


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    from avdiff.pipelines import TextToVideoPipeline

    folder = tmp_path_factory.mktemp("t2v")
    TextToVideoPipeline.from_preset("tiny", seed=0).save_pretrained(folder)
    with serving(build_app(models={"scenes": str(folder)}, bundled=False, tabs=[SceneTab])) as url:
        yield url


@pytest.fixture
def page(browser, url, request):
    with open_page(browser, url, "#sc-generate", request.node.name) as page:
        yield page


def open_settings_and_set_steps(page, steps: int) -> None:
    page.get_by_text("Settings").first.click()
    set_slider(page, "sc-steps", steps)


def test_a_crackle_chooses_campfire_and_the_scene_plays_with_it(page, crackle, url, tmp_path):
    assert page.input_value("#sc-prompt textarea") == "a campfire on the left beside a lake at night"  # the example
    page.locator("#sc-sounds input[type=file]").set_input_files(str(crackle))
    open_settings_and_set_steps(page, 4)
    page.click("#sc-generate")
    src = page.wait_for_selector("#sc-video video[src]").get_attribute("src")
    assert src.startswith(url.rstrip("/")) and src.endswith(".mp4")
    choice = page.inner_text("#sc-choice")
    assert choice.startswith("Sound 1 chose campfire (score") and "candidates: campfire" in choice, choice
    assert page.locator("#sc-plot img").count() == 1  # the control curve, shown with the video

    page.wait_for_function("document.querySelector('#sc-video video').readyState >= 1")
    duration = page.evaluate("document.querySelector('#sc-video video').duration")
    assert abs(duration - SECONDS) <= 1 / FPS, duration
    page.evaluate("const v = document.querySelector('#sc-video video'); v.muted = true; v.play()")
    page.wait_for_function("document.querySelector('#sc-video video').currentTime > 0.2")
    clip = read_video(download(src, tmp_path / "served.mp4"))
    assert clip.num_frames == round(SECONDS * FPS) and clip.audio is not None


def test_a_word_not_in_the_prompt_says_so_and_the_app_serves_the_next_request(page, crackle):
    page.locator("#sc-sounds input[type=file]").set_input_files(str(crackle))
    open_settings_and_set_steps(page, 4)
    page.locator("#sc-words textarea").fill("dog")
    page.click("#sc-generate")
    toast = page.locator(".toast-body").filter(has_text=re.compile("'dog'"))
    toast.wait_for()
    assert "Traceback" not in page.inner_text("body") and page.locator("#sc-video video[src]").count() == 0
    page.locator("#sc-words textarea").fill("lake")
    page.click("#sc-generate")
    page.wait_for_selector("#sc-video video[src]")
    assert page.inner_text("#sc-choice").startswith("Sound 1 drives lake (your choice).")
