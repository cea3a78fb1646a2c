"""A pipeline moved to a device in a dtype (:func:`avdiff.loading.to_device`): cast where that is safe (the codec kept
in float32 under float16), every kind of pipeline the commands hold, and a device that is not there refused in one
clear sentence (:func:`avdiff.loading.check_device`)."""

from __future__ import annotations

import pytest
import torch

from avdiff.loading import check_device, check_dtype, to_device
from avdiff.pipelines import AudioScenePipeline, BeatVisualizerPipeline, TalkingHeadPipeline, TextToVideoPipeline
from avdiff.pipelines.beat_visualizer.prompt_keyframes import PromptKeyframes

pytestmark = pytest.mark.usefixtures("one_thread")


def dtypes(pipe, *names: str) -> list[torch.dtype]:
    return [getattr(pipe, name).dtype for name in names]


def test_float16_keeps_the_codec_in_float32_and_bfloat16_casts_everything():
    pipe = TalkingHeadPipeline.from_preset("tiny")
    assert to_device(pipe, "cpu", "float16") is pipe
    assert dtypes(pipe, "unet", "speech_encoder", "codec") == [torch.float16, torch.float16, torch.float32]
    to_device(pipe, "cpu", torch.bfloat16)
    assert dtypes(pipe, "unet", "speech_encoder", "codec") == [torch.bfloat16] * 3
    to_device(pipe, "cpu")  # no dtype: only the device
    assert pipe.unet.dtype == torch.bfloat16 and pipe.unet.device.type == "cpu"
    to_device(pipe, "cpu", "float32")
    assert dtypes(pipe, "unet", "speech_encoder", "codec") == [torch.float32] * 3


def test_the_scene_and_music_pipelines_move_their_text_to_video_model():
    t2v = TextToVideoPipeline.from_preset("tiny", seed=0)
    scene = to_device(AudioScenePipeline(t2v), "cpu", "float16")
    assert dtypes(scene.t2v, "unet", "text_encoder", "codec") == [torch.float16, torch.float16, torch.float32]
    music = to_device(BeatVisualizerPipeline(PromptKeyframes(t2v, num_inference_steps=1)), "cpu", "bfloat16")
    assert dtypes(music.source.pipe, "unet", "text_encoder", "codec") == [torch.bfloat16] * 3
    images = BeatVisualizerPipeline()  # keyframe images: no weights, nothing to move
    assert to_device(images, "cpu", "float16") is images


@pytest.mark.parametrize(
    "device, message",
    [
        ("gpu", "unknown device 'gpu': use one of cpu, cuda, cuda:N or mps"),
        ("cpu:x", "unknown device 'cpu:x'"),
        ("meta", "unsupported device 'meta'"),
        ("cuda:99", "cuda:99"),
    ],
)
def test_a_device_that_is_not_there_is_refused_by_name(device, message):
    with pytest.raises(ValueError, match=message):
        check_device(device)
    with pytest.raises(ValueError, match=message):
        to_device(torch.nn.Linear(2, 2), device)


def test_the_default_device_and_dtype_names():
    assert check_device("cpu") == torch.device("cpu")
    assert check_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert check_dtype("bfloat16") is torch.bfloat16 and check_dtype(None) is None
    with pytest.raises(ValueError, match="unsupported dtype 'float64': use one of float32, float16, bfloat16"):
        check_dtype("float64")
    with pytest.raises(ValueError, match="unsupported dtype"):
        check_dtype(torch.int8)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where CUDA is missing")
def test_cuda_without_cuda_names_the_fix():
    with pytest.raises(ValueError, match=r"device 'cuda': CUDA is not available .*use --device cpu"):
        check_device("cuda")
