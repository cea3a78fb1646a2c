"""Input checks of :class:`~avdiff.pipelines.text_to_video.TextToVideoPipeline` (its ``check_inputs``): one
ValueError per problem, naming the argument and its value."""

from __future__ import annotations

import logging
import math

import torch

from avdiff.audio.clock import as_fraction_fps
from avdiff.models.codec import LatentCodec
from avdiff.models.unet import AudioVideoUNet
from avdiff.pipelines.utils import is_int

logger = logging.getLogger(__name__)

OUTPUT_TYPES = ("np", "pt", "pil", "latent")


def batch_size(prompt, prompt_embeds: torch.Tensor | None) -> int:
    """Videos per call before ``num_videos_per_prompt``: the prompts, or the rows of ``prompt_embeds``."""
    if prompt_embeds is not None:
        return int(prompt_embeds.shape[0])
    return 1 if isinstance(prompt, str) else len(prompt)


class TextToVideoChecks:
    """``check_inputs`` of the text-to-video pipeline; it reads the pipeline's ``unet``, ``codec``, ``max_frames``,
    ``pixel_multiple``, ``latent_multiple`` and ``_callback_tensor_inputs``."""

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
    ) -> None:
        """Raise a ValueError naming the argument and its value for anything ``pipe(...)`` cannot do."""
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError(f"give exactly one of prompt and prompt_embeds, got prompt={prompt!r} and prompt_embeds="
                             f"{None if prompt_embeds is None else tuple(prompt_embeds.shape)}")  # fmt: skip
        if prompt is not None and not (isinstance(prompt, str) or (isinstance(prompt, list) and prompt
                                                                   and all(isinstance(p, str) for p in prompt))):
            raise ValueError(f"prompt must be a string or a non-empty list of strings, got {prompt!r}")
        if negative_prompt is not None and negative_prompt_embeds is not None:
            raise ValueError("give negative_prompt or negative_prompt_embeds, not both")
        batch = batch_size(prompt, prompt_embeds)
        if negative_prompt is not None:
            if isinstance(negative_prompt, list):
                if len(negative_prompt) != batch or not all(isinstance(p, str) for p in negative_prompt):
                    raise ValueError(f"negative_prompt must be a string or a list of {batch} strings (one per prompt),"
                                     f" got {negative_prompt!r}")  # fmt: skip
            elif not isinstance(negative_prompt, str):
                raise ValueError(f"negative_prompt must be a string or a list of strings, got {negative_prompt!r}")
        dim = self.unet.unet.config.cross_attention_dim
        for name, embeds in [("prompt_embeds", prompt_embeds), ("negative_prompt_embeds", negative_prompt_embeds)]:
            if embeds is not None and (embeds.ndim != 3 or embeds.shape[-1] != dim):
                raise ValueError(f"{name} must have shape (B, T, {dim}), got {tuple(embeds.shape)}")
        if (prompt_embeds is not None and negative_prompt_embeds is not None
                and prompt_embeds.shape != negative_prompt_embeds.shape):  # fmt: skip
            raise ValueError(f"negative_prompt_embeds must have prompt_embeds' shape {tuple(prompt_embeds.shape)}, "
                             f"got {tuple(negative_prompt_embeds.shape)}")  # fmt: skip
        if not is_int(num_frames) or not 1 <= num_frames <= self.max_frames:
            raise ValueError(f"num_frames must be an integer in [1, {self.max_frames}] (the UNet's "
                             f"motion_max_seq_length), got {num_frames!r}")  # fmt: skip
        for name, side in [("height", height), ("width", width)]:
            if not is_int(side) or side < self.pixel_multiple or side % self.pixel_multiple:
                raise ValueError(f"{name} must be a positive multiple of {self.pixel_multiple} px (the codec's "
                                 f"downscale {self.codec.downscale} x the UNet's {self.latent_multiple}), got {side!r}")
        if not is_int(num_inference_steps) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be an integer >= 1, got {num_inference_steps!r}")
        if not (isinstance(guidance_scale, (int, float)) and math.isfinite(guidance_scale) and guidance_scale >= 0):
            raise ValueError(f"guidance_scale must be a finite number >= 0 (1 turns guidance off), "
                             f"got {guidance_scale!r}")  # fmt: skip
        if not is_int(num_videos_per_prompt) or num_videos_per_prompt < 1:
            raise ValueError(f"num_videos_per_prompt must be an integer >= 1, got {num_videos_per_prompt!r}")
        total = batch * (num_videos_per_prompt if is_int(num_videos_per_prompt) else 1)
        if latents is not None:
            f = self.codec.downscale
            expected = (total, self.unet.latent_channels, num_frames, height // f, width // f)
            if tuple(latents.shape) != expected:
                raise ValueError(f"latents must have shape {expected}, got {tuple(latents.shape)}")
        if isinstance(generator, list) and len(generator) != total:
            raise ValueError(f"generator must be one torch.Generator or a list of {total} (one per video), got a list "
                             f"of {len(generator)}")  # fmt: skip
        if generator is not None and not isinstance(generator, (torch.Generator, list)):
            raise ValueError(f"generator must be a torch.Generator, a list of them, or None, got "
                             f"{type(generator).__name__}")  # fmt: skip
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        unknown = [k for k in callback_on_step_end_tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs must be among {self._callback_tensor_inputs}, "
                             f"got {unknown}")  # fmt: skip
        if fps is not None:
            try:
                as_fraction_fps(fps)
            except (TypeError, ValueError, ZeroDivisionError) as e:
                raise ValueError(f"fps must be a positive frame rate (8, 29.97, '30000/1001'), got {fps!r}") from e
        if not (isinstance(eta, (int, float)) and 0 <= eta <= 1):
            raise ValueError(f"eta must be in [0, 1], got {eta!r}")


def check_components(unet: AudioVideoUNet, codec: LatentCodec, text_encoder: torch.nn.Module) -> None:
    """Raise a ValueError unless the components fit together."""
    if unet.latent_channels != codec.latent_channels:
        raise ValueError(f"unet.latent_channels ({unet.latent_channels}) must equal codec.latent_channels "
                         f"({codec.latent_channels})")  # fmt: skip
    if unet.extra_channels:
        raise ValueError(f"the UNet takes {unet.extra_channels} reference/motion/mask channels; a text-to-video UNet "
                         "takes none (build it with reference_channels=motion_channels=mask_channels=0)")
    width = getattr(getattr(text_encoder, "config", None), "hidden_size", None)
    if width != unet.unet.config.cross_attention_dim:
        raise ValueError(f"the text encoder's hidden_size ({width}) must equal the UNet's cross_attention_dim "
                         f"({unet.unet.config.cross_attention_dim})")  # fmt: skip
