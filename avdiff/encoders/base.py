"""Joint audio-text embedding models: the interface every backend implements, and what is built on it.

An :class:`AudioTextEncoder` maps audio clips and texts into one embedding space where both are unit vectors, so the
dot product of an audio and a text embedding is their cosine similarity. On top of the two abstract methods it gives
:meth:`~AudioTextEncoder.similarity` and :meth:`~AudioTextEncoder.select_token`, which picks the word of a prompt that
the audio sounds most like (the word whose cross-attention an audio-conditioned generator should drive).

Long audio is embedded deterministically by :func:`split_windows` and :func:`pool_windows`: fixed windows that tile
the clip, one embedding per window, and the renormalised mean. Backends whose models crop a random window of a long
clip (laion-clap, transformers' ``ClapFeatureExtractor``) only ever see exact windows this way.
"""

from __future__ import annotations

import abc
import logging
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from avdiff.audio.io import Waveform

logger = logging.getLogger(__name__)

AudioBatch = Waveform | Sequence[Waveform] | torch.Tensor

# Function words of English: articles, pronouns, prepositions, conjunctions, auxiliaries and modals, quantifiers and a
# few adverbs. Whatever is left in a prompt is a noun, adjective or verb, which is what a sound can be "of".
STOPWORDS = frozenset(
    """
    a an the this that these those some any each every all both either neither no none not nor only own same such
    i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself she her hers
    herself it its itself they them their theirs themselves what which who whom whose where when why how
    and but or so yet if then else than because while whereas although though unless until as
    of at by for with without within about against between into through during before after above below to from
    up down in out on off over under again further once onto upon across along around among behind beside near
    towards toward via per like
    is am are was were be been being have has had having do does did doing done
    can could will would shall should may might must
    there here very too just also really quite rather more most less least much many few lot lots
    one two three four five six seven eight nine ten
    s t don doesn didn isn aren wasn weren won wouldn shouldn couldn can't don't won't it's i'm
    """.split()
)

# Where and when, not what: positions and directions ("on the left", "in the background") and times of day ("at
# night", "by day"). They name no thing a sound can come from, so a sound never chooses them.
SETTING_WORDS = frozenset(
    """
    left right middle centre center top bottom front back side sides foreground background distance corner edge
    far nearby inside outside beneath underneath beyond ahead upper lower north south east west
    day daytime daylight night nighttime tonight morning afternoon evening dusk dawn noon midnight sunset sunrise
    twilight
    """.split()
)
_NOT_CANDIDATES = STOPWORDS | SETTING_WORDS

_STRIP = string.punctuation + "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00ab\u00bb"


@dataclass
class TokenChoice:
    """The prompt word chosen by :meth:`AudioTextEncoder.select_token`.

    Attributes:
        word: the chosen word, stripped of punctuation (as it appears in ``candidates``).
        index: its position among the prompt's whitespace-split words (``prompt.split()[index]`` contains it).
        score: cosine similarity of the word's text embedding and the audio embedding, in [-1, 1].
        candidates: the cosine similarity of every content word of the prompt, in prompt order.
    """

    word: str
    index: int
    score: float
    candidates: dict[str, float]


def _clean_word(raw: str) -> str:
    """Strip surrounding punctuation and a possessive ``'s``: ``"dog's,"`` -> ``"dog"``."""
    word = raw.strip(_STRIP)
    for suffix in ("'s", "\u2019s"):
        if word.lower().endswith(suffix):
            word = word[: -len(suffix)]
    return word.strip(_STRIP)


def content_words(prompt: str) -> list[tuple[int, str]]:
    """The content words of ``prompt`` and their indices among its whitespace-split words: the words a sound may
    choose (this is the one rule for that).

    A word is kept when, stripped of surrounding punctuation (and a possessive ``'s``), it contains a letter and is
    neither a function word (:data:`STOPWORDS`) nor a position, direction or time of day (:data:`SETTING_WORDS`),
    case-insensitive. What is left are the nouns naming things (with the adjectives and verbs of an ordinary prompt).

    Example: ``content_words("a dog and a whistle, in the park")`` -> ``[(1, "dog"), (4, "whistle"), (7, "park")]``;
    ``content_words("a campfire on the left at night")`` -> ``[(1, "campfire")]``.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    words = []
    for index, raw in enumerate(prompt.split()):
        word = _clean_word(raw)
        if any(c.isalpha() for c in word) and word.lower() not in _NOT_CANDIDATES:
            words.append((index, word))
    return words


def window_starts(num_samples: int, window: int) -> list[int]:
    """First sample of each window that :func:`split_windows` cuts from ``num_samples`` samples.

    Windows start every ``window`` samples; when the audio does not divide evenly, the last window is aligned to the
    end of the audio (it overlaps the one before it), so every window of audio at least ``window`` long is real audio
    with no padding. Audio shorter than one window gives the single start 0.
    """
    if window < 1:
        raise ValueError(f"window must be a positive number of samples, got {window!r}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples!r}")
    if num_samples <= window:
        return [0]
    starts = list(range(0, num_samples - window + 1, window))
    if starts[-1] + window < num_samples:
        starts.append(num_samples - window)
    return starts


def repeat_pad(samples: torch.Tensor, length: int) -> torch.Tensor:
    """Fill a clip [N] shorter than ``length`` the way CLAP was trained: whole repeats, then zeros. -> [length]."""
    n = samples.shape[-1]
    if n > length:
        raise ValueError(f"samples must be at most length={length} long, got {n}")
    repeats = length // n
    return F.pad(samples.repeat(repeats), (0, length - n * repeats))


def split_windows(samples: torch.Tensor, window: int) -> torch.Tensor:
    """Cut a mono clip [N] into windows [W, window] at :func:`window_starts`.

    A clip shorter than one window becomes one window filled by :func:`repeat_pad` (the "repeatpad" filling that
    laion-clap and transformers' ``ClapFeatureExtractor`` use for short clips, so short clips embed as they do there).
    """
    if samples.ndim != 1:
        raise ValueError(f"samples must be a mono clip [N], got shape {tuple(samples.shape)}")
    n = samples.shape[0]
    if n < window:
        return repeat_pad(samples, window)[None]
    return torch.stack([samples[s : s + window] for s in window_starts(n, window)])


def pool_windows(embeddings: torch.Tensor) -> torch.Tensor:
    """Mean of a clip's unit-norm window embeddings [W, D], renormalised to unit norm -> [D]."""
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"embeddings must be [W, D] with W >= 1, got shape {tuple(embeddings.shape)}")
    return F.normalize(embeddings.mean(dim=0), dim=-1)


def embed_windowed(
    clips: list[torch.Tensor],
    window: int,
    embed_windows: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 8,
) -> torch.Tensor:
    """Embed mono clips of any length by windows: split, embed in batches, pool per clip.

    Args:
        clips: mono clips, each float [N_i] at the model's rate.
        window: window length in samples (480000 for CLAP: 10 s at 48 kHz).
        embed_windows: maps windows [w, window] to embeddings [w, D] (normalised here).
        batch_size: windows per call of ``embed_windows``.

    Returns:
        Unit-norm embeddings [len(clips), D].
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    windows = [split_windows(clip, window) for clip in clips]
    counts = [w.shape[0] for w in windows]
    stacked = torch.cat(windows)
    embedded = torch.cat([embed_windows(stacked[i : i + batch_size]) for i in range(0, stacked.shape[0], batch_size)])
    embedded = F.normalize(embedded.float(), dim=-1)
    logger.debug("embedded %d clips as %d windows of %d samples", len(clips), stacked.shape[0], window)
    return torch.stack([pool_windows(e) for e in embedded.split(counts)])


class AudioTextEncoder(nn.Module, abc.ABC):
    """A joint audio-text embedding model with unit-norm outputs.

    Subclasses implement :meth:`embed_clips`, :meth:`embed_texts` and :attr:`embedding_dim`, and set
    :attr:`sample_rate`; :meth:`embed_audio` and :meth:`embed_text` check and normalise the inputs and call them.

    Args:
        sample_rate: the rate (Hz) the model takes audio at; tensors given to :meth:`embed_audio` must be at this rate,
            ``Waveform`` inputs are resampled to it.
        text_template: how :meth:`select_token` turns a word into a text, with ``{word}`` for the word, e.g.
            ``"the sound of {word}"``. The default is the bare word.
    """

    def __init__(self, sample_rate: int, text_template: str = "{word}"):
        super().__init__()
        if int(sample_rate) != sample_rate or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer number of Hz, got {sample_rate!r}")
        self.sample_rate = int(sample_rate)
        self.text_template = _check_template(text_template)

    @property
    @abc.abstractmethod
    def embedding_dim(self) -> int:
        """Size D of the joint embedding space."""

    @abc.abstractmethod
    def embed_clips(self, clips: list[torch.Tensor]) -> torch.Tensor:
        """Unit-norm audio embeddings [B, D] of mono float32 clips [N_i] at :attr:`sample_rate`."""

    @abc.abstractmethod
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Unit-norm text embeddings [B, D] of a non-empty list of strings."""

    def embed_audio(self, audio: AudioBatch) -> torch.Tensor:
        """Unit-norm audio embeddings [B, D].

        Args:
            audio: a ``Waveform`` (any rate, any channels: mixed to mono and resampled), a list of them, or a float
                tensor [B, N] (or [N]) of mono clips at :attr:`sample_rate`.
        """
        return self.embed_clips(self.mono_clips(audio))

    def embed_text(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Unit-norm text embeddings [B, D] (B = 1 for a single string)."""
        return self.embed_texts(as_text_list(texts))

    def mono_clips(self, audio: AudioBatch) -> list[torch.Tensor]:
        """Normalise the inputs :meth:`embed_audio` accepts into mono float32 clips [N_i] at :attr:`sample_rate`."""
        if isinstance(audio, Waveform):
            audio = [audio]
        if isinstance(audio, torch.Tensor):
            if audio.ndim == 1:
                audio = audio[None]
            if audio.ndim != 2 or audio.shape[-1] == 0 or not audio.is_floating_point():
                raise ValueError(
                    f"audio tensor must be float [B, N] with N >= 1 (mono clips at {self.sample_rate} Hz), "
                    f"got {audio.dtype} of shape {tuple(audio.shape)}"
                )
            return [clip.detach().float().cpu() for clip in audio]
        clips = list(audio)
        if not clips:
            raise ValueError("audio must hold at least one clip, got an empty list")
        out = []
        for i, wav in enumerate(clips):
            if not isinstance(wav, Waveform):
                raise TypeError(f"audio[{i}] must be a Waveform, got {type(wav).__name__}")
            if wav.num_samples == 0:
                raise ValueError(f"audio[{i}] has no samples")
            out.append(wav.to_mono().resample(self.sample_rate).samples[0].detach().float().cpu())
        return out

    def similarity(self, audio: AudioBatch, texts: str | Sequence[str]) -> torch.Tensor:
        """Cosine similarity of every audio clip with every text: [B_audio, B_text], in [-1, 1]."""
        return self.embed_audio(audio) @ self.embed_text(texts).T

    def select_token(self, prompt: str, audio: AudioBatch, text_template: str | None = None) -> TokenChoice:
        """The content word of ``prompt`` whose text embedding is nearest the embedding of ``audio``.

        Args:
            prompt: the text prompt; its content words (:func:`content_words`) are the candidates.
            audio: one clip (a ``Waveform``, a one-element list, or a tensor [N] or [1, N]).
            text_template: overrides the encoder's ``text_template`` (``{word}`` marks the word).

        Returns:
            A :class:`TokenChoice`; on a tie the earlier word wins.

        Raises:
            ValueError: the prompt has no content words, or ``audio`` holds more than one clip.
        """
        words = content_words(prompt)
        if not words:
            raise ValueError(
                f"prompt has no content words: it names no object a sound could belong to (only function "
                f"words, places, directions and times of day): {prompt!r}"
            )
        template = self.text_template if text_template is None else _check_template(text_template)
        audio_embedding = self.embed_audio(audio)
        if audio_embedding.shape[0] != 1:
            raise ValueError(f"audio must be one clip for select_token, got {audio_embedding.shape[0]}")
        unique = list(dict.fromkeys(word for _, word in words))
        scores = (self.embed_text([template.format(word=w) for w in unique]) @ audio_embedding[0]).tolist()
        candidates = dict(zip(unique, (float(s) for s in scores)))
        best = max(unique, key=lambda w: (candidates[w], -unique.index(w)))
        index = next(i for i, w in words if w == best)
        logger.debug("select_token(%r): %r (%.3f) of %s", prompt, best, candidates[best], candidates)
        return TokenChoice(word=best, index=index, score=candidates[best], candidates=candidates)


def _check_template(template: str) -> str:
    if not isinstance(template, str) or "{word}" not in template:
        raise ValueError(f"text_template must be a str containing '{{word}}', got {template!r}")
    return template


def as_text_list(texts: str | Sequence[str]) -> list[str]:
    """A string or a sequence of strings -> a non-empty list of strings."""
    items = [texts] if isinstance(texts, str) else list(texts)
    if not items:
        raise ValueError("texts must hold at least one string, got an empty list")
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}")
    return items
