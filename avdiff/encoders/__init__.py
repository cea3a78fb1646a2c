"""Joint audio-text encoders (CLAP) for token selection and metrics.

Importing this package is light and offline-safe: laion-clap and transformers are imported only when an encoder is
built.

Each name is imported on first use (PEP 562), so importing one submodule does not import the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from avdiff._lazy import lazy_exports

# name -> the module that defines it
_EXPORTS = {
    "AlignedEncoder": "avdiff.encoders.alignment",
    "AlignerConfig": "avdiff.encoders.alignment",
    "AudioTextAligner": "avdiff.encoders.alignment",
    "AudioTextEncoder": "avdiff.encoders.base",
    "HFClapEncoder": "avdiff.encoders.clap_hf",
    "LaionClapEncoder": "avdiff.encoders.clap_laion",
    "SentenceEncoder": "avdiff.encoders.text",
    "TokenChoice": "avdiff.encoders.base",
    "content_words": "avdiff.encoders.base",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from avdiff.encoders.alignment import AlignedEncoder, AlignerConfig, AudioTextAligner
    from avdiff.encoders.base import AudioTextEncoder, TokenChoice, content_words
    from avdiff.encoders.clap_hf import HFClapEncoder
    from avdiff.encoders.clap_laion import LaionClapEncoder
    from avdiff.encoders.text import SentenceEncoder

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
