"""Speech from text with the espeak-ng synthesizer, run as a subprocess.

espeak-ng is a small formant synthesizer: robotic, but deterministic (the same arguments give the same samples, bit
for bit), offline and fast, which makes it a good source of test speech with known text. It writes 16-bit mono wav
at 22050 Hz; :func:`speak` loads that with :func:`avdiff.audio.io.load_audio` and resamples it to the rate asked for.

Voices are espeak-ng language names (``"en-us"``, ``"en-gb"``, ``"de"``) optionally with a variant after a plus sign
(``"en-us+f3"``, ``"en-gb+m2"``, ``"en-us+Storm"``; variant names are case-sensitive file names). MBROLA voices are
only usable when the ``mbrola`` program and its voice files are installed, which they usually are not.

Install espeak-ng on Debian/Ubuntu with ``sudo apt-get install espeak-ng``.
"""

from __future__ import annotations

import functools
import logging
import numbers
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from avdiff.audio.io import AudioLoadError, Waveform, load_audio

logger = logging.getLogger(__name__)

ESPEAK = "espeak-ng"
SPEED_RANGE_WPM = (80, 450)  # espeak-ng's documented range for -s (it silently clamps values outside)
PITCH_RANGE = (0, 99)  # espeak-ng's -p
_TIMEOUT_S = 60.0  # plus a little per character of text; espeak-ng runs ~100x faster than real time


class SpeechSynthesisError(RuntimeError):
    """espeak-ng failed, or was given something it cannot speak. The message says what and why."""


class EspeakNotFoundError(SpeechSynthesisError):
    """The espeak-ng program is not on PATH."""

    def __init__(self) -> None:
        super().__init__(
            f"espeak-ng is not installed (no {ESPEAK!r} on PATH); install the Debian package with "
            "`sudo apt-get install espeak-ng`"
        )


def espeak_available() -> bool:
    """Whether the espeak-ng program is on PATH."""
    return shutil.which(ESPEAK) is not None


def _espeak() -> str:
    """The path of the espeak-ng program. Raises :class:`EspeakNotFoundError` when there is none."""
    path = shutil.which(ESPEAK)
    if path is None:
        raise EspeakNotFoundError()
    return path


def _run(
    args: list[str], *, input_text: str | None = None, timeout_s: float = _TIMEOUT_S
) -> subprocess.CompletedProcess:
    """Run espeak-ng with ``args``; text goes in on stdin (so text starting with ``-`` is not read as an option)."""
    cmd = [_espeak(), *args]
    try:
        return subprocess.run(
            cmd,
            input=None if input_text is None else input_text.encode("utf-8"),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise SpeechSynthesisError(f"espeak-ng did not finish within {timeout_s:.0f} s") from e
    except OSError as e:
        raise SpeechSynthesisError(f"cannot run espeak-ng ({cmd[0]}): {e}") from e


def list_voices(language_prefix: str = "en") -> list[str]:
    """Voice (language) names that espeak-ng can speak and whose language starts with ``language_prefix``.

    ``"en"`` matches ``"en"``, ``"en-us"``, ``"en-gb-scotland"`` ... but not ``"eo"``; ``""`` lists every language.
    MBROLA voices are left out unless the ``mbrola`` program is installed. Each name is valid as
    ``speak(..., voice=name)``, optionally with a variant (``name + "+f3"``; see :func:`list_variants`).

    Returns:
        Sorted, de-duplicated names, e.g. ``["en", "en-029", "en-gb", ..., "en-us", "en-us-nyc"]``.
    """
    prefix = language_prefix.strip().lower()
    proc = _run([f"--voices={prefix}"] if prefix else ["--voices"])
    if proc.returncode != 0:
        raise SpeechSynthesisError(f"espeak-ng --voices failed: {_stderr(proc)}")
    names = _parse_voice_table(proc.stdout.decode("utf-8", "replace"), with_mbrola=shutil.which("mbrola") is not None)
    return sorted(n for n in names if not prefix or n == prefix or n.startswith(prefix + "-"))


def _parse_voice_table(table: str, *, with_mbrola: bool) -> set[str]:
    """Language names from ``espeak-ng --voices`` output: the Language column and the "(lang priority)" pairs.

    Columns: Pty, Language, Age/Gender, VoiceName, File, Other Languages. Variant rows (file ``!v/...``) are skipped.
    """
    names: set[str] = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5:
            continue
        language, file = fields[1], fields[4]
        if file.startswith("!v/") or (file.startswith("mb/") and not with_mbrola):
            continue
        names.add(language.lower())
        for token in fields[5:]:  # "(en-gb 3)(en 2)" splits into "(en-gb", "3)(en", "2)"
            for part in token.split("("):
                if part and not part[0].isdigit():
                    names.add(part.strip(")").lower())
    return names


@functools.lru_cache(maxsize=1)
def _data_dir() -> Path | None:
    """espeak-ng's data folder, from ``espeak-ng --version`` ("... Data at: /usr/lib/.../espeak-ng-data")."""
    proc = _run(["--version"])
    text = proc.stdout.decode("utf-8", "replace")
    if "Data at:" not in text:
        return None
    return Path(text.split("Data at:", 1)[1].strip())


def list_variants() -> list[str]:
    """Voice variant names (``"f3"``, ``"m1"``, ``"Storm"`` ...) usable as ``voice="en-us+<variant>"``.

    Empty when espeak-ng's data folder cannot be found.
    """
    data = _data_dir()
    folder = data / "voices" / "!v" if data is not None else None
    if folder is None or not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def _check_variant(voice: str) -> None:
    """espeak-ng silently ignores an unknown variant (``en-us+zz`` speaks as ``en-us``), so check it here."""
    if "+" not in voice:
        return
    variant = voice.split("+", 1)[1]
    known = list_variants()
    if not known or variant in known:
        return
    near = [v for v in known if v.lower() == variant.lower()]
    hint = f" (variant names are case-sensitive: did you mean {near[0]!r}?)" if near else ""
    shown = ", ".join(known[:12]) + (f" ... ({len(known)} in all; see list_variants())" if len(known) > 12 else "")
    raise SpeechSynthesisError(
        f"unknown espeak-ng voice variant {variant!r} in voice={voice!r}{hint}; variants: {shown}"
    )


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value!r}")
    return int(value)


def _stderr(proc: subprocess.CompletedProcess) -> str:
    """espeak-ng's error output on one line (its lines joined by "; "), or the exit status when it printed none."""
    lines = [line.strip() for line in proc.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return "; ".join(lines) or f"exit status {proc.returncode}"


def speak(
    text: str,
    *,
    voice: str = "en-us",
    speed_wpm: int = 160,
    pitch: int = 50,
    sample_rate: int = 16000,
    gap_ms: int = 0,
) -> Waveform:
    """Synthesize ``text`` with espeak-ng.

    The same arguments always give the same samples (espeak-ng is deterministic).

    Args:
        text: what to say (UTF-8; plain text, no SSML). Must contain something besides whitespace.
        voice: an espeak-ng voice, e.g. ``"en-us"``, ``"en-gb"``, ``"en-us+f3"`` (see :func:`list_voices` and
            :func:`list_variants`).
        speed_wpm: speaking rate in words per minute, 80..450.
        pitch: base pitch, 0..99 (espeak-ng's scale; 50 is the voice's normal pitch).
        sample_rate: output rate in Hz (espeak-ng speaks at 22050 Hz; the result is resampled).
        gap_ms: extra pause between words in milliseconds, >= 0 (espeak-ng's ``-g``, which counts 10 ms units,
            so this is rounded to 10 ms).

    Returns:
        A mono ``Waveform``: float32 samples [1, N] at ``sample_rate`` Hz.

    Raises:
        ValueError: empty text, or an argument out of range.
        EspeakNotFoundError: espeak-ng is not installed.
        SpeechSynthesisError: an unknown voice or variant, or espeak-ng failed.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"text must contain something to say, got {text!r}")
    if not isinstance(voice, str) or not voice.strip():
        raise ValueError(f"voice must be an espeak-ng voice name such as 'en-us' or 'en-us+f3', got {voice!r}")
    voice = voice.strip()
    speed_wpm = _check_int("speed_wpm", speed_wpm, *SPEED_RANGE_WPM)
    pitch = _check_int("pitch", pitch, *PITCH_RANGE)
    sample_rate = _check_int("sample_rate", sample_rate, 1, 10**6)
    gap_ms = _check_int("gap_ms", gap_ms, 0, 10**5)
    _espeak()  # a missing program is reported before anything else
    _check_variant(voice)

    with tempfile.TemporaryDirectory(prefix="avdiff-tts-") as tmp:
        out = os.path.join(tmp, "speech.wav")
        args = ["-v", voice, "-s", str(speed_wpm), "-p", str(pitch), "-g", str((gap_ms + 5) // 10), "-b", "1"]
        proc = _run([*args, "-w", out, "--stdin"], input_text=text, timeout_s=_TIMEOUT_S + len(text) / 50)
        if proc.returncode != 0:
            message = _stderr(proc)
            if "voice does not exist" in message or "voice file" in message:
                raise SpeechSynthesisError(
                    f"unknown or unavailable espeak-ng voice {voice!r} ({message}); see avdiff.audio.tts.list_voices()"
                )
            raise SpeechSynthesisError(f"espeak-ng failed for voice {voice!r}: {message}")
        try:
            wav = load_audio(out, mono=True)
        except AudioLoadError as e:
            raise SpeechSynthesisError(f"espeak-ng produced no usable audio for {text[:40]!r}: {e.reason}") from e

    logger.debug("espeak-ng %s: %d chars -> %.3f s at %d Hz", voice, len(text), wav.duration_s, wav.sample_rate)
    if float(wav.samples.abs().max()) == 0.0:
        logger.warning("espeak-ng produced only silence for %r", text[:40])
    return wav.resample(sample_rate)
