"""CLAP score: how well audio matches text, as the cosine similarity of their CLAP embeddings.

Convention: the plain cosine similarity in [-1, 1], as text-to-audio papers report "CLAP score" (AudioLDM,
Make-An-Audio), so numbers compare with theirs. For the CLIPScore convention of torchmetrics, take
``100 * max(score, 0)``. Scores are only comparable between runs that use the same encoder weights.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from avdiff.encoders.base import AudioBatch, AudioTextEncoder

logger = logging.getLogger(__name__)


def clap_score(
    audio: AudioBatch, texts: str | Sequence[str], encoder: AudioTextEncoder | None = None
) -> np.ndarray | float:
    """Cosine similarity of each audio clip with its paired text.

    Args:
        audio: clips as :meth:`AudioTextEncoder.embed_audio` takes them (a ``Waveform``, a list of them, or a float
            tensor [B, N] at the encoder's rate).
        texts: one string (then ``audio`` must be one clip) or a list with one text per clip.
        encoder: a CLAP encoder with pretrained weights, e.g.
            ``LaionClapEncoder.from_pretrained("630k-audioset-best")`` or
            ``HFClapEncoder.from_pretrained("laion/clap-htsat-unfused")``.

    Returns:
        A float for a single string ``texts``; otherwise float64 array [B], ``score[i] = cos(audio[i], texts[i])``.

    Raises:
        ValueError: no encoder, or the numbers of clips and texts differ.
    """
    if encoder is None:
        raise ValueError(
            "clap_score needs encoder=: a CLAP with pretrained weights, e.g. "
            "LaionClapEncoder.from_pretrained('630k-audioset-best') (laion-clap's 630k-audioset-best.pt from "
            "https://huggingface.co/lukewys/laion_clap, plus roberta-base's config and tokenizer as text_model_dir "
            "offline) or HFClapEncoder.from_pretrained('laion/clap-htsat-unfused'). No model is built for you: "
            "random weights would give meaningless scores."
        )
    single = isinstance(texts, str)
    audio_embeddings = encoder.embed_audio(audio)
    text_embeddings = encoder.embed_text(texts)
    if audio_embeddings.shape[0] != text_embeddings.shape[0]:
        raise ValueError(
            f"audio and texts must pair one to one: got {audio_embeddings.shape[0]} clips and "
            f"{text_embeddings.shape[0]} texts"
        )
    scores = (audio_embeddings * text_embeddings).sum(dim=-1).double().numpy()
    logger.debug("clap_score of %d pairs: mean %.4f", scores.shape[0], scores.mean())
    return float(scores[0]) if single else scores
