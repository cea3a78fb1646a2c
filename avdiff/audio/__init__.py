"""Audio: loading, the frame clock, features and rhythm analysis."""

from avdiff.audio.clock import FrameClock
from avdiff.audio.io import AudioLoadError, Waveform, load_audio

__all__ = ["AudioLoadError", "FrameClock", "Waveform", "load_audio"]
