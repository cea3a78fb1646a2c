"""Keyframes rendered from prompts by a text-to-video model, and the frames between two prompts.

:class:`PromptKeyframes` is a :class:`~avdiff.pipelines.beat_visualizer.keyframes.KeyframeSource` over a
:class:`~avdiff.pipelines.text_to_video.TextToVideoPipeline`: the bundled scene model (``"scene-tiny"``, offline), a
saved pipeline folder, or Stable Diffusion 1.5 (``TextToVideoPipeline.from_pretrained(sd15_id)``). A keyframe is one
image (``num_frames=1``) denoised from an initial noise ``z`` with the prompt's token states ``E``. It keeps ``z``
and ``E`` beside its image and final latent, so the frames between two prompt keyframes can be made two ways
(``interpolation`` of :class:`~avdiff.pipelines.BeatVisualizerPipeline`):

* ``"diffusion"``: stable-diffusion-videos' walk (nateraw/stable-diffusion-videos, ``StableDiffusionWalkPipeline``):
  ``z_t = slerp(z_A, z_B, t)`` and ``E_t = lerp(E_A, E_B, t)``, each in-between denoised from scratch. At ``t = 0``
  and ``t = 1`` this is the keyframe itself. One denoising run per distinct ``t``: the positions are rounded to
  :data:`~avdiff.pipelines.beat_visualizer.keyframes.DIFFUSION_LEVELS` levels, so an interval costs at most that
  many runs however long it is (a ``"beats"`` curve holds ``t`` between beats and needs far fewer).
* ``"latent"``: the two keyframes' final latents interpolated and decoded: one decoder pass per ``t``, no
  denoising. With the scene model's pixel-space codec this is a cross-fade.

``avdiff bench visualize`` measures both (seconds per second of music).

By default every prompt starts from the same noise (``same_noise=True``): keyframes then share their layout (sky,
horizon, where things stand) and a transition changes what the prompts change; the noise slerp is then the identity
and only the text moves. ``same_noise=False`` gives each prompt its own noise, seeded by ``seed`` and the prompt.
"""

from __future__ import annotations

import logging
import math
import os
import zlib

import numpy as np
import torch

from avdiff.bundled import DEFAULT_SCENE_MODEL
from avdiff.models.codec import pixels_from_uint8, pixels_to_uint8
from avdiff.pipelines.beat_visualizer.keyframes import Keyframe
from avdiff.pipelines.text_to_video import TextToVideoPipeline

logger = logging.getLogger(__name__)


def slerp(t: float, v0: torch.Tensor, v1: torch.Tensor, dot_threshold: float = 0.9995) -> torch.Tensor:
    """Spherical linear interpolation of two noise tensors of one shape, at ``t`` in [0, 1] (Shoemake 1985; the
    form stable-diffusion-videos uses). Nearly parallel tensors (``|cos| > dot_threshold``) are lerped."""
    a, b = v0.flatten().double(), v1.flatten().double()
    dot = float(torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12))
    if abs(dot) > dot_threshold:
        out = (1 - t) * v0.double() + t * v1.double()
    else:
        theta0 = np.arccos(dot)
        s = np.sin(theta0)
        theta = theta0 * t
        out = (np.sin(theta0 - theta) / s) * v0.double() + (np.sin(theta) / s) * v1.double()
    return out.to(v0.dtype)


class PromptKeyframes:
    """Keyframes from prompts (and images) through a :class:`TextToVideoPipeline` (see the module docstring).

    Args:
        pipe: the text-to-video pipeline.
        num_inference_steps: DDIM steps per keyframe and per ``"diffusion"`` in-between.
        guidance_scale: classifier-free guidance scale.
        seed: seeds the initial noise.
        same_noise: every prompt starts from the same noise (True) or from its own (seeded by ``seed`` and the
            prompt's text).
        batch_size: in-betweens denoised together.

    Raises:
        ValueError: a bad argument (named).
    """

    name = "prompts"
    renders_prompts = True

    def __init__(
        self,
        pipe: TextToVideoPipeline,
        num_inference_steps: int = 20,
        guidance_scale: float = 3.0,
        seed: int = 0,
        same_noise: bool = True,
        batch_size: int = 8,
    ):
        if not isinstance(pipe, TextToVideoPipeline):
            raise ValueError(f"pipe must be a TextToVideoPipeline, got {type(pipe).__name__}")
        for arg, value, low in (
            ("num_inference_steps", num_inference_steps, 1),
            ("batch_size", batch_size, 1),
            ("seed", seed, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value < 2**63:
                raise ValueError(f"{arg} must be an integer from {low} to 2**63 - 1, got {value!r}")
        if not isinstance(guidance_scale, (int, float)) or not 1 <= guidance_scale < math.inf:
            raise ValueError(f"guidance_scale must be a finite number >= 1, got {guidance_scale!r}")
        self.pipe = pipe
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = float(guidance_scale)
        self.seed = seed
        self.same_noise = bool(same_noise)
        self.batch_size = batch_size
        self.pipe.set_progress_bar_config(disable=True)
        self._negative: torch.Tensor | None = None

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = DEFAULT_SCENE_MODEL, **kwargs) -> PromptKeyframes:
        """A source over ``TextToVideoPipeline.from_pretrained(name_or_path)``: a bundled model's name (default the
        scene model shipped with avdiff), a saved folder, or an SD 1.5 hub id or folder. ``kwargs`` go to
        :class:`PromptKeyframes`."""
        return cls(TextToVideoPipeline.from_pretrained(name_or_path), **kwargs)

    @property
    def settings(self) -> tuple:
        """What a rendered keyframe depends on besides its prompt and size (the pipeline's caches key on it)."""
        return self.num_inference_steps, self.guidance_scale, self.seed, self.same_noise

    # --- KeyframeSource ---------------------------------------------------------------------------------------------

    @property
    def pixel_multiple(self) -> int:
        return self.pipe.pixel_multiple

    @property
    def default_size(self) -> tuple[int, int]:
        return self.pipe.default_size, self.pipe.default_size

    @torch.no_grad()
    def encode_image(self, image: np.ndarray) -> torch.Tensor:
        """uint8 [H, W, 3] -> the codec's latent [1, C, h, w] (an image keyframe among prompt keyframes)."""
        codec = self.pipe.codec
        pixels = pixels_from_uint8(torch.from_numpy(np.array(image, dtype=np.uint8))[None])
        return codec.encode(pixels.to(codec.device, codec.dtype))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """latents [B, C, h, w] -> uint8 [B, H, W, 3]."""
        codec = self.pipe.codec
        return pixels_to_uint8(codec.decode(latents.to(codec.device, codec.dtype))).numpy()

    # --- prompts ----------------------------------------------------------------------------------------------------

    def noise(self, prompt: str, size: tuple[int, int]) -> torch.Tensor:
        """The initial noise of ``prompt``'s keyframe at ``size`` (height, width) px: [1, C, 1, h, w]."""
        height, width = size
        f = self.pipe.codec.downscale
        seed = self.seed if self.same_noise else (self.seed + zlib.crc32(prompt.encode())) % 2**63
        generator = torch.Generator().manual_seed(seed)
        shape = (1, self.pipe.unet.latent_channels, 1, height // f, width // f)
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(self.pipe.unet.dtype)

    @torch.no_grad()
    def render_prompt(self, prompt: str, size: tuple[int, int]) -> Keyframe:
        """``prompt``'s keyframe at ``size`` (height, width) px, with its noise and token states kept for
        ``"diffusion"`` in-betweens."""
        noise = self.noise(prompt, size)
        embeds = self.pipe.encode_prompt(prompt)  # (1, T, D)
        latent = self._denoise(noise, embeds)  # (1, C, h, w)
        image = self.decode(latent)[0]
        return Keyframe(prompt, image, latent, noise=noise, prompt_embeds=embeds)

    @torch.no_grad()
    def inbetweens(self, a: Keyframe, b: Keyframe, ts: list[float]) -> list[np.ndarray]:
        """The ``"diffusion"`` in-betweens of two prompt keyframes at positions ``ts`` (each in (0, 1)): uint8
        [H, W, 3] each, made ``batch_size`` at a time. ValueError if either keyframe has no noise or token states
        (an image keyframe: use ``"latent"`` or ``"pixel"``)."""
        if a.noise is None or b.noise is None:
            raise ValueError(f"diffusion in-betweens need two prompt keyframes, got {a.key!r} and {b.key!r}")
        out: list[np.ndarray] = []
        for i in range(0, len(ts), self.batch_size):
            chunk = ts[i : i + self.batch_size]
            noise = torch.cat([slerp(t, a.noise, b.noise) for t in chunk])  # (n, C, 1, h, w)
            embeds = torch.cat([torch.lerp(a.prompt_embeds, b.prompt_embeds, t) for t in chunk])  # (n, T, D)
            out += list(self.decode(self._denoise(noise, embeds)))
        return out

    def _denoise(self, noise: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        """Noise [n, C, 1, h, w] and token states [n, T, D] -> final latents [n, C, h, w]."""
        n = len(noise)
        negative = None
        if self.guidance_scale != 1:
            if self._negative is None:
                self._negative = self.pipe.encode_prompt("")
            negative = self._negative.expand(n, -1, -1)
        latents = self.pipe(
            prompt_embeds=embeds,
            negative_prompt_embeds=negative,
            latents=noise,
            num_frames=1,
            height=noise.shape[-2] * self.pipe.codec.downscale,
            width=noise.shape[-1] * self.pipe.codec.downscale,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            output_type="latent",
        ).frames  # (n, C, 1, h, w)
        return latents[:, :, 0]


__all__ = ["PromptKeyframes", "slerp"]
