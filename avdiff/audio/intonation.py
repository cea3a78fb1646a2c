"""Speech with a new intonation: its F0 contour moved by a smooth random curve, its timing and voice kept.

espeak-ng's intonation is rule-based: the F0 of a sentence follows from its words, their stress and the punctuation.
A model taught to turn the head with the F0 of espeak-ng speech can therefore learn to guess the contour from the
words instead of hearing it, and the motion model did: with the F0 of the twelve three-sentence held-out clips
redrawn by :func:`random_intonation` (timing, phonemes and voice unchanged), its yaw followed the F0 the speech no
longer had (r 0.543) and not the F0 it had (r 0.177; ``docs/yaw_hears_f0.py``). A new contour multiplies the old one,
so in speech given one the words still predict part of the F0, and the rest can only be heard.

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

Contour = tuple[np.ndarray, np.ndarray]  # (frequencies in Hz, phases in radians), float64 [CONTOUR_WAVES] each


def random_contour(rng: np.random.Generator) -> Contour:
    """A smooth random pitch contour's shape: :data:`CONTOUR_WAVES` sines of random frequencies in :data:`CONTOUR_HZ`
    and random phases, drawn from ``rng`` (:func:`contour_at` scales it)."""
    return rng.uniform(*CONTOUR_HZ, size=CONTOUR_WAVES), rng.uniform(0, 2 * np.pi, size=CONTOUR_WAVES)


def _scale(contour: Contour, semitones: float) -> float:
    """What the sum of the contour's sines is multiplied by, for a standard deviation of ``semitones`` (a sine's is
    1/sqrt(2), and independent phases add in quadrature)."""
    return float(semitones) / float(np.sqrt(len(contour[0]) / 2))


def contour_at(times_s: np.ndarray, contour: Contour, semitones: float) -> np.ndarray:
    """The contour at ``times_s`` (s), in semitones: the sum of its sines scaled so that its standard deviation over
    a long stretch is ``semitones`` (float64, the shape of ``times_s``)."""
    freqs, phases = contour
    t = np.asarray(times_s, np.float64)[..., None]
    return _scale(contour, semitones) * np.sin(2 * np.pi * freqs * t + phases).sum(axis=-1)


def reintonate(speech: Waveform, contour: Contour, semitones: float) -> Waveform:
    """``speech`` with its F0 multiplied by ``2 ** (contour_at(t, contour, semitones) / 12)`` (PSOLA, module doc).

    Args:
        speech: speech, [C, N] samples (channels averaged, :meth:`~avdiff.audio.io.Waveform.to_mono`).
        contour: :func:`random_contour`'s shape.
        semitones: the contour's standard deviation, >= 0.

    Returns:
        A mono float32 [1, N] waveform at ``speech``'s rate, the same length, within [-1, 1]: phonemes stay where
        they were, to within a pitch period. Speech in which Praat finds no voiced step, or too short for its pitch
        analysis (three periods of 60 Hz), comes back as it is (mono, float32).

    Raises:
        ValueError: ``semitones`` negative or not finite, or samples that are not finite.
    """
    if not (np.isfinite(semitones) and semitones >= 0):
        raise ValueError(f"semitones must be finite and >= 0, got {semitones!r}")
    mono = speech.to_mono()
    x = mono.samples[0].double().cpu().numpy()
    if not np.isfinite(x).all():
        raise ValueError("speech has samples that are not finite (NaN or inf)")
    rate, n = mono.sample_rate, len(x)
    unchanged = Waveform(mono.samples.float().clone(), rate)
    try:
        sound = parselmouth.Sound(x, sampling_frequency=rate)
        manipulation = call(sound, "To Manipulation", HOP_S, F0_RANGE_HZ[0], F0_RANGE_HZ[1])
    except parselmouth.PraatError:  # too short for the pitch analysis
        logger.debug("%.3f s of speech is too short for a pitch analysis: its intonation is left as it is", n / rate)
        return unchanged
    tier = call(manipulation, "Extract pitch tier")
    if int(call(tier, "Get number of points")) == 0:
        logger.debug("no voiced step in %.2f s of speech: its intonation is left as it is", n / rate)
        return unchanged
    freqs, phases = contour
    scale = _scale(contour, semitones)  # Praat's formula holds contour_at, written out
    waves = " + ".join(f"sin({2 * np.pi * float(f)!r} * x + {float(p)!r})" for f, p in zip(freqs, phases, strict=True))
    call(tier, "Formula", f"self * 2 ^ ({scale!r} * ({waves}) / 12)")
    call([tier, manipulation], "Replace pitch tier")
    out = np.asarray(call(manipulation, "Get resynthesis (overlap-add)").values[0], np.float32)
    out = np.clip(np.pad(out[:n], (0, max(0, n - len(out)))), -1.0, 1.0)
    return Waveform(torch.from_numpy(out)[None], rate)


def random_intonation(speech: Waveform, rng: np.random.Generator, semitones: float = 2.0) -> Waveform:
    """:func:`reintonate` by a :func:`random_contour` drawn from ``rng`` (same returns and errors)."""
    return reintonate(speech, random_contour(rng), semitones)
