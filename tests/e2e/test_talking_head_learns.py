"""The headline in a test: a talking-head model trained here uses the speech, and its audio-dropped twin does not.

Both models are trained from the same seed, on the same synthetic clips, by the real job and trainer (``avdiff train
talking-head`` with ``configs/train/talking_head_ci.yaml``, the twin with ``audio_dropout_always: true``), side by
side in two one-thread processes. On windows of held-out sentences, :meth:`TalkingHeadTask.evaluate` measures
``audio_gain``: the denoising error inside the mouth with another clip's speech minus the error with the window's own
speech (fixed noise and timesteps). A model that reads the speech has a clearly positive gain; one that cannot hear
it has none. The full proof (3000 steps, lip sync scored on generated videos) is ``make proof``.

``AVDIFF_TEST_SEED=N`` reruns it with another training, model and data seed (the thresholds below were checked on
seeds 0, 1 and 2).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import avdiff
from avdiff.data.synthetic import make_dataset
from avdiff.pipelines.talking_head import TalkingHeadPipeline
from avdiff.training.config import load_train_config
from avdiff.training.talking_head import TalkingHeadModel, TalkingHeadTask, TalkingHeadTaskConfig

# About 6.5 CPU minutes in all (3.3 minutes of both cores); far longer on a crowded machine.
pytestmark = [pytest.mark.slow, pytest.mark.requires_espeak, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "configs" / "train" / "talking_head_ci.yaml"
SEED = int(os.environ.get("AVDIFF_TEST_SEED", "0"))
TRAIN_CLIPS, TEST_CLIPS = 8, 4

# Measured with this recipe on 128 held-out windows (mouth MSE with the window's own speech; audio_gain = the MSE with
# another clip's speech minus that; "untrained" is the seeded preset both runs start from):
#   seed 0: audio 0.02135, gain 0.00561 (26 %)   twin 0.02440, gain -0.00000   untrained gain +0.00002
#   seed 1: audio 0.01671, gain 0.00437 (26 %)   twin 0.01882, gain +0.00004   untrained gain -0.00017
#   seed 2: audio 0.02347, gain 0.00190 (8 %)    twin 0.02355, gain +0.00001   untrained gain +0.00042
# With the audio attention forced to zero in training and evaluation the audio model's gain is exactly 0 (the first
# two tests fail). The thresholds leave about 2.4x room below the weakest seed (2). The audio model's mouth error with
# its own speech is below the twin's on seeds 0 and 1 (0.87x, 0.89x) but not on seed 2 (0.997x): after 400 steps the
# twin has learned the average mouth about as well, so that comparison is left to the full proof, not asserted here.
MIN_GAIN = 0.0008  # the audio model's audio_gain, absolute
MIN_RELATIVE_GAIN = 0.03  # ... and as a share of its mouth error with its own speech
MAX_TWIN_GAIN = 0.0003  # |audio_gain| of the twin: it has no use for the speech
MIN_GAIN_OVER_TWIN = 10.0  # the audio model's gain over the twin's |gain|


def _train(config: Path, data: Path, heldout: Path, out: Path, log) -> subprocess.Popen:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(Path(avdiff.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        "-m",
        "avdiff.cli",
        "train",
        "talking-head",
        "--config",
        str(config),
        "--data",
        str(data),
        "--eval-data",
        str(heldout),
        "--output-dir",
        str(out),
        "--no-progress",
    ]
    return subprocess.Popen(cmd, cwd=out.parent, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, dict[str, float]]:
    """Train the audio model and its twin side by side; ``evaluate`` both on held-out windows."""
    root = tmp_path_factory.mktemp("learns")
    data, heldout = root / "train", root / "heldout"
    make_dataset(data, TRAIN_CLIPS, split="train", seed=SEED, progress_bar=False)
    make_dataset(heldout, TEST_CLIPS, split="test", seed=1000 + SEED, progress_bar=False)
    _, settings = load_train_config(RECIPE)
    spec = TalkingHeadTask(TalkingHeadTaskConfig.from_dict(settings))
    for folder in (data, heldout):  # align and cache the crops once, not in both training processes
        spec.make_dataset(folder)
    runs = {}
    for name, task in (("audio", {}), ("twin", {"audio_dropout_always": True})):
        config = root / f"{name}.yaml"
        config.write_text(
            yaml.safe_dump(
                {"base": str(RECIPE), "trainer": {"seed": SEED, "eval_every": 0}, "task": {"model_seed": SEED, **task}}
            )
        )
        with open(root / f"{name}.log", "w") as log:
            runs[name] = (config, root / name, _train(config, data, heldout, root / name, log))
    try:
        for name, (_, _, proc) in runs.items():
            rc = proc.wait(timeout=1500)
            assert rc == 0, f"{name} training failed:\n{(root / f'{name}.log').read_text()[-3000:]}"
    finally:  # a failure or a timeout leaves no training running
        for _, _, proc in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metrics = {}
        for name, (config, out, _) in runs.items():
            _, settings = load_train_config(config)
            task = TalkingHeadTask(
                TalkingHeadTaskConfig.from_dict({**settings, "data": str(data), "eval_data": str(heldout)})
            )
            pipe = TalkingHeadPipeline.from_pretrained(out / "final")
            metrics[name] = task.evaluate(TalkingHeadModel(pipe.unet, pipe.speech_encoder).eval())
        metrics["untrained"] = task.evaluate(task.build_model().eval())  # the seeded tiny preset both started from
    finally:
        torch.set_num_threads(threads)
    print({name: {k: round(v, 5) for k, v in m.items()} for name, m in metrics.items()})
    return metrics


def test_the_audio_model_uses_the_speech(trained):
    m = trained["audio"]
    assert m["audio_gain"] > MIN_GAIN, m
    assert m["audio_gain"] > MIN_RELATIVE_GAIN * m["mouth_mse"], m


def test_the_audio_dropped_twin_does_not(trained):
    twin, audio = trained["twin"], trained["audio"]
    assert abs(twin["audio_gain"]) < MAX_TWIN_GAIN, twin
    assert audio["audio_gain"] > MIN_GAIN_OVER_TWIN * abs(twin["audio_gain"]), (audio, twin)


def test_both_models_learned_to_denoise_the_face(trained):
    """A fair control: the twin learned the face as well as the audio model did; it only lacks the speech."""
    for name in ("audio", "twin"):
        assert trained[name]["mse"] < 0.5 * trained["untrained"]["mse"], trained
    assert 0.8 < trained["twin"]["mse"] / trained["audio"]["mse"] < 1.25, trained
