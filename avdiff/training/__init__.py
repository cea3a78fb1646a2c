"""Training: one Accelerate trainer for every job, and the jobs."""

from avdiff.training.trainer import StepBatchSampler, TrainConfig, Trainer, TrainResult, TrainTask

__all__ = ["StepBatchSampler", "TrainConfig", "TrainResult", "TrainTask", "Trainer"]
