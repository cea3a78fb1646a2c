"""The demo's model registry: what each tab may run, where it came from, loaded once and shared.

Three sources, best first: the user's saved pipelines (``avdiff demo --model NAME=PATH``, e.g. ``avdiff train
talking-head`` output), the models bundled with the package (:func:`avdiff.bundled.available`), and the model-free
warp baseline. The random ``tiny`` preset is never offered: it makes a valid video, not a talking face.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from avdiff.bundled import DEFAULT_TALKING_HEAD_MODEL, available, canonical_name, pipeline_class_name, pipeline_kind
from avdiff.loading import load_model, weight_variants

logger = logging.getLogger(__name__)

WARP_KEY = "warp"
NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_NAME_LEN = 40


class ModelSpecError(ValueError):
    """A ``--model NAME=PATH`` that cannot be served: a bad name, or a folder that is not a saved pipeline."""


@dataclass(frozen=True)
class ModelEntry:
    """One model choice.

    Attributes:
        key: the dropdown value and API argument: ``"user:NAME"``, ``"bundled:NAME"`` or ``"warp"``.
        name: a safe label (letters, digits, ``_.-``).
        kind: the job, ``"talking-head"`` or ``"text-to-video"`` (the music tab's keyframes from prompts).
        origin: ``"user"``, ``"bundled"`` or ``"builtin"``.
        path: the saved pipeline folder, or None for the warp baseline.
    """

    key: str
    name: str
    kind: str
    origin: str
    path: Path | None = None

    @property
    def is_motion(self) -> bool:
        """Whether it is a motion model (a ``MotionTalkingHeadPipeline``: steps, audio guidance and seed apply, the
        pixel model's reference guidance and chunks do not)."""
        if self.path is None:
            return False
        try:
            return pipeline_class_name(self.path) == "MotionTalkingHeadPipeline"
        except ValueError:
            return False

    @property
    def is_diffusion(self) -> bool:
        """Whether it denoises (steps, guidance, seed, chunks apply); the warp baseline does not."""
        return self.path is not None

    def chunk_layout(self) -> tuple[int, int] | None:
        """``(chunk_frames, motion_frames)`` the saved pipeline was trained with (its ``model_index.json``), or None
        for the warp baseline or a folder that does not say."""
        if self.path is None:
            return None
        import json

        try:
            index = json.loads((Path(self.path) / "model_index.json").read_text())
            return int(index["chunk_frames"]), int(index["motion_frames"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @property
    def label(self) -> str:
        """The dropdown's text."""
        if self.origin == "builtin":
            return "warp baseline (model-free mouth warp)"
        return f"{self.name} ({'your model' if self.origin == 'user' else 'bundled with avdiff'})"

    @property
    def source(self) -> str:
        """Where it came from, in words (Markdown)."""
        if self.origin == "user":
            return f"your saved pipeline `{self.path}`"
        if self.origin == "bundled":
            return f"shipped inside the avdiff package (`{self.name}`)"
        return "built in: moves the photo's mouth with the speech's loudness, no weights"


def safe_name(name: str) -> str:
    """``name`` as a label: runs of characters other than letters, digits and ``_.-`` become ``_``, at most 40
    characters. Raises ModelSpecError when nothing is left."""
    label = NAME_CHARS.sub("_", name.strip()).strip("_")[:MAX_NAME_LEN]
    if not label:
        raise ModelSpecError(f"--model name {name!r} has no letters or digits; use e.g. my_model=runs/x/final")
    return label


def parse_model_specs(specs: list[str]) -> dict[str, str]:
    """``["mine=runs/a/final"]`` -> ``{"mine": "runs/a/final"}``; ModelSpecError for a spec without ``=``."""
    models: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ModelSpecError(f"--model {spec!r}: expected NAME=PATH, e.g. mine=runs/talking_head_tiny/final")
        if name in models:
            raise ModelSpecError(f"--model {spec!r}: the name {name!r} is given twice")
        models[name] = path
    return models


def user_entry(name: str, path: str | Path) -> ModelEntry:
    """A ``--model NAME=PATH`` entry, checked now: ModelSpecError unless PATH is a saved pipeline folder avdiff
    knows (its ``model_index.json`` names a pipeline class of :data:`avdiff.bundled.PIPELINE_KINDS`)."""
    label = safe_name(name)
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ModelSpecError(f"--model {name}={path}: no such folder")
    try:
        kind = pipeline_kind(folder)
    except ValueError as e:
        raise ModelSpecError(f"--model {name}={path}: {e}") from e
    if kind is None:
        why = "no model_index.json" if not (folder / "model_index.json").is_file() else "not a pipeline avdiff knows"
        raise ModelSpecError(
            f"--model {name}={path}: not a saved pipeline folder ({why}); give the folder "
            "`avdiff train talking-head` or `avdiff train text-to-video` writes, e.g. "
            "runs/talking_head_tiny/final"
        )
    plain, variants = weight_variants(
        folder
    )  # checked now: on the page, the load error would name the server's folder
    if not plain and len(variants) > 1:
        raise ModelSpecError(
            f"--model {name}={path}: its weights exist only as the variants "
            f"{', '.join(map(repr, sorted(variants)))}; the demo loads plain weights or a single "
            "variant: keep one variant's files in the folder"
        )
    return ModelEntry(f"user:{label}", label, kind, "user", folder.resolve())


class ModelRegistry:
    """The models the app serves, loaded lazily (on first use) and cached, each behind its own lock.

    A pipeline keeps per-call state (the scheduler's timesteps, the chunk being denoised), so two requests never run
    one instance at once: :meth:`acquire` returns the pipeline and the lock to hold while calling it.

    Args:
        models: ``{name: folder}`` of the user's saved pipelines (see :func:`user_entry`).
        bundled: also offer the package's bundled models.
        device: torch device for loaded pipelines (default: cuda when available, else cpu).
    """

    def __init__(
        self, models: dict[str, str | Path] | None = None, *, bundled: bool = True, device: str | None = None
    ):
        entries = [user_entry(name, path) for name, path in (models or {}).items()]
        names = [e.name for e in entries]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ModelSpecError(f"--model names {repeated} are the same once made safe labels; rename one")
        if bundled:  # the default of `avdiff talk` first among them, so the tab starts where the command does
            ordered = sorted(available(), key=lambda m: canonical_name(m.name) != DEFAULT_TALKING_HEAD_MODEL)
            entries += [ModelEntry(f"bundled:{m.name}", safe_name(m.name), m.kind, "bundled", m.path) for m in ordered]
        entries.append(ModelEntry(WARP_KEY, "warp", "talking-head", "builtin"))
        self.entries = {e.key: e for e in entries}
        self.device = device
        self._loaded: dict[str, object] = {}
        self._locks = {key: threading.Lock() for key in self.entries}
        self._loading = threading.Lock()

    def choices(self, kind: str) -> list[ModelEntry]:
        """The entries doing ``kind`` (``"talking-head"``, ``"text-to-video"``), best first (user models, bundled ones,
        then the warp baseline)."""
        return [e for e in self.entries.values() if e.kind == kind]

    def default(self, kind: str) -> ModelEntry:
        return self.choices(kind)[0]

    def get(self, key: str) -> ModelEntry:
        if key not in self.entries:
            raise KeyError(f"unknown model {key!r}; choose one of {sorted(self.entries)}")
        return self.entries[key]

    def acquire(self, key: str):
        """``(pipeline, lock)`` of a diffusion entry, loading it on first use (progress bars off)."""
        entry = self.get(key)
        if not entry.is_diffusion:
            raise ValueError(f"{key!r} is not a saved pipeline")
        with self._loading:
            if key not in self._loaded:
                self._loaded[key] = self._load(entry)
        return self._loaded[key], self._locks[key]

    def is_loaded(self, key: str) -> bool:
        return key in self._loaded

    def _load(self, entry: ModelEntry):
        logger.info("loading %s from %s", entry.name, entry.path)
        pipe = load_model(entry.path, device=self.device)  # the class its model_index.json names; fp16-only: detected
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def describe(self) -> str:
        """One Markdown line per model: its label and where it came from."""
        return "\n".join(f"- **{e.label}**: {e.source}" for e in self.entries.values())
