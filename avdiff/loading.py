"""The one way the commands and the demo load a model: a bundled name, a saved folder (its weights variant chosen or
detected), a hub id, or, for talking heads, a training checkpoint (``RUN/checkpoints/step_N``).

A folder whose weights exist only as a variant (``diffusion_pytorch_model.fp16.safetensors``, as fp16 exports are
published) loads that variant, with a log line, when there is exactly one; ``variant=`` chooses among several.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch

from avdiff.bundled import resolve
from avdiff.pipelines.talking_head import TalkingHeadPipeline
from avdiff.training.checkpoints import is_checkpoint, talking_head_from_checkpoint

logger = logging.getLogger(__name__)

# diffusers' weight file names: NAME[.VARIANT][-00001-of-00002].(safetensors|bin)
_WEIGHTS = re.compile(r"^[^.]+(?:\.(?P<variant>[^.]+?))?(?:-\d+-of-\d+)?\.(?:safetensors|bin)$")


def weight_variants(folder: str | os.PathLike) -> tuple[bool, set[str]]:
    """``(plain, variants)`` of a saved model or pipeline folder: whether every part with weights (the folder, each
    component's subfolder) has weights without a variant, and the variants of the weights there are (``{"fp16"}``).
    A UNet saved as fp16 beside a component with plain weights is ``(False, {"fp16"})``: loading it needs the variant
    (diffusers takes the plain weights of the components that lack it)."""
    folder = Path(folder)
    parts = {}  # folder -> (has plain weights, has variant weights)
    variants = set()
    for path in [*folder.iterdir(), *(p for sub in folder.iterdir() if sub.is_dir() for p in sub.iterdir())]:
        match = _WEIGHTS.match(path.name)
        if match and path.is_file():
            plain, variant = parts.get(path.parent, (False, False))
            if match["variant"] is None:
                parts[path.parent] = (True, variant)
            else:
                parts[path.parent] = (plain, True)
                variants.add(match["variant"])
    return bool(parts) and all(plain for plain, _ in parts.values()), variants


def choose_variant(folder: str | os.PathLike, variant: str | None = None, what: str = "--model") -> str | None:
    """The weights variant to load from ``folder``: ``variant`` when given (it must exist there); None when plain
    weights exist; the only variant there is otherwise (logged). A hub id (not a local folder) keeps ``variant``.

    Raises:
        ValueError: naming ``what`` and the folder: ``variant`` is not there (the variants that are, are named), no
            weights at all, or only several variants and none chosen.
    """
    if not Path(folder).is_dir():
        return variant
    plain, variants = weight_variants(folder)
    found = (["plain (no variant)"] if plain else []) + [repr(v) for v in sorted(variants)]
    if variant is not None:
        if variant not in variants:
            has = f"its weights are {', '.join(found)}" if found else "it holds no weights at all"
            raise ValueError(f"{what} {str(folder)!r} has no {variant!r} weights (*.{variant}.safetensors); {has}")
        return variant
    if plain:
        return None
    if len(variants) == 1:
        (only,) = variants
        logger.warning("%s has no plain weights, only the %r variant (*.%s.safetensors); loading it", folder, only,
                       only)  # fmt: skip
        return only
    if variants:
        raise ValueError(f"{what} {str(folder)!r} holds only variant weights ({', '.join(found)}); choose one with "
                         "--variant (variant= in Python)")  # fmt: skip
    raise ValueError(f"{what} {str(folder)!r} holds no loadable weights: no *.safetensors or *.bin files, plain or "
                     "of a variant (*.fp16.safetensors)")  # fmt: skip


def load_pipeline(cls: type, name_or_path: str | os.PathLike, *, variant: str | None = None, device: str | None = None,
                  what: str = "--model", **kwargs):  # fmt: skip
    """A pipeline of class ``cls`` (``TalkingHeadPipeline``, ``TextToVideoPipeline``, ``AudioScenePipeline``) from a
    bundled model's name, a saved folder, a hub id, or, for talking heads, a training checkpoint folder; on ``device``
    (default: cuda when available, else cpu).

    Args:
        variant: the weights variant (``"fp16"``); None detects it (see :func:`choose_variant`).
        what: how the user named the model, for messages (``"--model"``).
        kwargs: passed to ``cls.from_pretrained``.

    Raises:
        ValueError: a folder without loadable weights or without the variant asked for, or a checkpoint that is
            not of a talking-head run (each naming ``what`` and the folder).
    """
    folder = resolve(name_or_path)
    if is_checkpoint(folder):
        if cls is not TalkingHeadPipeline:
            raise ValueError(f"{what} {str(folder)!r} is a training checkpoint; only talking-head checkpoints load "
                             "as they are (use the run's final folder)")  # fmt: skip
        logger.info("%s is a training checkpoint: rebuilding its pipeline from the run's config", folder)
        pipe = talking_head_from_checkpoint(folder)
    else:
        variant = choose_variant(folder, variant, what)
        pipe = cls.from_pretrained(folder, **({"variant": variant} if variant else {}), **kwargs)
    return pipe.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
