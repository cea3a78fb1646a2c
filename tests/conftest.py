"""Shared test set-up: offline, seeded, few threads."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from avdiff.audio.io import Waveform  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    np.random.seed(0)
    yield


def tone(seconds: float = 1.0, sample_rate: int = 16000, freq_hz: float = 440.0, channels: int = 1, amp: float = 0.5) -> Waveform:
    """A sine tone Waveform [channels, N]."""
    t = torch.arange(int(round(seconds * sample_rate)), dtype=torch.float64) / sample_rate
    x = (amp * torch.sin(2 * torch.pi * freq_hz * t)).float()[None].repeat(channels, 1)
    return Waveform(x, sample_rate)
