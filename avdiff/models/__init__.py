"""Models: the audio-conditioned latent video UNet, its attention processors, conditions and CFG dropout.

Each name is imported on first use (PEP 562), so importing one submodule does not import the others."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# name -> the module that defines it
_EXPORTS = {
    "AudioAttnProcessor2_0": "avdiff.models.attention",
    "AudioVideoUNet": "avdiff.models.unet",
    "CFGDropout": "avdiff.models.cfg",
    "ConditionDropout": "avdiff.models.cfg",
    "Conditions": "avdiff.models.conditions",
    "SpatialSelfAttnProcessor2_0": "avdiff.models.attention",
    "cfg_conditions": "avdiff.models.cfg",
    "classifier_free_guidance": "avdiff.models.cfg",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from avdiff.models.attention import AudioAttnProcessor2_0, SpatialSelfAttnProcessor2_0
    from avdiff.models.cfg import CFGDropout, ConditionDropout, cfg_conditions, classifier_free_guidance
    from avdiff.models.conditions import Conditions
    from avdiff.models.unet import AudioVideoUNet


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
