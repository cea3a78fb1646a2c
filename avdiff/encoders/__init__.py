"""Joint audio-text encoders (CLAP) for token selection and metrics.

Importing this package is light and offline-safe: laion-clap and transformers are imported only when an encoder is
built.

Each name is imported on first use (PEP 562), so importing one submodule does not import the others."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# name -> the module that defines it
_EXPORTS = {
    "AlignedEncoder": "avdiff.encoders.aligned",
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
    from avdiff.encoders.aligned import AlignedEncoder
    from avdiff.encoders.alignment import AlignerConfig, AudioTextAligner
    from avdiff.encoders.base import AudioTextEncoder, TokenChoice, content_words
    from avdiff.encoders.clap_hf import HFClapEncoder
    from avdiff.encoders.clap_laion import LaionClapEncoder
    from avdiff.encoders.text import SentenceEncoder


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
