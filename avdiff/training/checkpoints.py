"""A training checkpoint (``RUN/checkpoints/step_N``, written by :class:`~avdiff.training.trainer.Trainer`) as a
pipeline that generates.

A checkpoint holds the full training state (``accelerate``'s ``save_state``: ``model.safetensors`` with the trained
module's weights, the optimiser, the scheduler, the random states, ``custom_checkpoint_0.pkl`` with the EMA when the
run keeps one, and ``DONE``); the run's ``config.json`` two folders up says how the module was built. The pipeline is
rebuilt from that, loaded with the checkpoint's weights (the EMA's when there is one, as ``RUN/final`` holds).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file

from avdiff.training.talking_head import TalkingHeadTask, TalkingHeadTaskConfig
from avdiff.training.trainer import CHECKPOINT_PREFIX

logger = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"  # accelerate's name for the first prepared model's weights
EMA_FILE = "custom_checkpoint_0.pkl"  # the EMA, the first object registered for checkpointing


def is_checkpoint(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a complete training checkpoint (``step_N`` with ``DONE`` and the model's weights)."""
    folder = Path(folder)
    return (folder.name.startswith(CHECKPOINT_PREFIX) and (folder / "DONE").is_file()
            and (folder / MODEL_FILE).is_file())  # fmt: skip


def talking_head_from_checkpoint(folder: str | os.PathLike):
    """The :class:`~avdiff.pipelines.talking_head.TalkingHeadPipeline` of a talking-head training checkpoint.

    Args:
        folder: ``RUN/checkpoints/step_N``; ``RUN/config.json`` (written by every run) must exist.

    Raises:
        ValueError: not a complete checkpoint, no run config, or a run of another job (naming the folder).
    """
    folder = Path(folder)
    if not is_checkpoint(folder):
        raise ValueError(f"{str(folder)!r} is not a complete training checkpoint (step_N with DONE and {MODEL_FILE})")
    run_config = folder.parent.parent / "config.json"
    try:
        task_settings = json.loads(run_config.read_text())["task"]
        config = TalkingHeadTaskConfig.from_dict(task_settings)
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"the checkpoint {str(folder)!r} has no readable run config {str(run_config)!r} ({e})") from e
    except ValueError as e:  # settings of another job (an aligner, a SyncNet ...)
        raise ValueError(f"the checkpoint {str(folder)!r} is not of a talking-head run ({e})") from e
    task = TalkingHeadTask(config)
    model = task.build_model()
    try:
        model.load_state_dict(load_file(folder / MODEL_FILE))
    except RuntimeError as e:
        raise ValueError(f"the checkpoint {str(folder)!r} does not fit its run's talking-head model ({e})") from e
    if (folder / EMA_FILE).is_file():
        ema = EMAModel(model.parameters())
        ema.load_state_dict(torch.load(folder / EMA_FILE, map_location="cpu", weights_only=False))
        ema.copy_to(model.parameters())
        logger.info("%s: the EMA weights (as the run's final model holds them)", folder)
    return task.pipeline(model.eval())
