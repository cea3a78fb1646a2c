"""TextToVideoPipeline on the random-weight tiny preset (real MiniLM text encoder, offline): determinism, the prompt's
effect, guidance, keyframes, word token positions, the cross-attention batch layout, inputs, outputs, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from avdiff.pipelines.output import VideoPipelineOutput
from avdiff.pipelines.text_to_video import TextToVideoPipeline
from avdiff.video import read_video

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread for the module

PROMPT = "a campfire on the left beside a lake at night"


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def pipe() -> TextToVideoPipeline:
    p = TextToVideoPipeline.from_preset("tiny", seed=0)
    p.set_progress_bar_config(disable=True)
    return p


def run(pipe, prompt=PROMPT, seed=0, **kwargs):
    kwargs = {"num_frames": 8, "num_inference_steps": 3, **kwargs}
    return pipe(prompt, generator=gen(seed), **kwargs).frames


@pytest.mark.slow
def test_same_seed_same_frames_other_seed_other_frames(pipe):
    a, b, c = run(pipe), run(pipe), run(pipe, seed=1)
    assert a.shape == (8, 64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 5


@pytest.mark.slow
def test_the_prompt_changes_the_output(pipe):
    a = run(pipe, "a red house under the sun")
    b = run(pipe, "a thunderstorm over the mountain at night")
    assert np.abs(a.astype(int) - b).mean() > 1.0


@pytest.mark.slow
def test_guidance_scale_one_is_the_conditional_prediction_and_the_batch_is_uncond_then_cond(pipe):
    latents = torch.randn(1, 48, 4, 16, 16, generator=gen(3))
    cond = pipe.encode_prompt(PROMPT)
    neg = pipe.encode_prompt("")
    t = torch.tensor(500)
    pred_cond = pipe.unet(latents, t, encoder_hidden_states=cond).sample
    pred_uncond = pipe.unet(latents, t, encoder_hidden_states=neg).sample
    assert (pred_cond - pred_uncond).abs().max() > 1e-3  # the text matters, so the checks below can fail
    one = pipe.guided_prediction(latents, t, cond, neg, guidance_scale=1.0)
    torch.testing.assert_close(one, pred_cond, rtol=0, atol=0)
    guided = pipe.guided_prediction(latents, t, cond, neg, guidance_scale=4.0)
    torch.testing.assert_close(guided, pred_uncond + 4.0 * (pred_cond - pred_uncond), rtol=1e-4, atol=1e-4)
    # At scale 1 the negative prompt cannot matter; above 1 it does.
    a = run(pipe, guidance_scale=1.0, negative_prompt="a bell")
    b = run(pipe, guidance_scale=1.0, negative_prompt="a car on the right")
    np.testing.assert_array_equal(a, b)
    c = run(pipe, guidance_scale=3.0, negative_prompt="a bell")
    d = run(pipe, guidance_scale=3.0, negative_prompt="a car on the right")
    assert np.abs(c.astype(int) - d).mean() > 0.5


@pytest.mark.slow
def test_one_frame_makes_a_keyframe_image(pipe):
    key = run(pipe, num_frames=1)
    assert key.shape == (1, 64, 64, 3)
    np.testing.assert_array_equal(key, run(pipe, num_frames=1))
    pil = pipe(PROMPT, num_frames=1, num_inference_steps=2, generator=gen(0), output_type="pil").frames
    assert len(pil) == 1 and pil[0].size == (64, 64)


@pytest.mark.slow
def test_shared_frame_noise_starts_every_frame_from_one_draw(pipe):
    shared = pipe.prepare_latents(1, 6, 64, 64, torch.float32, torch.device("cpu"), gen(5), shared_frame_noise=True)
    assert torch.equal(shared, shared[:, :, :1].expand_as(shared))
    own = pipe.prepare_latents(1, 6, 64, 64, torch.float32, torch.device("cpu"), gen(5))
    assert not torch.equal(own[:, :, 0], own[:, :, 1])
    drawn = pipe.prepare_latents(1, 6, 64, 64, torch.float32, torch.device("cpu"), gen(0), shared_frame_noise=True)
    a = run(pipe, num_frames=6, shared_frame_noise=True)
    np.testing.assert_array_equal(a, run(pipe, num_frames=6, latents=drawn))
    assert not np.array_equal(a, run(pipe, num_frames=6))


def test_word_token_positions_cover_every_piece_of_a_word(pipe):
    tokens = pipe.tokenize("A Campfire on the left, beside a campfire and a raincloud")
    assert len(tokens) == pipe.config.max_text_length
    first, second = tokens.positions("campfire")[:2], tokens.positions("campfire")[2:]
    assert [tokens.tokens[i] for i in first] == ["camp", "##fire"] == [tokens.tokens[i] for i in second]
    rain = tokens.positions("raincloud")
    assert "".join(tokens.tokens[i] for i in rain).replace("##", "") == "raincloud" and len(rain) > 1
    assert tokens.positions("on the left") == [
        tokens.positions("on")[0],
        tokens.positions("the")[0],
        tokens.positions("left")[0],
    ]
    words = dict(tokens.words())
    assert words["raincloud"] == rain
    with pytest.raises(ValueError, match="'fire' is not in the prompt"):
        tokens.positions("fire")  # a piece of "campfire" is not the word
    with pytest.raises(ValueError, match="'moon' is not in the prompt"):
        pipe.word_token_positions(PROMPT, "moon")
    long = " ".join(["a lake"] * 20) + " and a bell"
    with pytest.raises(ValueError, match="truncated"):
        pipe.word_token_positions(long, "bell")
    # The positions index the states the UNet attends to: changing the word changes exactly those states' inputs.
    ids_a, ids_b = pipe.tokenize(PROMPT).input_ids, pipe.tokenize(PROMPT.replace("campfire", "car")).input_ids
    assert (
        ids_a[pipe.word_token_positions(PROMPT, "campfire")].tolist()
        == pipe.tokenizer("campfire", add_special_tokens=False)["input_ids"]
    )
    assert ids_b[2].item() == pipe.tokenizer.convert_tokens_to_ids("car")


class RecordingProcessor(AttnProcessor2_0):
    """SDPA that records the text states and the ``scale_curve`` each cross-attention call receives (diffusers hands a
    processor the ``cross_attention_kwargs`` its ``__call__`` names)."""

    def __init__(self, log: list | None = None):
        super().__init__()
        self.log = log

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, scale_curve=None
    ):
        if self.log is not None:
            self.log.append((encoder_hidden_states.detach().clone(), scale_curve))
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


def test_a_cross_attention_processor_sees_uncond_then_cond_b_major_over_frames(pipe):
    unet = pipe.unet.unet
    original = unet.attn_processors
    log: list = []
    names = [n for n in original if ".attentions." in n and n.endswith("attn2.processor")]
    assert names, "the preset has spatial cross-attention layers"
    unet.set_attn_processor(
        {n: RecordingProcessor(log if n in names else None) if ".attentions." in n else p for n, p in original.items()}
    )
    try:
        prompts = ["a red house", "a car on the right"]
        frames = 3
        pipe(
            prompts,
            num_frames=frames,
            num_inference_steps=1,
            guidance_scale=2.0,
            negative_prompt="a bell",
            generator=[gen(0), gen(1)],
            cross_attention_kwargs={"scale_curve": [1, 2, 3]},
        )
    finally:
        unet.set_attn_processor(original)
    assert len(log) == len(names)  # one call per layer per step
    cond, neg = pipe.encode_prompt(prompts), pipe.encode_prompt(["a bell"] * 2)
    for states, curve in log:
        assert curve == [1, 2, 3]
        assert states.shape == (2 * 2 * frames, pipe.config.max_text_length, 384)
        for half, embeds in enumerate([neg, cond]):
            for b in range(2):
                for f in range(frames):
                    torch.testing.assert_close(states[(half * 2 + b) * frames + f], embeds[b])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"prompt": None}, "exactly one of prompt and prompt_embeds"),
        ({"prompt": 3}, "prompt must be a string"),
        ({"prompt": []}, "prompt must be a string"),
        ({"num_frames": 0}, r"num_frames must be an integer in \[1, 32\].*got 0"),
        ({"num_frames": 33}, "num_frames .* got 33"),
        ({"height": 60}, "height must be a positive multiple of 16 px.*got 60"),
        ({"width": 0}, "width must be .* got 0"),
        ({"num_inference_steps": 0}, "num_inference_steps .* got 0"),
        ({"guidance_scale": float("nan")}, "guidance_scale .* got nan"),
        ({"guidance_scale": -1.0}, "guidance_scale .* got -1.0"),
        ({"negative_prompt": ["a", "b"]}, "negative_prompt must be a string or a list of 1 strings"),
        ({"num_videos_per_prompt": 0}, "num_videos_per_prompt .* got 0"),
        ({"latents": torch.zeros(1, 48, 2, 16, 16)}, r"latents must have shape \(1, 48, 4, 16, 16\)"),
        ({"generator": [torch.Generator()] * 2}, "list of 1 .* got a list of 2"),
        ({"generator": 0}, "generator must be a torch.Generator"),
        ({"output_type": "gif"}, "output_type must be one of .* got 'gif'"),
        ({"callback_on_step_end_tensor_inputs": ["noise"]}, r"among .* got \['noise'\]"),
        ({"fps": -8}, "fps must be a positive frame rate .* got -8"),
        ({"eta": 2.0}, r"eta must be in \[0, 1\], got 2.0"),
        ({"prompt_embeds": torch.zeros(1, 32, 384)}, "exactly one of prompt and prompt_embeds"),
        (
            {"num_videos_per_prompt": 2, "output_path": "two.mp4"},
            "output_path 'two.mp4' holds one video, but this call makes 2",
        ),
        ({"output_type": "latent", "output_path": "x.mp4"}, "output_path 'x.mp4' needs frames"),
        ({"output_path": "clip.gif"}, "output_path 'clip.gif'"),
    ],
)
def test_check_inputs_names_the_argument_and_its_value(pipe, kwargs, match):
    args = {"prompt": PROMPT, "num_frames": 4, "num_inference_steps": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        pipe(args.pop("prompt"), **args)


@pytest.mark.slow
def test_output_types_and_batches(pipe):
    one = run(pipe, num_frames=4)
    pt = pipe(PROMPT, num_frames=4, num_inference_steps=3, generator=gen(0), output_type="pt").frames
    assert isinstance(pt, torch.Tensor) and torch.equal(pt, torch.from_numpy(one))
    lat = pipe(PROMPT, num_frames=4, num_inference_steps=3, generator=gen(0), output_type="latent").frames
    assert lat.shape == (1, 48, 4, 16, 16)
    np.testing.assert_array_equal(pipe.decode_latents(lat)[0].numpy(), one)
    frames, fps, audio = pipe(PROMPT, num_frames=4, num_inference_steps=3, generator=gen(0), return_dict=False, fps=24)
    np.testing.assert_array_equal(frames, one)
    assert fps == 24 and audio is None
    # A batch of two prompts, one generator each, makes each prompt's own video.
    other = run(pipe, "a bell on the right", seed=1, num_frames=4)
    both = pipe(
        [PROMPT, "a bell on the right"], num_frames=4, num_inference_steps=3, generator=[gen(0), gen(1)]
    ).frames
    assert both.shape == (2, 4, 64, 64, 3)
    assert np.abs(both[0].astype(int) - one).max() <= 1 and np.abs(both[1].astype(int) - other).max() <= 1
    pil = pipe([PROMPT] * 2, num_frames=2, num_inference_steps=1, output_type="pil").frames
    assert len(pil) == 2 and len(pil[0]) == 2


@pytest.mark.slow
def test_output_path_streams_the_decoded_frames_to_an_mp4(pipe, tmp_path):
    held = run(pipe, num_frames=4)
    pipe.decode_batch_size = 3  # the frames go to the writer batch by batch (3 + 1)
    try:
        out = pipe(PROMPT, num_frames=4, num_inference_steps=3, generator=gen(0), output_path=tmp_path / "clip.mp4")
    finally:
        pipe.decode_batch_size = 16
    assert out.frames is None and out.path == tmp_path / "clip.mp4" and out.num_frames == 4 and out.fps == pipe.fps
    clip = read_video(out.path)
    assert clip.frames.shape == (4, 64, 64, 3) and clip.audio is None
    # H.264 (yuv420) blurs the random-weight noise, but each streamed frame is nearest its own held frame: in order
    error = np.abs(clip.frames.numpy().astype(int)[:, None] - held[None].astype(int)).mean(axis=(2, 3, 4))  # (F, F)
    assert error.argmin(axis=1).tolist() == [0, 1, 2, 3]
    frames, fps, audio = pipe(
        PROMPT,
        num_frames=4,
        num_inference_steps=3,
        generator=gen(0),
        return_dict=False,
        output_path=tmp_path / "again.mp4",
    )
    assert frames is None and fps == pipe.fps and audio is None and (tmp_path / "again.mp4").is_file()


@pytest.mark.slow
def test_prompt_embeds_stand_in_for_the_prompt(pipe):
    embeds = pipe.encode_prompt(PROMPT)
    np.testing.assert_array_equal(
        pipe(prompt_embeds=embeds, num_frames=4, num_inference_steps=3, generator=gen(0)).frames,
        run(pipe, num_frames=4),
    )


@pytest.mark.slow
def test_callback_runs_every_step_and_can_change_the_latents(pipe):
    steps = []

    def callback(p, i, t, tensors):
        steps.append((i, int(t), p.num_timesteps))
        return {"latents": torch.zeros_like(tensors["latents"])} if i == 2 else tensors

    out = run(pipe, num_frames=4, num_inference_steps=3, callback_on_step_end=callback)
    assert [s[0] for s in steps] == [0, 1, 2] and all(s[2] == 3 for s in steps)
    np.testing.assert_array_equal(out, np.full_like(out, 128))  # zero latents decode to mid grey


@pytest.mark.slow
def test_save_and_load_without_and_with_the_text_encoder(pipe, tmp_path):
    expected = run(pipe, num_frames=4)
    pipe.save_pretrained(tmp_path / "small")
    index = json.loads((tmp_path / "small" / "model_index.json").read_text())
    assert index["text_encoder"] == [None, None] and index["text_encoder_name"] == "minilm"
    assert not (tmp_path / "small" / "text_encoder").exists()
    loaded = TextToVideoPipeline.from_pretrained(tmp_path / "small")
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(run(loaded, num_frames=4), expected)
    pipe.save_pretrained(tmp_path / "full", save_text_encoder=True)
    assert (tmp_path / "full" / "text_encoder" / "config.json").is_file()
    full = TextToVideoPipeline.from_pretrained(tmp_path / "full")
    full.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(run(full, num_frames=4), expected)
    out = VideoPipelineOutput(frames=expected, fps=full.fps)
    assert out.save(tmp_path / "clip.mp4").stat().st_size > 0


@pytest.mark.slow
def test_from_preset_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a = TextToVideoPipeline.from_preset("tiny", seed=0).unet
    b = TextToVideoPipeline.from_preset("tiny", seed=1).unet
    assert torch.equal(torch.random.get_rng_state(), state)
    wa, wb = a.unet.conv_in.weight, b.unet.conv_in.weight
    assert not torch.equal(wa, wb)
    assert a.unet.config.cross_attention_dim == 384 and a.config.audio_dim is None and a.extra_channels == 0
