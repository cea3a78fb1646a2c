"""The mouth painter that ships inside the bundled talking head: it loads with it, fits the recipe that made it, and
on faces, sentences and voices it never trained on paints the inside of the lips far closer to the truth than the
renderer's dark cavity, and closer than its audio-dropped twin."""

import json
from pathlib import Path

import pytest
import torch

from avdiff.bundled import resolve
from avdiff.models.builders import build_mouth_painter, public_config
from avdiff.models.mouth_painter import MouthPainter
from avdiff.pipelines import MotionTalkingHeadPipeline
from avdiff.training.config import load_train_config

REPO = Path(__file__).resolve().parents[3]
NAME = "avdiff/talking-head-motion"
RECIPE = REPO / "configs" / "train" / "talking_head_mouth.yaml"


@pytest.fixture(scope="module")
def painter() -> MouthPainter:
    return MotionTalkingHeadPipeline.from_pretrained(NAME).mouth_painter


def test_it_ships_with_the_default_and_fits_its_recipe(painter):
    assert isinstance(painter, MouthPainter)
    trainer, task = load_train_config(RECIPE)
    ran = json.loads((resolve(NAME) / "mouth_painter" / "training_config.json").read_text())
    assert {k: v for k, v in ran["trainer"].items() if k != "output_dir"} == {
        k: v for k, v in trainer.__dict__.items() if k != "output_dir"
    }
    assert all(ran["task"][k] == v for k, v in task.items())  # every recipe setting, as the run used it
    fresh = build_mouth_painter(task["preset"])  # the recipe's architecture, untrained
    assert public_config(fresh) == public_config(painter)
    trained = dict(painter.named_parameters())
    assert {n: p.shape for n, p in fresh.named_parameters()} == {n: p.shape for n, p in trained.items()}
    assert any(not torch.equal(p, trained[n]) for n, p in fresh.named_parameters())


@pytest.mark.slow
@pytest.mark.requires_espeak
def test_it_paints_unseen_mouths_closer_to_the_truth_than_the_cavity_and_the_twin(painter):
    from avdiff.training.mouth_painter import MouthPainterTask, MouthPainterTaskConfig, evaluate_painter

    task = MouthPainterTask(MouthPainterTaskConfig.from_dict({"eval_utterances": 4}), progress_bar=False)
    scores = evaluate_painter(painter, task.eval_clips(painter), 25, steps=8, guidance=1.5)
    assert scores["hole_mae"] < 0.5 * scores["cavity_hole_mae"] and scores["wins_over_cavity"] == 1.0, scores
    assert scores["hole_mae"] < scores["twin_hole_mae"] and scores["wins_over_twin"] >= 0.5, scores
