"""The one pipeline contract, tested once over the tiny build of every pipeline (diffusers' ``PipelineTesterMixin``
idea): ``output_type`` ``"np"`` / ``"pt"`` / ``"pil"``, ``return_dict=False`` giving ``(frames, fps, audio)``, a
``callback_on_step_end`` that edits tensors and is seen in the output, ``output_path`` streaming, same-seed
determinism through ``generator``, and a ValueError that names the bad argument.

Each case is one cheap build (random tiny weights or no model, 1 denoising step, well under a second of sound). A
pipeline that does not meet a clause yet is marked ``xfail(strict=True)`` for it, so the mark has to go when it does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from avdiff.audio.io import AudioStream, Waveform, save_audio
from avdiff.bench.talk import speech_like
from avdiff.bench.visualize import make_keyframes, make_song
from avdiff.models.builders import build_motion_denoiser
from avdiff.pipelines import (
    AudioScenePipeline,
    BeatVisualizerPipeline,
    MotionTalkingHeadPipeline,
    TalkingHeadPipeline,
    TextToVideoPipeline,
    VideoPipelineOutput,
    WarpBaselinePipeline,
)
from avdiff.pipelines.output import FrameSink, check_output_type, collect_frames, convert_frames, finish_output
from avdiff.video import read_video

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread for the module

PROMPT = "a campfire beside a lake at night"


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def zero_latents_at_the_last_step(p, step: int, t, tensors: dict) -> dict:
    """Zero latents decode to mid-grey (128) with the space-to-depth codec of the tiny builds."""
    if step == p.num_timesteps - 1:
        tensors["latents"] = torch.zeros_like(tensors["latents"])
    return tensors


def invert_the_frame(p, step: int, t, tensors: dict) -> dict:
    return {"frame": 255 - tensors["frame"]}


@dataclass
class Case:
    """How to build one pipeline cheaply and call it.

    Attributes:
        build: the tiny pipeline (progress bar off), built once per module.
        inputs: ``(args, kwargs)`` of a cheap call, given the module's temporary folder.
        seeded: the pipeline takes ``generator`` (the plain call passes one).
        callback: a ``callback_on_step_end`` that edits tensors; ``callback_kwargs`` go with it.
        edited: the frames the edit must give, from the plain frames.
        bad: an argument that ``check_inputs`` refuses, and the name the ValueError must give.
        xfail: clause -> why this pipeline does not meet it yet.
    """

    build: Callable
    inputs: Callable
    seeded: bool = True
    callback: Callable | None = zero_latents_at_the_last_step
    callback_kwargs: dict = field(default_factory=dict)
    edited: Callable = lambda plain: np.full_like(plain, 128)
    bad: tuple[dict, str] = ({"num_inference_steps": 0}, "num_inference_steps")
    xfail: dict = field(default_factory=dict)


def _t2v() -> TextToVideoPipeline:
    pipe = TextToVideoPipeline.from_preset("tiny", seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _scene() -> AudioScenePipeline:
    pipe = AudioScenePipeline(_t2v())  # target_words are given: the word-choosing encoder is never loaded
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _talking_head() -> TalkingHeadPipeline:
    pipe = TalkingHeadPipeline.from_preset("tiny", seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _motion() -> MotionTalkingHeadPipeline:
    pipe = MotionTalkingHeadPipeline(build_motion_denoiser("tiny", seed=0, window_frames=8, past_frames=2))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _warp() -> WarpBaselinePipeline:
    pipe = WarpBaselinePipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _beats() -> BeatVisualizerPipeline:
    pipe = BeatVisualizerPipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _tone(seconds: float = 0.5, sample_rate: int = 16000) -> Waveform:
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    envelope = torch.linspace(0.1, 1.0, len(t))  # rising loudness: the control moves
    return Waveform((0.5 * envelope * torch.sin(2 * torch.pi * 330 * t))[None], sample_rate)


def _song_inputs(folder):
    song = folder / "song.wav"
    if not song.exists():
        make_song(song, 4.0)
        make_keyframes(folder / "keys", 32)
    images = sorted(str(p) for p in (folder / "keys").iterdir())
    return (str(song),), {"images": images, "beats_per_interval": 4, "fps": 10, "height": 32, "width": 32}


CASES = {
    "talking_head": Case(
        build=_talking_head,
        inputs=lambda folder: ((skimage.data.astronaut(), speech_like(0.5)), {"num_inference_steps": 1}),
        callback_kwargs={"output_type": "crops"},  # the crops alone are the decoded latents
    ),
    "motion_talking_head": Case(
        build=_motion,
        inputs=lambda folder: ((skimage.data.astronaut(), speech_like(0.5)), {"num_inference_steps": 1}),
        callback=invert_the_frame,
        edited=lambda plain: 255 - plain,
    ),
    "warp_baseline": Case(
        build=_warp,
        inputs=lambda folder: ((skimage.data.astronaut(), speech_like(0.5)), {}),
        seeded=False,
        callback=invert_the_frame,
        edited=lambda plain: 255 - plain,
        bad=({"max_duration_s": -1.0}, "max_duration_s"),
    ),
    "text_to_video": Case(
        build=_t2v,
        inputs=lambda folder: ((PROMPT,), {"num_frames": 2, "num_inference_steps": 1}),
    ),
    "audio_scene": Case(
        build=_scene,
        inputs=lambda folder: (
            (PROMPT, _tone()),
            {"target_words": "campfire", "strength": 2.0, "num_inference_steps": 1, "levels": 4},
        ),
        bad=({"strength": -1.0}, "strength"),
    ),
    "beat_visualizer": Case(
        build=_beats,
        inputs=_song_inputs,
        seeded=False,
        callback=invert_the_frame,
        edited=lambda plain: 255 - plain,
        bad=({"fps": 0}, "fps"),
    ),
}


def cases_for(clause: str) -> list:
    """The case names, with ``xfail(strict=True)`` on those that do not meet ``clause`` yet."""
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=case.xfail[clause]))
        if clause in case.xfail
        else name
        for name, case in CASES.items()
    ]


_built: dict = {}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("contract")


def prepared(name: str, folder):
    """(case, pipeline, args, kwargs, the plain output): built and run once per case."""
    if name not in _built:
        case = CASES[name]
        pipe = case.build()
        args, kwargs = case.inputs(folder)
        seed = {"generator": gen(0)} if case.seeded else {}
        _built[name] = (case, pipe, args, kwargs, pipe(*args, **kwargs, **seed))
    return _built[name]


def call(name: str, folder, **extra):
    case, pipe, args, kwargs, _ = prepared(name, folder)
    seed = {"generator": gen(0)} if case.seeded else {}
    return pipe(*args, **{**kwargs, **seed, **extra})


@pytest.mark.parametrize("name", cases_for("output_types"))
def test_output_types(name, folder):
    plain = prepared(name, folder)[-1]
    frames = plain.frames
    assert isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[-1] == 3
    assert plain.num_frames == len(frames) and plain.fps > 0
    explicit = call(name, folder, output_type="np").frames
    pt = call(name, folder, output_type="pt").frames
    pil = call(name, folder, output_type="pil").frames
    assert np.array_equal(explicit, frames)
    assert isinstance(pt, torch.Tensor) and pt.dtype == torch.uint8 and torch.equal(pt, torch.from_numpy(frames))
    assert isinstance(pil, list) and len(pil) == len(frames) and isinstance(pil[0], Image.Image)
    assert np.array_equal(np.asarray(pil[-1]), frames[-1])


@pytest.mark.parametrize("name", cases_for("tuple"))
def test_the_tuple_is_frames_fps_audio(name, folder):
    plain = prepared(name, folder)[-1]
    out = call(name, folder, return_dict=False)
    assert isinstance(out, tuple) and len(out) == 3
    frames, fps, audio = out
    assert np.array_equal(frames, plain.frames) and fps == plain.fps
    assert (audio is None) == (plain.audio is None)
    if audio is not None:
        assert isinstance(audio, Waveform) and torch.equal(audio.samples, plain.audio.samples)


@pytest.mark.parametrize("name", cases_for("callback"))
def test_a_callback_edits_tensors_and_the_output_shows_it(name, folder):
    case, *_, plain = prepared(name, folder)
    seen = []

    def callback(p, step, t, tensors):
        seen.append(step)
        return case.callback(p, step, t, tensors)

    out = call(name, folder, callback_on_step_end=callback, **case.callback_kwargs)
    assert seen
    expected = case.edited(out.frames if case.callback_kwargs else plain.frames)
    assert np.array_equal(out.frames, expected)


@pytest.mark.parametrize("name", cases_for("streaming"))
def test_output_path_streams_to_an_mp4(name, folder):
    plain = prepared(name, folder)[-1]
    path = folder / f"{name}.mp4"
    out = call(name, folder, output_path=path)
    assert out.frames is None and out.path == path and path.is_file()
    assert out.num_frames == plain.num_frames
    clip = read_video(path)
    assert len(clip.frames) == plain.num_frames and tuple(clip.frames.shape[1:3]) == plain.frames.shape[1:3]


@pytest.mark.parametrize("name", cases_for("determinism"))
def test_the_same_seed_gives_the_same_frames(name, folder):
    case, pipe, args, kwargs, _ = prepared(name, folder)
    first = pipe(*args, **kwargs, generator=gen(3)).frames
    again = pipe(*args, **kwargs, generator=gen(3)).frames
    assert np.array_equal(first, again)


@pytest.mark.parametrize("name", cases_for("check_inputs"))
def test_a_bad_argument_is_a_value_error_that_names_it(name, folder):
    case, pipe, args, kwargs, _ = prepared(name, folder)
    bad, argument = case.bad
    with pytest.raises(ValueError, match=argument):
        pipe(*args, **{**kwargs, **bad})


# --- the shared output path itself (no pipeline) ----------------------------------------------------------------------


def test_finish_output_collects_converts_streams_and_gives_the_tuple(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    sound = _tone(0.375)
    held = finish_output(iter(frames), 8, sound, num_frames=3)
    assert isinstance(held, VideoPipelineOutput) and np.array_equal(held.frames, frames) and held.num_frames == 3
    assert held.audio is sound and held.path is None
    pt, fps, audio = finish_output(list(frames), 8, sound, output_type="pt", return_dict=False)
    assert torch.equal(pt, torch.from_numpy(frames)) and fps == 8 and audio is sound
    pil = finish_output(frames, 8, output_type="pil").frames
    assert len(pil) == 3 and np.array_equal(np.asarray(pil[1]), frames[1])
    videos = convert_frames(np.stack([frames, frames]), "pil")  # [B, F, H, W, 3]: one list of images per video
    assert len(videos) == 2 and len(videos[0]) == 3
    streamed = finish_output(iter(frames), 8, sound, output_path=tmp_path / "out.mp4")
    assert streamed.frames is None and streamed.path == tmp_path / "out.mp4" and streamed.num_frames == 3
    clip = read_video(streamed.path)
    assert clip.frames.shape == (3, 8, 10, 3) and clip.audio is not None
    assert finish_output(iter(frames), 8, sound, output_path=tmp_path / "t.mp4", return_dict=False) == (None, 8, sound)
    with pytest.raises(ValueError, match="2 frames were made, 3 announced"):
        collect_frames(iter(frames[:2]), num_frames=3)
    with pytest.raises(ValueError, match="output_type must be one of .* got 'gif'"):
        check_output_type("gif")
    check_output_type("crops", ("np", "crops"))  # a pipeline's own list


def test_a_pipeline_pushes_its_frames_into_the_sink_and_a_failure_leaves_no_file(tmp_path):
    """The pipeline's own loop drives: each frame is pushed with write(), the output comes from finish(); a pipeline
    that raises half way leaves neither the mp4 nor a partial file."""
    frames = np.random.default_rng(2).integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    sound = _tone(0.375)
    with FrameSink(8, sound, output_path=tmp_path / "p.mp4", num_frames=3) as sink:
        for frame in frames:
            sink.write(frame)
        out = sink.finish()
    assert out.frames is None and out.path == tmp_path / "p.mp4" and out.num_frames == 3 and out.audio is sound
    assert read_video(out.path).frames.shape == frames.shape
    with FrameSink(8, num_frames=3) as sink:
        for frame in frames:
            sink.write(torch.from_numpy(frame))
        held, fps, audio = sink.finish(output_type="pt", return_dict=False)
    assert torch.equal(held, torch.from_numpy(frames)) and fps == 8 and audio is None
    failed = tmp_path / "failed"
    failed.mkdir()
    with pytest.raises(RuntimeError, match="half way"), FrameSink(8, sound, output_path=failed / "x.mp4") as sink:
        sink.write(frames[0])
        raise RuntimeError("half way")
    assert list(failed.iterdir()) == []
    sink = FrameSink(8, num_frames=2)
    sink.write(frames[0])
    sink.write(frames[1])
    with pytest.raises(ValueError, match="more than the 2 frames announced"):
        sink.write(frames[2])


def test_finish_output_returns_a_stream_loaded_and_none_for_a_file_it_streamed(tmp_path):
    """The music pipeline's song is an AudioStream: muxed in block by block, returned loaded, and not loaded at all
    when it reads a file and the frames went to an mp4 (the mp4 carries it)."""
    frames = np.random.default_rng(1).integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    sound = _tone(0.375)
    song = AudioStream(save_audio(tmp_path / "song.wav", sound))
    held = finish_output(iter(frames), 8, song, num_frames=3)
    assert isinstance(held.audio, Waveform) and held.audio.num_samples == sound.num_samples
    assert finish_output(iter(frames), 8, song, output_path=tmp_path / "f.mp4", return_dict=False) == (None, 8, None)
    assert read_video(tmp_path / "f.mp4").audio is not None
    streamed = finish_output(iter(frames), 8, AudioStream(sound), output_path=tmp_path / "m.mp4")
    assert streamed.frames is None and torch.equal(streamed.audio.samples, sound.samples)
