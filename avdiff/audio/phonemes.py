"""Speech with phoneme events exact to the sample, from espeak-ng's C library through ctypes.

:func:`speak_with_phonemes` drives the same engine as :func:`avdiff.audio.tts.speak` (libespeak-ng, which the
``espeak-ng`` program is a thin front end of), in its synchronous mode with phoneme events switched on
(``espeakINITIALIZE_PHONEME_EVENTS``). Every event carries ``sample``: the index, counted from the first sample of
the utterance at 22050 Hz, at which the synthesizer's wave generator reached the phoneme's marker. That is exact to
the sample by construction: the marker is a command in the same queue as the sound. The samples themselves are the
program's, bit for bit (the tests compare them with :func:`~avdiff.audio.tts.speak`).

What a phoneme event spans (checked on espeak-ng 1.51 and written down here because it matters for the lips):

* a phoneme runs from its marker to the next phoneme's marker; the first phoneme may start after some leading
  silence, which is reported as a pause ``"_"`` event, so the events tile ``[0, num_samples)`` with no gap;
* a voiceless stop's marker (``p``, ``t``, ``k``, ``tS``) is at its **release** (the burst): the silent closure
  before it is the tail of the previous phoneme's span. :attr:`PhonemeEvent.closure_sample` gives where that
  closure starts: the first sample of the run of exact zeros (espeak-ng's pauses are digital silence) that ends at
  the marker, at most :data:`MAX_CLOSURE_S` before it. Voiced stops (``b``, ``d``, ``g``) are voiced through their
  closure, so their span holds it and ``closure_sample`` is their start.
* pauses are ``"_"`` (short) and ``"_:"`` (clause end); the trailing zero-length ``"_"`` espeak-ng sends at the very
  end is dropped.

Sample positions at the output rate ``sr`` are ``floor(s * sr / 22050)`` of the positions ``s`` at 22050 Hz (the
instant a 22050 Hz sample starts falls in that output sample), and the audio is resampled with
:meth:`avdiff.audio.io.Waveform.resample`, as :func:`~avdiff.audio.tts.speak` does.

libespeak-ng is one global state per process and that state carries from one utterance to the next (the same text
spoken twice in one process differs by a few samples; terminating and re-initialising the library hangs on 1.51).
So each call runs the library in a fresh Python process (``_espeak_worker.py``, standard library only, ~50 ms to
start), exactly as the ``espeak-ng`` program runs it once per call: deterministic, and safe from any thread or
process without a lock.
"""

from __future__ import annotations

import ctypes.util
import functools
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avdiff.audio.io import Waveform
from avdiff.audio.tts import (
    PITCH_RANGE,
    SPEED_RANGE_WPM,
    EspeakNotFoundError,
    SpeechSynthesisError,
    _check_int,
    _check_variant,
)

logger = logging.getLogger(__name__)

ESPEAK_LIBRARY = "libespeak-ng.so.1"  # Debian's libespeak-ng1, installed with the espeak-ng program
ESPEAK_RATE = 22050  # espeak-ng's own output rate; espeak_Initialize returns it and it is checked
MAX_CLOSURE_S = 0.15  # the longest silent closure credited to a voiceless stop (a pause before it is not all closure)
VOICELESS_STOPS = frozenset({"p", "t", "k", "tS", "t#", "t2", "k-", "p2"})

WORKER = Path(__file__).with_name("_espeak_worker.py")  # run as a script in a fresh process per utterance
_TIMEOUT_S = 60.0  # plus a little per character, as in tts


class EspeakLibraryNotFoundError(EspeakNotFoundError):
    """The espeak-ng shared library (libespeak-ng.so.1) cannot be loaded."""

    def __init__(self, reason: str) -> None:
        SpeechSynthesisError.__init__(
            self,
            f"the espeak-ng library ({ESPEAK_LIBRARY}) cannot be loaded: {reason}; install the Debian package with "
            "`sudo apt-get install espeak-ng` (it brings libespeak-ng1)",
        )


@dataclass(frozen=True)
class PhonemeEvent:
    """One phoneme of synthesized speech, in samples at the waveform's rate.

    Attributes:
        phoneme: espeak-ng's phoneme mnemonic (``"p"``, ``"A:"``, ``"aI"``, ``"@2"``; pauses ``"_"``, ``"_:"``).
        start_sample: first sample of the phoneme (espeak-ng's marker; for a stop, its release).
        end_sample: one past its last sample (the next phoneme's start). ``start_sample < end_sample``.
        closure_sample: for a voiceless stop, the first sample of its silent closure (``<= start_sample``; see the
            module doc); for anything else, ``start_sample``.
    """

    phoneme: str
    start_sample: int
    end_sample: int
    closure_sample: int


@functools.lru_cache(maxsize=1)
def espeak_library() -> str:
    """The espeak-ng shared library to load: found by ``ctypes.util.find_library``, else its Debian soname."""
    return ctypes.util.find_library("espeak-ng") or ESPEAK_LIBRARY


@functools.lru_cache(maxsize=1)
def espeak_version() -> str | None:
    """The version of the espeak-ng library :func:`speak_with_phonemes` runs, as the library reports it
    (``espeak_Info``, e.g. ``"1.51"``), read once per process: the library is loaded here but never initialised, so
    no synthesis state is made in this process. For caches of synthesized speech, which an upgrade must invalidate.

    Returns:
        The version string, or None when the library cannot be loaded (or does not say), which synthesis reports
        itself as an error.
    """
    try:
        info = ctypes.CDLL(espeak_library()).espeak_Info
    except (OSError, AttributeError) as e:
        logger.debug("espeak-ng's version cannot be read: %s", e)
        return None
    info.restype, info.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
    raw = info(None)  # const char *espeak_Info(const char **path_data): no initialisation needed
    return raw.decode("utf-8", "replace") if raw else None


def _synth(text: str, voice: str, speed_wpm: int, pitch: int, gap_ms: int) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Samples int16 [N] at 22050 Hz and the phoneme markers ``[(mnemonic, sample)]`` as sent, from the worker."""
    cmd = [
        sys.executable,
        "-I",
        str(WORKER),
        espeak_library(),
        voice,
        str(speed_wpm),
        str(pitch),
        str((gap_ms + 5) // 10),
    ]
    timeout_s = _TIMEOUT_S + len(text) / 50
    try:
        proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as e:
        raise SpeechSynthesisError(f"espeak-ng did not finish within {timeout_s:.0f} s") from e
    except OSError as e:
        raise SpeechSynthesisError(f"cannot run the espeak-ng worker ({cmd[0]}): {e}") from e
    message = proc.stderr.decode("utf-8", "replace").strip().replace("\n", "; ")
    if proc.returncode == 3:
        raise EspeakLibraryNotFoundError(message)
    if proc.returncode == 4:
        raise SpeechSynthesisError(
            f"unknown or unavailable espeak-ng voice {voice!r} ({message}); see avdiff.audio.tts.list_voices()"
        )
    if proc.returncode != 0:
        raise SpeechSynthesisError(f"espeak-ng failed for voice {voice!r}: {message or proc.returncode}")
    header, _, raw = proc.stdout.partition(b"\n")
    info = json.loads(header)
    if info["rate"] != ESPEAK_RATE:
        raise SpeechSynthesisError(f"espeak-ng speaks at {info['rate']} Hz here, expected {ESPEAK_RATE} Hz")
    samples = np.frombuffer(raw, dtype="<i2").copy()
    return samples, [(str(name), int(sample)) for name, sample in info["events"]]


def _closure_start(samples: np.ndarray, release: int, earliest: int) -> int:
    """First sample of the run of exact zeros ending at ``release``, not before ``earliest``."""
    lo = max(earliest, release - int(MAX_CLOSURE_S * ESPEAK_RATE))
    nonzero = np.flatnonzero(samples[lo:release])
    return lo if nonzero.size == 0 else lo + int(nonzero[-1]) + 1


def _events_at_22050(samples: np.ndarray, markers: list[tuple[str, int]]) -> list[PhonemeEvent]:
    """Markers in order -> events tiling [0, N) at 22050 Hz (see the module doc)."""
    n = len(samples)
    starts = [s for _, s in markers]
    if any(b < a for a, b in zip(starts, starts[1:])) or any(not 0 <= s <= n for s in starts):
        raise SpeechSynthesisError(
            f"espeak-ng sent phoneme positions out of order or outside the {n} samples it made: the library's "
            "event layout is not the one this module reads (an unexpected espeak-ng version?)"
        )
    if not markers or markers[0][1] > 0:
        markers = [("_", 0), *markers]
    events = []
    for k, (name, start) in enumerate(markers):
        end = markers[k + 1][1] if k + 1 < len(markers) else n
        if end <= start:
            continue  # zero-length: the final "_" and markers sent at the same sample
        closure = start
        if name in VOICELESS_STOPS and k > 0:
            closure = _closure_start(samples, start, markers[k - 1][1])
        events.append(PhonemeEvent(name, start, end, closure))
    return events


def _scale(position: int, sample_rate: int) -> int:
    return position * sample_rate // ESPEAK_RATE


def speak_with_phonemes(
    text: str,
    *,
    voice: str = "en-us",
    speed_wpm: int = 160,
    pitch: int = 50,
    sample_rate: int = 16000,
    gap_ms: int = 0,
) -> tuple[Waveform, list[PhonemeEvent]]:
    """Synthesize ``text`` with espeak-ng and report where each phoneme is, exact to the sample.

    The waveform is the one :func:`avdiff.audio.tts.speak` gives for the same arguments (the same engine, samples
    equal bit for bit at 22050 Hz before resampling).

    Args:
        text: what to say (UTF-8 plain text). Must contain something besides whitespace.
        voice: an espeak-ng voice such as ``"en-us"`` or ``"en-us+f3"``. Phoneme names depend on the language.
        speed_wpm: speaking rate in words per minute, 80..450.
        pitch: base pitch, 0..99.
        sample_rate: output rate in Hz; audio and event positions are at this rate.
        gap_ms: extra pause between words in milliseconds (rounded to 10 ms), as in ``speak``.

    Returns:
        ``(waveform, events)``: a mono float32 ``Waveform`` [1, N] at ``sample_rate`` and the phonemes in order,
        tiling ``[0, N)``: the first starts at 0, each ends where the next starts, the last ends at ``N``.

    Raises:
        ValueError: empty text or an argument out of range.
        EspeakNotFoundError: the espeak-ng library is not installed (:class:`EspeakLibraryNotFoundError`), or the
            program is not, for a voice with a variant (its list of variants comes from the program).
        SpeechSynthesisError: an unknown voice or variant, or the synthesis failed.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"text must contain something to say, got {text!r}")
    if "\0" in text:
        raise ValueError("text must not contain NUL characters")
    if not isinstance(voice, str) or not voice.strip():
        raise ValueError(f"voice must be an espeak-ng voice name such as 'en-us' or 'en-us+f3', got {voice!r}")
    voice = voice.strip()
    speed_wpm = _check_int("speed_wpm", speed_wpm, *SPEED_RANGE_WPM)
    pitch = _check_int("pitch", pitch, *PITCH_RANGE)
    sample_rate = _check_int("sample_rate", sample_rate, 1, 10**6)
    gap_ms = _check_int("gap_ms", gap_ms, 0, 10**5)

    _check_variant(voice)
    samples, markers = _synth(text, voice, speed_wpm, pitch, gap_ms)
    if samples.size == 0:
        raise SpeechSynthesisError(f"espeak-ng produced no audio for {text[:40]!r}")
    events = _events_at_22050(samples, markers)
    wav = Waveform(torch.from_numpy(samples.astype(np.float32) / 32768.0)[None, :], ESPEAK_RATE).resample(sample_rate)
    n = wav.num_samples
    scaled = []
    for e in events:
        start, end = _scale(e.start_sample, sample_rate), _scale(e.end_sample, sample_rate)
        end = n if e is events[-1] else end
        if end > start:
            scaled.append(PhonemeEvent(e.phoneme, start, end, _scale(e.closure_sample, sample_rate)))
    logger.debug(
        "espeak-ng %s: %d chars -> %d phonemes, %d samples at %d Hz", voice, len(text), len(scaled), n, sample_rate
    )
    return wav, scaled
