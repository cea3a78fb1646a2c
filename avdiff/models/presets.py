"""Builders for :class:`~avdiff.models.AudioVideoUNet`: YAML presets and pretrained SD 1.5 + AnimateDiff parts.

A preset (``avdiff/presets/<name>.yaml``, package data, read with ``yaml.safe_load``) has these keys:

* ``unet2d``: ``diffusers.UNet2DConditionModel`` keyword arguments (the spatial network);
* ``motion_adapter``: ``diffusers.MotionAdapter`` keyword arguments (the temporal modules);
* ``audio_dim``, ``reference_channels``, ``motion_channels``, ``mask_channels``: ``AudioVideoUNet.from_unet2d``
  options;
* ``pretrained`` (optional): ``{unet: <hub id or folder>, motion_adapter: <hub id or folder>}``, used when the preset
  is built with ``pretrained=True``.

Random builds are seeded: the parts are drawn inside ``torch.random.fork_rng`` so the caller's RNG is untouched.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import yaml
from diffusers import MotionAdapter, UNet2DConditionModel

from avdiff.presets import preset_file

logger = logging.getLogger(__name__)

OPTION_KEYS = ("audio_dim", "reference_channels", "motion_channels", "mask_channels")
PRESET_KEYS = ("unet2d", "motion_adapter", "pretrained", *OPTION_KEYS)


def preset_path(path_or_name: str | Path):
    """``"tiny"`` -> the shipped ``avdiff/presets/tiny.yaml``; a path to a .yaml/.yml file is used as is."""
    return preset_file(path_or_name)


def load_preset(path_or_name: str | Path) -> dict:
    """Read and check a preset: a dict with ``unet2d`` and ``motion_adapter`` sections and the options."""
    path = preset_path(path_or_name)
    cfg = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(cfg) - set(PRESET_KEYS))
    if unknown:
        raise ValueError(f"preset {path} has unknown keys {unknown}; expected some of {list(PRESET_KEYS)}")
    for key in ("unet2d", "motion_adapter"):
        if not isinstance(cfg.get(key), dict):
            raise ValueError(f"preset {path} needs a {key!r} mapping, got {cfg.get(key)!r}")
    return cfg


def preset_options(cfg: dict) -> dict:
    """The ``from_unet2d`` options of a preset."""
    return {k: cfg[k] for k in OPTION_KEYS if k in cfg}


def build_from_preset(cls, path_or_name: str | Path, seed: int = 0, pretrained: bool = False):
    """Build ``cls`` (an AudioVideoUNet) from a preset; see ``AudioVideoUNet.from_config_file``."""
    cfg = load_preset(path_or_name)
    if pretrained:
        sources = cfg.get("pretrained") or {}
        if not {"unet", "motion_adapter"} <= set(sources):
            raise ValueError(f"preset {path_or_name!r} has no pretrained {{unet, motion_adapter}} sources: {sources}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # the audio layers and new channels are still drawn fresh
            return cls.from_sd15(sources["unet"], sources["motion_adapter"], **preset_options(cfg))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet2d = UNet2DConditionModel(**cfg["unet2d"])
        return cls.from_unet2d(unet2d, motion_adapter_config=cfg["motion_adapter"], **preset_options(cfg))


def load_pretrained_parts(
    unet_path_or_hub_id: str | Path,
    motion_adapter_path_or_hub_id: str | Path,
    subfolder: str | None = "unet",
    torch_dtype: torch.dtype | None = None,
) -> tuple[UNet2DConditionModel, MotionAdapter]:
    """``UNet2DConditionModel.from_pretrained(..., subfolder=...)`` and ``MotionAdapter.from_pretrained(...)``.
    A local folder holding config.json directly is read without the subfolder."""
    unet_source = Path(unet_path_or_hub_id)
    if unet_source.is_dir() and (unet_source / "config.json").is_file():
        subfolder = None
    elif not unet_source.exists() and str(unet_path_or_hub_id).startswith((".", "/")):
        raise FileNotFoundError(f"unet_path_or_hub_id {str(unet_path_or_hub_id)!r} does not exist")
    logger.info("loading UNet from %s (subfolder %s) and motion adapter from %s", unet_path_or_hub_id, subfolder,
                motion_adapter_path_or_hub_id)  # fmt: skip
    unet2d = UNet2DConditionModel.from_pretrained(
        str(unet_path_or_hub_id), subfolder=subfolder, torch_dtype=torch_dtype
    )
    adapter = MotionAdapter.from_pretrained(str(motion_adapter_path_or_hub_id), torch_dtype=torch_dtype)
    return unet2d, adapter
