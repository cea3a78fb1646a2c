"""The demo in a real browser: Python playwright drives Debian's headless chromium against the app served in this
process. Screenshots go to outputs/test-artifacts/ (git-ignored)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from avdiff.audio.io import load_audio
from avdiff.demo import build_app
from avdiff.demo.inputs import NO_FACE_MESSAGE
from avdiff.metrics.lipsync import describe_offset, score_video
from avdiff.video import read_video

from demo_server import chromium_skip_reason, download, example_inputs, open_page, serving

_skip = chromium_skip_reason()
pytestmark = [pytest.mark.browser, pytest.mark.skipif(_skip is not None, reason=_skip or "")]

WARP_LABEL = "warp baseline (model-free mouth warp)"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return example_inputs(tmp_path_factory.mktemp("browser_inputs"))


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    """The app with a user model listed first (its folder is never loaded: these tests choose the warp baseline)."""
    folder = tmp_path_factory.mktemp("models") / "listed"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "TalkingHeadPipeline"}))
    with serving(build_app(models={"listed": str(folder)}, bundled=False)) as url:
        yield url


@pytest.fixture
def page(browser, url, request):
    with open_page(browser, url, "#th-generate", request.node.name) as page:
        yield page


def choose_warp(page) -> None:
    page.click("#th-model input")
    page.get_by_role("option", name=WARP_LABEL).click()
    page.wait_for_selector("#th-diffusion-settings", state="hidden")


def upload(page, photo: Path, speech: Path) -> None:
    page.locator("#th-image input[type=file]").set_input_files(str(photo))
    page.locator("#th-audio input[type=file]").set_input_files(str(speech))


def test_generate_plays_an_mp4_with_the_speech_and_shows_its_score(page, inputs, url, tmp_path):
    photo, speech = inputs
    page.locator("#th-settings").get_by_text("Settings", exact=True).click()  # closed at first: the first screen
    # the user's model is the default: its controls show once the accordion has opened (a loaded CPU opens it late)
    page.wait_for_selector("#th-diffusion-settings", state="visible", timeout=30_000)
    choose_warp(page)
    upload(page, photo, speech)
    page.wait_for_selector("#th-preview img")
    assert page.inner_text("#th-face-info").strip() == "1 face found (green); it is the one animated."
    page.click("#th-generate")
    video = page.wait_for_selector("#th-video video[src]")
    src = video.get_attribute("src")
    assert src.startswith(url.rstrip("/")) and src.endswith(".mp4")
    page.wait_for_function("document.querySelector('#th-score').innerText.includes('frames with a face')")

    clip = read_video(download(src, tmp_path / "served.mp4"))
    speech_s = load_audio(speech).duration_s
    assert clip.audio is not None
    assert abs(clip.duration_s - speech_s) <= 1 / 25 and abs(clip.audio.duration_s - speech_s) <= 1 / 25
    result = score_video(clip)  # what `avdiff eval lipsync served.mp4` computes
    shown = page.inner_text("#th-score")
    rows = dict(line.split("\t", 1) for line in shown.splitlines() if "\t" in line)
    assert rows["r at offset 0: mouth openness vs speech envelope"] == f"{result.r_envelope:+.3f}"
    assert rows["best offset"] == f"{describe_offset(result.offset_frames, 25.0)}; r {result.r_at_offset:+.3f}"
    assert rows["mouth-interior r at offset 0 (reads blurred mouths)"] == f"{result.interior.r_envelope:+.3f}"
    assert rows["frames with a face"] == f"{result.valid_frames} of {clip.num_frames}"


def test_corrupt_audio_says_so_and_the_app_serves_the_next_request(page, inputs, tmp_path):
    photo, speech = inputs
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVE" + np.random.default_rng(0).bytes(2000))
    choose_warp(page)
    upload(page, photo, corrupt)
    page.click("#th-generate")
    page.locator(".toast-body").get_by_text(
        "The audio file cannot be read: it is not audio, or it is corrupt or truncated."
    ).wait_for()
    assert "Traceback" not in page.inner_text("body")
    page.locator("#th-audio button[aria-label='Clear']").click()
    page.locator("#th-audio input[type=file]").set_input_files(str(speech))
    page.click("#th-generate")
    page.wait_for_selector("#th-video video[src]")


def test_a_photo_without_a_face_says_so(page, inputs, tmp_path):
    rocket = tmp_path / "rocket.png"
    Image.fromarray(skimage.data.rocket()).save(rocket)
    choose_warp(page)
    upload(page, rocket, inputs[1])
    page.wait_for_function(f"document.querySelector('#th-face-info').innerText.includes({NO_FACE_MESSAGE!r})")
    page.click("#th-generate")
    page.locator(".toast-body").get_by_text(NO_FACE_MESSAGE).wait_for()
    assert "Traceback" not in page.inner_text("body")


def test_the_example_fills_the_photo_and_the_speech(page):
    choose_warp(page)
    page.locator("#th-examples tbody tr").first.click()
    page.wait_for_function("document.querySelector('#th-face-info').innerText.includes('1 face found')")
    page.click("#th-generate")
    page.wait_for_selector("#th-video video[src]")
