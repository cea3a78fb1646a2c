"""The device bench (``avdiff bench talk|visualize|scene --device/--dtype/--compile``) on the CPU: what it reports,
and that half precision there stays finite. The GPU's own checks are in tests/pipelines/test_devices.py."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from avdiff.bench.device import CallTimer, compile_unet, first_frame_clock, main, measure
from avdiff.cli import main as cli
from avdiff.pipelines.output import FrameSink

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_report_has_the_baseline_and_the_asked_configuration_with_every_field():
    text = main("scene", "cpu", "bfloat16", seconds=1.0, steps=1, fresh_process=False)
    summary = text.split("per stage")[0]
    rows = {line.split("  ")[0].strip(): line.split() for line in summary.splitlines() if line.startswith("cpu ")}
    assert set(rows) == {"cpu float32", "cpu bfloat16"}
    header = next(line for line in summary.splitlines() if line.startswith("config")).split()
    assert header[1:] == [
        "frames",
        "total_s",
        "rtf",
        "speedup",
        "first_call_s",
        "first_frame_s",
        "first_frame_vs_base",
        "peak_mb",
        "peak_vs_base",
        "finite",
        "max_diff",
    ]
    base = dict(zip(header, ["cpu float32", *rows["cpu float32"][2:]]))
    half = dict(zip(header, ["cpu bfloat16", *rows["cpu bfloat16"][2:]]))
    assert base["speedup"] == "1.00" and base["max_diff"] == "0" and base["finite"] == "yes"
    assert half["finite"] == "yes" and 0 <= int(half["max_diff"]) <= 64  # bf16 moves the frames a little, not wildly
    assert float(half["first_frame_s"]) > 0 and float(half["rtf"]) > 0
    stages = text.split("per stage")[1]
    for config in ("cpu float32", "cpu bfloat16"):
        for stage in ("unet", "text encoder", "codec", "other"):
            assert re.search(rf"^{config} +{stage} +[\d.]+ +[\d.]+ ", stages, re.M), (config, stage)


def test_talk_in_bfloat16_on_cpu_is_finite_and_its_stages_add_up(tmp_path):
    r = measure("talk", "cpu", "bfloat16", seconds=0.5, steps=1, frames_path=str(tmp_path / "f.npy"))
    frames = np.load(tmp_path / "f.npy")
    assert r["finite"] and r["frames"] == len(frames) == 13 and frames.dtype == np.uint8
    assert frames.std() > 0  # a picture, not a blank (NaN latents decode to one flat colour)
    assert set(r["stages"]) == {"unet", "speech encoder", "codec", "other"}
    assert sum(r["stages"].values()) == pytest.approx(r["total_s"], rel=1e-6)
    assert r["stages"]["unet"] > 0 and r["stages"]["codec"] > 0
    assert 0 < r["first_frame_s"] < r["total_s"] and r["first_call_s"] > 0
    assert r["peak_mb"] is None or r["peak_mb"] >= 0


def test_the_first_frame_clock_sees_the_first_push_and_puts_the_sink_back():
    write = FrameSink.write
    with first_frame_clock() as clock:
        sink = FrameSink(25, num_frames=2)
        assert clock["first"] is None
        sink.write(np.zeros((4, 4, 3), np.uint8))
        first = clock["first"]
        sink.write(np.ones((4, 4, 3), np.uint8))
        assert first is not None and clock["first"] == first
    assert FrameSink.write is write and sink.collected()[1].max() == 1


def test_the_call_timer_times_and_notices_non_finite_latents():
    class Codec:
        def decode(self, latents):
            return latents * 2

    codec = Codec()
    timer = CallTimer(codec, ("decode",), cuda=False, check_finite=True)
    codec.decode(torch.ones(2))
    assert timer.calls == 1 and timer.finite and timer.seconds > 0
    codec.decode(torch.tensor([1.0, float("nan")]))
    assert timer.calls == 2 and not timer.finite
    timer.remove()
    assert "decode" not in vars(codec) and codec.decode(torch.ones(1)).item() == 2


def test_compile_unet_keeps_the_module_and_its_output():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 2))
    x = torch.randn(3, 4)
    expected = net(x)
    compile_unet(net, backend="eager")  # dynamo traces; "eager" skips inductor's C++ build (minutes on this CPU)
    assert isinstance(net, torch.nn.Sequential) and "forward" in vars(net)
    torch.testing.assert_close(net(x), expected)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench", "scene", "--device", "gpu"], "unknown device 'gpu'"),
        (["bench", "talk", "--device", "tpu"], "unknown device 'tpu'"),
        (["bench", "visualize", "--dtype", "float16", "--model", "none"], "give --model"),
        (["bench", "scene", "--device", "cpu", "--steps", "0"], "--steps >= 1"),
    ],
)
def test_bad_device_arguments_fail_with_one_line(argv, message, capsys):
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where CUDA is missing")
def test_cuda_without_cuda_says_so(capsys):
    assert cli(["bench", "scene", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
