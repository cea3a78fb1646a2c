"""The demo's example inputs: scikit-image's astronaut photo and a short espeak-ng sentence shipped as package data
(``avdiff/demo/assets/example_speech.flac``: "The quick brown fox jumps over the lazy dog.", 3.2 s, 16 kHz), so the
examples work without espeak-ng."""

from __future__ import annotations

import getpass
import logging
import os
import tempfile
from importlib import resources
from pathlib import Path

logger = logging.getLogger(__name__)

EXAMPLE_SPEECH = "example_speech.flac"
EXAMPLE_TEXT = "The quick brown fox jumps over the lazy dog."


def example_speech_bytes() -> bytes:
    """The shipped example speech file (FLAC), read through importlib.resources."""
    return resources.files("avdiff.demo").joinpath("assets", EXAMPLE_SPEECH).read_bytes()


def example_files(folder: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """``(astronaut.png, example_speech.flac)``, written once into ``folder`` (default: ``<tmp>/avdiff-demo-USER``)
    with atomic renames, so concurrent apps never read half a file."""
    folder = Path(folder or Path(tempfile.gettempdir()) / f"avdiff-demo-{getpass.getuser()}")
    folder.mkdir(parents=True, exist_ok=True)
    photo, speech = folder / "astronaut.png", folder / EXAMPLE_SPEECH
    if not photo.is_file():
        import skimage.data
        from PIL import Image

        _write_atomic(photo, lambda f: Image.fromarray(skimage.data.astronaut()).save(f, format="PNG"))
    if not speech.is_file():
        data = example_speech_bytes()
        _write_atomic(speech, lambda f: f.write(data))
    return photo, speech


def _write_atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
