"""The music job (Generative Disco): a song and keyframes give a music video whose changes land on the beats.

Read in this order: ``timeline`` (the intervals of the song and their JSON file), ``keyframes`` (where keyframes come
from: the user's images), ``prompt_keyframes`` (or prompts, through a text-to-video model), ``patterns`` (what a frame
does between two keyframes), and ``pipeline_beat_visualizer`` (:class:`BeatVisualizerPipeline`: its checks,
:meth:`~BeatVisualizerPipeline.plan` and the numbered steps of ``__call__``).

Each name is imported on first use (PEP 562), so reading a timeline does not import the pipeline.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# name -> the module that defines it
_EXPORTS = {
    "BeatPlan": "avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer",
    "BeatVisualizerOutput": "avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer",
    "BeatVisualizerPipeline": "avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer",
    "ImageKeyframes": "avdiff.pipelines.beat_visualizer.keyframes",
    "Interval": "avdiff.pipelines.beat_visualizer.timeline",
    "PatternSettings": "avdiff.pipelines.beat_visualizer.patterns",
    "PromptKeyframes": "avdiff.pipelines.beat_visualizer.prompt_keyframes",
    "Timeline": "avdiff.pipelines.beat_visualizer.timeline",
    "TimelineError": "avdiff.pipelines.beat_visualizer.timeline",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from avdiff.pipelines.beat_visualizer.keyframes import ImageKeyframes
    from avdiff.pipelines.beat_visualizer.patterns import PatternSettings
    from avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer import (
        BeatPlan,
        BeatVisualizerOutput,
        BeatVisualizerPipeline,
    )
    from avdiff.pipelines.beat_visualizer.prompt_keyframes import PromptKeyframes
    from avdiff.pipelines.beat_visualizer.timeline import Interval, Timeline, TimelineError


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
