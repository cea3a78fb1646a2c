"""Pipelines: sound in, video out. One folder per job; each name is imported on first use (PEP 562), so importing
one pipeline does not import the others."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# name -> the module that defines it
_EXPORTS = {
    "AudioSceneOutput": "avdiff.pipelines.audio_scene.pipeline_audio_scene",
    "AudioScenePipeline": "avdiff.pipelines.audio_scene.pipeline_audio_scene",
    "BeatPlan": "avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer",
    "BeatVisualizerOutput": "avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer",
    "BeatVisualizerPipeline": "avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer",
    "TalkingHeadPipeline": "avdiff.pipelines.talking_head.pipeline_talking_head",
    "TextToVideoPipeline": "avdiff.pipelines.text_to_video.pipeline_text_to_video",
    "VideoPipelineOutput": "avdiff.pipelines.output",
    "WarpBaselinePipeline": "avdiff.pipelines.talking_head.pipeline_warp_baseline",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from avdiff.pipelines.audio_scene.pipeline_audio_scene import AudioSceneOutput, AudioScenePipeline
    from avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer import (
        BeatPlan,
        BeatVisualizerOutput,
        BeatVisualizerPipeline,
    )
    from avdiff.pipelines.output import VideoPipelineOutput
    from avdiff.pipelines.talking_head.pipeline_talking_head import TalkingHeadPipeline
    from avdiff.pipelines.talking_head.pipeline_warp_baseline import WarpBaselinePipeline
    from avdiff.pipelines.text_to_video.pipeline_text_to_video import TextToVideoPipeline


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
