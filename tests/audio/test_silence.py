"""The speech warnings' log can be held back by a caller that says them itself, in its own thread only."""

import logging
import threading

import pytest
import torch

from avdiff.audio.io import Waveform
from avdiff.audio.silence import held_back, speech_warnings

SILENCE = Waveform(torch.zeros(1, 16000), 16000)


def test_held_back_silences_this_thread_only_and_is_undone_on_error(caplog):
    caplog.set_level(logging.WARNING, logger="avdiff.audio.silence")
    with pytest.raises(RuntimeError), held_back():
        assert speech_warnings(SILENCE, "mine")  # the sentences are still returned
        other = threading.Thread(target=speech_warnings, args=(SILENCE, "theirs"))
        other.start()
        other.join()
        raise RuntimeError("the caller fails")
    speech_warnings(SILENCE, "after")
    names = [r.getMessage().split(":")[0] for r in caplog.records]
    assert names == ["theirs", "after"]
    assert not logging.getLogger("avdiff.audio.silence").filters
