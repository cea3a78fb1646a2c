"""BeatVisualizerPipeline with keyframes from prompts (PromptKeyframes over a TextToVideoPipeline): keyframes rendered
once and shared, stable-diffusion-videos' walk (slerp on the noise, lerp on the text) between prompts, determinism
under a seed, the cache keyed on the source's settings, and the checks. A random-weight tiny pipeline stands in for
the bundled scene model (which test_bundled_scene_model.py loads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avdiff.bench.visualize import make_keyframes, make_song
from avdiff.pipelines import BeatVisualizerPipeline, TextToVideoPipeline
from avdiff.pipelines.beat_visualizer import interpolation_mode
from avdiff.visualize.keyframes import Keyframe
from avdiff.visualize.prompt_keyframes import PromptKeyframes, quantize_positions, slerp
from avdiff.visualize.timeline import Interval, Timeline, TimelineError

PROMPTS = ["a campfire by day", "a lake at night", "a red car at sunset"]


@pytest.fixture(scope="module")
def t2v():
    return TextToVideoPipeline.from_preset("tiny", seed=0)


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    return str(make_song(tmp_path_factory.mktemp("prompts") / "song.wav", 4.0))


def make_pipe(t2v, **kwargs) -> BeatVisualizerPipeline:
    pipe = BeatVisualizerPipeline(PromptKeyframes(t2v, num_inference_steps=kwargs.pop("steps", 3), **kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def walked(t2v, song):
    pipe = make_pipe(t2v)
    return pipe, pipe(song, prompts=PROMPTS, beats_per_interval=4, fps=8, curve="linear")


def test_slerp_ends_on_its_inputs_and_keeps_the_norm_of_gaussian_noise():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 8, 8, generator=g), torch.randn(4, 8, 8, generator=g)
    assert torch.allclose(slerp(0.0, a, b), a, atol=1e-6) and torch.allclose(slerp(1.0, a, b), b, atol=1e-6)
    mid = slerp(0.5, a, b)
    lerp = 0.5 * (a + b)
    low, high = sorted((float(a.norm()), float(b.norm())))
    assert 0.97 * low <= float(mid.norm()) <= 1.03 * high  # slerp keeps the noise's scale
    assert float(lerp.norm()) < 0.8 * low  # lerp of two independent draws shrinks it (by ~1/sqrt(2))
    assert torch.allclose(slerp(0.3, a, a), a, atol=1e-6)  # parallel: no division by sin(0)


def test_keyframes_are_rendered_once_each_and_every_interval_starts_on_its_keyframe(walked, t2v):
    pipe, out = walked
    assert [iv.start for iv in out.timeline][:2] == PROMPTS[:2] and out.frames.shape[1:] == (64, 64, 3)
    edges = out.frame_edges
    source = pipe.source
    for k, iv in enumerate(out.timeline):
        key = source.render_prompt(iv.start, (64, 64))  # the same noise and text: the same picture
        assert np.array_equal(out.frames[edges[k]], key.image)
    assert pipe.cache.misses >= len(set(out.timeline.keyframes()))


def test_the_walk_between_prompts_is_denoised_from_the_slerped_noise_and_lerped_text(walked):
    pipe, out = walked
    source = pipe.source
    iv, a, b = out.timeline[0], int(out.frame_edges[0]), int(out.frame_edges[1])
    f = (a + b) // 2
    t = quantize_positions([float(out.position[f])])[0]
    assert 0 < t < 1
    A, B = source.render_prompt(iv.start, (64, 64)), source.render_prompt(iv.end, (64, 64))
    direct = source.inbetweens(A, B, [t])[0]
    assert np.array_equal(out.frames[f], direct)
    # not a cross-fade of the keyframes: the text moved, and the model drew from it
    fade = (A.image.astype(np.float32) * (1 - t) + B.image.astype(np.float32) * t).round()
    assert np.abs(out.frames[f].astype(np.float32) - fade).mean() > 1.0
    # the linear curve moves every frame, but at most DIFFUSION_LEVELS + 1 distinct pictures per interval
    assert len({out.frames[i].tobytes() for i in range(a, b)}) <= 33


def test_same_seed_same_video_other_seed_other_keyframes(t2v, song):
    first = make_pipe(t2v, seed=5)(song, prompts=PROMPTS[:2], beats_per_interval=4, fps=8)
    again = make_pipe(t2v, seed=5)(song, prompts=PROMPTS[:2], beats_per_interval=4, fps=8)
    other = make_pipe(t2v, seed=6)(song, prompts=PROMPTS[:2], beats_per_interval=4, fps=8)
    assert np.array_equal(first.frames, again.frames)
    assert np.abs(first.frames[0].astype(int) - other.frames[0].astype(int)).mean() > 1.0


def test_the_cache_is_keyed_on_the_sources_settings(t2v, song, monkeypatch):
    pipe = make_pipe(t2v)
    calls = []
    render = pipe.source.render_prompt
    monkeypatch.setattr(pipe.source, "render_prompt", lambda *a: calls.append(a[0]) or render(*a))
    pipe(song, prompts=PROMPTS[:2], beats_per_interval=4, fps=8)
    assert sorted(calls) == sorted(PROMPTS[:2])  # shared by adjacent intervals: each prompt once
    pipe(song, prompts=PROMPTS[:2], beats_per_interval=4, fps=8)
    assert len(calls) == 2  # cached across calls
    pipe.source.num_inference_steps = 2
    changed = pipe(song, prompts=PROMPTS[:2], beats_per_interval=4, fps=8)
    assert len(calls) == 4  # new settings, new keyframes
    assert np.array_equal(changed.frames[0], make_pipe(t2v, steps=2)(song, prompts=PROMPTS[:2], beats_per_interval=4,
                                                                        fps=8).frames[0])  # fmt: skip


def test_images_and_prompts_mix_in_a_timeline_and_diffusion_falls_back_to_latent(t2v, song, tmp_path):
    image = make_keyframes(tmp_path / "keys", 64)[0]
    timeline = Timeline([Interval(0.0, 2.0, PROMPTS[0], image, "subject"), Interval(2.0, 4.0, image, PROMPTS[1])])
    out = make_pipe(t2v)(song, timeline, fps=8, interpolation="diffusion")
    assert out.num_frames == 32 and out.frames.shape == (32, 64, 64, 3)
    keys = {k: Keyframe(k, np.zeros((2, 2, 3), np.uint8), torch.zeros(1)) for k in ("x", "y")}
    prompt_key = Keyframe("p", keys["x"].image, torch.zeros(1), torch.zeros(1), torch.zeros(1))
    assert interpolation_mode("diffusion", prompt_key, keys["y"]) == "latent"
    assert interpolation_mode("auto", prompt_key, prompt_key) == "diffusion"
    assert interpolation_mode("auto", keys["x"], keys["y"]) == "pixel"


def test_prompts_need_a_source_that_renders_them(song, t2v, tmp_path):
    images_only = BeatVisualizerPipeline()
    with pytest.raises(ValueError, match="prompts need a source that renders them"):
        images_only(song, prompts=PROMPTS)
    with pytest.raises(TimelineError, match="interval 1 has the prompt 'a campfire by day'"):
        images_only(song, Timeline([Interval(0.0, 4.0, PROMPTS[0], PROMPTS[1])]))
    pipe = make_pipe(t2v)
    for bad, message in ((["a", " "], "non-empty strings"), ("a cat", "non-empty list"), ([], "non-empty list")):
        with pytest.raises(ValueError, match=message):
            pipe(song, prompts=bad)
    with pytest.raises(ValueError, match="exactly one of timeline, images and prompts"):
        pipe(song, prompts=PROMPTS, images=[str(tmp_path / "x.png")])
    with pytest.raises(ValueError, match="pipe must be a TextToVideoPipeline"):
        PromptKeyframes(object())
    with pytest.raises(ValueError, match="guidance_scale must be a number >= 1"):
        PromptKeyframes(t2v, guidance_scale=0.5)
