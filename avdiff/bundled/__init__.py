"""Small trained models shipped inside the package, found by name.

Each bundled model is a folder next to this file holding a saved pipeline (``save_pretrained``: ``model_index.json``
plus one subfolder per component). The demo and the Python API list them with :func:`available`, so a fresh install
serves them without downloads. None ship yet; the talking-head demonstrator trained by ``make proof`` is to be added
here (see DESIGN.md, "Trained here, shipped small").
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

logger = logging.getLogger(__name__)

# The diffusers pipeline class saved in model_index.json -> the job it does.
PIPELINE_KINDS = {"TalkingHeadPipeline": "talking-head"}


@dataclass(frozen=True)
class BundledModel:
    """A model shipped with avdiff.

    Attributes:
        name: the folder's name, which is the model's name.
        kind: the job, e.g. ``"talking-head"`` (see :data:`PIPELINE_KINDS`).
        path: the saved pipeline folder (pass it to the pipeline's ``from_pretrained``).
    """

    name: str
    kind: str
    path: Path


def pipeline_kind(folder: str | Path) -> str | None:
    """The job of the saved pipeline in ``folder`` (``"talking-head"``), or None when ``folder`` holds no
    ``model_index.json`` naming a pipeline class avdiff knows.

    Raises:
        ValueError: ``model_index.json`` exists but is not a JSON object.
    """
    index = Path(folder) / "model_index.json"
    if not index.is_file():
        return None
    try:
        spec = json.loads(index.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{str(index)!r} is not readable JSON ({e})") from e
    if not isinstance(spec, dict):
        raise ValueError(f"{str(index)!r} must hold a JSON object, got {type(spec).__name__}")
    return PIPELINE_KINDS.get(str(spec.get("_class_name")))


def available(kind: str | None = None) -> list[BundledModel]:
    """The models shipped in this package, sorted by name; only those doing ``kind`` (``"talking-head"``) when
    given. An empty list when none ship."""
    root = resources.files(__name__)
    found = []
    for child in sorted(root.iterdir(), key=lambda c: c.name):
        if not child.is_dir() or child.name.startswith(("_", ".")):
            continue
        path = Path(str(child))
        try:
            model_kind = pipeline_kind(path)
        except ValueError as e:
            logger.warning("skipping bundled folder %s: %s", child.name, e)
            continue
        if model_kind is not None and (kind is None or model_kind == kind):
            found.append(BundledModel(child.name, model_kind, path))
    return found


__all__ = ["BundledModel", "PIPELINE_KINDS", "available", "pipeline_kind"]
