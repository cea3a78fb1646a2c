"""Small trained models shipped inside the package, found by name.

Each bundled model is a folder next to this file holding a saved pipeline (``save_pretrained``: ``model_index.json``
plus one subfolder per component), with the training run's config beside it (the recipe that made it); other models
(the scene segmenter, the scene aligner, the sync expert ``avdiff/syncnet-motion``) are folders of safetensors and a
JSON config, loaded by their own classes through :func:`resolve_model_dir`. The demo and the Python API list the
pipelines with :func:`available`, so a fresh install serves them without downloads, and a pipeline's
``from_pretrained`` takes a bundled model's name (``"avdiff/talking-head-tiny"`` or ``"talking-head-tiny"``):
:func:`resolve` turns it into the folder before any hub look-up.

One naming scheme: ``avdiff/`` then the folder's name in lower case with hyphens (``avdiff/talking-head-tiny``,
``avdiff/scene-tiny``, ``avdiff/scene-aligner``, ``avdiff/scene-segmenter``); the namespace may be left out. The
names of earlier releases (:data:`ALIASES`: ``scene_aligner``, ``scene_segmenter``) still load.

These are demonstrators trained here on synthetic data (see docs/results.md), not replacements for real pretrained
weights.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

logger = logging.getLogger(__name__)

# The diffusers pipeline class saved in model_index.json -> the job it does.
PIPELINE_KINDS = {
    "TalkingHeadPipeline": "talking-head",
    "MotionTalkingHeadPipeline": "talking-head",
    "TextToVideoPipeline": "text-to-video",
}


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


def pipeline_class_name(folder: str | Path) -> str | None:
    """The pipeline class the ``model_index.json`` in ``folder`` names (``"MotionTalkingHeadPipeline"``), or None when
    ``folder`` holds none or it names a class avdiff does not know (:data:`PIPELINE_KINDS`).

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
    name = str(spec.get("_class_name"))
    return name if name in PIPELINE_KINDS else None


def pipeline_kind(folder: str | Path) -> str | None:
    """The job of the saved pipeline in ``folder`` (``"talking-head"``), or None when ``folder`` holds no
    ``model_index.json`` naming a pipeline class avdiff knows.

    Raises:
        ValueError: ``model_index.json`` exists but is not a JSON object.
    """
    name = pipeline_class_name(folder)
    return None if name is None else PIPELINE_KINDS[name]


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


NAMESPACE = "avdiff/"
DEFAULT_SCENE_MODEL = "avdiff/scene-tiny"  # the text-to-video scene model: keyframes from prompts, offline
DEFAULT_TALKING_HEAD_MODEL = "avdiff/talking-head-motion"  # the default of `avdiff talk`, batch and the demo
# Names of earlier releases -> the folder's name today; they keep loading.
ALIASES = {"scene_aligner": "scene-aligner", "scene_segmenter": "scene-segmenter"}


def canonical_name(name: str) -> str:
    """A bundled model's name in the one scheme (``"scene_aligner"`` -> ``"avdiff/scene-aligner"``); the name is not
    checked against the models that ship."""
    short = name.removeprefix(NAMESPACE)
    return NAMESPACE + ALIASES.get(short, short)


def resolve(name_or_path: str | Path) -> str | Path:
    """A bundled model's folder for its name (``"avdiff/NAME"`` or ``"NAME"``); anything else (a local folder, a
    hub id) unchanged. A local folder of the same name wins over a bundled model."""
    text = str(name_or_path)
    if Path(text).exists():
        return name_or_path
    folder = bundled_path(text)
    return folder if folder is not None and (folder / "model_index.json").is_file() else name_or_path


def bundled_path(name: str) -> Path | None:
    """The folder ``avdiff/bundled/<name>`` of a shipped model (``name`` may carry the ``avdiff/`` namespace, or be
    an earlier name of :data:`ALIASES`), or None when none ships by that name (or ``name`` is not a plain folder
    name)."""
    if isinstance(name, str):
        name = name.removeprefix(NAMESPACE)
        name = ALIASES.get(name, name)
    if not isinstance(name, str) or not name or any(c in name for c in "/\\") or name.startswith("."):
        return None
    try:
        folder = resources.files(__name__) / name
    except ModuleNotFoundError:
        return None
    return Path(str(folder)) if folder.is_dir() else None


def resolve_model_dir(name_or_path: str | os.PathLike, marker: str, what: str) -> Path:
    """A folder given as a path, or the bundled folder of that name; it must hold the file ``marker``.

    Raises:
        FileNotFoundError: neither an existing folder nor a bundled name, or the folder lacks ``marker``.
    """
    path = Path(name_or_path)
    if not path.is_dir():
        bundled = bundled_path(str(name_or_path))
        if bundled is None:
            raise FileNotFoundError(
                f"no {what} {str(name_or_path)!r}: not a folder, and no bundled model of that name"
            )
        path = bundled
    if not (path / marker).is_file():
        raise FileNotFoundError(f"{str(path)!r} holds no {what} (no {marker})")
    return path


__all__ = [
    "ALIASES",
    "BundledModel",
    "DEFAULT_SCENE_MODEL",
    "DEFAULT_TALKING_HEAD_MODEL",
    "NAMESPACE",
    "PIPELINE_KINDS",
    "available",
    "bundled_path",
    "canonical_name",
    "pipeline_class_name",
    "pipeline_kind",
    "resolve",
    "resolve_model_dir",
]
