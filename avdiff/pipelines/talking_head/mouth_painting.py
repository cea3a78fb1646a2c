"""Painting the inside of the mouth of rendered frames with a :class:`~avdiff.models.mouth_painter.MouthPainter`.

The renderer leaves, inside each frame's inner-lip contour, its own dark cavity and a soft mask of where it drew it.
:class:`MouthPainting` takes a talking head's frames as the renderer draws them, a chunk at a time, and, for the
frames whose mouth is open,

1. cuts a square around the mouth (:func:`avdiff.video.mouth_crop.mouth_crops`: ``crop_scale`` widths of the photo's
   own mouth on a side, centred on the frame's mouth) at its native size (:meth:`~avdiff.models.mouth_painter.
   MouthPainter.paint_size`: a 64 px mouth square is painted at 64 px, not shrunk and enlarged again, so the paint is
   as sharp as the painter makes it; a painter trained at one size shrinks every square to it);
2. denoises the painter's ``chunk_frames`` crops at a time by DDIM (:func:`paint_crops`), hearing the audio (with
   ``guidance_scale != 1``, classifier-free guidance on it: ``x0 = x0_silent + s * (x0_audio - x0_silent)``; the
   painter predicts the clean crop); a chunk starts with the last ``context_frames`` frames already made, given whole
   (as Hallo and LatentSync carry motion frames), so the teeth and tongue do not jump between chunks. The clip's
   first chunk is a whole one too: the painter learnt on windows of ``chunk_frames`` and paints worse on shorter ones
   (a first chunk of ``context_frames``, tried for the time to the first frame, made its frames' error 11 % larger);
3. puts the paint back through the inverse map, blended by the renderer's own soft interior mask, so only the inside
   of the lips and the soft band over their inner edge change: the rest of the frame stays the renderer's, pixel for
   pixel. The painter learnt the truth as it is at that edge (already blended by the mask), so blending by the mask
   again darkens the paint a little in the band; blending in whole there instead (tried) swaps the renderer's crisp
   inner-lip edge for the painter's softer one, a visibly blurrier mouth (``docs/mouth_sharpness.py`` measures the
   mouth region's sharpness this way).

Frames with a closed mouth are passed through untouched, and a chunk with no open mouth is not sampled at all, so
the painter costs nothing while the lips are shut.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

from avdiff.audio.clock import FpsLike
from avdiff.audio.io import Waveform
from avdiff.models.mouth_painter import MouthPainter
from avdiff.video.face import INNER_LIPS
from avdiff.video.mouth_crop import mouth_crops, mouth_width, reference_crop
from avdiff.video.render import FaceRenderer

logger = logging.getLogger(__name__)

MIN_HOLE_PX = 0.5  # a crop whose hole covers less than this many of its pixels has no open mouth to paint
# DDIM steps of the painter, unless asked otherwise: on the held-out clips 4 paint as close to the truth as 8, at half
# the cost
MOUTH_STEPS = 4
# its classifier-free guidance on the audio: on the held-out clips 1.0 (one UNet pass a step, hearing the audio) paints
# as close to the truth as 1.5 (error inside the lips 23.1 grey levels both) at half the cost
MOUTH_GUIDANCE = 1.0


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
    num_inference_steps: int = MOUTH_STEPS,
    guidance_scale: float = MOUTH_GUIDANCE,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Paint the holes of a window of mouth crops.

    Args:
        crops: uint8 [F, S, S, 3], the rendered crops (what is inside the holes is not looked at); ``S`` a size the
            painter paints (:meth:`~avdiff.models.mouth_painter.MouthPainter.check_size`).
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
    F_ = len(crops)
    S = crops.shape[1] if crops.ndim == 4 else -1
    if crops.shape != (F_, S, S, 3) or holes.shape != (F_, S, S) or reference.shape != (S, S, 3):
        raise ValueError(
            f"crops [F, S, S, 3], holes [F, S, S] and reference [S, S, 3] of one size S expected, got {crops.shape}, "
            f"{holes.shape} and {reference.shape}"
        )
    painter.check_size(S)
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


class CropSequence:
    """A clip's mouth crops painted chunk after chunk, each chunk continuing the one before: up to the painter's
    ``chunk_frames`` crops at a time, of which the first ``context_frames`` are the last crops made (given whole, as
    known pixels, and not painted again), so the teeth and tongue carry on across chunks (:meth:`chunk_size`). A
    chunk whose mouths are all shut is not sampled. The rule the pipeline paints by (chunk by chunk, as frames are
    drawn) and the evaluation scores by (:meth:`paint_clip`).

    Args:
        painter: the trained painter.
        reference: uint8 [S, S, 3], the photo's own mouth.
        features: the speech's features [1, n_mels, T] (``painter.speech_encoder.features``).
        clock: the video's :class:`~avdiff.audio.clock.FrameClock` against the encoder's rate.
        num_inference_steps, guidance_scale, generator: as :func:`paint_crops`.
    """

    def __init__(self, painter: MouthPainter, reference: np.ndarray, features: torch.Tensor, clock, *,
                 num_inference_steps: int = MOUTH_STEPS, guidance_scale: float = MOUTH_GUIDANCE,
                 generator: torch.Generator | None = None):  # fmt: skip
        self.painter, self.reference, self.features, self.clock = painter, reference, features, clock
        self.steps, self.guidance, self.generator = num_inference_steps, guidance_scale, generator
        self._context: list[np.ndarray] = []  # the last crops made
        self._end = -1  # the frame after them

    def chunk_size(self, start: int) -> int:
        """How many new frames the chunk starting at frame ``start`` takes: ``chunk_frames`` less the frames it
        continues from (none for the clip's first chunk)."""
        return self.painter.config.chunk_frames - (len(self._context) if start == self._end else 0)

    def paint_clip(self, crops: np.ndarray, holes: np.ndarray) -> np.ndarray:
        """A whole clip's crops uint8 [F, S, S, 3] and holes float [F, S, S] -> the crops painted chunk after chunk
        from frame 0 (as :meth:`paint` each), uint8 [F, S, S, 3]."""
        made, lo = [], 0
        while lo < len(crops):
            hi = min(lo + self.chunk_size(lo), len(crops))
            made.append(self.paint(crops[lo:hi], holes[lo:hi], lo))
            lo = hi
        return np.concatenate(made) if made else np.array(crops, copy=True)

    def paint(self, crops: np.ndarray, holes: np.ndarray, start: int) -> np.ndarray:
        """Crops uint8 [n, S, S, 3] of frames ``start ..`` (``n <= chunk_size(start)``) and their holes float [n, S,
        S] -> the crops with their holes painted (blended in by the holes), uint8 [n, S, S, 3].

        Raises:
            ValueError: more crops than the chunk takes, or shapes :func:`paint_crops` refuses.
        """
        n = len(crops)
        if n > self.chunk_size(start):
            raise ValueError(f"{n} crops, but the chunk at frame {start} takes {self.chunk_size(start)}")
        context = self._context if start == self._end else []
        out = np.array(crops, copy=True)
        opened = holes.reshape(n, -1).sum(axis=1) >= MIN_HOLE_PX
        if opened.any():
            k = len(context)
            cut = np.concatenate([np.stack(context), crops]) if k else np.asarray(crops)
            given = np.concatenate([np.zeros((k, *holes.shape[1:]), np.float32), holes]) if k else holes
            windows = self.painter.speech_encoder.frame_windows(self.features, self.clock, start - k, len(cut))[0]
            painted = paint_crops(
                self.painter, cut, np.clip(given, 0, 1).astype(np.float32), self.reference, windows,
                num_inference_steps=self.steps, guidance_scale=self.guidance, generator=self.generator,
            )[k:]  # fmt: skip
            a = np.clip(holes, 0, 1)[..., None]
            blended = np.clip(crops + a * (painted.astype(np.float32) - crops) + 0.5, 0, 255).astype(np.uint8)
            out[opened] = blended[opened]
        keep = self.painter.config.context_frames
        made = [*context, *out]
        self._context = made[len(made) - keep :] if keep else []
        self._end = start + n
        return out


class MouthPainting:
    """Paints a talking head's frames as they are rendered (see the module doc).

    Args:
        painter: the trained painter.
        renderer: the renderer of the photo (its photo gives the reference and the mouth's width).
        speech: the speech of the whole clip (mono; resampled to the painter's rate).
        fps: the video's frame rate.
        num_inference_steps, guidance_scale: as :func:`paint_crops`.
        generator: the noise's only source (drawn from chunk by chunk, in order).

    Raises:
        ValueError: a photo whose mouth has no width.
    """

    def __init__(
        self,
        painter: MouthPainter,
        renderer: FaceRenderer,
        speech: Waveform,
        fps: FpsLike,
        *,
        num_inference_steps: int = MOUTH_STEPS,
        guidance_scale: float = MOUTH_GUIDANCE,
        generator: torch.Generator | None = None,
    ):
        self.painter = painter
        cfg = painter.config
        self.width = mouth_width(renderer.reference)
        if not self.width > 0:
            raise ValueError("the photo's mouth has no width (its inner-lip corners coincide): nothing to crop")
        self.size = painter.paint_size(cfg.crop_scale * self.width)
        self.reference = reference_crop(renderer.photo, renderer.reference, cfg.crop_scale, self.size)
        encoder = painter.speech_encoder
        if speech.sample_rate != encoder.sample_rate:
            speech = speech.resample(encoder.sample_rate)
        with torch.no_grad():
            features = encoder.features(speech.samples[:1].float().to(painter.device))
        self.sequence = CropSequence(
            painter, self.reference, features, encoder.frame_clock(fps), num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale, generator=generator,
        )  # fmt: skip

    def paint(self, drawn: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], first: int) -> Iterator[np.ndarray]:
        """Frames ``first ..`` of the video, in order, with their open mouths painted (closed mouths as they were),
        chunk by chunk (:class:`CropSequence`; across calls too when ``first`` continues the previous call's frames).
        ``drawn`` is read a chunk at a time, when the chunk's first frame is asked for, so a renderer's generator
        draws only the frames the chunk paints (the first frame waits for the first chunk's frames, not the window's,
        and a window's frames are not all held at once).

        Args:
            drawn: the renderer's ``(frame, interior, landmarks)`` per frame (``FaceRenderer.frames(motion,
                return_interior=True, return_landmarks=True)``): uint8 [H, W, 3], float [H, W] in [0, 1], float
                [478, 2+] px.
            first: the index of the first frame in the video.
        """
        cfg = self.painter.config
        drawn, index = iter(drawn), first
        while chunk := list(itertools.islice(drawn, self.sequence.chunk_size(index))):
            frames, interiors, targets = (list(x) for x in zip(*chunk))
            lips = np.stack([np.asarray(t)[INNER_LIPS, :2] for t in targets])
            crops = mouth_crops(lips, self.width, cfg.crop_scale, self.size)
            cut = np.stack([c.cut(f) for c, f in zip(crops, frames)])
            holes = np.stack([c.cut(i) for c, i in zip(crops, interiors)])
            painted = self.sequence.paint(cut, holes, index)
            for j, crop in enumerate(crops):
                changed = not np.array_equal(painted[j], cut[j])
                yield crop.paste(frames[j], painted[j], interiors[j]) if changed else frames[j]
            index += len(chunk)


__all__ = ["CropSequence", "MouthPainting", "paint_crops"]
