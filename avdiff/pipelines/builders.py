"""Builders of the talking-head pipeline: presets (YAML) -> codec, speech encoder, UNet, scheduler -> pipeline.

Kept apart from the pipeline's module so modules take plain arguments and only builders read configs.
"""

from __future__ import annotations

import copy
import math
import os
from typing import TYPE_CHECKING

import torch
import yaml
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UNet2DConditionModel
from torch import nn

from avdiff.models.codec import DiffusersVAECodec, LatentCodec, SpaceToDepthCodec
from avdiff.models.speech import BaseSpeechEncoder, HFSpeechEncoder, SpeechEncoder
from avdiff.models.unet import AudioVideoUNet

if TYPE_CHECKING:
    from avdiff.pipelines.talking_head import TalkingHeadPipeline


def check_components(unet: AudioVideoUNet, codec: LatentCodec, speech_encoder: BaseSpeechEncoder) -> None:
    """Raise a ValueError unless the components fit together."""
    c = codec.latent_channels
    if unet.latent_channels != c:
        raise ValueError(f"unet.latent_channels ({unet.latent_channels}) must equal codec.latent_channels ({c})")
    for name in ("reference_channels", "motion_channels"):
        value = unet.config[name]
        if value not in (0, c):
            raise ValueError(f"unet.config.{name} ({value}) must be 0 or the codec's latent channels ({c})")
    if unet.config.mask_channels not in (0, 1):
        raise ValueError(f"unet.config.mask_channels must be 0 or 1, got {unet.config.mask_channels}")
    if unet.config.audio_dim != speech_encoder.audio_dim:
        raise ValueError(f"unet.config.audio_dim ({unet.config.audio_dim}) must equal speech_encoder.audio_dim "
                         f"({speech_encoder.audio_dim})")  # fmt: skip


def load_pipeline_preset(name_or_path: str | os.PathLike) -> dict:
    """``"tiny"`` -> the shipped ``avdiff/presets/talking_head_tiny.yaml``; a .yaml path is read as is."""
    from avdiff.presets import preset_file

    path = preset_file(name_or_path, prefix="talking_head_", what="talking-head")
    spec = yaml.safe_load(path.read_text()) or {}
    missing = [k for k in ("pixel_size", "codec", "unet", "speech_encoder", "scheduler") if k not in spec]
    if missing:
        raise ValueError(f"talking-head preset {path} lacks {missing}")
    return spec


def build_pipeline(spec: dict, seed: int = 0) -> TalkingHeadPipeline:
    """Build a random-weight pipeline from a preset dict (see ``avdiff/presets/talking_head_tiny.yaml``), every
    weight drawn inside ``torch.random.fork_rng`` from ``seed``."""
    from avdiff.pipelines.talking_head import TalkingHeadPipeline

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        codec = build_codec(spec["codec"])
        size = int(spec["pixel_size"])
        if size % codec.downscale:
            raise ValueError(f"pixel_size ({size}) must be a multiple of the codec's downscale ({codec.downscale})")
        speech_encoder = build_speech_encoder(spec["speech_encoder"])
        unet = build_unet(spec["unet"], codec.latent_channels, size // codec.downscale, speech_encoder.audio_dim)
    return TalkingHeadPipeline(unet.eval(), codec.eval(), speech_encoder.eval(), build_scheduler(spec["scheduler"]),
                               framing=spec.get("framing", "face"))  # fmt: skip


def build_codec(spec: dict) -> LatentCodec:
    """``{type: space_to_depth, factor, channels}`` or ``{type: vae, vae_config}`` (random weights)."""
    spec = dict(spec)
    kind = spec.pop("type", "space_to_depth")
    if kind == "space_to_depth":
        return SpaceToDepthCodec(**spec)
    if kind == "vae":
        return DiffusersVAECodec(vae_config=spec.pop("vae_config", {}), **spec)
    raise ValueError(f"codec type must be 'space_to_depth' or 'vae', got {kind!r}")


def build_speech_encoder(spec: dict) -> BaseSpeechEncoder:
    """``{type: log_mel, ...SpeechEncoder options}`` or ``{type: hf, backbone: <hub id or folder>, ...}``."""
    spec = dict(spec)
    kind = spec.pop("type", "log_mel")
    if kind == "log_mel":
        return SpeechEncoder(**spec)
    if kind == "hf":
        return HFSpeechEncoder.from_backbone(spec.pop("backbone"), **spec)
    raise ValueError(f"speech_encoder type must be 'log_mel' or 'hf', got {kind!r}")


def build_scheduler(spec: dict) -> DDIMScheduler | DPMSolverMultistepScheduler:
    """``{type: ddim | dpm, ...scheduler config}``."""
    spec = dict(spec)
    kind = spec.pop("type", "ddim")
    classes = {"ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler}
    if kind not in classes:
        raise ValueError(f"scheduler type must be one of {sorted(classes)}, got {kind!r}")
    return classes[kind].from_config(spec)


def build_unet(spec: dict, latent_channels: int, latent_size: int, audio_dim: int) -> AudioVideoUNet:
    """An AudioVideoUNet from a base preset (``spec["preset"]``) with its sections overridden by ``spec``'s, sized
    for the codec: ``sample_size = latent_size``, in/out channels and reference/motion channels = ``latent_channels``.

    Draws from the global RNG (``build_pipeline`` seeds it). With ``audio_gate`` set, every audio gate opens to
    ``tanh(gate) = audio_gate``; with ``random_new_channels``, the extra input channels get random weights.
    """
    from avdiff.models.presets import load_preset

    spec = dict(spec)
    cfg = copy.deepcopy(load_preset(spec.pop("preset", "tiny")))
    overrides = spec.pop("unet2d", None) or {}
    fixed = {"sample_size": latent_size, "in_channels": latent_channels, "out_channels": latent_channels}
    for key, value in fixed.items():
        if key in overrides and overrides[key] != value:
            raise ValueError(f"unet.unet2d.{key}={overrides[key]!r}, but the codec and pixel_size make it {value}")
    cfg["unet2d"].update({**overrides, **fixed})
    cfg["motion_adapter"].update(spec.pop("motion_adapter", None) or {})
    audio_gate = spec.pop("audio_gate", None)
    random_new_channels = spec.pop("random_new_channels", False)
    options = {"audio_dim": audio_dim, "reference_channels": latent_channels, "motion_channels": latent_channels,
               "mask_channels": spec.pop("mask_channels", 1)}  # fmt: skip
    if spec:
        raise ValueError(f"unknown unet preset keys {sorted(spec)}; expected preset, unet2d, motion_adapter, "
                         "mask_channels, audio_gate, random_new_channels")  # fmt: skip
    unet2d = UNet2DConditionModel(**cfg["unet2d"])
    unet = AudioVideoUNet.from_unet2d(unet2d, motion_adapter_config=cfg["motion_adapter"], **options)
    if random_new_channels:
        randomize_new_channels(unet)
    if audio_gate is not None:
        open_audio_gates(unet, float(audio_gate))
    return unet


@torch.no_grad()
def randomize_new_channels(unet: AudioVideoUNet) -> None:
    """Give the conv_in weights of the extra input channels (reference, motion, mask) a fresh conv's random init."""
    conv = unet.unet.conv_in
    fresh = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
    conv.weight[:, unet.latent_channels :] = fresh.weight[:, unet.latent_channels :].to(conv.weight)


@torch.no_grad()
def open_audio_gates(unet: AudioVideoUNet, value: float) -> None:
    """Set every audio gate so that ``tanh(gate) = value`` (in (-1, 1))."""
    if not -1 < value < 1:
        raise ValueError(f"audio_gate is tanh(gate) and must be in (-1, 1), got {value!r}")
    for gate in unet.audio_gates().values():
        gate.fill_(math.atanh(value))
