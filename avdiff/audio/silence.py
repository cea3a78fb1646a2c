"""Is there speech to animate? The one policy for silent and near-empty speech, used by both talking-head pipelines
(and so by ``avdiff talk`` and the demo) and by lip-sync scoring.

Policy:

* **Silent speech** (the loudest :data:`LEVEL_WINDOW_S` of every channel is below :data:`SILENCE_DBFS`; digital
  silence is -inf dBFS): a warning, "the speech is silent: the mouth will not move". The video is still made (a still
  face is what silence looks like), and its lip sync is not scored (there is no loudness to follow).
* **Near-empty speech** (shorter than :data:`MIN_SPEECH_S`): a warning; the video is still made, a few frames long,
  too short to show speech or to score its lip sync (which needs one second at 25 fps).

Neither is an error: both are valid audio that gives a valid video, and a caller may want exactly that (a still
face for a pause). :func:`speech_warnings` logs each warning, naming the input, and returns the sentences, which the
pipelines put on their output (``VideoPipelineOutput.warnings``), ``avdiff talk`` prints to stderr (once: it holds
the log back during its call, :func:`held_back`), and the demo shows beside the score. The sentences hold no path,
so the demo can show them as they are.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Iterator

import numpy as np

from avdiff.audio.io import Waveform

logger = logging.getLogger(__name__)

SILENCE_DBFS = -60.0  # a clip whose loudest window is below this is silent: a quiet room, not a quiet voice
LEVEL_WINDOW_S = 0.02  # the window the loudness is measured over (about one pitch period of speech, x4)
MIN_SPEECH_S = 0.5  # shorter speech is near-empty: about two syllables


def peak_level_dbfs(waveform: Waveform, window_s: float = LEVEL_WINDOW_S) -> float:
    """The RMS of the loudest ``window_s`` window of any channel, in dBFS (0 dBFS: a full-scale square wave; -inf:
    digital silence). Windows do not overlap; a clip shorter than one window is one window.

    Args:
        waveform: audio [C, N] at any rate.
        window_s: window length, seconds (> 0).
    """
    if not window_s > 0:
        raise ValueError(f"window_s must be a positive number of seconds, got {window_s!r}")
    x = waveform.samples.detach().cpu().double().numpy()  # (C, N)
    if x.size == 0:
        return -math.inf
    size = max(1, min(x.shape[1], round(window_s * waveform.sample_rate)))
    count = -(-x.shape[1] // size)
    padded = np.zeros((x.shape[0], count * size))
    padded[:, : x.shape[1]] = x * x
    power = padded.reshape(x.shape[0], count, size).sum(axis=2)
    power[:, -1] /= x.shape[1] - (count - 1) * size  # the last window averages the samples it has
    power[:, :-1] /= size
    peak = float(power.max())
    return 10.0 * math.log10(peak) if peak > 0 else -math.inf


def is_silent(waveform: Waveform, threshold_dbfs: float = SILENCE_DBFS) -> bool:
    """Whether the loudest window of ``waveform`` is below ``threshold_dbfs`` (see :func:`peak_level_dbfs`)."""
    return peak_level_dbfs(waveform) < threshold_dbfs


def describe_level(level_dbfs: float) -> str:
    """``"digital silence: every sample is zero"`` or ``"its loudest moment is -72 dBFS"``."""
    if math.isinf(level_dbfs):
        return "digital silence: every sample is zero"
    return f"its loudest moment is {level_dbfs:.0f} dBFS, below the {SILENCE_DBFS:g} dBFS of silence"


def speech_warnings(waveform: Waveform, name: str = "the speech") -> list[str]:
    """The warnings of this module's policy for ``waveform`` (none for ordinary speech), each one sentence with no
    path in it; each is logged (``logger.warning``) with ``name``, the input as the caller knows it (a file name, an
    argument).

    Returns:
        ``[]``, or sentences such as ``"The speech is silent: the mouth will not move (digital silence: every sample is
        zero)."``
    """
    out = []
    level = peak_level_dbfs(waveform)
    if level < SILENCE_DBFS:
        out.append(f"The speech is silent: the mouth will not move ({describe_level(level)}).")
    if waveform.duration_s < MIN_SPEECH_S:
        out.append(
            f"The speech is only {waveform.duration_s:.2f} s long (under {MIN_SPEECH_S:g} s): too short to "
            "show speech, and to score its lip sync."
        )
    for sentence in out:
        logger.warning("%s: %s", name, sentence[0].lower() + sentence[1:])
    return out


@contextlib.contextmanager
def held_back() -> Iterator[None]:
    """Within the block, :func:`speech_warnings` logs nothing for this thread (other threads log as ever): for a
    caller that says the returned sentences itself, as ``avdiff talk`` does after the video is written."""
    thread = threading.get_ident()

    def other_threads(record: logging.LogRecord) -> bool:
        return record.thread != thread

    logger.addFilter(other_threads)
    try:
        yield
    finally:
        logger.removeFilter(other_threads)
