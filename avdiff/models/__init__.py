"""Models: the audio-conditioned latent video UNet, its attention processors, conditions and CFG dropout."""

from avdiff.models.attention import AudioAttnProcessor2_0, SpatialSelfAttnProcessor2_0
from avdiff.models.cfg import CFGDropout, ConditionDropout, cfg_conditions, classifier_free_guidance
from avdiff.models.conditions import Conditions
from avdiff.models.unet import AudioVideoUNet

__all__ = [
    "AudioAttnProcessor2_0",
    "AudioVideoUNet",
    "CFGDropout",
    "ConditionDropout",
    "Conditions",
    "SpatialSelfAttnProcessor2_0",
    "cfg_conditions",
    "classifier_free_guidance",
]
