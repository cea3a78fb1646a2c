"""The sounds of an audio-aligned scene: the sources a user gives, loaded and checked (:func:`load_sounds`), their
mix (the output's audio, :func:`mix_sounds`), and the prompt word each one drives (:class:`SceneTarget`).

Everything here runs before any denoising: a bad sound is a ValueError naming it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from avdiff.audio.io import Waveform, load_audio
from avdiff.audio.scene_sounds import mix

logger = logging.getLogger(__name__)

MAX_SOUNDS = 8


@dataclass
class SceneTarget:
    """The prompt word one sound drives.

    Attributes:
        word: the word (as in the prompt, or as :meth:`AudioTextEncoder.select_token` stripped it).
        positions: its token positions among the cross-attention keys (every occurrence, every WordPiece/BPE piece).
        chosen_by: ``"user"`` (``target_words``) or ``"encoder"`` (``select_token`` in the shared audio-text space).
        score: the chosen word's cosine similarity with the sound (None when the user chose).
        candidates: every content word's cosine similarity with the sound, in prompt order (empty when the user
            chose).
        matched: False when the encoder chose and even the best word scored below the pipeline's ``min_word_score``:
            the sound matches no object of the prompt, and drives its best word anyway.
    """

    word: str
    positions: list[int]
    chosen_by: str
    score: float | None = None
    candidates: dict[str, float] = field(default_factory=dict)
    matched: bool = True


def as_sound_list(audio) -> list:
    """``audio`` as a list of sources: one source (a path, bytes, a Waveform, a tensor) or a list/tuple of them."""
    if isinstance(audio, (list, tuple)):
        sounds = list(audio)
        if not sounds:
            raise ValueError("audio must be a sound or a non-empty list of sounds, got an empty list")
        if len(sounds) > MAX_SOUNDS:
            raise ValueError(f"audio holds {len(sounds)} sounds; at most {MAX_SOUNDS} can drive words at once")
        return sounds
    if audio is None:
        raise ValueError("audio is required (a file, bytes, a Waveform, or a list of them)")
    return [audio]


def load_sounds(sounds: list, max_duration_s: float | None = None) -> list[Waveform]:
    """Each source as a mono Waveform at its own rate (``load_audio``'s errors name the source)."""
    out = []
    for i, source in enumerate(sounds):
        wav = load_audio(source, mono=True, max_duration_s=max_duration_s)
        if wav.num_samples == 0:
            raise ValueError(f"audio[{i}] has no samples")
        if not torch.isfinite(wav.samples).all():
            raise ValueError(f"audio[{i}] has NaN or infinite samples")
        out.append(wav)
    return out


def mix_sounds(waves: list[Waveform]) -> Waveform:
    """The sounds summed at the first one's rate, each zero-padded to the longest, scaled down (never up) to peak at
    0.95 when the sum would clip (:func:`avdiff.audio.scene_sounds.mix`). One sound is returned as it is."""
    if len(waves) == 1:
        return waves[0]
    rate = waves[0].sample_rate
    tracks = [w.resample(rate).samples[0].numpy() for w in waves]
    length = max(len(t) for t in tracks)
    mixed, _ = mix([np.pad(t, (0, length - len(t))) for t in tracks])
    return Waveform(torch.from_numpy(mixed)[None], rate)
