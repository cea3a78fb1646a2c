"""docs/architecture.md's reading paths stay true: each job's command, traced in this process, runs code in every
file its list names, in no file the page leaves out, with no trip back into a file already left, and its numbered
list stays within the bound (15 files for the talking head, 18 for the music and scene jobs)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import soundfile as sf
from PIL import Image
from reading_path import trace_cli

DOC = Path(__file__).parents[1] / "docs" / "architecture.md"
HEADINGS = {"talk": "**The talking head**", "visualize": "**The music video**", "scene": "**The audio scene**"}
BOUNDS = {"talk": 15, "visualize": 18, "scene": 18}


def doc_section(command: str) -> tuple[list[str], set[str]]:
    """The numbered files of a job's list, and every file its section names (list, beneath, also run)."""
    text = DOC.read_text()
    start = text.index(HEADINGS[command])
    ends = [text.find(h, start + 1) for h in ("\n**The ", "\nCounted the stricter way")]
    section = text[start : min(e for e in ends if e > 0)]
    numbered = re.findall(r"^\d+\. `([\w/]+\.py)`", section, flags=re.M)
    return numbered, set(re.findall(r"`([\w/]+\.py)`", section))


def check_path(command: str, argv: list[str]) -> None:
    numbered, named = doc_section(command)
    trace = trace_cli([command, *argv])
    assert not trace.trips, f"trip backs: {trace.trips}"
    traced = set(trace.files)
    assert set(named) <= traced, f"named on the page but not run: {sorted(named - traced)}"
    unnamed = {
        f
        for f in traced - named
        if not (
            f.endswith("__init__.py")
            or f == "_lazy.py"
            or (f.startswith("commands/") and f != f"commands/{command}.py")
        )
    }
    assert not unnamed, f"run but not named on the page: {sorted(unnamed)}"
    assert numbered[:2] == ["cli.py", f"commands/{command}.py"] and len(numbered) <= BOUNDS[command], numbered


@pytest.fixture
def song(tmp_path):
    sr = 22050
    t = np.arange(3 * sr) / sr
    clicks = np.zeros_like(t)
    for beat in np.arange(0.25, 3, 0.5):  # 120 BPM
        i = int(beat * sr)
        clicks[i : i + 400] = np.hanning(800)[400:]
    path = tmp_path / "song.wav"
    sf.write(path, (0.5 * clicks + 0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    return path


def test_the_music_job_reads_as_documented(tmp_path, song):
    images = []
    for k in range(2):
        images.append(tmp_path / f"{k}.png")
        Image.fromarray(np.random.default_rng(k).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(images[-1])
    check_path("visualize", ["--audio", str(song), "--images", *map(str, images), "--out", str(tmp_path / "m.mp4")])


@pytest.mark.slow
def test_the_talking_head_reads_as_documented(tmp_path, song):
    face = tmp_path / "face.png"
    Image.fromarray(skimage.data.astronaut()).save(face)
    check_path("talk", ["--image", str(face), "--audio", str(song), "--out", str(tmp_path / "t.mp4"), "--steps", "1"])


@pytest.mark.slow
def test_the_audio_scene_reads_as_documented(tmp_path, song):
    argv = ["--prompt", "a campfire crackling by a lake", "--audio", str(song), "--steps", "1"]
    check_path("scene", [*argv, "--out", str(tmp_path / "s.mp4")])
