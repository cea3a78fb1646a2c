"""Joint audio-text encoders (CLAP) for token selection and metrics.

Importing this package is light and offline-safe: laion-clap and transformers are imported only when an encoder is
built.
"""

from avdiff.encoders.aligned import AlignedEncoder
from avdiff.encoders.alignment import AlignerConfig, AudioTextAligner
from avdiff.encoders.base import AudioTextEncoder, TokenChoice, content_words
from avdiff.encoders.clap_hf import HFClapEncoder
from avdiff.encoders.clap_laion import LaionClapEncoder
from avdiff.encoders.text import SentenceEncoder

__all__ = [
    "AlignedEncoder",
    "AlignerConfig",
    "AudioTextAligner",
    "AudioTextEncoder",
    "HFClapEncoder",
    "LaionClapEncoder",
    "SentenceEncoder",
    "TokenChoice",
    "content_words",
]
