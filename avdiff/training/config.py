"""Training YAML files: a ``trainer:`` section (TrainConfig) and a ``task:`` section for the job."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from avdiff.training.trainer import TrainConfig

logger = logging.getLogger(__name__)


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> tuple[TrainConfig, dict[str, Any]]:
    """Read a training YAML into (TrainConfig, task settings). ``overrides`` replace trainer settings (not None)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such config file: {str(path)!r}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(raw, dict) or set(raw) - {"trainer", "task"}:
        raise ValueError(f"{path}: expected top-level sections 'trainer' and 'task', got {sorted(raw) if isinstance(raw, dict) else type(raw).__name__}")
    trainer = dict(raw.get("trainer") or {})
    trainer.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return TrainConfig.from_dict(trainer), dict(raw.get("task") or {})
