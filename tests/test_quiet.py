"""avdiff talk and avdiff eval lipsync print only avdiff's own log: mediapipe's native TensorFlow Lite and absl lines
are dropped (unless AVDIFF_DEBUG=1, which is the control showing that they would be there)."""

import os
import re
import subprocess
import sys

import pytest
import skimage.data
from PIL import Image

from avdiff.audio import save_audio
from conftest import tone

NATIVE = re.compile(r"TensorFlow Lite|absl::|^[IWE]\d{4} |inference_feedback_manager|landmark_projection", re.M)


def run(*args: str, debug: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "AVDIFF_DEBUG"}
    if debug:
        env["AVDIFF_DEBUG"] = "1"
    return subprocess.run([sys.executable, "-m", "avdiff.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quiet")
    Image.fromarray(skimage.data.astronaut()).save(folder / "face.png")
    save_audio(folder / "speech.wav", tone(1.2))
    return folder


def test_talk_and_eval_lipsync_print_no_native_log_lines(inputs):
    out = inputs / "talk.mp4"
    talk = run("talk", "--baseline", "--image", str(inputs / "face.png"), "--audio", str(inputs / "speech.wav"),
               "--out", str(out))  # fmt: skip
    assert talk.returncode == 0, talk.stderr
    assert not NATIVE.search(talk.stderr), talk.stderr
    lipsync = run("eval", "lipsync", str(out))
    assert lipsync.returncode == 0 and "r (offset 0)" in lipsync.stdout
    assert not NATIVE.search(lipsync.stderr), lipsync.stderr
    debug = run("eval", "lipsync", str(out), debug=True)  # the control: the lines are there to be dropped
    assert NATIVE.search(debug.stderr)
