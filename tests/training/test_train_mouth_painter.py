"""Training the mouth painter: the CLI trains and scores with the CI config, a killed run resumes exactly, and the
settings and the held-out scoring refuse what cannot work."""

from pathlib import Path

import numpy as np
import pytest
import torch

from avdiff.data.mouth_dataset import MouthClip
from avdiff.models.builders import build_mouth_painter
from avdiff.pipelines import MotionTalkingHeadPipeline
from avdiff.training import TrainConfig, Trainer
from avdiff.training.mouth_painter import MouthPainterTask, MouthPainterTaskConfig, evaluate_painter

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.requires_espeak


@pytest.mark.slow
def test_the_cli_trains_scores_and_saves_a_talking_head_with_a_painter(tmp_path, capsys):
    from avdiff.cli import main

    out = tmp_path / "run"
    args = ["train", "talking-head-mouth", "--config", str(REPO / "configs/train/talking_head_mouth_ci.yaml")]
    assert main([*args, "--output-dir", str(out), "--max-steps", "4", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "trained 4 steps" in printed and "renderer's cavity" in printed and "audio-dropped twin" in printed
    pipe = MotionTalkingHeadPipeline.from_pretrained(out / "final")
    assert pipe.mouth_painter is not None and pipe.motion_model is not None


@pytest.mark.slow
def test_a_killed_run_resumes_exactly(tmp_path):
    config = MouthPainterTaskConfig.from_dict(
        {"synthetic_utterances": 2, "eval_utterances": 0, "max_photos": 1, "frames": 4, "stride": 8}
    )
    task = MouthPainterTask(config, progress_bar=False)

    def train(out, stop_after=None, resume=False):
        cfg = TrainConfig(output_dir=str(out), max_steps=6, batch_size=2, lr=1e-3, warmup_steps=1, log_every=2,
                          checkpoint_every=3, seed=0, ema_decay=None)  # fmt: skip
        return Trainer(task, cfg, progress_bar=False).train(resume=resume, stop_after=stop_after)

    whole = train(tmp_path / "whole")
    train(tmp_path / "cut", stop_after=3)
    resumed = train(tmp_path / "cut", resume=True)
    a = MotionTalkingHeadPipeline.from_pretrained(whole.final_dir).mouth_painter
    b = MotionTalkingHeadPipeline.from_pretrained(resumed.final_dir).mouth_painter
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"synthetic_utterances": 0}, "nothing to train on"),
        ({"eval_utterances": -1}, "eval_utterances"),
        ({"audio_dropout": 1.0}, "audio_dropout"),
        ({"edge_weight": -0.5}, "edge_weight"),
        ({"frames": 0}, "frames"),
        ({"epochs": 3}, "unknown talking-head-mouth task settings"),
    ],
)
def test_bad_settings_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        MouthPainterTaskConfig.from_dict(bad)


def test_scoring_refuses_clips_with_nothing_to_paint():
    painter = build_mouth_painter("tiny", seed=0)
    S = painter.config.pixel_size
    shut = MouthClip("shut", np.zeros((5, S, S, 3), np.uint8), np.zeros((5, S, S, 3), np.uint8),
                     np.zeros((5, S, S), np.float32), np.zeros((S, S, 3), np.uint8), torch.zeros(3200), 16000)  # fmt: skip
    with pytest.raises(ValueError, match="nothing to score"):
        evaluate_painter(painter, [shut], 25, steps=1)
    with pytest.raises(ValueError, match="at least one clip"):
        evaluate_painter(painter, [], 25)
    real = MouthClip("real", shut.crops, None, shut.holes + 1, shut.reference, shut.samples, 16000)
    with pytest.raises(ValueError, match="renderer's version"):
        evaluate_painter(painter, [real], 25, steps=1)
