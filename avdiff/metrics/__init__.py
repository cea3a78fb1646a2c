"""Metrics on generated video: mouth openness per frame, lip sync against the speech, and beat alignment of a music
video's visual changes against its music.

Each name is imported on first use (PEP 562), so importing one submodule does not import the others."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# name -> the module that defines it
_EXPORTS = {
    "BeatAlignment": "avdiff.metrics.beats",
    "LipSyncResult": "avdiff.metrics.lipsync",
    "aperture_from_landmarks": "avdiff.metrics.mouth",
    "beat_alignment": "avdiff.metrics.beats",
    "clap_score": "avdiff.metrics.clap_score",
    "lipsync_scores": "avdiff.metrics.lipsync",
    "mouth_openness": "avdiff.metrics.mouth",
    "score_video": "avdiff.metrics.beats",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from avdiff.metrics.beats import BeatAlignment, beat_alignment, score_video
    from avdiff.metrics.clap_score import clap_score
    from avdiff.metrics.lipsync import LipSyncResult, lipsync_scores
    from avdiff.metrics.mouth import aperture_from_landmarks, mouth_openness


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
