"""The text-to-video job: a prompt gives a short clip or one keyframe image
(:class:`~avdiff.pipelines.text_to_video.pipeline_text_to_video.TextToVideoPipeline`)."""

from avdiff.pipelines.text_to_video.pipeline_text_to_video import TextToVideoPipeline

__all__ = ["TextToVideoPipeline"]
