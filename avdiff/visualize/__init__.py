"""Beat-synced music visualization (Generative Disco): the timeline, the keyframe sources and the patterns that
:class:`avdiff.pipelines.BeatVisualizerPipeline` renders."""

from avdiff.visualize.timeline import HOLDS, PATTERNS, TRANSITIONS, Interval, Timeline, TimelineError

__all__ = ["HOLDS", "PATTERNS", "TRANSITIONS", "Interval", "Timeline", "TimelineError"]
