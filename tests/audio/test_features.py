import math

import pytest
import torch

from avdiff.audio import FrameClock, LogMel, log_mel


def test_units_become_samples():
    mel = LogMel(16000, n_mels=80, win_s=0.025, hop_s=0.01)
    assert (mel.win_length, mel.hop_length, mel.n_fft) == (400, 160, 512)
    x = torch.randn(3, 16000)
    out = mel(x)
    assert out.shape == (3, 80, mel.num_steps(16000)) == (3, 80, 101)
    assert torch.isfinite(out).all() and out.min() >= math.log(mel.log_floor) - 1e-6


def test_batched_equals_one_by_one():
    mel = LogMel(16000)
    x = torch.randn(4, 8000)
    torch.testing.assert_close(mel(x), torch.stack([mel(xi) for xi in x]), atol=1e-4, rtol=1e-4)


def test_frame_windows_put_a_click_in_its_frame():
    sr, fps = 16000, 25
    clock, mel = FrameClock(fps, sr), LogMel(sr)
    x = torch.zeros(sr * 2)
    frame = 17
    start, stop = clock.sample_range(frame)
    x[start + 200 : start + 240] = torch.randn(40)  # a burst inside frame 17 only
    windows = mel.frame_windows(mel(x), clock, context=2)  # [F, n_mels, W]
    assert windows.shape == (50, 80, clock.window_length(2, mel.hop_length)) == (50, 80, 20)
    energy = windows.exp().sum(dim=1)  # [F, W]
    centre = slice(8, 12)  # the 4 steps of the frame itself (context 2 frames * 4 steps before it)
    loudest = energy[:, centre].sum(dim=1).argmax()
    assert int(loudest) == frame
    # frames further than the context away never see the burst
    assert energy[frame + 4].max() < 1e-3 * energy[frame].max()
    # padding past the ends is silence (the log floor), not zeros
    assert windows[0, :, 0].max() == pytest.approx(math.log(mel.log_floor))


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="Nyquist"):
        LogMel(16000, f_max_hz=9000)
    with pytest.raises(ValueError, match="under one sample"):
        LogMel(16000, hop_s=1e-6)
    with pytest.raises(ValueError, match="Hz"):
        LogMel(16000).frame_windows(torch.zeros(80, 10), FrameClock(25, 22050))


def test_log_mel_runs_on_the_requested_device():
    out = log_mel(torch.randn(2, 4000), 16000, device="cpu")
    assert out.device.type == "cpu" and out.shape == (2, 80, 26)


@pytest.mark.gpu
def test_log_mel_gpu_matches_cpu():
    x = torch.randn(8, 16000)
    torch.testing.assert_close(
        log_mel(x, 16000, device="cuda").cpu(), log_mel(x, 16000, device="cpu"), atol=1e-3, rtol=1e-3
    )
