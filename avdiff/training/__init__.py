"""Training: one Accelerate trainer for every job, and the jobs."""

from avdiff.training.trainer import StepBatchSampler, TrainConfig, Trainer, TrainResult, TrainTask, step_seed

__all__ = ["StepBatchSampler", "TrainConfig", "TrainResult", "TrainTask", "Trainer", "step_seed"]
