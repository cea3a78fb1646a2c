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
from avdiff.pipelines.beat_visualizer.keyframes import Keyframe, interpolation_mode, quantize_positions
from avdiff.pipelines.beat_visualizer.prompt_keyframes import PromptKeyframes, slerp
from avdiff.pipelines.beat_visualizer.timeline import Interval, Timeline, TimelineError

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


@pytest.mark.slow
def test_keyframes_are_rendered_once_each_and_every_interval_starts_on_its_keyframe(walked, t2v):
    pipe, out = walked
    assert [iv.start for iv in out.timeline][:2] == PROMPTS[:2] and out.frames.shape[1:] == (64, 64, 3)
    edges = out.frame_edges
    source = pipe.source
    for k, iv in enumerate(out.timeline):
        key = source.render_prompt(iv.start, (64, 64))  # the same noise and text: the same picture
        assert np.array_equal(out.frames[edges[k]], key.image)


@pytest.mark.slow
def test_the_walk_between_prompts_is_denoised_from_the_slerped_noise_and_lerped_text(walked):
    pipe, out = walked
    source = pipe.source
    iv, a, b = out.timeline[0], int(out.frame_edges[0]), int(out.frame_edges[1])
    f = (a + b) // 2
    t = quantize_positions([float(out.position[f])])[0]
    assert 0 < t < 1
    A, B = source.render_prompt(iv.start, (64, 64)), source.render_prompt(iv.end, (64, 64))
    direct = source.inbetweens(A, B, [t])[0]
    # the pipeline denoised it in a batch of several positions; batched and single runs differ by float rounding
    assert np.abs(out.frames[f].astype(int) - direct.astype(int)).max() <= 2
    # not a cross-fade of the keyframes: the text moved, and the model drew from it
    fade = (A.image.astype(np.float32) * (1 - t) + B.image.astype(np.float32) * t).round()
    assert np.abs(out.frames[f].astype(np.float32) - fade).mean() > 1.0
    # the linear curve moves every frame, but at most DIFFUSION_LEVELS + 1 distinct pictures per interval
    assert len({out.frames[i].tobytes() for i in range(a, b)}) <= 33


@pytest.mark.slow
def test_same_seed_same_video_other_seed_other_keyframes(t2v, song):
    first = make_pipe(t2v, seed=5)(song, prompts=PROMPTS[:2], beats_per_interval=4, fps=8)
    again = make_pipe(t2v, seed=5)(song, prompts=PROMPTS[:2], beats_per_interval=4, fps=8)
    other = make_pipe(t2v, seed=6)(song, prompts=PROMPTS[:2], beats_per_interval=4, fps=8)
    assert np.array_equal(first.frames, again.frames)
    assert np.abs(first.frames[0].astype(int) - other.frames[0].astype(int)).mean() > 1.0


@pytest.mark.slow
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
    assert np.array_equal(
        changed.frames[0], make_pipe(t2v, steps=2)(song, prompts=PROMPTS[:2], beats_per_interval=4, fps=8).frames[0]
    )


@pytest.mark.slow
def test_images_and_prompts_mix_in_a_timeline_and_diffusion_falls_back_to_latent(t2v, song, tmp_path):
    image = make_keyframes(tmp_path / "keys", 64)[0]
    timeline = Timeline([Interval(0.0, 2.0, PROMPTS[0], image, "subject"), Interval(2.0, 4.0, image, PROMPTS[1])])
    pipe = make_pipe(t2v)
    out = pipe(song, timeline, fps=8, interpolation="diffusion")
    assert out.num_frames == 32 and out.frames.shape == (32, 64, 64, 3)
    picture = np.asarray(__import__("PIL.Image").Image.open(image).convert("RGB"))
    assert np.array_equal(out.frames[0], pipe.source.render_prompt(PROMPTS[0], (64, 64)).image)
    assert np.abs(out.frames[16].astype(int) - picture.astype(int)).mean() < 2  # the image, through the codec
    # image -> prompt: no noise or text on one side, so the latent in-betweens: a cross-fade in pixel space
    mid = out.frames[20]
    assert not np.array_equal(mid, out.frames[16]) and not np.array_equal(mid, out.frames[0])
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
    for bad in (0.5, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="guidance_scale must be a finite number >= 1"):
            PromptKeyframes(t2v, guidance_scale=bad)
    with pytest.raises(ValueError, match=r"seed must be an integer from 0 to 2\*\*63 - 1, got 18446744073709551616"):
        PromptKeyframes(t2v, seed=2**64)


@pytest.mark.slow
def test_a_prompt_that_starts_like_an_image_stays_a_prompt(t2v, song, tmp_path):
    out = make_pipe(t2v)(song, prompts=["image: a cat", "a dog"], beats_per_interval=4, fps=8)
    assert out.timeline[0].start == "image: a cat"
    path = out.timeline.save(tmp_path / "t.json")
    assert Timeline.load(path).keyframes() == ["image: a cat", "a dog"]
    assert Timeline.from_rows(out.timeline.rows()).keyframes() == ["image: a cat", "a dog"]


@pytest.mark.slow
def test_caches_never_serve_another_sources_or_another_pictures_frames(t2v, song):
    pipe = make_pipe(t2v)
    first = pipe(song, prompts=PROMPTS[:2], beats_per_interval=4, fps=8, curve="linear")
    pipe.source = PromptKeyframes(TextToVideoPipeline.from_preset("tiny", seed=1), num_inference_steps=3)
    other = pipe(song, prompts=PROMPTS[:2], beats_per_interval=4, fps=8, curve="linear")
    fresh = make_pipe(pipe.source.pipe)(song, prompts=PROMPTS[:2], beats_per_interval=4, fps=8, curve="linear")
    assert np.array_equal(other.frames, fresh.frames) and not np.array_equal(other.frames, first.frames)
    images = BeatVisualizerPipeline()
    red, blue = np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    a = images(song, images=[red, blue], beats_per_interval=4, fps=8, height=32, width=32)
    b = images(song, images=[blue, red], beats_per_interval=4, fps=8, height=32, width=32)  # same keys "image 1/2"
    assert a.frames[0, 0, 0, 0] > 200 and b.frames[0, 0, 0, 2] > 200
