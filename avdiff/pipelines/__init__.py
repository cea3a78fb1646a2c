"""Pipelines: sound in, video out."""

from avdiff.pipelines.audio_scene import AudioSceneOutput, AudioScenePipeline
from avdiff.pipelines.beat_visualizer import BeatVisualizerOutput, BeatVisualizerPipeline
from avdiff.pipelines.output import VideoPipelineOutput
from avdiff.pipelines.talking_head import TalkingHeadPipeline
from avdiff.pipelines.text_to_video import TextToVideoPipeline
from avdiff.pipelines.warp_baseline import WarpBaselinePipeline

__all__ = ["AudioSceneOutput", "AudioScenePipeline", "BeatVisualizerOutput", "BeatVisualizerPipeline",
           "TalkingHeadPipeline", "TextToVideoPipeline", "VideoPipelineOutput", "WarpBaselinePipeline"]
