"""The package works when installed as a wheel: everything it reads at run time is package data.

The wheel is built from a copy of the sources (no build files land in the checkout), without build isolation (the
venv's setuptools; no network), then unpacked outside the source tree and imported from there in a fresh process.
"""

import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # builds and unpacks the wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    src = tmp_path_factory.mktemp("src")
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    shutil.copytree(ROOT / "avdiff", src / "avdiff", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        check=True,
        timeout=600,
    )
    (found,) = out.glob("avdiff-*.whl")
    return found


def test_the_wheel_holds_what_the_package_reads_at_run_time(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "avdiff").rglob("*")
        if p.is_file() and p.suffix in (".yaml", ".json", ".safetensors", ".flac", ".txt")
    }
    assert {
        "avdiff/presets/unet/tiny.yaml",
        "avdiff/presets/talking_head/tiny.yaml",
        "avdiff/presets/unet/sd15.yaml",
        "avdiff/presets/text_to_video/tiny.yaml",
        "avdiff/presets/motion/tiny.yaml",
        "avdiff/demo/assets/example_speech.flac",
    } <= names
    assert shipped <= names, f"package data missing from the wheel: {sorted(shipped - names)}"


def test_presets_and_bundled_models_load_from_an_unpacked_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = textwrap.dedent("""
        import avdiff, torch
        from pathlib import Path
        from avdiff.bundled import available
        from avdiff.models.builders import build_unet
        from avdiff.loading import load_model
        from avdiff.pipelines import TalkingHeadPipeline
        assert Path(avdiff.__file__).resolve().is_relative_to(Path(SITE).resolve()), avdiff.__file__
        pipe = TalkingHeadPipeline.from_preset("tiny")
        unet = build_unet("tiny")
        print("presets", pipe.default_size, sum(p.numel() for p in unet.parameters()))
        for model in available("talking-head"):
            loaded = load_model("avdiff/" + model.name, device="cpu")  # the class its model_index.json names
            assert Path(model.path).resolve().is_relative_to(Path(SITE).resolve())
            print("bundled", model.name, type(loaded).__name__)
        from avdiff.pipelines import TextToVideoPipeline
        scene = TextToVideoPipeline.from_pretrained("scene-tiny")
        from avdiff.bundled import resolve
        assert Path(resolve("scene-tiny")).resolve().is_relative_to(Path(SITE).resolve())
        key = scene("a campfire at night", num_frames=1, num_inference_steps=2).frames
        print("bundled scene-tiny", type(scene).__name__, key.shape)
    """).replace("SITE", repr(str(site)))
    env = {"PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "presets 64 " in result.stdout
    assert "bundled talking-head-tiny TalkingHeadPipeline" in result.stdout  # the shipped models, by name
    assert "bundled talking-head-motion MotionTalkingHeadPipeline" in result.stdout
    assert "bundled scene-tiny TextToVideoPipeline (1, 64, 64, 3)" in result.stdout  # with the packaged MiniLM
