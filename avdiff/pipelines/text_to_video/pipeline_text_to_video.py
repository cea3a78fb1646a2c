"""TextToVideoPipeline: a prompt gives a short clip, or one keyframe image (``num_frames=1``), by video diffusion.

A diffusers ``DiffusionPipeline`` with five components (``save_pretrained`` / ``from_pretrained``):

* ``unet``: an :class:`~avdiff.models.AudioVideoUNet` (text through its spatial cross-attention; no reference,
  motion or mask channels);
* ``codec``: a :class:`~avdiff.models.codec.LatentCodec` (the space-to-depth codec for the scene model, SD's VAE for
  the ``sd15`` path);
* ``text_encoder`` and ``tokenizer``: a transformers encoder whose last hidden states [B, T, D] are the
  cross-attention's keys and values (MiniLM for the scene model, CLIP for SD 1.5);
* ``scheduler``: DDIM by default.

Generation, in the numbered steps of ``__call__``:

1. check the inputs;
2. encode the prompt and the negative prompt (the empty prompt by default, the null that training's text dropout
   uses) to token states [B, T, D], padded to ``max_text_length``;
3. set the timesteps;
4. draw the initial noise [B, C, F, h, w] (``shared_frame_noise``: one draw repeated over the frames);
5. denoise, all frames together, with classifier-free guidance (``guidance_scale``);
6. decode each frame with the codec: returned as ``output_type`` asks, or streamed to ``output_path``
   (:class:`avdiff.pipelines.output.FrameSink`).

Cross-attention control. Every UNet call sees a batch in the order ``[uncond videos; cond videos]`` (only ``cond``
when ``guidance_scale == 1``), each b-major over frames: spatial attention row ``(half * B + b) * F + f``. The keys of
a spatial cross-attention layer are the token states at positions ``0 .. T-1`` of :meth:`tokenize`;
:meth:`word_token_positions` maps a prompt word to them. A processor installed with
``pipe.unet.unet.set_attn_processor(...)`` receives the ``cross_attention_kwargs`` of ``__call__`` that its own
``__call__`` names as parameters (diffusers drops the others, with a warning); the motion layers never see them.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    MotionAdapter,
    UNet2DConditionModel,
)
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils.torch_utils import randn_tensor
from transformers import AutoTokenizer, CLIPTextModel

from avdiff.audio.clock import FpsLike, as_fraction_fps
from avdiff.bundled import PIPELINE_KINDS, resolve
from avdiff.encoders.text import PromptTokens, load_text_encoder, tokenize_prompt
from avdiff.models.builders import build_text_to_video_components, load_preset
from avdiff.models.cfg import classifier_free_guidance
from avdiff.models.codec import DiffusersVAECodec, LatentCodec, pixels_to_uint8
from avdiff.models.unet import AudioVideoUNet, default_motion_adapter_config, zero_motion_proj_out
from avdiff.pipelines import utils
from avdiff.pipelines.output import OUTPUT_TYPES as SHARED_OUTPUT_TYPES
from avdiff.pipelines.output import FrameSink, VideoPipelineOutput, check_output_type
from avdiff.pipelines.utils import is_int
from avdiff.video.writer import check_output_path

logger = logging.getLogger(__name__)

TEXT_COMPONENTS = ("text_encoder", "tokenizer")
OUTPUT_TYPES = (*SHARED_OUTPUT_TYPES, "latent")


def batch_size(prompt, prompt_embeds: torch.Tensor | None) -> int:
    """Videos per call before ``num_videos_per_prompt``: the prompts, or the rows of ``prompt_embeds``."""
    if prompt_embeds is not None:
        return int(prompt_embeds.shape[0])
    return 1 if isinstance(prompt, str) else len(prompt)


def check_components(unet: AudioVideoUNet, codec: LatentCodec, text_encoder: torch.nn.Module) -> None:
    """Raise a ValueError unless the components fit together."""
    if unet.latent_channels != codec.latent_channels:
        raise ValueError(
            f"unet.latent_channels ({unet.latent_channels}) must equal codec.latent_channels ({codec.latent_channels})"
        )
    if unet.extra_channels:
        raise ValueError(
            f"the UNet takes {unet.extra_channels} reference/motion/mask channels; a text-to-video UNet "
            "takes none (build it with reference_channels=motion_channels=mask_channels=0)"
        )
    width = getattr(getattr(text_encoder, "config", None), "hidden_size", None)
    if width != unet.unet.config.cross_attention_dim:
        raise ValueError(
            f"the text encoder's hidden_size ({width}) must equal the UNet's cross_attention_dim "
            f"({unet.unet.config.cross_attention_dim})"
        )


class TextToVideoPipeline(DiffusionPipeline):
    """Text-to-video and text-to-image generation on an :class:`~avdiff.models.AudioVideoUNet`.

    Example::

        pipe = TextToVideoPipeline.from_pretrained("runs/scenes_tiny/final")     # or .from_preset("tiny", seed=0)
        out = pipe("a campfire on the left beside a lake at night", num_frames=16, guidance_scale=3.0,
                   generator=torch.Generator().manual_seed(0))
        out.save("scene.mp4")                                   # 16 frames at the model's 8 fps
        key = pipe("a house under the moon", num_frames=1).frames[0]   # one keyframe image, uint8 [H, W, 3]

        sd = TextToVideoPipeline.from_pretrained("stable-diffusion-v1-5/stable-diffusion-v1-5",
                                                 motion_adapter="guoyww/animatediff-motion-adapter-v1-5-2")

    Args:
        unet: the denoiser; its latent channels must be the codec's and its ``cross_attention_dim`` the text
            encoder's width; it takes no reference, motion or mask channels.
        codec: pixels <-> latents.
        text_encoder: a transformers model; ``text_encoder(ids, attention_mask=...)[0]`` is [B, T, D].
        tokenizer: its fast tokenizer.
        scheduler: DDIM by default (any diffusers scheduler with ``set_timesteps`` / ``step``).
        fps: the frame rate the model was trained at (the output's fps).
        max_text_length: prompts are padded and truncated to this many tokens (T).
        text_attention_mask: pass the padding mask to the text encoder (True for BERT-like encoders; SD 1.5 runs
            CLIP without one).
        text_encoder_name: a packaged text encoder (``"minilm"``). ``save_pretrained`` then writes only this name, and
            loading a folder without the encoder loads the packaged one.
    """

    model_cpu_offload_seq = "text_encoder->unet->codec"
    _optional_components = list(TEXT_COMPONENTS)
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self,
        unet: AudioVideoUNet,
        codec: LatentCodec,
        text_encoder: torch.nn.Module | None,
        tokenizer,
        scheduler: DDIMScheduler | DPMSolverMultistepScheduler,
        fps: FpsLike = 8,
        max_text_length: int = 77,
        text_attention_mask: bool = True,
        text_encoder_name: str | None = None,
    ):
        super().__init__()
        if text_encoder is None and tokenizer is None and text_encoder_name:
            text_encoder, tokenizer = load_text_encoder(text_encoder_name)
        if text_encoder is None or tokenizer is None:
            raise ValueError("text_encoder and tokenizer are required (or text_encoder_name, a packaged encoder)")
        if not is_int(max_text_length) or max_text_length < 2:
            raise ValueError(f"max_text_length must be an integer >= 2, got {max_text_length!r}")
        check_components(unet, codec, text_encoder)
        self.register_modules(
            unet=unet, codec=codec, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler
        )
        self.register_to_config(
            fps=str(as_fraction_fps(fps)),
            max_text_length=int(max_text_length),
            text_attention_mask=bool(text_attention_mask),
            text_encoder_name=text_encoder_name,
        )
        self.decode_batch_size = 16  # frames per codec.decode call

    # --- builders -----------------------------------------------------------------------------------------------

    @classmethod
    def from_preset(cls, name_or_path: str | os.PathLike = "tiny", seed: int = 0) -> TextToVideoPipeline:
        """A pipeline with a seeded random-weight UNet from a preset (``"tiny"``:
        ``avdiff/presets/text_to_video/tiny.yaml``) and the pretrained text encoder it names. The global RNG is
        left as it was."""
        spec = load_preset("text_to_video", name_or_path)
        text_encoder, tokenizer = load_text_encoder(spec["text_encoder"]["name"])
        return cls(**build_text_to_video_components(spec, text_encoder, tokenizer, seed))

    @classmethod
    def from_sd15(
        cls,
        sd15_path_or_hub_id: str | os.PathLike = "stable-diffusion-v1-5/stable-diffusion-v1-5",
        motion_adapter: MotionAdapter | str | os.PathLike | None = "guoyww/animatediff-motion-adapter-v1-5-2",
        torch_dtype: torch.dtype | None = None,
        **load_kwargs,
    ) -> TextToVideoPipeline:
        """Stable Diffusion 1.5 + AnimateDiff (hub ids or local folders): CLIP text encoder and tokenizer, SD's VAE as
        the codec, the UNet inflated with the motion adapter's temporal layers, DDIM with AnimateDiff's settings.
        ``motion_adapter=None`` gives identity temporal layers (independent frames: keyframe images)."""
        return cls(**load_sd15_components(sd15_path_or_hub_id, motion_adapter, torch_dtype, **load_kwargs))

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        motion_adapter: MotionAdapter | str | os.PathLike | None = None,
        **kwargs,
    ):
        """Load a saved pipeline folder, a bundled model's name (``"scene-tiny"``, see :mod:`avdiff.bundled`) or a hub
        id. A Stable Diffusion 1.5 folder or hub id (its ``model_index.json`` names another pipeline class), or any
        source given with a ``motion_adapter``, goes to :meth:`from_sd15`. ValueError for another avdiff pipeline
        (a talking head)."""
        pretrained_model_name_or_path = resolve(pretrained_model_name_or_path)
        if motion_adapter is None:
            config_kwargs = {
                k: kwargs[k] for k in ("cache_dir", "local_files_only", "revision", "token") if k in kwargs
            }
            index = cls.load_config(pretrained_model_name_or_path, **config_kwargs)
            if index.get("_class_name") == cls.__name__:
                return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
            if index.get("_class_name") in PIPELINE_KINDS:
                raise ValueError(
                    f"{str(pretrained_model_name_or_path)!r} holds a {index['_class_name']}, not a "
                    "text-to-video pipeline"
                )
            logger.info(
                "%s holds a %s: building on it as Stable Diffusion 1.5",
                pretrained_model_name_or_path,
                index.get("_class_name"),
            )
        return cls.from_sd15(pretrained_model_name_or_path, motion_adapter, **kwargs)

    def save_pretrained(
        self, save_directory: str | os.PathLike, *args, save_text_encoder: bool | None = None, **kwargs
    ) -> None:
        """Save every component (diffusers layout). A packaged text encoder (``text_encoder_name``) is written as its
        name only unless ``save_text_encoder=True``."""
        packaged = self.config.text_encoder_name is not None
        if save_text_encoder is None:
            save_text_encoder = not packaged
        if not save_text_encoder and not packaged:
            raise ValueError("save_text_encoder=False needs a packaged text encoder (text_encoder_name), got None")
        if save_text_encoder:
            return super().save_pretrained(save_directory, *args, **kwargs)
        saved = {k: self.config[k] for k in TEXT_COMPONENTS}
        self.register_to_config(**{k: (None, None) for k in TEXT_COMPONENTS})
        try:
            super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            self.register_to_config(**saved)

    # --- sizes and state ----------------------------------------------------------------------------------------

    @property
    def fps(self) -> Fraction:
        return as_fraction_fps(self.config.fps)

    @property
    def latent_multiple(self) -> int:
        """Latent sides must be multiples of this (the UNet halves them once per down block but the last)."""
        return utils.latent_multiple(self.unet)

    @property
    def pixel_multiple(self) -> int:
        """Output sides must be multiples of this many pixels: ``latent_multiple`` times the codec's downscale."""
        return utils.pixel_multiple(self.unet, self.codec)

    @property
    def default_size(self) -> int:
        """The side the UNet was built for, px: its ``sample_size`` times the codec's downscale."""
        return utils.default_size(self.unet, self.codec)

    @property
    def max_frames(self) -> int:
        return int(self.unet.unet.config.motion_max_seq_length)

    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        """Whether the UNet batch holds an unconditional half: ``guidance_scale != 1``."""
        return self._guidance_scale != 1

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def cross_attention_kwargs(self) -> dict | None:
        return self._cross_attention_kwargs

    # --- checks -----------------------------------------------------------------------------------------------

    def check_inputs(
        self,
        prompt,
        negative_prompt,
        prompt_embeds: torch.Tensor | None,
        negative_prompt_embeds: torch.Tensor | None,
        num_frames: int,
        height: int,
        width: int,
        num_inference_steps: int,
        guidance_scale: float,
        num_videos_per_prompt: int,
        latents: torch.Tensor | None,
        generator,
        output_type: str,
        callback_on_step_end_tensor_inputs: list[str] | None,
        fps,
        eta: float,
        output_path: str | os.PathLike | None = None,
    ) -> None:
        """Raise a ValueError naming the argument and its value for anything ``pipe(...)`` cannot do."""
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError(
                f"give exactly one of prompt and prompt_embeds, got prompt={prompt!r} and prompt_embeds="
                f"{None if prompt_embeds is None else tuple(prompt_embeds.shape)}"
            )
        if prompt is not None and not (
            isinstance(prompt, str)
            or (isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt))
        ):
            raise ValueError(f"prompt must be a string or a non-empty list of strings, got {prompt!r}")
        if negative_prompt is not None and negative_prompt_embeds is not None:
            raise ValueError("give negative_prompt or negative_prompt_embeds, not both")
        batch = batch_size(prompt, prompt_embeds)
        if negative_prompt is not None:
            if isinstance(negative_prompt, list):
                if len(negative_prompt) != batch or not all(isinstance(p, str) for p in negative_prompt):
                    raise ValueError(
                        f"negative_prompt must be a string or a list of {batch} strings (one per prompt),"
                        f" got {negative_prompt!r}"
                    )
            elif not isinstance(negative_prompt, str):
                raise ValueError(f"negative_prompt must be a string or a list of strings, got {negative_prompt!r}")
        dim = self.unet.unet.config.cross_attention_dim
        for name, embeds in [("prompt_embeds", prompt_embeds), ("negative_prompt_embeds", negative_prompt_embeds)]:
            if embeds is not None and (embeds.ndim != 3 or embeds.shape[-1] != dim):
                raise ValueError(f"{name} must have shape (B, T, {dim}), got {tuple(embeds.shape)}")
        if (
            prompt_embeds is not None
            and negative_prompt_embeds is not None
            and prompt_embeds.shape != negative_prompt_embeds.shape
        ):
            raise ValueError(
                f"negative_prompt_embeds must have prompt_embeds' shape {tuple(prompt_embeds.shape)}, "
                f"got {tuple(negative_prompt_embeds.shape)}"
            )
        if not is_int(num_frames) or not 1 <= num_frames <= self.max_frames:
            raise ValueError(
                f"num_frames must be an integer in [1, {self.max_frames}] (the UNet's "
                f"motion_max_seq_length), got {num_frames!r}"
            )
        for name, side in [("height", height), ("width", width)]:
            if not is_int(side) or side < self.pixel_multiple or side % self.pixel_multiple:
                raise ValueError(
                    f"{name} must be a positive multiple of {self.pixel_multiple} px (the codec's "
                    f"downscale {self.codec.downscale} x the UNet's {self.latent_multiple}), got {side!r}"
                )
        if not is_int(num_inference_steps) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be an integer >= 1, got {num_inference_steps!r}")
        if not (isinstance(guidance_scale, (int, float)) and math.isfinite(guidance_scale) and guidance_scale >= 0):
            raise ValueError(
                f"guidance_scale must be a finite number >= 0 (1 turns guidance off), got {guidance_scale!r}"
            )
        if not is_int(num_videos_per_prompt) or num_videos_per_prompt < 1:
            raise ValueError(f"num_videos_per_prompt must be an integer >= 1, got {num_videos_per_prompt!r}")
        total = batch * (num_videos_per_prompt if is_int(num_videos_per_prompt) else 1)
        if latents is not None:
            f = self.codec.downscale
            expected = (total, self.unet.latent_channels, num_frames, height // f, width // f)
            if tuple(latents.shape) != expected:
                raise ValueError(f"latents must have shape {expected}, got {tuple(latents.shape)}")
        if isinstance(generator, list) and len(generator) != total:
            raise ValueError(
                f"generator must be one torch.Generator or a list of {total} (one per video), got a list "
                f"of {len(generator)}"
            )
        if generator is not None and not isinstance(generator, (torch.Generator, list)):
            raise ValueError(
                f"generator must be a torch.Generator, a list of them, or None, got {type(generator).__name__}"
            )
        check_output_type(output_type, OUTPUT_TYPES)
        unknown = [k for k in callback_on_step_end_tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs must be among {self._callback_tensor_inputs}, got {unknown}"
            )
        if fps is not None:
            try:
                as_fraction_fps(fps)
            except (TypeError, ValueError, ZeroDivisionError) as e:
                raise ValueError(f"fps must be a positive frame rate (8, 29.97, '30000/1001'), got {fps!r}") from e
        if not (isinstance(eta, (int, float)) and 0 <= eta <= 1):
            raise ValueError(f"eta must be in [0, 1], got {eta!r}")
        if output_path is not None:
            if total != 1:
                raise ValueError(
                    f"output_path {os.fspath(output_path)!r} holds one video, but this call makes {total} "
                    "(one prompt, num_videos_per_prompt=1)"
                )
            if output_type == "latent":
                raise ValueError(
                    f"output_path {os.fspath(output_path)!r} needs frames; output_type='latent' gives latents"
                )
            check_output_path(output_path)

    # --- text ---------------------------------------------------------------------------------------------------

    def tokenize(self, prompt: str) -> PromptTokens:
        """The prompt as the text encoder reads it: ids, token strings and character offsets, padded to
        ``max_text_length``."""
        return tokenize_prompt(self.tokenizer, prompt, self.config.max_text_length)

    def word_token_positions(self, prompt: str, word: str) -> list[int]:
        """Positions of ``word`` (every occurrence, every piece) among the cross-attention keys of ``prompt``.
        ValueError if it is not a word of the prompt."""
        return self.tokenize(prompt).positions(word)

    @torch.no_grad()
    def encode_prompt(
        self, prompt: str | list[str], device: torch.device | None = None, num_videos_per_prompt: int = 1
    ) -> torch.Tensor:
        """Prompts -> token states [B * num_videos_per_prompt, T, D] in the UNet's dtype (T = ``max_text_length``)."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        device = device or self._execution_device
        length = self.config.max_text_length
        enc = self.tokenizer(prompts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
        too_long = [p for p in prompts if len(self.tokenizer(p)["input_ids"]) > length]
        if too_long:
            logger.warning("prompt(s) truncated to %d tokens: %s", length, too_long)
        mask = enc["attention_mask"].to(device) if self.config.text_attention_mask else None
        states = self.text_encoder(enc["input_ids"].to(device), attention_mask=mask)[0]  # (B, T, D)
        return states.to(dtype=self.unet.dtype).repeat_interleave(num_videos_per_prompt, dim=0)

    # --- denoising steps --------------------------------------------------------------------------------------

    def guided_prediction(
        self,
        latents: torch.Tensor,
        t: torch.Tensor | int,
        prompt_embeds: torch.Tensor,
        negative_prompt_embeds: torch.Tensor | None = None,
        guidance_scale: float = 1.0,
        cross_attention_kwargs: dict | None = None,
    ) -> torch.Tensor:
        """The UNet's guided output for latents [B, C, F, h, w]: one call over ``[negative; prompt]`` and
        ``uncond + guidance_scale * (cond - uncond)``, or the conditional pass alone when ``guidance_scale == 1``."""
        model_input = self.scheduler.scale_model_input(latents, t)
        if guidance_scale == 1:
            return self.unet(
                model_input,
                t,
                encoder_hidden_states=prompt_embeds,
                cross_attention_kwargs=cross_attention_kwargs,
                return_dict=False,
            )[0]
        if negative_prompt_embeds is None:
            raise ValueError(f"guidance_scale={guidance_scale} needs negative_prompt_embeds")
        text = torch.cat([negative_prompt_embeds, prompt_embeds])  # (2B, T, D)
        pred = self.unet(
            torch.cat([model_input] * 2),
            t,
            encoder_hidden_states=text,
            cross_attention_kwargs=cross_attention_kwargs,
            return_dict=False,
        )[0]
        return classifier_free_guidance(pred, guidance_scale)

    def prepare_latents(
        self,
        batch: int,
        num_frames: int,
        height: int,
        width: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None = None,
        shared_frame_noise: bool = False,
    ) -> torch.Tensor:
        """Step 4: the initial latents [B, C, F, h, w], scaled by the scheduler's ``init_noise_sigma``. With
        ``shared_frame_noise`` one draw [B, C, 1, h, w] is repeated over the frames."""
        f = self.codec.downscale
        shape = (batch, self.unet.latent_channels, num_frames, height // f, width // f)
        if latents is None:
            draw = (*shape[:2], 1, *shape[3:]) if shared_frame_noise else shape
            latents = randn_tensor(draw, generator=generator, device=device, dtype=dtype)
            latents = latents.repeat(1, 1, num_frames, 1, 1) if shared_frame_noise else latents
        else:
            latents = latents.to(device=device, dtype=dtype)
        return latents * self.scheduler.init_noise_sigma

    def iter_decoded(self, latents: torch.Tensor):
        """Step 6, a batch at a time: latents [B, C, F, h, w] -> uint8 frames [n, H, W, 3] per ``codec.decode`` call,
        ``decode_batch_size`` frames each, in b-major order (video 0's frames first)."""
        flat = latents.transpose(1, 2).flatten(0, 1)  # (B*F, C, h, w)
        flat = flat.to(device=self.codec.device, dtype=self.codec.dtype)
        for i in range(0, len(flat), self.decode_batch_size):
            yield pixels_to_uint8(self.codec.decode(flat[i : i + self.decode_batch_size]))

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Step 6: latents [B, C, F, h, w] -> uint8 frames [B, F, H, W, 3], ``decode_batch_size`` frames per call."""
        b, _, frames = latents.shape[:3]
        out = torch.cat(list(self.iter_decoded(latents)))
        return out.view(b, frames, *out.shape[1:])

    def prepare_extra_step_kwargs(self, generator: torch.Generator | None, eta: float) -> dict:
        """``eta`` and ``generator`` for ``scheduler.step`` where its signature takes them."""
        params = set(inspect.signature(self.scheduler.step).parameters)
        return {k: v for k, v in (("eta", eta), ("generator", generator)) if k in params}

    # --- call ---------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        *,
        num_frames: int = 16,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 25,
        guidance_scale: float = 3.0,
        negative_prompt: str | list[str] | None = None,
        num_videos_per_prompt: int = 1,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        shared_frame_noise: bool = False,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        fps: FpsLike | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        output_path: str | os.PathLike | None = None,
        cross_attention_kwargs: dict | None = None,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> VideoPipelineOutput | tuple:
        """Generate a clip (or, with ``num_frames=1``, one image) from a prompt.

        Args:
            prompt: a prompt, or a list of prompts (one video each).
            num_frames: frames denoised together, 1 .. the UNet's ``motion_max_seq_length`` (1: a keyframe image).
            height, width: output size in px (default: the model's size); multiples of ``pixel_multiple``.
            num_inference_steps: denoising steps.
            guidance_scale: classifier-free guidance ``s``: ``uncond + s (cond - uncond)``; 1 = the conditional
                prediction alone (one UNet pass per step).
            negative_prompt: the unconditional prompt (default: the empty prompt, training's null).
            num_videos_per_prompt: videos per prompt.
            eta: DDIM's eta (0: deterministic given the initial noise).
            generator: draws the initial noise (and DDIM's noise when eta > 0); a list gives one per video. None uses
                torch's global generator.
            latents: initial noise [B, C, F, h, w] to use instead of drawing it.
            shared_frame_noise: every frame starts from the same noise (one draw per video).
            prompt_embeds, negative_prompt_embeds: token states [B, T, D] to use instead of encoding prompts (e.g.
                interpolated between two prompts).
            fps: the output's frame rate (default: the model's, ``pipe.fps``).
            output_type: ``"np"`` uint8 [F, H, W, 3] (one video) or [B, F, H, W, 3] (several); ``"pt"`` the same as a
                torch tensor; ``"pil"`` a list of F PIL images (or a list of such lists); ``"latent"`` the final
                latents [B, C, F, h, w].
            return_dict: return a :class:`VideoPipelineOutput`, else ``(frames, fps, audio)`` (audio is None: the
                clip has no sound).
            output_path: stream the frames to this mp4 as they are decoded instead of holding them (one video only);
                the output's ``frames`` is then None and ``path`` the file.
            cross_attention_kwargs: passed to the UNet's attention processors.
            callback_on_step_end: ``f(pipe, step, timestep, tensors) -> tensors`` after every step; returned
                ``latents``, ``prompt_embeds`` or ``negative_prompt_embeds`` replace the pipeline's.
            callback_on_step_end_tensor_inputs: the tensors passed to it (default ``["latents"]``).

        Returns:
            ``VideoPipelineOutput(frames, fps)`` (or ``path`` with ``output_path``); ``.save(path)`` writes an mp4 (one
            video).
        """
        # 1. Check inputs.
        if callback_on_step_end_tensor_inputs is None:
            callback_on_step_end_tensor_inputs = ["latents"]
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        height = self.default_size if height is None else height
        width = self.default_size if width is None else width
        self.check_inputs(
            prompt,
            negative_prompt,
            prompt_embeds,
            negative_prompt_embeds,
            num_frames,
            height,
            width,
            num_inference_steps,
            guidance_scale,
            num_videos_per_prompt,
            latents,
            generator,
            output_type,
            callback_on_step_end_tensor_inputs,
            fps,
            eta,
            output_path,
        )
        self._guidance_scale = float(guidance_scale)
        self._num_timesteps = num_inference_steps
        self._cross_attention_kwargs = cross_attention_kwargs
        device, dtype = self._execution_device, self.unet.dtype
        batch = batch_size(prompt, prompt_embeds) * num_videos_per_prompt
        out_fps = self.fps if fps is None else as_fraction_fps(fps)

        # 2. Encode the prompt and the negative prompt (the empty prompt unless given).
        if prompt_embeds is None:
            prompt_embeds = self.encode_prompt(prompt, device, num_videos_per_prompt)  # (B, T, D)
        else:
            prompt_embeds = prompt_embeds.to(device=device, dtype=dtype).repeat_interleave(num_videos_per_prompt, 0)
        if self.do_classifier_free_guidance and negative_prompt_embeds is None:
            negatives = negative_prompt if negative_prompt is not None else ""
            if isinstance(negatives, str):
                negatives = [negatives] * (batch // num_videos_per_prompt)
            negative_prompt_embeds = self.encode_prompt(negatives, device, num_videos_per_prompt)
        elif negative_prompt_embeds is not None:
            negative_prompt_embeds = negative_prompt_embeds.to(device=device, dtype=dtype)
            negative_prompt_embeds = negative_prompt_embeds.repeat_interleave(num_videos_per_prompt, 0)

        # 3. Timesteps.
        self.scheduler.set_timesteps(num_inference_steps, device=device)

        # 4. Initial noise.
        latents = self.prepare_latents(
            batch, num_frames, height, width, dtype, device, generator, latents, shared_frame_noise
        )  # (B, C, F, h, w)
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)

        # 5. Denoise all frames together.
        state = {"latents": latents, "prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds}
        with self.progress_bar(total=num_inference_steps) as progress:
            for i, t in enumerate(self.scheduler.timesteps):
                pred = self.guided_prediction(
                    state["latents"],
                    t,
                    state["prompt_embeds"],
                    state["negative_prompt_embeds"],
                    self._guidance_scale,
                    cross_attention_kwargs,
                )
                state["latents"] = self.scheduler.step(
                    pred, t, state["latents"], **extra_step_kwargs, return_dict=False
                )[0]
                if callback_on_step_end is not None:
                    returned = callback_on_step_end(
                        self, i, t, {k: state[k] for k in callback_on_step_end_tensor_inputs}
                    )
                    state.update({k: v for k, v in returned.items() if k in self._callback_tensor_inputs})
                progress.update()

        # 6. Decode: returned as output_type asks, or streamed to output_path frame by frame.
        latents = state["latents"]
        if output_type == "latent":
            self.maybe_free_model_hooks()
            return VideoPipelineOutput(frames=latents, fps=out_fps) if return_dict else (latents, out_fps, None)
        with FrameSink(out_fps, None, output_path=output_path) as sink:
            if output_path is not None:
                for video in self.iter_decoded(latents):
                    for frame in video.numpy():
                        sink.write(frame)
            else:
                video = self.decode_latents(latents)  # (B, F, H, W, 3) uint8
                sink.hold((video[0] if batch == 1 else video).numpy())
            result = sink.finish(output_type=output_type, return_dict=return_dict)
        self.maybe_free_model_hooks()
        return result


# --- components from Stable Diffusion 1.5 -------------------------------------------------------------------------
# The keyword arguments of ``TextToVideoPipeline(...)`` from Stable Diffusion 1.5 plus an AnimateDiff motion adapter
# (hub ids or local folders: CLIP, SD's VAE behind DiffusersVAECodec, the UNet inflated by
# AudioVideoUNet.from_unet2d). A preset's components are built by avdiff.models.builders.

# AnimateDiff's recommended sampler settings on SD 1.5 (diffusers' AnimateDiffPipeline documentation).
ANIMATEDIFF_DDIM = {"clip_sample": False, "timestep_spacing": "linspace", "beta_schedule": "linear", "steps_offset": 1}


def zero_motion_adapter(unet2d: UNet2DConditionModel) -> MotionAdapter:
    """A small MotionAdapter that fits ``unet2d`` with its ``proj_out`` layers zeroed: every temporal layer is the
    identity, so the inflated UNet makes each frame as the 2D UNet would (independent images)."""
    config = {**default_motion_adapter_config(unet2d), "motion_layers_per_block": 1, "use_motion_mid_block": False}
    adapter = MotionAdapter(**config).to(unet2d.dtype)
    zero_motion_proj_out(adapter)
    return adapter


def load_sd15_components(
    sd15_path_or_hub_id: str | os.PathLike,
    motion_adapter: MotionAdapter | str | os.PathLike | None = None,
    torch_dtype: torch.dtype | None = None,
    **load_kwargs,
) -> dict:
    """The components of a text-to-video pipeline on Stable Diffusion 1.5 (diffusers folder layout: ``unet/``,
    ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``) plus an AnimateDiff motion adapter (an instance, a
    hub id or a folder; ``None``: :func:`zero_motion_adapter`). ``load_kwargs`` (``revision``, ``cache_dir``,
    ``local_files_only``, ...) go to every ``from_pretrained``. The scheduler is SD's, as DDIM with AnimateDiff's
    settings (:data:`ANIMATEDIFF_DDIM`)."""
    source = str(sd15_path_or_hub_id)
    if str(source).startswith((".", "/")) and not Path(source).is_dir():
        raise FileNotFoundError(f"sd15_path_or_hub_id {source!r} is not a folder")
    dtype_kw = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}
    logger.info("loading Stable Diffusion 1.5 parts from %s", source)
    tokenizer = AutoTokenizer.from_pretrained(source, subfolder="tokenizer", **load_kwargs)
    text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", **dtype_kw, **load_kwargs)
    vae = AutoencoderKL.from_pretrained(source, subfolder="vae", **dtype_kw, **load_kwargs)
    unet2d = UNet2DConditionModel.from_pretrained(source, subfolder="unet", **dtype_kw, **load_kwargs)
    if motion_adapter is None:
        logger.warning("no motion adapter: the temporal layers are the identity, so frames are independent images")
        motion_adapter = zero_motion_adapter(unet2d)
    elif not isinstance(motion_adapter, MotionAdapter):
        motion_adapter = MotionAdapter.from_pretrained(str(motion_adapter), **dtype_kw, **load_kwargs)
    unet = AudioVideoUNet.from_unet2d(
        unet2d, motion_adapter, audio_dim=None, reference_channels=0, motion_channels=0, mask_channels=0
    )
    scheduler = DDIMScheduler.from_pretrained(source, subfolder="scheduler", **load_kwargs)
    scheduler = DDIMScheduler.from_config(scheduler.config, **ANIMATEDIFF_DDIM)
    return {
        "unet": unet.eval(),
        "codec": DiffusersVAECodec(vae).eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
        "scheduler": scheduler,
        "fps": "8",
        "max_text_length": int(tokenizer.model_max_length),
        "text_attention_mask": False,
    }
