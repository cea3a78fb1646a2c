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
    return subprocess.run(
        [sys.executable, "-m", "avdiff.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quiet")
    Image.fromarray(skimage.data.astronaut()).save(folder / "face.png")
    save_audio(folder / "speech.wav", tone(1.2))
    return folder


@pytest.mark.slow
def test_talk_and_eval_lipsync_print_no_native_log_lines(inputs):
    out = inputs / "talk.mp4"
    talk = run(
        "talk",
        "--baseline",
        "--image",
        str(inputs / "face.png"),
        "--audio",
        str(inputs / "speech.wav"),
        "--out",
        str(out),
    )
    assert talk.returncode == 0, talk.stderr
    assert not NATIVE.search(talk.stderr), talk.stderr
    lipsync = run("eval", "lipsync", str(out))
    assert lipsync.returncode == 0 and "r (offset 0)" in lipsync.stdout
    assert not NATIVE.search(lipsync.stderr), lipsync.stderr
    debug = run("eval", "lipsync", str(out), debug=True)  # the control: the lines are there to be dropped
    assert NATIVE.search(debug.stderr)


@pytest.mark.slow
def test_our_own_errors_still_reach_the_terminal_after_mediapipe_ran(inputs):
    import numpy as np

    from avdiff.video import write_video

    rocket = np.repeat(skimage.data.rocket()[None, :256, :256], 30, axis=0)
    faceless = write_video(inputs / "faceless.mp4", rocket, 25, tone(1.2))
    result = run("eval", "lipsync", str(faceless))  # tracks every frame with mediapipe, then fails with one line
    assert result.returncode == 2 and "avdiff: error:" in result.stderr and "no lip-sync score" in result.stderr
    assert not NATIVE.search(result.stderr), result.stderr


def test_the_filter_drops_native_lines_and_passes_everything_else_at_once():
    from avdiff.video.quiet import filter_lines

    native = (
        b"W0000 00:00:1796044449.398913   10620 inference_feedback_manager.cc:114] Feedback manager requires\n"
        b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    )
    ours = b"INFO avdiff.cli: hello\nTraceback (most recent call last):\n"
    passed, kept = filter_lines(native + ours)
    assert passed == ours and kept == b""
    passed, kept = filter_lines(b"\rwarping:  42%|####      | 34/81")  # tqdm: no newline, passes now
    assert passed == b"\rwarping:  42%|####      | 34/81" and kept == b""
    passed, kept = filter_lines(b"W0000 00:00:17960")  # could still be an absl line: waits for the rest
    assert passed == b"" and kept == b"W0000 00:00:17960"
    passed, kept = filter_lines(kept + b"44449.398913   10620 x.cc:1] y\nWARNING: the user's own\n")
    assert passed == b"WARNING: the user's own\n" and kept == b""
