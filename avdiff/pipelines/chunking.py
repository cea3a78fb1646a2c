"""Chunked, autoregressive generation and composed classifier-free guidance for the talking-head pipeline.

Long audio is generated in chunks of ``chunk_frames`` frames; every chunk after the first starts with the last
``motion_frames`` frames of the one before, given to the UNet as known motion latents (Hallo's and LatentSync's way of
keeping long videos continuous). Guidance is composed over the reference and the audio as in
:func:`composed_guidance`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
