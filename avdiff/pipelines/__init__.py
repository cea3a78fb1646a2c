"""Pipelines: sound in, video out. One folder per job; each name is imported on first use (PEP 562), so importing
one pipeline does not import the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from avdiff._lazy import lazy_exports

# name -> the module that defines it
_EXPORTS = {
    "AudioSceneOutput": "avdiff.pipelines.audio_scene.pipeline_audio_scene",
    "AudioScenePipeline": "avdiff.pipelines.audio_scene.pipeline_audio_scene",
    "BeatPlan": "avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer",
    "BeatVisualizerOutput": "avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer",
    "BeatVisualizerPipeline": "avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer",
    "MotionTalkingHeadOutput": "avdiff.pipelines.talking_head.pipeline_motion_talking_head",
    "MotionTalkingHeadPipeline": "avdiff.pipelines.talking_head.pipeline_motion_talking_head",
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
    from avdiff.pipelines.talking_head.pipeline_motion_talking_head import (
        MotionTalkingHeadOutput,
        MotionTalkingHeadPipeline,
    )
    from avdiff.pipelines.talking_head.pipeline_talking_head import TalkingHeadPipeline
    from avdiff.pipelines.talking_head.pipeline_warp_baseline import WarpBaselinePipeline
    from avdiff.pipelines.text_to_video.pipeline_text_to_video import TextToVideoPipeline

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
