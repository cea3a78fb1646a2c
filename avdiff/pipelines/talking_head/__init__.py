"""The talking-head job: a face photo plus speech gives a lip-synced video.

* :class:`TalkingHeadPipeline` (``pipeline_talking_head.py``): latent video diffusion, chunked over long audio;
* :class:`MotionTalkingHeadPipeline` (``pipeline_motion_talking_head.py``): speech -> motion by diffusion -> the
  photo moved at its own resolution;
* :class:`WarpBaselinePipeline` (``pipeline_warp_baseline.py``): the model-free baseline, the mouth opened by the
  speech's loudness;
* :func:`sample_motion` (``motion_sampling.py``): a motion track from speech by the motion generator's denoiser;
* ``photo.py``: the working size of the photo both start from.

Each name is imported on first use (PEP 562), so importing one pipeline does not import the other.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# name -> the module that defines it
_EXPORTS = {
    "MotionTalkingHeadPipeline": "avdiff.pipelines.talking_head.pipeline_motion_talking_head",
    "TalkingHeadPipeline": "avdiff.pipelines.talking_head.pipeline_talking_head",
    "WarpBaselinePipeline": "avdiff.pipelines.talking_head.pipeline_warp_baseline",
    "sample_motion": "avdiff.pipelines.talking_head.motion_sampling",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from avdiff.pipelines.talking_head.motion_sampling import sample_motion
    from avdiff.pipelines.talking_head.pipeline_motion_talking_head import MotionTalkingHeadPipeline
    from avdiff.pipelines.talking_head.pipeline_talking_head import TalkingHeadPipeline
    from avdiff.pipelines.talking_head.pipeline_warp_baseline import WarpBaselinePipeline


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
