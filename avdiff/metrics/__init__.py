"""Metrics on generated video: mouth openness per frame, and lip sync against the speech."""

from avdiff.metrics.clap_score import clap_score
from avdiff.metrics.lipsync import LipSyncResult, lipsync_scores
from avdiff.metrics.mouth import aperture_from_landmarks, mouth_openness

__all__ = ["LipSyncResult", "aperture_from_landmarks", "clap_score", "lipsync_scores", "mouth_openness"]
