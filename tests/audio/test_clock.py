from fractions import Fraction

import pytest
import torch

from avdiff.audio import FrameClock
from avdiff.audio.clock import as_fraction_fps


def test_integer_rates_map_frames_to_exact_sample_ranges():
    clock = FrameClock(25, 16000)
    assert clock.samples_per_frame == 640
    assert clock.sample_range(0) == (0, 640)
    assert clock.sample_range(10) == (6400, 7040)
    assert clock.num_frames(16000) == 25
    assert clock.num_frames(16001) == 26  # a partial frame still needs a frame
    assert clock.num_frames(0) == 0
    assert clock.frame_of_sample(639) == 0 and clock.frame_of_sample(640) == 1


@pytest.mark.parametrize("fps,sample_rate", [(25, 16000), ("30000/1001", 16000), ("30000/1001", 48000), (24, 22050)])
def test_frame_of_sample_agrees_with_sample_range(fps, sample_rate):
    """Every sample of frame i's range maps back to i, also when a frame is not a whole number of samples (the floor
    of n * fps / sr put sample 5338, the start of frame 10 at 29.97 fps and 16 kHz, in frame 9)."""
    clock = FrameClock(fps, sample_rate)
    for i in list(range(0, 40)) + [1001, 3000, 107892]:
        start, stop = clock.sample_range(i)
        assert clock.frame_of_sample(start) == i and clock.frame_of_sample(stop - 1) == i, i
    assert FrameClock("30000/1001", 16000).frame_of_sample(5338) == 10


def test_ntsc_rate_is_exact_to_the_sample_after_an_hour():
    clock = FrameClock("30000/1001", 48000)
    one_hour = clock.frame_of_time(3600.0)
    assert one_hour == 107892  # 3600 * 30000 / 1001 = 107892.1
    for i in (1, 7, 1000, one_hour, one_hour + 1):
        # ground truth from exact rational arithmetic
        assert clock.sample_range(i)[0] == (Fraction(i) * 48000 * 1001 / 30000).__floor__()
    # a naive float accumulator is off by whole samples by then; the clock is not
    naive = 0.0
    for _ in range(one_hour):
        naive += 48000 / 29.97
    assert clock.frame_start(one_hour) == 172799827  # floor(107892 * 1601.6)
    assert abs(naive - clock.frame_start(one_hour)) > 1


def test_frame_ranges_tile_the_sample_axis():
    clock = FrameClock(Fraction(30000, 1001), 44100)
    ranges = [clock.sample_range(i) for i in range(3000)]
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    lengths = {stop - start for start, stop in ranges}
    assert lengths == {1471, 1472}  # 44100 * 1001 / 30000 = 1471.47
    assert clock.num_samples(3000) == ranges[-1][1]


@pytest.mark.parametrize(
    "fps, expected",
    [
        (25, Fraction(25)),
        (29.97, Fraction(30000, 1001)),
        ("24000/1001", Fraction(24000, 1001)),
        (59.94, Fraction(60000, 1001)),
        (12.5, Fraction(25, 2)),
    ],
)
def test_fps_parsing(fps, expected):
    assert as_fraction_fps(fps) == expected


@pytest.mark.parametrize("bad", [0, -25, float("nan"), "0/1"])
def test_bad_fps_is_refused(bad):
    with pytest.raises((ValueError, ZeroDivisionError)):
        FrameClock(bad, 16000)


def test_sample_windows_with_context_are_exact_and_zero_padded():
    clock = FrameClock(25, 100)  # 4 samples per frame
    x = torch.arange(1, 11, dtype=torch.float32)  # 10 samples -> 3 frames
    w = clock.windows(x, context=1)
    assert w.shape == (3, 12)
    assert w[0].tolist() == [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert w[1].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 0]
    assert w[2].tolist() == [5, 6, 7, 8, 9, 10, 0, 0, 0, 0, 0, 0]
    edge = clock.windows(x, context=1, pad="edge")
    assert edge[0, :4].tolist() == [1, 1, 1, 1] and edge[2, -1] == 10


def test_windows_match_brute_force_at_fractional_rates():
    clock = FrameClock("30000/1001", 48000)
    hop = 480
    steps = torch.arange(5000, dtype=torch.float64)  # a per-hop feature, step j centred on sample j * hop
    k = 2
    w = clock.windows(steps, num_frames=200, context=k, hop_length=hop)
    W = clock.window_length(k, hop)
    assert w.shape == (200, W)
    for i in (0, 1, 2, 57, 199):
        first, _ = clock.step_range(i - k, hop)
        expected = [float(j) if 0 <= j < len(steps) else 0.0 for j in range(first, first + W)]
        assert w[i].tolist() == expected
        # every step that belongs to frame i is inside its window
        a, b = clock.step_range(i, hop)
        assert set(range(max(a, 0), b)) <= set(int(v) for v in w[i].tolist())


def test_windows_keep_leading_dimensions():
    clock = FrameClock(25, 16000)
    mel = torch.randn(2, 80, 101)  # [B, n_mels, T] at hop 160 (4 steps per frame)
    w = clock.windows(mel, context=2, hop_length=160)
    assert w.shape == (2, 80, 26, 20)
    torch.testing.assert_close(w[:, :, 10], mel[:, :, 32:52])


def test_window_arguments_are_checked():
    clock = FrameClock(25, 16000)
    with pytest.raises(ValueError, match="context"):
        clock.windows(torch.zeros(10), context=-1)
    with pytest.raises(ValueError, match="hop_length"):
        clock.windows(torch.zeros(10), hop_length=0)
    with pytest.raises(ValueError, match="time"):
        clock.windows(torch.zeros(0))
    with pytest.raises(ValueError, match="sample_rate"):
        FrameClock(25, 0)
