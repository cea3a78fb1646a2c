"""Argument checks, sound loading and target words of :class:`~avdiff.pipelines.audio_scene.AudioScenePipeline`.

Everything here runs before any denoising: a bad argument is a ValueError naming it and its value.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from avdiff.audio.io import AudioSource, Waveform, load_audio
from avdiff.audio.scene_sounds import mix
from avdiff.pipelines.audio_scene_signal import SIGNALS
from avdiff.pipelines.utils import is_int

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


def check_scene_inputs(prompt, sounds: list, target_words, strength, smoothing_s, signal, levels, fps) -> list | None:
    """Check the scene's own arguments (the text-to-video ones are checked by the text-to-video pipeline).

    Returns ``target_words`` as a list (one word or None per sound), or None when none were given."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    for name, value in (("strength", strength), ("smoothing_s", smoothing_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if signal not in SIGNALS:
        raise ValueError(f"signal must be one of {SIGNALS}, got {signal!r}")
    if not is_int(levels) or levels < 2:
        raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
    if fps is None:
        raise ValueError("fps must be given (a number such as 8, or '30000/1001')")
    if target_words is None:
        return None
    words = [target_words] if isinstance(target_words, str) else list(target_words)
    if len(words) != len(sounds):
        raise ValueError(f"target_words must give one word (or None) per sound: {len(sounds)} sound(s), got "
                         f"{len(words)} word(s) {words!r}")  # fmt: skip
    for word in words:
        if word is not None and (not isinstance(word, str) or not word.strip()):
            raise ValueError(f"target_words must hold non-empty strings or None, got {word!r}")
    return words


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


def image_source(image) -> np.ndarray:
    """``image`` (a path, a PIL image, or uint8 [H, W, 3]) -> uint8 RGB [H, W, 3]."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        if not os.path.isfile(image):
            raise ValueError(f"image {str(image)!r}: no such file")
        try:
            with Image.open(image) as im:
                return np.asarray(im.convert("RGB"))
        except OSError as e:
            raise ValueError(f"image {str(image)!r}: not an image ({e})") from e
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(f"image must be a file, a PIL image or uint8 [H, W, 3], got {array.dtype} {array.shape}")
    return array


def sound_label(source: AudioSource, i: int) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else f"audio[{i}]"
