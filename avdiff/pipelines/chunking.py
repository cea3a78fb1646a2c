"""Chunked, autoregressive generation and composed classifier-free guidance for the talking-head pipeline.

Long audio is generated in chunks of ``chunk_frames`` frames; every chunk after the first starts with the last
``motion_frames`` frames of the one before, given to the UNet as known motion latents (Hallo's and LatentSync's way of
keeping long videos continuous). Guidance is composed over the reference and the audio as in
:func:`composed_guidance`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

from avdiff.audio.clock import FrameClock
from avdiff.models.conditions import Conditions
from avdiff.video.align import AlignedFace
from avdiff.video.masks import lower_face_mask
from avdiff.video.masks import paste_back as paste_crop

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    """Frames ``[start, stop)`` of the video, denoised together; the first ``num_motion`` are known already (the
    previous chunk's last frames) and only ``[start + num_motion, stop)`` is new."""

    start: int
    stop: int
    num_motion: int

    @property
    def num_frames(self) -> int:
        return self.stop - self.start

    @property
    def new_start(self) -> int:
        return self.start + self.num_motion


def plan_chunks(num_frames: int, chunk_frames: int, motion_frames: int) -> list[Chunk]:
    """Split ``num_frames`` frames into chunks of at most ``chunk_frames``; every chunk after the first starts with
    ``motion_frames`` frames of the previous one. The new frames of the chunks tile ``[0, num_frames)`` exactly."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if chunk_frames < 2 or not 0 <= motion_frames < chunk_frames:
        raise ValueError(f"need chunk_frames >= 2 and 0 <= motion_frames < chunk_frames, got {chunk_frames} and "
                         f"{motion_frames}")  # fmt: skip
    chunks = [Chunk(0, min(chunk_frames, num_frames), 0)]
    while chunks[-1].stop < num_frames:
        start = chunks[-1].stop - motion_frames
        chunks.append(Chunk(start, min(start + chunk_frames, num_frames), motion_frames))
    return chunks


def composed_guidance(prediction: torch.Tensor, terms: tuple[str, ...], reference_scale: float,
                      audio_scale: float) -> torch.Tensor:  # fmt: skip
    """Combine a batch of predictions stacked in ``terms`` order (some of ``uncond``, ``ref``, ``full``):
    ``uncond + s_ref (ref - uncond) + s_audio (full - ref)``, with the terms a scale of 1 does not need left out."""
    parts = dict(zip(terms, prediction.chunk(len(terms))))
    full = parts["full"]
    if len(terms) == 1:
        return full
    ref = parts["ref"]
    base = ref if "uncond" not in parts else parts["uncond"] + reference_scale * (ref - parts["uncond"])
    return base + audio_scale * (full - ref)


def guidance_terms(reference_scale: float, audio_scale: float) -> tuple[str, ...]:
    """The UNet passes a pair of scales needs: ``full`` always, ``ref`` (audio nulled) unless both scales are 1,
    ``uncond`` (audio and reference nulled) unless the reference scale is 1."""
    terms = []
    if reference_scale != 1:
        terms.append("uncond")
    if reference_scale != 1 or audio_scale != 1:
        terms.append("ref")
    return (*terms, "full")


class ChunkedDenoisingMixin:
    """Steps 4 and 5 of :class:`~avdiff.pipelines.talking_head.TalkingHeadPipeline`: chunked, autoregressive
    denoising with composed guidance, each chunk decoded (and pasted back) as soon as it is done.

    The pipeline provides ``unet``, ``scheduler``, ``codec``, ``speech_encoder``, ``progress_bar``,
    ``latent_mask``, ``decode_latents`` and the guidance scales set in ``__call__``.
    """

    _callback_tensor_inputs: list[str]

    def prepare_extra_step_kwargs(self, generator: torch.Generator | None, eta: float) -> dict:
        """``eta`` and ``generator`` for ``scheduler.step`` where its signature takes them."""
        params = set(inspect.signature(self.scheduler.step).parameters)
        kwargs = {}
        if "eta" in params:
            kwargs["eta"] = eta
        if "generator" in params:
            kwargs["generator"] = generator
        return kwargs

    def guided_prediction(self, latents: torch.Tensor, t: torch.Tensor, state: dict[str, torch.Tensor],
                          mask: torch.Tensor, terms: tuple[str, ...]) -> torch.Tensor:  # fmt: skip
        """One batched UNet call over ``terms`` and the composed guidance: [1, C, n, h, w]."""
        cond = Conditions(audio=state["audio_tokens"], reference=state["reference_latents"],
                          motion=state["motion_latents"], mask=mask)  # fmt: skip
        variants = {"uncond": cond.with_null("audio", "reference"), "ref": cond.with_null("audio"), "full": cond}
        batch = variants[terms[0]]
        for term in terms[1:]:
            batch = batch.cat(variants[term])
        model_input = self.scheduler.scale_model_input(latents, t).expand(len(terms), -1, -1, -1, -1)
        pred = self.unet(model_input, t, **batch.as_kwargs(), return_dict=False)[0]
        return composed_guidance(pred, terms, self._reference_guidance_scale, self._audio_guidance_scale)

    def generate_frames(
        self,
        photo: np.ndarray,
        aligned: AlignedFace,
        reference: torch.Tensor,
        features: torch.Tensor,
        clock: FrameClock,
        num_frames: int,
        size: int,
        chunk_frames: int,
        motion_frames: int,
        generator: torch.Generator | None,
        eta: float,
        crops_only: bool,
        feather_px: float | None,
        callback: Callable | None,
        callback_inputs: list[str],
    ) -> Iterator[np.ndarray]:
        """Steps 4 and 5 as a generator: chunked, autoregressive denoising, each chunk decoded (and pasted back into
        the photo) as soon as it is done. Yields the ``num_frames`` frames in order, uint8 [H, W, 3] (the crop
        [s, s, 3] with ``crops_only``); only one chunk is held at a time."""
        device, dtype = reference.device, reference.dtype
        chunks = plan_chunks(num_frames, chunk_frames, motion_frames)
        self._num_chunks = len(chunks)
        mask = self.latent_mask(size, device, dtype)  # (1, 1, 1, h, w)
        paste_mask = lower_face_mask(size, framing=self.framing)
        feather = size / 32 if feather_px is None else feather_px
        terms = guidance_terms(self._reference_guidance_scale, self._audio_guidance_scale)
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)
        previous: torch.Tensor | None = None  # the last chunk's final latents (1, C, n, h, w)
        logger.info("%d frames in %d chunks of <= %d (%d motion frames), %d steps, %d UNet passes per step",
                    num_frames, len(chunks), chunk_frames, motion_frames, self._num_timesteps, len(terms))  # fmt: skip
        with torch.no_grad(), self.progress_bar(total=len(chunks) * self._num_timesteps) as progress:
            for k, chunk in enumerate(chunks):
                self._chunk_index = k
                latents = self.denoise_chunk(chunk, previous, reference, features, clock, mask, terms, generator,
                                             extra_step_kwargs, callback, callback_inputs, progress)  # fmt: skip
                previous = latents
                crops = self.decode_latents(latents[:, :, chunk.num_motion :])  # (n_new, s, s, 3)
                for crop in crops:
                    yield crop if crops_only else paste_crop(photo, crop, aligned.matrix, feather, paste_mask)

    def denoise_chunk(
        self,
        chunk: Chunk,
        previous: torch.Tensor | None,
        reference: torch.Tensor,
        features: torch.Tensor,
        clock: FrameClock,
        mask: torch.Tensor,
        terms: tuple[str, ...],
        generator: torch.Generator | None,
        extra_step_kwargs: dict,
        callback: Callable | None,
        callback_inputs: list[str],
        progress,
    ) -> torch.Tensor:
        """The whole denoising loop of one chunk. Returns its latents [1, C, n, h, w], the motion frames (known)
        in their first ``chunk.num_motion`` slots."""
        device, dtype = reference.device, reference.dtype
        n, m = chunk.num_frames, chunk.num_motion
        _, c, h, w = reference.shape
        windows = self.speech_encoder.frame_windows(features, clock, chunk.start, n)  # (1, n, D, W)
        audio_tokens = self.speech_encoder(windows).to(device=device, dtype=dtype)  # (1, n, T_a, D_a)
        config = self.unet.config
        motion = torch.zeros(1, config.motion_channels, n, h, w, device=device, dtype=dtype)
        chunk_mask = mask.expand(1, 1, n, h, w).clone()
        if m:
            motion[:, :, :m] = previous[:, :, -m:]
            chunk_mask[:, :, :m] = 0  # known frames: nothing to generate
        latents = randn_tensor((1, c, n, h, w), generator=generator, device=device, dtype=dtype)
        state = {
            "latents": latents * self.scheduler.init_noise_sigma,  # (1, C, n, h, w)
            "audio_tokens": audio_tokens,
            "motion_latents": motion if config.motion_channels else None,
            "reference_latents": reference if config.reference_channels else None,
        }
        chunk_mask = chunk_mask if config.mask_channels else None
        self.scheduler.set_timesteps(self._num_timesteps, device=device)
        for i, t in enumerate(self.scheduler.timesteps):
            pred = self.guided_prediction(state["latents"], t, state, chunk_mask, terms)
            state["latents"] = self.scheduler.step(pred, t, state["latents"], **extra_step_kwargs,
                                                   return_dict=False)[0]  # fmt: skip
            if callback is not None:
                returned = callback(self, i, t, {k: state[k] for k in callback_inputs})
                state.update({k: v for k, v in returned.items() if k in self._callback_tensor_inputs})
            progress.update()
        latents = state["latents"]
        if m:
            latents = torch.cat([previous[:, :, -m:], latents[:, :, m:]], dim=2)
        return latents
