"""The text and denoising steps of :class:`~avdiff.pipelines.text_to_video.TextToVideoPipeline`, as a mixin.

:class:`TextToVideoSteps` holds what ``__call__`` runs step by step: tokenizing and encoding prompts (step 2), drawing
the initial latents (step 4), the guided UNet prediction and the scheduler's step arguments (step 5), and decoding the
latents into frames (step 6). It reads the pipeline's components (``tokenizer``, ``text_encoder``, ``unet``,
``codec``, ``scheduler``) and config; it is not used on its own.
"""

from __future__ import annotations

import inspect
import logging

import torch
from diffusers.utils.torch_utils import randn_tensor

from avdiff.encoders.prompt_tokens import PromptTokens, tokenize_prompt
from avdiff.models.cfg import classifier_free_guidance
from avdiff.models.codec import pixels_to_uint8

logger = logging.getLogger(__name__)


class TextToVideoSteps:
    """Prompt encoding, initial noise, guided prediction and decoding for
    :class:`~avdiff.pipelines.text_to_video.TextToVideoPipeline` (a mixin of it)."""

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
    def encode_prompt(self, prompt: str | list[str], device: torch.device | None = None,
                      num_videos_per_prompt: int = 1) -> torch.Tensor:  # fmt: skip
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

    # --- denoising ----------------------------------------------------------------------------------------------

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
            return self.unet(model_input, t, encoder_hidden_states=prompt_embeds,
                             cross_attention_kwargs=cross_attention_kwargs, return_dict=False)[0]  # fmt: skip
        if negative_prompt_embeds is None:
            raise ValueError(f"guidance_scale={guidance_scale} needs negative_prompt_embeds")
        text = torch.cat([negative_prompt_embeds, prompt_embeds])  # (2B, T, D)
        pred = self.unet(torch.cat([model_input] * 2), t, encoder_hidden_states=text,
                         cross_attention_kwargs=cross_attention_kwargs, return_dict=False)[0]  # fmt: skip
        return classifier_free_guidance(pred, guidance_scale)

    def prepare_latents(self, batch: int, num_frames: int, height: int, width: int, dtype: torch.dtype,
                        device: torch.device, generator: torch.Generator | list[torch.Generator] | None,
                        latents: torch.Tensor | None = None, shared_frame_noise: bool = False) -> torch.Tensor:  # fmt: skip
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

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Step 6: latents [B, C, F, h, w] -> uint8 frames [B, F, H, W, 3], ``decode_batch_size`` frames per call."""
        b, _, frames = latents.shape[:3]
        flat = latents.transpose(1, 2).flatten(0, 1).to(device=self.codec.device, dtype=self.codec.dtype)  # (B*F, C, h, w)
        out = [pixels_to_uint8(self.codec.decode(flat[i : i + self.decode_batch_size]))
               for i in range(0, len(flat), self.decode_batch_size)]  # fmt: skip
        out = torch.cat(out)
        return out.view(b, frames, *out.shape[1:])

    def prepare_extra_step_kwargs(self, generator: torch.Generator | None, eta: float) -> dict:
        """``eta`` and ``generator`` for ``scheduler.step`` where its signature takes them."""
        params = set(inspect.signature(self.scheduler.step).parameters)
        return {k: v for k, v in (("eta", eta), ("generator", generator)) if k in params}
