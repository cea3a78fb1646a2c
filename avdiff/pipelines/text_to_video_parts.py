"""Loaders of :class:`~avdiff.pipelines.text_to_video.TextToVideoPipeline`'s components from *Stable Diffusion 1.5*
with an AnimateDiff motion adapter (hub ids or local folders in the diffusers layout): CLIP text encoder and
tokenizer, SD's VAE behind :class:`~avdiff.models.codec.DiffusersVAECodec`, and the UNet inflated by
:meth:`AudioVideoUNet.from_unet2d`. (A *preset*'s components, the seeded random-weight tiny model, are built by
:func:`avdiff.models.builders.build_text_to_video_components`.)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel

from avdiff.models.unet import AudioVideoUNet

logger = logging.getLogger(__name__)

# AnimateDiff's recommended sampler settings on SD 1.5 (diffusers' AnimateDiffPipeline documentation).
ANIMATEDIFF_DDIM = {"clip_sample": False, "timestep_spacing": "linspace", "beta_schedule": "linear", "steps_offset": 1}


def zero_motion_adapter(unet2d: UNet2DConditionModel) -> MotionAdapter:
    """A small MotionAdapter that fits ``unet2d`` with its ``proj_out`` layers zeroed: every temporal layer is the
    identity, so the inflated UNet makes each frame as the 2D UNet would (independent images)."""
    from avdiff.models.unet import default_motion_adapter_config, zero_motion_proj_out

    config = {**default_motion_adapter_config(unet2d), "motion_layers_per_block": 1, "use_motion_mid_block": False}
    adapter = MotionAdapter(**config).to(unet2d.dtype)
    zero_motion_proj_out(adapter)
    return adapter


def load_sd15_components(
    sd15_path_or_hub_id: str | os.PathLike,
    motion_adapter: MotionAdapter | str | os.PathLike | None = None,
    torch_dtype: torch.dtype | None = None,
    **load_kwargs,
) -> dict:
    """The components of a text-to-video pipeline on Stable Diffusion 1.5 (diffusers folder layout: ``unet/``,
    ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``) plus an AnimateDiff motion adapter (an instance, a
    hub id or a folder; ``None``: :func:`zero_motion_adapter`). ``load_kwargs`` (``revision``, ``cache_dir``,
    ``local_files_only``, ...) go to every ``from_pretrained``. The scheduler is SD's, as DDIM with AnimateDiff's
    settings (:data:`ANIMATEDIFF_DDIM`)."""
    from transformers import AutoTokenizer, CLIPTextModel

    from avdiff.models.codec import DiffusersVAECodec

    source = str(sd15_path_or_hub_id)
    if str(source).startswith((".", "/")) and not Path(source).is_dir():
        raise FileNotFoundError(f"sd15_path_or_hub_id {source!r} is not a folder")
    dtype_kw = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}
    logger.info("loading Stable Diffusion 1.5 parts from %s", source)
    tokenizer = AutoTokenizer.from_pretrained(source, subfolder="tokenizer", **load_kwargs)
    text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", **dtype_kw, **load_kwargs)
    vae = AutoencoderKL.from_pretrained(source, subfolder="vae", **dtype_kw, **load_kwargs)
    unet2d = UNet2DConditionModel.from_pretrained(source, subfolder="unet", **dtype_kw, **load_kwargs)
    if motion_adapter is None:
        logger.warning("no motion adapter: the temporal layers are the identity, so frames are independent images")
        motion_adapter = zero_motion_adapter(unet2d)
    elif not isinstance(motion_adapter, MotionAdapter):
        motion_adapter = MotionAdapter.from_pretrained(str(motion_adapter), **dtype_kw, **load_kwargs)
    unet = AudioVideoUNet.from_unet2d(unet2d, motion_adapter, audio_dim=None, reference_channels=0,
                                      motion_channels=0, mask_channels=0)  # fmt: skip
    scheduler = DDIMScheduler.from_pretrained(source, subfolder="scheduler", **load_kwargs)
    scheduler = DDIMScheduler.from_config(scheduler.config, **ANIMATEDIFF_DDIM)
    return {"unet": unet.eval(), "codec": DiffusersVAECodec(vae).eval(), "text_encoder": text_encoder.eval(),
            "tokenizer": tokenizer, "scheduler": scheduler, "fps": "8",
            "max_text_length": int(tokenizer.model_max_length), "text_attention_mask": False}  # fmt: skip
