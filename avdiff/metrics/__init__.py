"""Metrics on generated video: mouth openness per frame, lip sync against the speech, and beat alignment of a music
video's visual changes against its music."""

from avdiff.metrics.beats import BeatAlignment, beat_alignment, score_video
from avdiff.metrics.clap_score import clap_score
from avdiff.metrics.lipsync import LipSyncResult, lipsync_scores
from avdiff.metrics.mouth import aperture_from_landmarks, mouth_openness

__all__ = ["BeatAlignment", "LipSyncResult", "aperture_from_landmarks", "beat_alignment", "clap_score",
           "lipsync_scores", "mouth_openness", "score_video"]  # fmt: skip
