"""Models: the audio-conditioned latent video UNet, its attention processors, conditions and CFG dropout.

Each name is imported on first use (PEP 562), so importing one submodule does not import the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from avdiff._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
