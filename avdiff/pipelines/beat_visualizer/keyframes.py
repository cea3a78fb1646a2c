"""Where keyframes come from, behind one small interface, and how the frames between two keyframes are made.

A :class:`KeyframeSource` turns a timeline's images into :class:`Keyframe` s (an image and its latent) and decodes
latents back to pictures. :class:`ImageKeyframes` implements it: the user's images, encoded by a codec (by default
the exact pixel-space :class:`~avdiff.models.codec.SpaceToDepthCodec` with factor 1). No diffusion model at all, no
weights, no downloads. A source that also renders prompts (``renders_prompts = True``, a ``render_prompt`` and an
``inbetweens`` method) is :class:`~avdiff.pipelines.beat_visualizer.prompt_keyframes.PromptKeyframes`, over a text-to-video model.

The frames between keyframes ``A`` and ``B`` at position ``t`` in [0, 1] are made by one of (:data:`INTERPOLATIONS`):

* ``"pixel"``: the two keyframe images cross-faded: nothing but arithmetic;
* ``"latent"``: the two keyframes' latents interpolated linearly and decoded (one decoder pass per distinct ``t``).
  With the default exact, linear codec this is the same cross-fade (up to rounding); with a learned codec it
  morphs in its latent space;
* ``"diffusion"``: between two prompt keyframes, stable-diffusion-videos' walk: slerp on the initial noise, lerp on
  the text embeddings, each in-between denoised (:mod:`avdiff.pipelines.beat_visualizer.prompt_keyframes`); other pairs as ``"latent"``;
* ``"auto"``: ``"diffusion"`` between two prompt keyframes, ``"pixel"`` otherwise.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from avdiff.models.codec import LatentCodec, SpaceToDepthCodec, pixels_from_uint8, pixels_to_uint8

logger = logging.getLogger(__name__)

INTERPOLATIONS = ("auto", "diffusion", "latent", "pixel")
DIFFUSION_LEVELS = 32  # "diffusion" in-betweens: t rounded to multiples of 1 / DIFFUSION_LEVELS


@dataclass
class Keyframe:
    """A rendered keyframe.

    Attributes:
        key: the image (``Path``, or ``image K`` for one given as pixels) or the prompt (``str``) it was made from.
        image: uint8 [H, W, 3], fitted to the video's size.
        latent: its latent [1, C, h, w]: an image's encoding by the source's codec, a prompt's denoised latent.
        noise: a prompt keyframe's initial noise [1, C, 1, h, w] (None for an image).
        prompt_embeds: a prompt keyframe's token states [1, T, D] (None for an image).
    """

    key: Path | str
    image: np.ndarray
    latent: torch.Tensor
    noise: torch.Tensor | None = None
    prompt_embeds: torch.Tensor | None = None

    @property
    def is_prompt(self) -> bool:
        return self.prompt_embeds is not None


@runtime_checkable
class KeyframeSource(Protocol):
    """What the beat visualizer needs from a source of keyframes (see the module docstring).

    Attributes:
        name: a short name for logs and benchmarks (``"images"``).
        pixel_multiple: output sides must be multiples of this many pixels.
        default_size: ``(height, width)`` when neither the call nor the images give one (None: from the images).
    """

    name: str
    pixel_multiple: int
    default_size: tuple[int, int] | None

    def encode_image(self, image: np.ndarray) -> torch.Tensor:
        """uint8 [H, W, 3] -> its latent [1, C, h, w]."""

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """latents [B, C, h, w] -> uint8 images [B, H, W, 3]."""


# --- sources ---------------------------------------------------------------------------------------------------------


class ImageKeyframes:
    """The user's images as keyframes, in pixel space through a codec: no diffusion model, no weights.

    Args:
        codec: the codec images are encoded with (default: :class:`SpaceToDepthCodec` with factor 1, i.e. pixels in
            [-1, 1]; interpolating its latents is a cross-fade).
    """

    name = "images"
    default_size = None
    renders_prompts = False

    def __init__(self, codec: LatentCodec | None = None):
        self.codec = codec if codec is not None else SpaceToDepthCodec(factor=1)

    @property
    def pixel_multiple(self) -> int:
        return self.codec.downscale

    @torch.no_grad()
    def encode_image(self, image: np.ndarray) -> torch.Tensor:
        pixels = pixels_from_uint8(torch.from_numpy(np.array(image, dtype=np.uint8))[None])  # (1, 3, H, W)
        return self.codec.encode(pixels.to(self.codec.device, self.codec.dtype))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        return pixels_to_uint8(self.codec.decode(latents.to(self.codec.device, self.codec.dtype))).numpy()


# --- the keyframes of one render ------------------------------------------------------------------------------------


@dataclass
class KeyframeCache:
    """Keyframes by ``(key, image content, size, source, source settings)`` and in-between frames by ``(mode, A, B,
    t, source, settings, A's and B's content)``, least recently used dropped first.

    Adjacent intervals share their keyframe (the end of one is the start of the next): it is made once. Latent and
    diffusion in-betweens at one position (a "beats" curve holds ``t`` between beats) are made once. Another picture
    under the same path or name, another source, or other settings never hit an old entry.
    """

    max_keyframes: int = 64
    max_frames: int = 256
    keyframes: OrderedDict = field(default_factory=OrderedDict)
    frames: OrderedDict = field(default_factory=OrderedDict)
    hits: int = 0
    misses: int = 0

    def get(self, store: OrderedDict, key):
        if key in store:
            store.move_to_end(key)
            self.hits += 1
            return store[key]
        self.misses += 1
        return None

    def put(self, store: OrderedDict, key, value, limit: int) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > limit:
            store.popitem(last=False)


def fit_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` uint8 [h, w, 3] centre-cropped to the aspect of ``height x width`` and resized to it (area filter
    when shrinking, Lanczos when enlarging): uint8 [height, width, 3]."""
    import cv2

    h, w = image.shape[:2]
    target = width / height
    if w / h > target:  # too wide: crop the sides
        cw = max(1, round(h * target))
        x0 = (w - cw) // 2
        image = image[:, x0 : x0 + cw]
    elif w / h < target:
        ch = max(1, round(w / target))
        y0 = (h - ch) // 2
        image = image[y0 : y0 + ch]
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image)
    shrink = image.shape[0] > height
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)


def output_size(
    first_image: np.ndarray | None, source: KeyframeSource, height: int | None, width: int | None, max_side: int = 1024
) -> tuple[int, int]:
    """The frames' ``(height, width)``: as given; else the source's default size; else the first image's aspect with
    its longer side at most ``max_side``, each side rounded down to the source's pixel multiple (at least one)."""
    m = source.pixel_multiple
    if height is not None and width is not None:
        return height, width
    if source.default_size is not None and first_image is None:
        dh, dw = source.default_size
        return height or dh, width or dw
    if first_image is None:
        raise ValueError("give height and width: there is no image to take the size from")
    h, w = first_image.shape[:2]
    if height is not None:
        width = max(m, int(round(height * w / h)) // m * m)
    elif width is not None:
        height = max(m, int(round(width * h / w)) // m * m)
    else:
        scale = min(1.0, max_side / max(h, w))
        if source.default_size is not None:
            scale = max(source.default_size) / max(h, w)
        height, width = max(m, int(h * scale) // m * m), max(m, int(w * scale) // m * m)
    return height, width


def crossfade(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """``a + (b - a) t`` of two uint8 images, float32 [H, W, 3] in [0, 1]."""
    x = a.astype(np.float32) / 255.0
    if t <= 0:
        return x
    y = b.astype(np.float32) / 255.0
    return x + (y - x) * np.float32(min(1.0, t))


def image_digest(image: np.ndarray) -> str:
    """A short content hash of a keyframe image (uint8 [H, W, 3]): the keyframe cache's key, so that another picture
    under the same name or path is never served from it."""
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=12).hexdigest() + str(image.shape)


def interpolation_mode(interpolation: str, a: Keyframe, b: Keyframe) -> str:
    """The in-between mode of an interval from ``a`` to ``b``: ``"diffusion"`` needs two prompt keyframes (else
    ``"latent"``); ``"auto"`` is ``"diffusion"`` between two prompts and ``"pixel"`` otherwise."""
    both_prompts = a.is_prompt and b.is_prompt
    if interpolation == "auto":
        return "diffusion" if both_prompts else "pixel"
    if interpolation == "diffusion" and not both_prompts:
        return "latent"
    return interpolation


def quantize_positions(ts: list[float], levels: int = DIFFUSION_LEVELS) -> list[float]:
    """Positions rounded to multiples of ``1 / levels`` (the ``"diffusion"`` in-betweens' cache keys)."""
    return [round(round(float(t) * levels) / levels, 6) for t in ts]
