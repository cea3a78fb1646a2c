"""A small motion denoiser trained in seconds on synthetic speech, shared by the motion tests (import it from a test
module; it is not a fixture so each module decides its scope)."""

from __future__ import annotations

from pathlib import Path

from avdiff.models.motion import MotionDenoiser
from avdiff.training import TrainConfig, Trainer
from avdiff.training.talking_head_motion import MotionTask, MotionTaskConfig

SMALL_MODEL = {"hidden_dim": 32, "dilations": [1, 2, 4, 1], "audio_dim": 16, "audio_hidden": 16}


def task_config(**kw) -> MotionTaskConfig:
    base = dict(synthetic_utterances=8, variants=2, eval_utterances=3, eval_steps=6, model=SMALL_MODEL)
    return MotionTaskConfig.from_dict({**base, **kw})


def train_config(out: Path, **kw) -> TrainConfig:
    base = dict(output_dir=str(out), max_steps=300, batch_size=16, lr=3e-3, warmup_steps=20, log_every=50, seed=1)
    return TrainConfig(**{**base, **kw})


def quick_model(out: Path, steps: int = 300) -> tuple[MotionTask, MotionDenoiser]:
    """(the task, its model trained for ``steps`` steps), the run in ``out``."""
    task = MotionTask(task_config(), progress_bar=False)
    result = Trainer(task, train_config(out, max_steps=steps), progress_bar=False).train()
    return task, MotionDenoiser.from_pretrained(result.final_dir, subfolder="motion_model").eval()
