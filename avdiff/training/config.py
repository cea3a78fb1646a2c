"""Training YAML files: a ``trainer:`` section (TrainConfig) and a ``task:`` section for the job."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from avdiff.training.trainer import TrainConfig

logger = logging.getLogger(__name__)


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> tuple[TrainConfig, dict[str, Any]]:
    """Read a training YAML into (TrainConfig, task settings). ``overrides`` replace trainer settings (not None).

    A YAML may start from another: ``base: other.yaml`` (a path relative to this file) takes that file's sections,
    and this file's ``trainer`` and ``task`` keys replace or add to them (so a control run is a few lines)."""
    raw = read_train_yaml(Path(path))
    trainer = dict(raw.get("trainer") or {})
    trainer.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return TrainConfig.from_dict(trainer), dict(raw.get("task") or {})


def read_train_yaml(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, dict]:
    """The ``trainer`` and ``task`` sections of a training YAML, with its ``base:`` chain merged in."""
    if not path.is_file():
        raise FileNotFoundError(f"no such config file: {str(path)!r}")
    if path.resolve() in _seen:
        raise ValueError(f"{path}: 'base' chain loops back to itself ({' -> '.join(map(str, _seen))})")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(raw, dict) or set(raw) - {"base", "trainer", "task"}:
        raise ValueError(
            f"{path}: expected top-level sections 'trainer' and 'task' (and optionally 'base'), got "
            f"{sorted(raw) if isinstance(raw, dict) else type(raw).__name__}"
        )
    for section in ("trainer", "task"):
        if not isinstance(raw.get(section) or {}, dict):
            raise ValueError(f"{path}: '{section}' must be a mapping of settings")
    merged = {"trainer": {}, "task": {}}
    if raw.get("base") is not None:
        merged = read_train_yaml(path.parent / str(raw["base"]), (*_seen, path.resolve()))
        logger.info("%s starts from %s", path, raw["base"])
    return {section: {**merged[section], **(raw.get(section) or {})} for section in ("trainer", "task")}
