"""Shared test set-up: offline, seeded, and one rule for tests that need espeak-ng.

The demo's browser tests share :func:`browser` (Debian's chromium driven by Python playwright; see
``demo_server.py``).

Tests (and the fixtures they use) that need the espeak-ng program carry ``@pytest.mark.requires_espeak`` (or a
module-level ``pytestmark``). Without espeak-ng they skip before any fixture runs, all with the one reason
:data:`ESPEAK_MISSING`, so ``-ra`` folds them into a single line and the header names the missing tool. Tests that
need an NVIDIA GPU carry ``@pytest.mark.gpu`` and skip the same way, with the one reason :data:`CUDA_MISSING`.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from avdiff.audio.io import Waveform  # noqa: E402
from avdiff.audio.numba_cache import ensure_numba_cache  # noqa: E402
from avdiff.audio.tts import espeak_available  # noqa: E402

ESPEAK_MISSING = "espeak-ng is not installed (no 'espeak-ng' on PATH; sudo apt-get install espeak-ng)"
CUDA_MISSING = "CUDA is not available (the gpu tests need an NVIDIA GPU with a CUDA build of torch)"


def pytest_report_header(config) -> list[str]:
    espeak = "espeak-ng: found"
    if not espeak_available():
        espeak = f"espeak-ng: MISSING; every test marked requires_espeak skips: {ESPEAK_MISSING}"
    cuda = f"CUDA: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "CUDA: none; gpu tests skip"
    return [espeak, cuda]


def pytest_sessionstart(session) -> None:
    """librosa's numba kernels compiled (or checked) once, before tests call librosa here and in the processes they
    start at once (:mod:`avdiff.audio.numba_cache`)."""
    ensure_numba_cache()


def pytest_runtest_setup(item) -> None:
    """Skip a ``requires_espeak`` test before its fixtures run (they would make speech and error instead), and a
    ``gpu`` test where CUDA is not available."""
    if item.get_closest_marker("requires_espeak") is not None and not espeak_available():
        pytest.skip(ESPEAK_MISSING)
    if item.get_closest_marker("gpu") is not None and not torch.cuda.is_available():
        pytest.skip(CUDA_MISSING)


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    np.random.seed(0)
    yield


def tone(
    seconds: float = 1.0, sample_rate: int = 16000, freq_hz: float = 440.0, channels: int = 1, amp: float = 0.5
) -> Waveform:
    """A sine tone Waveform [channels, N]."""
    t = torch.arange(int(round(seconds * sample_rate)), dtype=torch.float64) / sample_rate
    x = (amp * torch.sin(2 * torch.pi * freq_hz * t)).float()[None].repeat(channels, 1)
    return Waveform(x, sample_rate)


@pytest.fixture(scope="module")
def one_thread():
    """One torch intra-op thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``), restored
    after: on a shared 2-core machine two OpenMP threads are many times slower than one, and a process-wide setting
    made at import would leak into other modules."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def browser():
    """Headless chromium (Debian's /usr/bin/chromium) through Python playwright, for one test module. The modules
    that use it skip first when either is missing (``demo_server.chromium_skip_reason``)."""
    from playwright.sync_api import sync_playwright

    from demo_server import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()
