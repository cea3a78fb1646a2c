"""Helpers for the demo's tests: start the app on a free localhost port, inputs, and the browser."""

from __future__ import annotations

import os
import shutil
import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from avdiff.audio.io import load_audio, save_audio
from avdiff.demo import launch
from avdiff.demo.examples import example_files

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "outputs" / "test-artifacts"
TIMEOUT_MS = 120_000  # generous: the first request in a process imports and compiles (numba) on a shared CPU


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app):
    """Serve ``app`` on a free localhost port in this process; yields its URL, closes it afterwards."""
    launch(app, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield app.local_url
    finally:
        app.close()


def example_inputs(folder: Path) -> tuple[Path, Path]:
    """``(astronaut.png, speech.wav)``: the demo's example photo, and its example speech (3.2 s) as a 16 kHz wav."""
    photo, speech = example_files()
    wav = save_audio(folder / "speech.wav", load_audio(speech))
    return Path(shutil.copy(photo, folder / "astronaut.png")), wav


def download(url: str, path: Path) -> Path:
    """GET ``url`` into ``path``."""
    with urllib.request.urlopen(url, timeout=60) as r:
        path.write_bytes(r.read())
    return path


def chromium_skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the browser tests need Python playwright (pip install -e '.[dev]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"the browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@contextmanager
def open_page(browser, url: str, ready: str, name: str) -> Iterator:
    """A new page of the app at ``url`` (1280x1000, every wait up to :data:`TIMEOUT_MS`), once ``ready`` (a CSS
    selector) is on it; a full-page screenshot ``ARTIFACTS/{name}.png`` is taken as it closes, passed or failed."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(url)
        page.wait_for_selector(ready)
        yield page
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        page.close()


def set_slider(page, elem_id: str, value: int, tries: int = 3) -> None:
    """Type ``value`` into the number box of the slider ``#elem_id`` and wait until its range shows it.

    Gradio copies the box into the range on Enter or on blur; under a loaded CPU the first keystrokes can land before
    the box is live (the accordion still opening), so the typing is redone, up to ``tries`` times, until it holds."""
    box = page.locator(f"#{elem_id} input[type=number]")
    shown = f"document.querySelector('#{elem_id} input[type=range]').value === '{value}'"
    for attempt in range(tries):
        box.fill(str(value))
        box.press("Enter")
        box.blur()
        try:
            page.wait_for_function(shown, timeout=TIMEOUT_MS / tries)
            return
        except Exception:
            if attempt == tries - 1:
                raise
