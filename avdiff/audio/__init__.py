"""Audio: loading, the frame clock, features and rhythm analysis."""

from avdiff.audio.clock import FrameClock
from avdiff.audio.features import LogMel, log_mel
from avdiff.audio.io import AudioLoadError, Waveform, load_audio, save_audio
from avdiff.audio.rhythm import Rhythm, analyze_rhythm

__all__ = [
    "AudioLoadError",
    "FrameClock",
    "LogMel",
    "Rhythm",
    "Waveform",
    "analyze_rhythm",
    "load_audio",
    "log_mel",
    "save_audio",
]
