"""The real-weights path of TextToVideoPipeline: Stable Diffusion 1.5 + AnimateDiff, on tiny random SD-shaped parts
that the tests build and save in the diffusers folder layout (no downloads).

The independent truth: with identity temporal layers (no motion adapter) the inflated pipeline must reproduce
diffusers' own StableDiffusionPipeline, latent for latent, from the same initial noise.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, StableDiffusionPipeline, UNet2DConditionModel
from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel

from avdiff.models.codec import DiffusersVAECodec
from avdiff.pipelines.text_to_video import TextToVideoPipeline

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread for the module

PROMPT = "a campfire, a car"


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def write_tiny_clip_tokenizer(folder: Path, max_length: int = 16) -> None:
    """SD's tokenizer layout (vocab.json, merges.txt, tokenizer_config.json) with a tiny byte-level BPE: single
    letters, their end-of-word forms, and merges that split ``campfire`` into ``camp`` + ``fire</w>``."""
    folder.mkdir(parents=True)
    letters = string.ascii_lowercase + ",."
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in [*letters, *(c + "</w>" for c in letters)]:
        vocab[token] = len(vocab)
    merges = [
        ("c", "a"),
        ("ca", "m"),
        ("cam", "p"),
        ("f", "i"),
        ("fi", "r"),
        ("fir", "e</w>"),
        ("c", "a</w>"),
        ("ca", "r</w>"),
    ]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": max_length,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
            }
        )
    )


@pytest.fixture(scope="module")
def sd_folders(tmp_path_factory) -> tuple[Path, Path]:
    """(a tiny SD 1.5-layout pipeline folder, a tiny AnimateDiff motion adapter folder)."""
    root = tmp_path_factory.mktemp("sd15")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=100,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            max_position_embeddings=16,
        )
    )
    write_tiny_clip_tokenizer(root / "tok")
    tokenizer = AutoTokenizer.from_pretrained(root / "tok")
    scheduler = DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    sd = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    sd.save_pretrained(root / "sd15")
    adapter = MotionAdapter(
        block_out_channels=(32, 64),
        motion_layers_per_block=1,
        motion_num_attention_heads=4,
        motion_norm_num_groups=32,
        motion_max_seq_length=16,
    )  # random proj_out: motion matters
    adapter.save_pretrained(root / "adapter")
    return root / "sd15", root / "adapter"


@pytest.fixture(scope="module")
def animated(sd_folders) -> TextToVideoPipeline:
    sd, adapter = sd_folders
    pipe = TextToVideoPipeline.from_pretrained(sd, motion_adapter=adapter)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_loading_the_folders_offline_builds_the_inflated_pipeline(sd_folders, animated):
    assert isinstance(animated.codec, DiffusersVAECodec) and animated.codec.downscale == 2
    assert type(animated.text_encoder).__name__ == "CLIPTextModel"
    assert animated.unet.config.audio_dim is None and animated.unet.extra_channels == 0
    assert animated.config.max_text_length == 16 and animated.config.text_attention_mask is False
    assert animated.scheduler.config.beta_schedule == "linear" and animated.scheduler.config.clip_sample is False
    adapter = MotionAdapter.from_pretrained(sd_folders[1])
    assert animated.unet.parameter_counts()["motion"] == sum(p.numel() for p in adapter.parameters())


@pytest.mark.slow
def test_frames_have_the_right_shape_and_are_deterministic_per_seed(animated):
    def video(seed, num_frames=4):
        return animated(PROMPT, num_frames=num_frames, height=32, width=32, num_inference_steps=3, generator=gen(seed))

    a, b, c = video(0), video(0), video(1)
    assert a.frames.shape == (4, 32, 32, 3) and a.fps == 8
    np.testing.assert_array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)
    assert video(0, num_frames=1).frames.shape == (1, 32, 32, 3)


@pytest.mark.slow
def test_without_a_motion_adapter_each_frame_is_exactly_stable_diffusion(sd_folders):
    sd_folder, _ = sd_folders
    pipe = TextToVideoPipeline.from_pretrained(sd_folder)  # an SD folder: built with identity temporal layers
    pipe.set_progress_bar_config(disable=True)
    sd = StableDiffusionPipeline.from_pretrained(sd_folder, safety_checker=None, requires_safety_checker=False)
    sd.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    sd.set_progress_bar_config(disable=True)
    noise = torch.randn(1, 4, 3, 16, 16, generator=gen(7))
    ours = pipe(
        PROMPT,
        num_frames=3,
        height=32,
        width=32,
        num_inference_steps=4,
        guidance_scale=5.0,
        latents=noise,
        output_type="latent",
    ).frames
    for f in range(3):
        theirs = sd(
            PROMPT,
            height=32,
            width=32,
            num_inference_steps=4,
            guidance_scale=5.0,
            latents=noise[:, :, f].clone(),
            output_type="latent",
        ).images
        torch.testing.assert_close(ours[:, :, f], theirs, rtol=1e-4, atol=1e-4)
    # ... and with the motion adapter's temporal layers the frames are no longer independent images.
    frames_alone = pipe(PROMPT, num_frames=3, height=32, width=32, num_inference_steps=2, latents=noise).frames
    animated = TextToVideoPipeline.from_pretrained(sd_folder, motion_adapter=sd_folders[1])
    animated.set_progress_bar_config(disable=True)
    moving = animated(PROMPT, num_frames=3, height=32, width=32, num_inference_steps=2, latents=noise).frames
    assert not np.array_equal(frames_alone, moving)


def test_word_positions_with_clip_bpe_and_no_false_match_of_a_word_piece(animated):
    tokens = animated.tokenize(PROMPT)
    assert [tokens.tokens[i] for i in tokens.positions("campfire")] == ["camp", "fire</w>"]
    assert [tokens.tokens[i] for i in tokens.positions("car")] == ["car</w>"]
    with pytest.raises(ValueError, match="'fire' is not in the prompt"):
        tokens.positions("fire")  # CLIP's fire</w> ends "campfire" too, but it is not the word


def test_an_sd_based_pipeline_saves_with_its_text_encoder_and_loads_back(animated, tmp_path):
    expected = animated(PROMPT, num_frames=2, height=32, width=32, num_inference_steps=2, generator=gen(0)).frames
    animated.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "text_encoder" / "config.json").is_file()
    with pytest.raises(ValueError, match="save_text_encoder=False needs a packaged text encoder"):
        animated.save_pretrained(tmp_path / "other", save_text_encoder=False)
    loaded = TextToVideoPipeline.from_pretrained(tmp_path / "saved")
    loaded.set_progress_bar_config(disable=True)
    again = loaded(PROMPT, num_frames=2, height=32, width=32, num_inference_steps=2, generator=gen(0)).frames
    np.testing.assert_array_equal(again, expected)


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises((OSError, FileNotFoundError), match="nothing_here"):
        TextToVideoPipeline.from_pretrained(tmp_path / "nothing_here", motion_adapter=tmp_path / "adapter")
