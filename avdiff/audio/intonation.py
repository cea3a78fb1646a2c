"""Speech with a new intonation: its F0 contour moved by a smooth random curve, its timing and voice kept.

espeak-ng's intonation is rule-based: the F0 of a sentence follows from its words, their stress and the punctuation.
A model taught to turn the head with the F0 of espeak-ng speech can therefore learn to guess the contour from the
words instead of hearing it, and the motion model did: with the F0 of the twelve three-sentence held-out clips
redrawn by :func:`random_intonation` (timing, phonemes and voice unchanged), its yaw followed the F0 the speech no
longer had (r 0.53) and not the F0 it had (r 0.19). Training on speech whose contour has been redrawn, with the truth
built from the new speech, leaves hearing as the only way to follow it.

The F0 is moved by pitch-synchronous overlap-add (PSOLA; Moulines and Charpentier, 1990, "Pitch-synchronous waveform
processing techniques for text-to-speech synthesis using diphones", Speech Communication 9) in Praat (Boersma and
Weenink), through parselmouth (Jadoul, Thompson and de Boer, 2018, "Introducing Parselmouth: A Python interface to
Praat", Journal of Phonetics 71): ``To Manipulation``, its pitch tier multiplied by ``2 ** (c(t) / 12)``, and ``Get
resynthesis (overlap-add)``.
"""

from __future__ import annotations

import logging

import numpy as np
import parselmouth
import torch
from parselmouth.praat import call

from avdiff.audio.io import Waveform
from avdiff.audio.pitch import F0_RANGE_HZ, HOP_S

logger = logging.getLogger(__name__)

CONTOUR_HZ = (0.3, 1.2)  # the new contour's components: a rise or fall over a phrase to one over a syllable or two
CONTOUR_WAVES = 3  # sines summed into the contour


def random_contour(rng: np.random.Generator, semitones: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random pitch contour: the sum of :data:`CONTOUR_WAVES` sines of random frequencies in
    :data:`CONTOUR_HZ` and random phases, scaled to a spread of ``semitones``.

    Returns:
        ``(frequencies_hz, phases)``, float64 [CONTOUR_WAVES] each: the contour at ``t`` seconds is
        ``semitones * sum(sin(2 pi f t + phase)) / sqrt(CONTOUR_WAVES / 2)`` semitones (:func:`contour_at`).

    Raises:
        ValueError: ``semitones`` negative or not finite.
    """
    if not (np.isfinite(semitones) and semitones >= 0):
        raise ValueError(f"semitones must be finite and >= 0, got {semitones!r}")
    return rng.uniform(*CONTOUR_HZ, size=CONTOUR_WAVES), rng.uniform(0, 2 * np.pi, size=CONTOUR_WAVES)


def contour_at(times_s: np.ndarray, contour: tuple[np.ndarray, np.ndarray], semitones: float) -> np.ndarray:
    """The contour of :func:`random_contour` at ``times_s`` (s), in semitones (float64, the shape of ``times_s``)."""
    freqs, phases = contour
    t = np.asarray(times_s, np.float64)[..., None]
    return semitones * np.sin(2 * np.pi * freqs * t + phases).sum(axis=-1) / np.sqrt(len(freqs) / 2)


def reintonate(speech: Waveform, contour: tuple[np.ndarray, np.ndarray], semitones: float) -> Waveform:
    """``speech`` with its F0 multiplied by ``2 ** (contour_at(t) / 12)`` (PSOLA, module doc).

    Args:
        speech: mono speech, [N] or [1, N] samples.
        contour: :func:`random_contour`'s ``(frequencies_hz, phases)``.
        semitones: the contour's spread.

    Returns:
        A mono [1, N] waveform at ``speech``'s rate, the same length: phonemes stay where they were, to the sample's
        scale of a pitch period. Speech in which Praat finds no voiced step comes back unchanged.

    Raises:
        ValueError: more than one channel, or ``semitones`` negative or not finite.
    """
    samples = speech.samples
    if samples.ndim == 2:
        if samples.shape[0] != 1:
            raise ValueError(f"speech must be mono, got {samples.shape[0]} channels")
        samples = samples[0]
    if not (np.isfinite(semitones) and semitones >= 0):
        raise ValueError(f"semitones must be finite and >= 0, got {semitones!r}")
    x = samples.double().cpu().numpy()
    rate = speech.sample_rate
    n = len(x)
    if n < int(3 * rate / F0_RANGE_HZ[0]):  # Praat's pitch analysis needs three periods of the lowest F0
        return Waveform(samples.float()[None].clone(), rate)
    sound = parselmouth.Sound(x, sampling_frequency=rate)
    manipulation = call(sound, "To Manipulation", HOP_S, F0_RANGE_HZ[0], F0_RANGE_HZ[1])
    tier = call(manipulation, "Extract pitch tier")
    points = int(call(tier, "Get number of points"))
    if points == 0:
        logger.debug("no voiced step in %.2f s of speech: its intonation is left as it is", n / rate)
        return Waveform(samples.float()[None].clone(), rate)
    freqs, phases = contour
    scale = semitones / np.sqrt(len(freqs) / 2)
    waves = " + ".join(f"sin({2 * np.pi * f!r} * x + {p!r})" for f, p in zip(freqs, phases, strict=True))
    call(tier, "Formula", f"self * 2 ^ ({scale!r} * ({waves}) / 12)")
    call([tier, manipulation], "Replace pitch tier")
    out = np.asarray(call(manipulation, "Get resynthesis (overlap-add)").values[0], np.float32)
    out = np.pad(out[:n], (0, max(0, n - len(out))))
    return Waveform(torch.from_numpy(out)[None], rate)


def random_intonation(speech: Waveform, rng: np.random.Generator, semitones: float = 2.0) -> Waveform:
    """:func:`reintonate` by a :func:`random_contour` drawn from ``rng`` (same returns and errors)."""
    return reintonate(speech, random_contour(rng, semitones), semitones)
