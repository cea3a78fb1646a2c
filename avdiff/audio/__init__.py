"""Audio: loading, the frame clock, features and rhythm analysis.

Each name is imported on first use (PEP 562), so importing one submodule does not import the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from avdiff._lazy import lazy_exports

# name -> the module that defines it
_EXPORTS = {
    "AudioLoadError": "avdiff.audio.io",
    "FrameClock": "avdiff.audio.clock",
    "LogMel": "avdiff.audio.features",
    "Rhythm": "avdiff.audio.rhythm",
    "Waveform": "avdiff.audio.io",
    "analyze_rhythm": "avdiff.audio.rhythm",
    "load_audio": "avdiff.audio.io",
    "log_mel": "avdiff.audio.features",
    "save_audio": "avdiff.audio.io",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from avdiff.audio.clock import FrameClock
    from avdiff.audio.features import LogMel, log_mel
    from avdiff.audio.io import AudioLoadError, Waveform, load_audio, save_audio
    from avdiff.audio.rhythm import Rhythm, analyze_rhythm

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
