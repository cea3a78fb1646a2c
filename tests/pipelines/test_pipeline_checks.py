"""The argument checks the talking-head pipelines share (avdiff.pipelines.utils): what each accepts and refuses,
and the messages, word for word."""

import math

import numpy as np
import pytest
import torch

from avdiff.pipelines.utils import (
    check_callback,
    check_callback_tensor_inputs,
    check_face_and_speech,
    check_generator,
    check_max_duration,
    check_num_inference_steps,
    check_number,
    check_talking_head_output,
)


def test_face_and_speech_must_be_given():
    check_face_and_speech("face.jpg", b"RIFF")
    with pytest.raises(
        ValueError, match=r"^image must be a face photo \(a path, a PIL image or an array\), got None$"
    ):
        check_face_and_speech(None, b"RIFF")
    with pytest.raises(
        ValueError, match=r"^audio must be speech \(a path, bytes, an array or a Waveform\), got None$"
    ):
        check_face_and_speech("face.jpg", None)


@pytest.mark.parametrize("bad", [0, -1, True, 10.0, "10", None])
def test_steps_are_a_positive_int(bad):
    check_num_inference_steps(1)
    with pytest.raises(ValueError, match=f"^num_inference_steps must be an integer >= 1, got {bad!r}$"):
        check_num_inference_steps(bad)


def test_number_strict_takes_int_and_float_only():
    assert check_number("head_amount", 2) == 2.0 and isinstance(check_number("head_amount", 2), float)
    assert check_number("head_amount", 0) == 0.0
    for bad in (-1.0, math.nan, math.inf, True, "2", np.float32(1.0)):
        with pytest.raises(ValueError, match=r"^head_amount must be a finite number >= 0, got "):
            check_number("head_amount", bad)


def test_number_converting_takes_what_float_reads_and_keeps_its_messages():
    assert check_number("guidance_scale", "2.5", 0.0, convert=True) == 2.5
    assert check_number("guidance_scale", np.float32(1.5), 0.0, convert=True) == 1.5
    with pytest.raises(ValueError, match=r"^blink_rate_per_min must be a number >= 0.0, got 'often'$"):
        check_number("blink_rate_per_min", "often", 0.0, convert=True)
    with pytest.raises(ValueError, match=r"^head_amount must be a finite number >= 0.0, got nan$"):
        check_number("head_amount", math.nan, 0.0, convert=True)
    with pytest.raises(ValueError, match=r"^x must be a finite number >= 1, got 0.5$"):
        check_number("x", 0.5, 1, convert=True)


def test_generator_is_a_torch_generator_or_a_list_where_allowed():
    check_generator(None)
    check_generator(torch.Generator())
    check_generator([torch.Generator()], allow_list=True)
    with pytest.raises(ValueError, match=r"^generator must be a torch.Generator or None, got list$"):
        check_generator([torch.Generator()])
    with pytest.raises(ValueError, match=r"^generator must be a torch.Generator or None, got int$"):
        check_generator(0, allow_list=True)


def test_callback_and_its_tensor_inputs():
    check_callback(None, None, ["frame"])
    check_callback(lambda *a: {}, ["frame"], ["motion", "frame"])
    with pytest.raises(ValueError, match=r"^callback_on_step_end must be callable, got str$"):
        check_callback("f", None, ["frame"])
    message = r"^callback_on_step_end_tensor_inputs must be among \['motion', 'frame'\], got \['latents', 'x'\]$"
    with pytest.raises(ValueError, match=message):
        check_callback(None, ["frame", "latents", "x"], ["motion", "frame"])
    with pytest.raises(ValueError, match=message):
        check_callback_tensor_inputs(["latents", "x"], ["motion", "frame"])


@pytest.mark.parametrize("bad", [0, -1.0, math.nan])
def test_max_duration_is_positive_or_none(bad):
    check_max_duration(None)
    check_max_duration(0.5)
    with pytest.raises(ValueError, match=f"^max_duration_s must be positive, got {bad}$"):
        check_max_duration(bad)


def test_the_output_may_not_overwrite_the_inputs(tmp_path):
    speech = tmp_path / "speech.mp4"  # a video file given as the speech
    speech.write_bytes(b"RIFF")
    check_talking_head_output(None, "face.jpg", speech)
    check_talking_head_output(tmp_path / "out.mp4", "face.jpg", speech)
    with pytest.raises(ValueError, match="output_path .* is the audio"):
        check_talking_head_output(speech, "face.jpg", speech)
    with pytest.raises(ValueError, match="folder"):
        check_talking_head_output(tmp_path, "face.jpg", speech)
