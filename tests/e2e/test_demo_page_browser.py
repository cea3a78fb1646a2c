"""The demo's page as a new user first sees it, in a real browser (Python playwright, Debian's headless chromium): the
whole app as ``avdiff demo`` serves it (every tab, the bundled models listed, none loaded by these tests).

- At 1400x900 the talking-head tab shows the photo and speech inputs, Generate and the example without scrolling
  (the screenshot is saved in the test's tmp folder and copied to ``outputs/test-artifacts/first_screen.png``).
- A failed request's sentence stays readable in the tab's status line after its toast is gone, in every tab.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from avdiff.demo import build_app
from avdiff.demo.examples import example_files

from demo_server import ARTIFACTS, TIMEOUT_MS, chromium_skip_reason, serving

_skip = chromium_skip_reason()
pytestmark = [pytest.mark.browser, pytest.mark.skipif(_skip is not None, reason=_skip or "")]

FIRST_SCREEN = {"width": 1400, "height": 900}


@pytest.fixture(scope="module")
def url():
    with serving(build_app()) as url:
        yield url


@pytest.fixture
def page(browser, url):
    page = browser.new_page(viewport=FIRST_SCREEN)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#th-generate")
    yield page
    page.close()


def inside_viewport(page, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not displayed"
    return (
        box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= FIRST_SCREEN["width"]
        and box["y"] + box["height"] <= FIRST_SCREEN["height"]
    )


def test_the_first_screen_shows_the_inputs_generate_and_the_example(page, tmp_path):
    page.locator("#th-examples img").first.wait_for()  # the example's thumbnail has loaded: the layout is final
    assert page.evaluate("window.scrollY") == 0
    shot = tmp_path / "first_screen.png"
    page.screenshot(path=str(shot))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "first_screen.png")
    for selector in ["#th-image", "#th-audio", "#th-model", "#th-generate", "#th-examples"]:
        assert inside_viewport(page, selector), (selector, page.locator(selector).first.bounding_box())
    assert page.locator("#th-examples").get_by_text(example_files()[1].name).is_visible()  # the example's row itself


def close_toast_and_read_status(page, sentence: str, status: str) -> str:
    toast = page.locator(".toast-body").filter(has_text=sentence)
    toast.wait_for()
    page.wait_for_function(f"document.querySelector('{status}').innerText.includes({sentence!r})")
    toast.locator(".toast-close").click()
    toast.wait_for(state="detached")
    assert page.locator(".toast-body").count() == 0
    return page.inner_text(status)


def test_an_error_stays_readable_on_the_page_after_its_toast_is_gone(page, tmp_path):
    photo, _ = example_files()
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVE" + np.random.default_rng(0).bytes(2000))
    page.locator("#th-image input[type=file]").set_input_files(str(photo))
    page.locator("#th-audio input[type=file]").set_input_files(str(corrupt))
    page.click("#th-generate")
    sentence = "The audio file cannot be read: it is not audio, or it is corrupt or truncated."
    assert close_toast_and_read_status(page, sentence, "#th-status").strip() == sentence
    assert "Traceback" not in page.inner_text("body") and "/tmp" not in page.inner_text("#th-status")

    page.get_by_role("tab", name="Music video").click()
    page.click("#mv-plan")
    assert "Give a song first" in close_toast_and_read_status(page, "Give a song first", "#mv-status")

    page.get_by_role("tab", name="Audio-aligned scene").click()
    page.click("#sc-generate")
    assert "Give a sound first" in close_toast_and_read_status(page, "Give a sound first", "#sc-status")
    page.get_by_role("tab", name="Talking head").click()
    assert re.search("cannot be read", page.inner_text("#th-status"))  # each tab keeps its own line
