"""Builders: every preset is read here, and every model is built here from plain config dicts.

Models take plain arguments and never read a config file; this module turns presets into them (audiocraft's
pattern). A preset is a YAML file shipped inside the package, ``avdiff/presets/<kind>/<name>.yaml``, read through
:mod:`importlib.resources` so it works from an installed wheel as from a checkout, or any ``.yaml`` path. Three
kinds:

* ``unet``: an :class:`~avdiff.models.AudioVideoUNet`: ``unet2d`` (``diffusers.UNet2DConditionModel`` keyword
  arguments), ``motion_adapter`` (``diffusers.MotionAdapter`` keyword arguments), the ``from_unet2d`` options
  ``audio_dim``, ``reference_channels``, ``motion_channels``, ``mask_channels``, and optionally ``pretrained``
  (``{unet: <hub id or folder>, motion_adapter: <hub id or folder>}``, for ``pretrained=True``);
* ``talking_head``: the components of a ``TalkingHeadPipeline``: ``pixel_size``, ``framing``, ``codec``, ``unet``
  (a ``unet`` preset name under ``preset`` with sections overridden), ``speech_encoder``, ``scheduler``;
* ``text_to_video``: the components of a ``TextToVideoPipeline``: ``pixel_size``, ``fps``, ``codec``, ``unet``,
  ``text_encoder``, ``scheduler``;
* ``motion``: a :class:`~avdiff.models.motion.MotionDenoiser` (the motion generator): ``denoiser`` (its keyword
  arguments, the noise schedule under ``scheduler``);
* ``mouth_painter``: a :class:`~avdiff.models.mouth_painter.MouthPainter`: ``pixel_size``, ``max_pixel_size``,
  ``codec_factor``, ``crop_scale``, ``chunk_frames``, ``context_frames``, ``unet`` (as ``talking_head``'s), ``speech_encoder`` (``SpeechEncoder`` keyword
  arguments) and ``scheduler`` (``DDIMScheduler`` keyword arguments).

Random builds are seeded: with a ``seed`` every weight is drawn inside ``torch.random.fork_rng``, so the caller's RNG
is left as it was. (``configs/`` at the top of the repository keeps the training recipes users copy and edit.)
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import torch
import yaml
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UNet2DConditionModel
from torch import nn

from avdiff.models.codec import DiffusersVAECodec, LatentCodec, SpaceToDepthCodec
from avdiff.models.motion import MotionDenoiser
from avdiff.models.mouth_painter import MouthPainter
from avdiff.models.speech import BaseSpeechEncoder, HFSpeechEncoder, SpeechEncoder
from avdiff.models.unet import AudioVideoUNet

logger = logging.getLogger(__name__)

PRESETS_PACKAGE = "avdiff.presets"
UNET_OPTION_KEYS = ("audio_dim", "reference_channels", "motion_channels", "mask_channels")
# kind -> (the keys a preset must have, the keys it may have; None: any)
PRESET_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    "unet": (("unet2d", "motion_adapter"), ("unet2d", "motion_adapter", "pretrained", *UNET_OPTION_KEYS)),
    "talking_head": (("pixel_size", "codec", "unet", "speech_encoder", "scheduler"), None),
    "text_to_video": (("pixel_size", "fps", "codec", "unet", "text_encoder", "scheduler"), None),
    "motion": (("denoiser",), ("denoiser",)),
    "mouth_painter": (
        ("pixel_size", "codec_factor", "unet", "speech_encoder", "scheduler"),
        (
            "pixel_size",
            "max_pixel_size",
            "codec_factor",
            "crop_scale",
            "chunk_frames",
            "context_frames",
            "unet",
            "speech_encoder",
            "scheduler",
        ),
    ),
}


def public_config(module) -> dict:
    """A diffusers module's config without the private keys (``_class_name``, ``_diffusers_version``, ...): the
    keyword arguments that build it again."""
    return {k: v for k, v in dict(module.config).items() if not k.startswith("_")}


# --- presets ----------------------------------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in PRESET_KEYS:
        raise ValueError(f"kind must be one of {sorted(PRESET_KEYS)}, got {kind!r}")


def preset_names(kind: str) -> list[str]:
    """The names of the shipped presets of ``kind`` (``"unet"``, ``"talking_head"``, ``"text_to_video"``), sorted."""
    _check_kind(kind)
    folder = resources.files(PRESETS_PACKAGE).joinpath(kind)
    return sorted(f.name.removesuffix(".yaml") for f in folder.iterdir() if f.name.endswith(".yaml"))


def preset_file(kind: str, name_or_path: str | os.PathLike) -> Traversable | Path:
    """The YAML of a preset: a shipped one by name (``"tiny"`` -> ``avdiff/presets/<kind>/tiny.yaml``), or a
    ``.yaml``/``.yml`` path as given.

    Raises:
        FileNotFoundError: no such preset; the message lists the shipped ones.
    """
    _check_kind(kind)
    what = kind.replace("_", "-")
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"no {what} preset file {str(name_or_path)!r}")
        return path
    found = resources.files(PRESETS_PACKAGE).joinpath(kind, f"{name_or_path}.yaml")
    if not found.is_file():
        raise FileNotFoundError(f"no {what} preset {str(name_or_path)!r}; presets: {preset_names(kind)}")
    return found


def load_preset(kind: str, name_or_path: str | os.PathLike) -> dict:
    """Read and check a preset of ``kind`` (``"unet"``, ``"talking_head"`` or ``"text_to_video"``): a shipped name
    (``"tiny"``) or a YAML path. A ValueError names a missing section or an unknown key."""
    path = preset_file(kind, name_or_path)
    spec = yaml.safe_load(path.read_text()) or {}
    required, allowed = PRESET_KEYS[kind]
    what = kind.replace("_", "-")
    if allowed is not None:
        unknown = sorted(set(spec) - set(allowed))
        if unknown:
            raise ValueError(f"{what} preset {path} has unknown keys {unknown}; expected some of {list(allowed)}")
    if kind == "unet":
        for key in required:
            if not isinstance(spec.get(key), dict):
                raise ValueError(f"preset {path} needs a {key!r} mapping, got {spec.get(key)!r}")
    missing = [k for k in required if k not in spec]
    if missing:
        raise ValueError(f"{what} preset {path} lacks {missing}")
    return spec


# --- models -----------------------------------------------------------------------------------------------------


def build_unet(
    spec: dict | str | os.PathLike = "tiny",
    *,
    seed: int | None = 0,
    pretrained: bool = False,
    latent_channels: int | None = None,
    latent_size: int | None = None,
    cross_attention_dim: int | None = None,
    **options,
) -> AudioVideoUNet:
    """An :class:`~avdiff.models.AudioVideoUNet` from a ``unet`` preset.

    Args:
        spec: a preset name or path (``"tiny"``, ``"sd15"``), or a pipeline preset's ``unet`` section: ``preset``
            (the base, default ``tiny``) with its ``unet2d`` and ``motion_adapter`` sections overridden by the
            section's, and optionally ``audio_gate`` (every audio gate opens to ``tanh(gate) = audio_gate``),
            ``random_new_channels`` (the extra input channels get a fresh conv's random weights) and the
            ``from_unet2d`` options (``mask_channels``, ...).
        seed: every weight is drawn from it inside ``torch.random.fork_rng`` (the global RNG is left as it was);
            None draws from the global RNG (a pipeline's builder seeds it once for all its components).
        pretrained: load the weights the preset's ``pretrained`` section names (hub ids or local folders) instead;
            the audio layers and new channels are still drawn fresh.
        latent_channels, latent_size, cross_attention_dim: sizes fixed by the codec and the text encoder:
            ``in_channels = out_channels = latent_channels``, ``sample_size = latent_size``; a section that sets
            them otherwise is a ValueError.
        options: ``from_unet2d`` options (``audio_dim``, ``reference_channels``, ``motion_channels``,
            ``mask_channels``); they win over the section's and the preset's.
    """
    spec = {"preset": spec} if isinstance(spec, (str, os.PathLike)) else dict(spec)
    name = spec.pop("preset", "tiny")
    cfg = copy.deepcopy(load_preset("unet", name))
    overrides = spec.pop("unet2d", None) or {}
    fixed = {
        "sample_size": latent_size,
        "in_channels": latent_channels,
        "out_channels": latent_channels,
        "cross_attention_dim": cross_attention_dim,
    }
    fixed = {k: v for k, v in fixed.items() if v is not None}
    for key, value in fixed.items():
        if key in overrides and overrides[key] != value:
            raise ValueError(
                f"unet.unet2d.{key}={overrides[key]!r}, but the codec, pixel_size and text encoder make it {value}"
            )
    cfg["unet2d"].update({**overrides, **fixed})
    cfg["motion_adapter"].update(spec.pop("motion_adapter", None) or {})
    audio_gate = spec.pop("audio_gate", None)
    random_new_channels = spec.pop("random_new_channels", False)
    unet_options = {k: cfg[k] for k in UNET_OPTION_KEYS if k in cfg}
    unet_options.update({k: spec.pop(k) for k in UNET_OPTION_KEYS if k in spec})
    unet_options.update(options)
    if spec:
        raise ValueError(
            f"unknown unet preset keys {sorted(spec)}; expected preset, unet2d, motion_adapter, "
            f"audio_gate, random_new_channels, {', '.join(UNET_OPTION_KEYS)}"
        )
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        if pretrained:
            sources = cfg.get("pretrained") or {}
            if not {"unet", "motion_adapter"} <= set(sources):
                raise ValueError(f"preset {str(name)!r} has no pretrained {{unet, motion_adapter}} sources: {sources}")
            unet = AudioVideoUNet.from_sd15(sources["unet"], sources["motion_adapter"], **unet_options)
        else:
            unet2d = UNet2DConditionModel(**cfg["unet2d"])
            unet = AudioVideoUNet.from_unet2d(unet2d, motion_adapter_config=cfg["motion_adapter"], **unet_options)
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


def build_motion_denoiser(
    spec: dict | str | os.PathLike = "tiny", *, seed: int | None = 0, **overrides
) -> MotionDenoiser:
    """A :class:`~avdiff.models.motion.MotionDenoiser` with random weights from a ``motion`` preset.

    Args:
        spec: a preset name or path (``"tiny"``), or a mapping of ``MotionDenoiser`` keyword arguments that override
            a base preset named under ``preset`` (default ``tiny``); its ``scheduler`` section is merged key by key.
        seed: every weight is drawn from it inside ``torch.random.fork_rng`` (the global RNG is left as it was);
            None draws from the global RNG.
        overrides: keyword arguments that win over the preset's (``field_mean``, ``window_frames``, ...).

    Raises:
        ValueError: an unknown setting (naming it), or a value the model refuses.
    """
    spec = {"preset": spec} if isinstance(spec, (str, os.PathLike)) else dict(spec)
    cfg = copy.deepcopy(load_preset("motion", spec.pop("preset", "tiny"))["denoiser"] or {})
    for source in (spec, overrides):
        source = dict(source)
        scheduler = source.pop("scheduler", None)
        cfg.update(source)
        if scheduler:
            cfg["scheduler"] = {**(cfg.get("scheduler") or {}), **scheduler}
    known = set(inspect.signature(MotionDenoiser.__init__).parameters) - {"self"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"unknown motion denoiser settings {unknown}")
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        return MotionDenoiser(**cfg)


def build_mouth_painter(spec: dict | str | os.PathLike = "tiny", *, seed: int | None = 0) -> MouthPainter:
    """A :class:`~avdiff.models.mouth_painter.MouthPainter` with random weights from a ``mouth_painter`` preset (a
    name, a path, or the preset's dict). Its UNet is built as the talking-head presets' are (:func:`build_unet`:
    audio gates opened, the extra channels' weights drawn fresh), sized for the fold: in, out, reference and known
    channels ``3 * codec_factor**2``, ``pixel_size / codec_factor`` wide.

    Raises:
        ValueError: an unknown preset key, or sizes that do not fit.
    """
    if not isinstance(spec, dict):
        spec = load_preset("mouth_painter", spec)
    required, allowed = PRESET_KEYS["mouth_painter"]
    missing, unknown = sorted(set(required) - set(spec)), sorted(set(spec) - set(allowed))
    if missing or unknown:
        raise ValueError(f"mouth_painter preset: missing keys {missing}, unknown keys {unknown}")
    factor, size = int(spec["codec_factor"]), int(spec["pixel_size"])
    channels = 3 * factor * factor
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        speech = SpeechEncoder(**spec["speech_encoder"])
        unet = build_unet(
            {"mask_channels": 1, **spec["unet"]},
            seed=None,
            latent_channels=channels,
            latent_size=size // factor if size % factor == 0 else None,
            audio_dim=speech.audio_dim,
            reference_channels=channels,
            motion_channels=channels,
        )
        painter = MouthPainter(
            unet_config=public_config(unet),
            speech_config=public_config(speech),
            pixel_size=size,
            max_pixel_size=int(spec["max_pixel_size"]) if spec.get("max_pixel_size") is not None else None,
            codec_factor=factor,
            crop_scale=float(spec.get("crop_scale", 1.6)),
            chunk_frames=int(spec.get("chunk_frames", 16)),
            context_frames=int(spec.get("context_frames", 4)),
            scheduler=dict(spec["scheduler"]),
        )
    painter.unet.load_state_dict(unet.state_dict())
    painter.speech_encoder.load_state_dict(speech.state_dict())
    return painter.eval()


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


def _pixel_size(spec: dict, codec: LatentCodec) -> int:
    size = int(spec["pixel_size"])
    if size % codec.downscale:
        raise ValueError(f"pixel_size ({size}) must be a multiple of the codec's downscale ({codec.downscale})")
    return size


# --- the components of a pipeline ---------------------------------------------------------------------------


def build_talking_head_components(spec: dict, seed: int = 0) -> dict:
    """The keyword arguments of ``TalkingHeadPipeline(...)`` from a ``talking_head`` preset dict (see
    ``avdiff/presets/talking_head/tiny.yaml``): random weights, every one drawn inside ``torch.random.fork_rng``
    from ``seed``. The UNet is sized for the codec: ``sample_size = pixel_size / downscale``, in/out, reference and
    motion channels = the codec's latent channels, ``audio_dim`` the speech encoder's."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        codec = build_codec(spec["codec"])
        size = _pixel_size(spec, codec)
        speech_encoder = build_speech_encoder(spec["speech_encoder"])
        c = codec.latent_channels
        unet_spec = {"mask_channels": 1, **spec["unet"]}
        unet = build_unet(
            unet_spec,
            seed=None,
            latent_channels=c,
            latent_size=size // codec.downscale,
            audio_dim=speech_encoder.audio_dim,
            reference_channels=c,
            motion_channels=c,
        )
    return {
        "unet": unet.eval(),
        "codec": codec.eval(),
        "speech_encoder": speech_encoder.eval(),
        "scheduler": build_scheduler(spec["scheduler"]),
        "framing": spec.get("framing", "face"),
    }


def build_text_to_video_components(spec: dict, text_encoder: torch.nn.Module, tokenizer, seed: int = 0) -> dict:
    """The keyword arguments of ``TextToVideoPipeline(...)`` from a ``text_to_video`` preset dict (see
    ``avdiff/presets/text_to_video/tiny.yaml``) and the pretrained text encoder it names (``text_encoder``, a
    transformers model, and its ``tokenizer``; :func:`avdiff.encoders.text.load_text_encoder`): a seeded random-weight
    UNet (drawn inside ``torch.random.fork_rng``) with no reference, motion or mask channels, its cross-attention the
    text encoder's width; the codec and the scheduler."""
    text = dict(spec["text_encoder"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        codec = build_codec(spec["codec"])
        size = _pixel_size(spec, codec)
        unet_spec = dict(spec["unet"])
        audio_dim = unet_spec.pop("audio_dim", None)  # text only unless the preset says otherwise
        text_dim = int(text_encoder.config.hidden_size)
        unet = build_unet(
            unet_spec,
            seed=None,
            latent_channels=codec.latent_channels,
            latent_size=size // codec.downscale,
            cross_attention_dim=text_dim,
            audio_dim=audio_dim,
            reference_channels=0,
            motion_channels=0,
            mask_channels=0,
        )
    return {
        "unet": unet.eval(),
        "codec": codec.eval(),
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": build_scheduler(spec["scheduler"]),
        "fps": spec["fps"],
        "max_text_length": int(text.get("max_length", 32)),
        "text_attention_mask": bool(text.get("attention_mask", True)),
        "text_encoder_name": text["name"],
    }
