"""Input checks of :class:`~avdiff.pipelines.talking_head.TalkingHeadPipeline` (its ``check_inputs``): one
ValueError per problem, naming the argument and its value, before any work."""

from __future__ import annotations

import math
import os

import torch

from avdiff.audio.clock import FpsLike, parse_fps
from avdiff.audio.io import AudioSource
from avdiff.pipelines.utils import is_int
from avdiff.video.image import ImageLike
from avdiff.video.writer import check_output_path

OUTPUT_TYPES = ("np", "pt", "pil", "crops")


class TalkingHeadChecks:
    """``check_inputs`` of the talking-head pipeline; it reads the pipeline's ``unet``, ``codec``,
    ``pixel_multiple``, ``latent_multiple`` and ``_callback_tensor_inputs``."""

    def check_inputs(
        self,
        image: ImageLike | None,
        audio: AudioSource | None,
        fps: FpsLike,
        num_inference_steps: int,
        audio_guidance_scale: float,
        reference_guidance_scale: float,
        chunk_frames: int,
        motion_frames: int,
        height: int | None,
        width: int | None,
        output_type: str,
        generator: torch.Generator | list[torch.Generator] | None,
        callback_on_step_end_tensor_inputs: list[str] | None,
        max_duration_s: float | None,
        eta: float = 0.0,
        output_path: str | os.PathLike | None = None,
    ) -> None:
        """Raise a ValueError naming the argument and its value for anything that cannot work. A photo without a
        face raises ``NoFaceError`` later, in step 1; audio longer than ``max_duration_s`` raises
        ``AudioLoadError`` (a ValueError) when it is loaded, before any generation."""
        if image is None:
            raise ValueError("image must be a face photo (a path, a PIL image or an array), got None")
        if audio is None:
            raise ValueError("audio must be speech (a path, bytes, an array or a Waveform), got None")
        parse_fps(fps)  # a frame rate in [1, 120], or a ValueError naming the value given
        if not is_int(num_inference_steps) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be an integer >= 1, got {num_inference_steps!r}")
        for name, scale in [("audio_guidance_scale", audio_guidance_scale),
                            ("reference_guidance_scale", reference_guidance_scale)]:  # fmt: skip
            if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale >= 1):
                raise ValueError(f"{name} must be >= 1 (exactly 1 turns that guidance off), got {scale!r}")
        max_frames = self.unet.unet.config.motion_max_seq_length
        if not is_int(chunk_frames) or not 2 <= chunk_frames <= max_frames:
            raise ValueError(f"chunk_frames must be an integer in [2, {max_frames}] (the UNet's motion_max_seq_length),"
                             f" got {chunk_frames!r}")  # fmt: skip
        if not is_int(motion_frames) or not 0 <= motion_frames < chunk_frames:
            raise ValueError(f"motion_frames must be an integer in [0, chunk_frames={chunk_frames}), got "
                             f"{motion_frames!r}")  # fmt: skip
        if motion_frames and not self.unet.config.motion_channels:
            raise ValueError(f"motion_frames={motion_frames}, but this UNet takes no motion latents "
                             "(motion_channels=0); use motion_frames=0")  # fmt: skip
        for name, side in [("height", height), ("width", width)]:
            if side is None:
                continue
            if not is_int(side) or side < 16 or side % self.pixel_multiple:
                raise ValueError(f"{name} must be a multiple of {self.pixel_multiple} px (the codec's downscale "
                                 f"{self.codec.downscale} x the UNet's {self.latent_multiple}) and >= 16, got {side!r}")
        if height is not None and width is not None and height != width:
            raise ValueError(f"height and width must be equal (the aligned face crop is square), got {height} and "
                             f"{width}")  # fmt: skip
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if isinstance(generator, list) and len(generator) != 1:
            raise ValueError(f"generator must be one torch.Generator (one video), got a list of {len(generator)}")
        if generator is not None and not isinstance(generator, (torch.Generator, list)):
            raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        unknown = [k for k in callback_on_step_end_tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs must be among {self._callback_tensor_inputs}, "
                             f"got {unknown}")  # fmt: skip
        if max_duration_s is not None and not max_duration_s > 0:
            raise ValueError(f"max_duration_s must be positive (or None), got {max_duration_s!r}")
        if not 0 <= eta <= 1:
            raise ValueError(f"eta must be in [0, 1], got {eta!r}")
        if output_path is not None:
            check_output_path(output_path, {"image": image, "audio": audio})
