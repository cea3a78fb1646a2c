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
6. decode each frame with the codec.

Cross-attention control. Every UNet call sees a batch in the order ``[uncond videos; cond videos]`` (only ``cond``
when ``guidance_scale == 1``), each b-major over frames: spatial attention row ``(half * B + b) * F + f``. The keys of
a spatial cross-attention layer are the token states at positions ``0 .. T-1`` of :meth:`tokenize`;
:meth:`word_token_positions` maps a prompt word to them. A processor installed with
``pipe.unet.unet.set_attn_processor(...)`` receives the ``cross_attention_kwargs`` of ``__call__`` that its own
``__call__`` names as parameters (diffusers drops the others, with a warning); the motion layers never see them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler, MotionAdapter
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from PIL import Image

from avdiff.audio.clock import FpsLike, as_fraction_fps
from avdiff.models.codec import LatentCodec
from avdiff.models.unet import AudioVideoUNet
from avdiff.pipelines.output import VideoPipelineOutput
from avdiff.pipelines.sizes import LatentSizesMixin
from avdiff.pipelines.text_to_video_checks import TextToVideoChecks, batch_size, check_components
from avdiff.pipelines.utils import is_int
from avdiff.pipelines.text_to_video_steps import TextToVideoSteps

logger = logging.getLogger(__name__)

TEXT_COMPONENTS = ("text_encoder", "tokenizer")


class TextToVideoPipeline(TextToVideoSteps, TextToVideoChecks, LatentSizesMixin, DiffusionPipeline):
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
            from avdiff.pipelines.text_to_video_parts import load_packaged_text_encoder

            text_encoder, tokenizer = load_packaged_text_encoder(text_encoder_name)
        if text_encoder is None or tokenizer is None:
            raise ValueError("text_encoder and tokenizer are required (or text_encoder_name, a packaged encoder)")
        if not is_int(max_text_length) or max_text_length < 2:
            raise ValueError(f"max_text_length must be an integer >= 2, got {max_text_length!r}")
        check_components(unet, codec, text_encoder)
        self.register_modules(unet=unet, codec=codec, text_encoder=text_encoder, tokenizer=tokenizer,
                              scheduler=scheduler)  # fmt: skip
        self.register_to_config(fps=str(as_fraction_fps(fps)), max_text_length=int(max_text_length),
                                text_attention_mask=bool(text_attention_mask),
                                text_encoder_name=text_encoder_name)  # fmt: skip
        self.decode_batch_size = 16  # frames per codec.decode call

    # --- builders -----------------------------------------------------------------------------------------------

    @classmethod
    def from_preset(cls, name_or_path: str | os.PathLike = "tiny", seed: int = 0) -> TextToVideoPipeline:
        """A pipeline with a seeded random-weight UNet from a preset (``"tiny"``:
        ``avdiff/presets/text_to_video_tiny.yaml``) and the pretrained text encoder it names. The global RNG is
        left as it was."""
        from avdiff.pipelines.text_to_video_parts import preset_components

        return cls(**preset_components(name_or_path, seed))

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
        from avdiff.pipelines.text_to_video_parts import load_sd15_components

        return cls(**load_sd15_components(sd15_path_or_hub_id, motion_adapter, torch_dtype, **load_kwargs))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *,
                        motion_adapter: MotionAdapter | str | os.PathLike | None = None, **kwargs):  # fmt: skip
        """Load a saved pipeline folder, a bundled model's name (``"scene-tiny"``, see :mod:`avdiff.bundled`) or a hub
        id. A Stable Diffusion 1.5 folder or hub id (its ``model_index.json`` names another pipeline class), or any
        source given with a ``motion_adapter``, goes to :meth:`from_sd15`. ValueError for another avdiff pipeline
        (a talking head)."""
        from avdiff.bundled import resolve

        pretrained_model_name_or_path = resolve(pretrained_model_name_or_path)
        if motion_adapter is None:
            config_kwargs = {k: kwargs[k] for k in ("cache_dir", "local_files_only", "revision", "token") if k in kwargs}
            index = cls.load_config(pretrained_model_name_or_path, **config_kwargs)
            if index.get("_class_name") == cls.__name__:
                return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
            from avdiff.bundled import PIPELINE_KINDS

            if index.get("_class_name") in PIPELINE_KINDS:
                raise ValueError(f"{str(pretrained_model_name_or_path)!r} holds a {index['_class_name']}, not a "
                                 "text-to-video pipeline")  # fmt: skip
            logger.info("%s holds a %s: building on it as Stable Diffusion 1.5", pretrained_model_name_or_path,
                        index.get("_class_name"))  # fmt: skip
        return cls.from_sd15(pretrained_model_name_or_path, motion_adapter, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, *args, save_text_encoder: bool | None = None,
                        **kwargs) -> None:  # fmt: skip
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

    # latent_multiple, pixel_multiple, default_size: inherited from LatentSizesMixin (avdiff/pipelines/sizes.py)

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

    # --- text and denoising: inherited from TextToVideoSteps (avdiff/pipelines/text_to_video_steps.py) -----------

    # --- checks: check_inputs, inherited from TextToVideoChecks (avdiff/pipelines/text_to_video_checks.py) ----

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
            return_dict: return a :class:`VideoPipelineOutput`, else ``(frames, fps)``.
            cross_attention_kwargs: passed to the UNet's attention processors.
            callback_on_step_end: ``f(pipe, step, timestep, tensors) -> tensors`` after every step; returned
                ``latents``, ``prompt_embeds`` or ``negative_prompt_embeds`` replace the pipeline's.
            callback_on_step_end_tensor_inputs: the tensors passed to it (default ``["latents"]``).

        Returns:
            ``VideoPipelineOutput(frames, fps)``; ``.save(path)`` writes an mp4 (one video).
        """
        # 1. Check inputs.
        if callback_on_step_end_tensor_inputs is None:
            callback_on_step_end_tensor_inputs = ["latents"]
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        height = self.default_size if height is None else height
        width = self.default_size if width is None else width
        self.check_inputs(prompt, negative_prompt, prompt_embeds, negative_prompt_embeds, num_frames, height, width,
                          num_inference_steps, guidance_scale, num_videos_per_prompt, latents, generator, output_type,
                          callback_on_step_end_tensor_inputs, fps, eta)  # fmt: skip
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
        latents = self.prepare_latents(batch, num_frames, height, width, dtype, device, generator, latents,
                                       shared_frame_noise)  # (B, C, F, h, w)  # fmt: skip
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)

        # 5. Denoise all frames together.
        state = {"latents": latents, "prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds}
        with self.progress_bar(total=num_inference_steps) as progress:
            for i, t in enumerate(self.scheduler.timesteps):
                pred = self.guided_prediction(state["latents"], t, state["prompt_embeds"],
                                              state["negative_prompt_embeds"], self._guidance_scale,
                                              cross_attention_kwargs)  # fmt: skip
                state["latents"] = self.scheduler.step(pred, t, state["latents"], **extra_step_kwargs,
                                                       return_dict=False)[0]  # fmt: skip
                if callback_on_step_end is not None:
                    returned = callback_on_step_end(self, i, t, {k: state[k] for k in callback_on_step_end_tensor_inputs})
                    state.update({k: v for k, v in returned.items() if k in self._callback_tensor_inputs})
                progress.update()

        # 6. Decode.
        latents = state["latents"]
        if output_type == "latent":
            frames = latents
        else:
            video = self.decode_latents(latents)  # (B, F, H, W, 3) uint8
            video = video[0] if batch == 1 else video
            frames = video if output_type == "pt" else video.numpy()
            if output_type == "pil":
                frames = _to_pil(frames)
        self.maybe_free_model_hooks()
        if not return_dict:
            return frames, out_fps
        return VideoPipelineOutput(frames=frames, fps=out_fps)


def _to_pil(frames: np.ndarray) -> list:
    """uint8 [F, H, W, 3] -> F PIL images; [B, F, H, W, 3] -> B lists of them."""
    if frames.ndim == 5:
        return [_to_pil(video) for video in frames]
    return [Image.fromarray(f) for f in frames]
