"""Metrics on generated video: mouth openness per frame, lip sync against the speech, and beat alignment of a music
video's visual changes against its music.

Each name is imported on first use (PEP 562), so importing one submodule does not import the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from avdiff._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
