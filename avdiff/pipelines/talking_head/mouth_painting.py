"""Painting the inside of the mouth of rendered frames with a :class:`~avdiff.models.mouth_painter.MouthPainter`.

The renderer leaves, inside each frame's inner-lip contour, its own dark cavity and a soft mask of where it drew it.
:class:`MouthPainting` takes a talking head's frames window by window and, for the frames whose mouth is open,

1. cuts a square around the mouth (:func:`avdiff.video.mouth_crop.mouth_crops`: ``crop_scale`` widths of the photo's
   own mouth on a side, centred on the frame's mouth, sampled to the painter's ``pixel_size``);
2. denoises the painter's ``chunk_frames`` crops at a time by DDIM (:func:`paint_crops`), with classifier-free
   guidance on the audio (``x0 = x0_silent + s * (x0_audio - x0_silent)``; the painter predicts the clean crop);
3. puts the paint back through the inverse map, blended by the renderer's interior mask, so only the inside of the
   lips changes: the lips, the skin and the rest of the frame stay the renderer's, pixel for pixel.

Frames with a closed mouth are passed through untouched, and a chunk with no open mouth is not sampled at all, so
the painter costs nothing while the lips are shut.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

from avdiff.audio.clock import FpsLike
from avdiff.audio.io import Waveform
from avdiff.models.mouth_painter import MouthPainter
from avdiff.video.face import INNER_LIPS
from avdiff.video.mouth_crop import mouth_crops
from avdiff.video.render import FaceRenderer

logger = logging.getLogger(__name__)

MIN_INTERIOR = 0.5  # a frame whose interior mask sums to less than this many pixels has no open mouth to paint


def _pixels(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).float() / 127.5 - 1.0


@torch.no_grad()
def paint_crops(
    painter: MouthPainter,
    crops: np.ndarray,
    holes: np.ndarray,
    reference: np.ndarray,
    audio_windows: torch.Tensor,
    *,
    num_inference_steps: int = 8,
    guidance_scale: float = 1.5,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Paint the holes of a window of mouth crops.

    Args:
        crops: uint8 [F, S, S, 3], the rendered crops (what is inside the holes is not looked at).
        holes: float [F, S, S] in [0, 1], where to paint.
        reference: uint8 [S, S, 3], the photo's own mouth.
        audio_windows: float [F, n_mels, W], the frames' log-mel windows (``painter.speech_encoder.frame_windows``).
        num_inference_steps: DDIM steps, >= 1.
        guidance_scale: classifier-free guidance on the audio (0: the painter hears silence, 1: plain).
        generator: the noise's only source.

    Returns:
        uint8 [F, S, S, 3]: the painter's crops (the whole square; the caller blends in only the holes).

    Raises:
        ValueError: shapes that do not match the painter or each other.
    """
    F_, S = len(crops), painter.config.pixel_size
    if crops.shape != (F_, S, S, 3) or holes.shape != (F_, S, S) or reference.shape != (S, S, 3):
        raise ValueError(
            f"crops [F, {S}, {S}, 3], holes [F, {S}, {S}] and reference [{S}, {S}, 3] expected, got {crops.shape}, "
            f"{holes.shape} and {reference.shape}"
        )
    if audio_windows.ndim != 3 or audio_windows.shape[0] != F_:
        raise ValueError(f"audio_windows must be [F={F_}, n_mels, W], got {tuple(audio_windows.shape)}")
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
    device, dtype = painter.device, painter.dtype
    pixels = _pixels(crops).permute(3, 0, 1, 2)[None].to(device, dtype)  # [1, 3, F, S, S]
    hole = torch.from_numpy(np.ascontiguousarray(holes, np.float32))[None, None].to(device, dtype)
    ref = _pixels(reference).permute(2, 0, 1)[None].to(device, dtype)
    known, mask, ref_latent = painter.conditions(pixels, hole, ref)
    audio = audio_windows[None].to(device, dtype)
    guided = guidance_scale != 1.0
    if guided:  # one batched call: [silent, with audio]
        known, mask, ref_latent, audio = (torch.cat([x, x]) for x in (known, mask, ref_latent, audio))
        drop = torch.tensor([True, False], device=device)
    else:
        drop = None
    scheduler = painter.make_scheduler()
    scheduler.set_timesteps(num_inference_steps, device=device)
    latents = randn_tensor(tuple(known[:1].shape), generator=generator, device=device, dtype=dtype)
    latents = latents * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_in = torch.cat([latents, latents]) if guided else latents
        pred = painter(model_in, t.expand(model_in.shape[0]), audio, ref_latent, known, mask, drop)
        if guided:
            silent, heard = pred.chunk(2)
            pred = silent + guidance_scale * (heard - silent)
        latents = scheduler.step(pred, t, latents, generator=generator).prev_sample
    out = painter.decode(latents)[0].permute(1, 2, 3, 0)  # [F, S, S, 3]
    return ((out.float().clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).cpu().numpy()


class MouthPainting:
    """Paints a talking head's frames as they are rendered (see the module doc).

    Args:
        painter: the trained painter.
        renderer: the renderer of the photo (its photo gives the reference and the mouth's width).
        speech: the speech of the whole clip (mono; resampled to the painter's rate).
        fps: the video's frame rate.
        num_inference_steps, guidance_scale: as :func:`paint_crops`.
        generator: the noise's only source (drawn from chunk by chunk, in order).
    """

    def __init__(
        self,
        painter: MouthPainter,
        renderer: FaceRenderer,
        speech: Waveform,
        fps: FpsLike,
        *,
        num_inference_steps: int = 8,
        guidance_scale: float = 1.5,
        generator: torch.Generator | None = None,
    ):
        self.painter, self.renderer = painter, renderer
        self.steps, self.guidance, self.generator = num_inference_steps, guidance_scale, generator
        cfg = painter.config
        lips = renderer.reference[INNER_LIPS, :2]
        self.width = float(np.hypot(*(lips[10] - lips[0])))
        self.reference = mouth_crops(lips[None], self.width, cfg.crop_scale, cfg.pixel_size)[0].cut(renderer.photo)
        encoder = painter.speech_encoder
        if speech.sample_rate != encoder.sample_rate:
            speech = speech.resample(encoder.sample_rate)
        with torch.no_grad():
            features = encoder.features(speech.samples[:1].float().to(painter.device))
        self.clock = encoder.frame_clock(fps)
        self.features = features

    def paint(
        self, frames: list[np.ndarray], interiors: list[np.ndarray], targets: np.ndarray, first: int
    ) -> Iterator[np.ndarray]:
        """Frames ``first ..`` of the video: uint8 [H, W, 3] each, the renderer's interior masks (float [H, W]) and
        target landmarks [n, 478, 2] -> the frames in order with their mouths painted (closed mouths as they were),
        each chunk painted when its first frame is asked for, so the first frame waits for one chunk only."""
        n = len(frames)
        cfg = self.painter.config
        crops = mouth_crops(targets[:, INNER_LIPS, :2], self.width, cfg.crop_scale, cfg.pixel_size)
        open_ = [float(m.sum()) >= MIN_INTERIOR for m in interiors]
        for lo in range(0, n, cfg.chunk_frames):
            hi = min(lo + cfg.chunk_frames, n)
            if not any(open_[lo:hi]):
                yield from frames[lo:hi]
                continue
            cut = np.stack([crops[i].cut(frames[i]) for i in range(lo, hi)])
            holes = np.stack([crops[i].cut(interiors[i]) for i in range(lo, hi)])
            windows = self.painter.speech_encoder.frame_windows(self.features, self.clock, first + lo, hi - lo)[0]
            painted = paint_crops(
                self.painter, cut, np.clip(holes, 0, 1), self.reference, windows,
                num_inference_steps=self.steps, guidance_scale=self.guidance, generator=self.generator,
            )  # fmt: skip
            for j, i in enumerate(range(lo, hi)):
                yield crops[i].paste(frames[i], painted[j], interiors[i]) if open_[i] else frames[i]


__all__ = ["MouthPainting", "paint_crops"]
