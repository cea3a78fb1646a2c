"""The one way the commands and the demo load a model: a bundled name, a saved folder (its weights variant chosen or
detected), a hub id, or, for talking heads, a training checkpoint (``RUN/checkpoints/step_N``); and the device,
decided once (:func:`default_device`).

A saved folder's kind is read from its ``model_index.json`` (:func:`load_model`), so a caller that does not know the
job of a folder (the demo's registry) loads it without naming a class.

A training checkpoint holds the full training state (``accelerate``'s ``save_state``: ``model.safetensors`` with the
trained module's weights, the optimiser, the scheduler, the random states, ``custom_checkpoint_0.pkl`` with the EMA
when the run keeps one, and ``DONE``, all written by :class:`~avdiff.training.trainer.Trainer`); the run's
``config.json`` two folders up says how the module was built. The pipeline is rebuilt from that, loaded with the
checkpoint's weights (the EMA's when there is one, as ``RUN/final`` holds). The format is read here, below the
training package, so that loading a model never imports the trainers.

A folder whose weights exist only as a variant (``diffusion_pytorch_model.fp16.safetensors``, as fp16 exports are
published) loads that variant, with a log line, when there is exactly one; ``variant=`` chooses among several.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
from pathlib import Path

import torch
from accelerate import PartialState
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file

from avdiff import pipelines
from avdiff.bundled import PIPELINE_KINDS, pipeline_class_name, resolve
from avdiff.models.cfg import CFGDropout
from avdiff.models.unet import quiet_empty_fp32_warning

logger = logging.getLogger(__name__)

# The pipeline class of each job (avdiff.bundled.PIPELINE_KINDS names the jobs), looked up on first use.
KIND_CLASSES = {"talking-head": "TalkingHeadPipeline", "text-to-video": "TextToVideoPipeline"}

# A training checkpoint, as the trainer writes it.
CHECKPOINT_PREFIX = "step_"  # RUN/checkpoints/step_N
MODEL_FILE = "model.safetensors"  # accelerate's name for the first prepared model's weights
EMA_FILE = "custom_checkpoint_0.pkl"  # the EMA, the first object registered for checkpointing
# Settings every talking-head run records in RUN/config.json's "task" (how its model was built).
TALKING_HEAD_SETTINGS = ("preset", "model_seed", "chunk_frames", "motion_frames", "mouth_weight")


def default_device(device: str | torch.device | None = None) -> str | torch.device:
    """``device`` when given, else cuda when available, else cpu: the one default of every command and the demo."""
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


# The dtypes a pipeline runs in (``--dtype``), by name.
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Components kept in float32 when the rest runs in float16: a VAE decoder's activations leave float16's range (the
# reason for diffusers' ``force_upcast``); the pipelines move latents to the codec's own dtype before decoding.
# bfloat16 has float32's range, so under it everything is cast.
FLOAT32_UNDER_FLOAT16 = ("codec",)
DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` (None: :func:`default_device`) as a ``torch.device`` that exists on this machine.

    Raises:
        ValueError: naming the device: not a device string torch knows, a type other than cpu, cuda or mps, cuda
            without CUDA (or an index past the GPUs there are), or mps without MPS.
    """
    given = default_device(device)
    try:
        dev = torch.device(given)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {given!r}: use one of cpu, cuda, cuda:N or mps") from e
    if dev.type not in DEVICE_TYPES:
        raise ValueError(f"unsupported device {given!r}: use one of cpu, cuda, cuda:N or mps")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                f"torch {torch.__version__} is built for CUDA {torch.version.cuda} but sees no NVIDIA GPU"
                if torch.version.cuda
                else f"torch {torch.__version__} is a CPU-only build"
            )
            raise ValueError(f"device {given!r}: CUDA is not available ({why}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {given!r}: there are only {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {given!r}: MPS is not available on this machine; use --device cpu")
    return dev


def check_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``dtype`` as a ``torch.dtype`` (a name of :data:`DTYPES` or a dtype among them); None stays None.

    Raises:
        ValueError: another name or dtype (the ones allowed are named).
    """
    if dtype is None:
        return None
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    raise ValueError(f"unsupported dtype {dtype!r}: use one of {', '.join(DTYPES)}")


def device_modules(pipe) -> list:
    """The objects whose ``.to`` moves ``pipe``'s weights: ``pipe`` itself when it has ``.to`` (a diffusers
    pipeline, the audio-scene pipeline, a module), else the text-to-video pipeline of a beat visualizer's prompt
    keyframes; empty for a pipeline without weights (a beat visualizer over keyframe images)."""
    if hasattr(pipe, "to"):
        return [pipe]
    inner = getattr(getattr(pipe, "source", None), "pipe", None)
    return [inner] if hasattr(inner, "to") else []


def to_device(pipe, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None):
    """``pipe`` on ``device`` (see :func:`default_device`), cast to ``dtype`` where that is safe; returned.

    With ``dtype=None`` the weights keep their dtype (only the device changes). Under ``float16`` the parts of
    :data:`FLOAT32_UNDER_FLOAT16` (the codec: VAE decoders overflow float16) stay in float32; the pipelines cast
    latents to the codec's dtype before decoding. ``bfloat16`` and ``float32`` cast every part. A pipeline without
    weights (a beat visualizer over keyframe images) is returned as it is: its work is on the CPU.

    Raises:
        ValueError: a device that is not there or not known (:func:`check_device`), or a dtype other than float32,
            float16 or bfloat16 (:func:`check_dtype`).
    """
    dev, dtype = check_device(device), check_dtype(dtype)
    modules = device_modules(pipe)
    for module in modules:
        if dtype is None:
            module.to(dev)
            continue
        with quiet_empty_fp32_warning():
            module.to(dev, dtype)
            if dtype == torch.float16:
                for holder in (module, getattr(module, "t2v", None)):  # the audio-scene pipeline holds a t2v one
                    for name in FLOAT32_UNDER_FLOAT16:
                        part = getattr(holder, name, None)
                        if isinstance(part, torch.nn.Module):
                            part.to(dtype=torch.float32)
    if not modules and (dev.type != "cpu" or dtype not in (None, torch.float32)):
        logger.info("%s holds no weights: it runs on the CPU in float32", type(pipe).__name__)
    return pipe


def is_checkpoint(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a complete training checkpoint (``step_N`` with ``DONE`` and the model's weights)."""
    folder = Path(folder)
    return (
        folder.name.startswith(CHECKPOINT_PREFIX) and (folder / "DONE").is_file() and (folder / MODEL_FILE).is_file()
    )


def talking_head_from_checkpoint(folder: str | os.PathLike):
    """The :class:`~avdiff.pipelines.TalkingHeadPipeline` of a talking-head training checkpoint.

    Args:
        folder: ``RUN/checkpoints/step_N``; ``RUN/config.json`` (written by every run) must exist.

    Raises:
        ValueError: not a complete checkpoint, no run config, or a run of another job (naming the folder).
    """
    folder = Path(folder)
    if not is_checkpoint(folder):
        raise ValueError(f"{str(folder)!r} is not a complete training checkpoint (step_N with DONE and {MODEL_FILE})")
    run_config = folder.parent.parent / "config.json"
    try:
        settings = json.loads(run_config.read_text())["task"]
        if not isinstance(settings, dict):
            raise TypeError(f"its task settings are a {type(settings).__name__}, not an object")
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"the checkpoint {str(folder)!r} has no readable run config {str(run_config)!r} ({e})") from e
    missing = [name for name in TALKING_HEAD_SETTINGS if name not in settings]
    if missing:  # settings of another job (an aligner, a SyncNet ...)
        raise ValueError(
            f"the checkpoint {str(folder)!r} is not of a talking-head run (its task settings lack {missing})"
        )
    template = pipelines.TalkingHeadPipeline.from_preset(settings["preset"], seed=int(settings["model_seed"]))
    pipe = pipelines.TalkingHeadPipeline(
        template.unet,
        template.codec,
        template.speech_encoder,
        template.scheduler,
        framing=template.framing,
        chunk_frames=settings["chunk_frames"],
        motion_frames=settings["motion_frames"],
    )
    # The trained module as the talking-head task holds it: the UNet, the speech encoder, the (weightless) dropout.
    model = torch.nn.Module()
    model.unet, model.speech_encoder = pipe.unet, pipe.speech_encoder
    model.cfg_dropout = CFGDropout({"audio": 0.0, "reference": 0.0})
    try:
        model.load_state_dict(load_file(folder / MODEL_FILE))
    except RuntimeError as e:
        raise ValueError(f"the checkpoint {str(folder)!r} does not fit its run's talking-head model ({e})") from e
    if (folder / EMA_FILE).is_file():
        ema = EMAModel(model.parameters())
        ema.load_state_dict(torch.load(folder / EMA_FILE, map_location="cpu", weights_only=False))
        ema.copy_to(model.parameters())
        logger.info("%s: the EMA weights (as the run's final model holds them)", folder)
    model.eval()
    return pipe


# diffusers' weight file names: NAME[.VARIANT][-00001-of-00002].(safetensors|bin)
_WEIGHTS = re.compile(r"^[^.]+(?:\.(?P<variant>[^.]+?))?(?:-\d+-of-\d+)?\.(?:safetensors|bin)$")


def weight_variants(folder: str | os.PathLike) -> tuple[bool, set[str]]:
    """``(plain, variants)`` of a saved model or pipeline folder: whether every part with weights (the folder, each
    component's subfolder) has weights without a variant, and the variants of the weights there are (``{"fp16"}``).
    A UNet saved as fp16 beside a component with plain weights is ``(False, {"fp16"})``: loading it needs the variant
    (diffusers takes the plain weights of the components that lack it)."""
    folder = Path(folder)
    parts = {}  # folder -> (has plain weights, has variant weights)
    variants = set()
    for path in [*folder.iterdir(), *(p for sub in folder.iterdir() if sub.is_dir() for p in sub.iterdir())]:
        match = _WEIGHTS.match(path.name)
        if match and path.is_file():
            plain, variant = parts.get(path.parent, (False, False))
            if match["variant"] is None:
                parts[path.parent] = (True, variant)
            else:
                parts[path.parent] = (plain, True)
                variants.add(match["variant"])
    return bool(parts) and all(plain for plain, _ in parts.values()), variants


def choose_variant(folder: str | os.PathLike, variant: str | None = None, what: str = "--model") -> str | None:
    """The weights variant to load from ``folder``: ``variant`` when given (it must exist there); None when plain
    weights exist; the only variant there is otherwise (logged). A hub id (not a local folder) keeps ``variant``.

    Raises:
        ValueError: naming ``what`` and the folder: ``variant`` is not there (the variants that are, are named), no
            weights at all, or only several variants and none chosen.
    """
    if not Path(folder).is_dir():
        return variant
    plain, variants = weight_variants(folder)
    found = (["plain (no variant)"] if plain else []) + [repr(v) for v in sorted(variants)]
    if variant is not None:
        if variant not in variants:
            has = f"its weights are {', '.join(found)}" if found else "it holds no weights at all"
            raise ValueError(f"{what} {str(folder)!r} has no {variant!r} weights (*.{variant}.safetensors); {has}")
        return variant
    if plain:
        return None
    if len(variants) == 1:
        (only,) = variants
        logger.warning(
            "%s has no plain weights, only the %r variant (*.%s.safetensors); loading it", folder, only, only
        )
        return only
    if variants:
        raise ValueError(
            f"{what} {str(folder)!r} holds only variant weights ({', '.join(found)}); choose one with "
            "--variant (variant= in Python)"
        )
    raise ValueError(
        f"{what} {str(folder)!r} holds no loadable weights: no *.safetensors or *.bin files, plain or "
        "of a variant (*.fp16.safetensors)"
    )


def load_pipeline(
    cls: type,
    name_or_path: str | os.PathLike,
    *,
    variant: str | None = None,
    device: str | torch.device | None = None,
    what: str = "--model",
    **kwargs,
):
    """A pipeline of class ``cls`` (``TalkingHeadPipeline``, ``TextToVideoPipeline``, ``AudioScenePipeline``) from a
    bundled model's name, a saved folder, a hub id, or, for talking heads, a training checkpoint folder; on ``device``
    (see :func:`default_device`).

    Args:
        variant: the weights variant (``"fp16"``); None detects it (see :func:`choose_variant`).
        what: how the user named the model, for messages (``"--model"``).
        kwargs: passed to ``cls.from_pretrained``.

    Raises:
        ValueError: a local folder that is not a saved pipeline (no ``model_index.json``) nor a training checkpoint,
            a folder without loadable weights or without the variant asked for, a checkpoint that is not of a
            talking-head run, or a model that cannot be read (each naming ``what`` and the folder).
    """
    folder = resolve(name_or_path)
    if is_checkpoint(folder):
        if cls is not pipelines.TalkingHeadPipeline:
            raise ValueError(
                f"{what} {str(folder)!r} is a training checkpoint; only talking-head checkpoints load "
                "as they are (use the run's final folder)"
            )
        logger.info("%s is a training checkpoint: rebuilding its pipeline from the run's config", folder)
        pipe = talking_head_from_checkpoint(folder)
    else:
        if Path(folder).is_dir() and not (Path(folder) / "model_index.json").is_file():
            raise _not_a_pipeline_folder(what, name_or_path, checkpoint=cls is pipelines.TalkingHeadPipeline)
        variant = choose_variant(folder, variant, what)
        try:
            pipe = cls.from_pretrained(folder, **({"variant": variant} if variant else {}), **kwargs)
        except (OSError, ValueError) as e:
            if Path(folder).exists():  # a folder that cannot be read: diffusers' message names what is wrong
                raise ValueError(str(e)) from e
            raise ValueError(
                f"{what} {str(name_or_path)!r} is not a local folder, a bundled model's name "
                f"(avdiff/NAME) nor a hub model that can be loaded ({e})"
            ) from e
    return to_device(pipe, device)


def _not_a_pipeline_folder(what: str, name_or_path, checkpoint: bool) -> ValueError:
    """The error for a folder without ``model_index.json`` (naming a training checkpoint as the other choice when
    ``checkpoint``)."""
    also = ", a training checkpoint (RUN/checkpoints/step_N)" if checkpoint else ""
    return ValueError(
        f"{what} {str(name_or_path)!r} is not a saved pipeline folder (no model_index.json){also} nor a bundled "
        "model's name"
    )


def pipeline_class(kind: str) -> type:
    """The pipeline class of a job (``"talking-head"`` -> ``TalkingHeadPipeline``).

    Raises:
        ValueError: a job avdiff has no pipeline class for.
    """
    if kind not in KIND_CLASSES:
        raise ValueError(f"no pipeline for the job {kind!r}; jobs: {sorted(KIND_CLASSES)}")
    return getattr(pipelines, KIND_CLASSES[kind])


def load_model(
    name_or_path: str | os.PathLike,
    *,
    variant: str | None = None,
    device: str | torch.device | None = None,
    what: str = "--model",
    hub_class: type | None = None,
    **kwargs,
):
    """The pipeline of a bundled model's name or a saved folder, of the class its ``model_index.json`` names (a
    talking-head training checkpoint loads as a ``TalkingHeadPipeline``); see :func:`load_pipeline`.

    Args:
        hub_class: the class a name that is no local folder nor bundled model loads as (a hub id); None refuses such
            names.

    Raises:
        ValueError: the folder's ``model_index.json`` is missing or names no pipeline avdiff knows.
    """
    folder = resolve(name_or_path)
    if hub_class is not None and not Path(folder).exists():
        return load_pipeline(hub_class, folder, variant=variant, device=device, what=what, **kwargs)
    if is_checkpoint(folder):
        return load_pipeline(pipelines.TalkingHeadPipeline, folder, device=device, what=what)
    class_name = pipeline_class_name(folder)
    if class_name is None and Path(folder).is_dir() and not (Path(folder) / "model_index.json").is_file():
        raise _not_a_pipeline_folder(what, name_or_path, checkpoint=True)
    if class_name is None:
        raise ValueError(
            f"{what} {str(name_or_path)!r} is not a saved pipeline avdiff knows (its model_index.json "
            f"is missing or names another class; known: {sorted(PIPELINE_KINDS)})"
        )
    return load_pipeline(getattr(pipelines, class_name), folder, variant=variant, device=device, what=what, **kwargs)


# How long a process waits for the others at a collective (the gather of a batch's or an evaluation's results): a
# process whose share ends early waits for the slowest, which may take hours (torch's default: 10 min under NCCL).
PROCESS_GROUP_TIMEOUT = datetime.timedelta(hours=24)


def process_state() -> PartialState:
    """This process's place among the processes a launcher started: an :class:`accelerate.PartialState`
    (``num_processes``, ``process_index``, ``is_main_process``, ``device``, ``split_between_processes``).

    It reads the launcher's environment (``accelerate launch``, ``torchrun``: ``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``) and, under several processes, joins their process group (nccl on GPUs, gloo on CPUs). Accelerate
    keeps one state per process, so it is initialised on the first call and every later call (and an ``Accelerator``
    made later, as the trainer's) shares it. Started plainly (no launcher), it is a single process. As the trainer
    does, it is a CPU state when no GPU is available.
    """
    return PartialState(cpu=not torch.cuda.is_available(), timeout=PROCESS_GROUP_TIMEOUT)


def process_device(state, device: str | torch.device | None = None) -> torch.device:
    """The device a process works on: the state's own when ``device`` is None (:func:`process_state`:
    ``cuda:LOCAL_RANK`` under a launcher on GPUs, ``cuda`` alone, ``cpu`` without a GPU); else ``device``, except that
    a plain ``"cuda"`` under several processes is each process's own GPU (``cuda:LOCAL_RANK``), never one GPU for all.

    Raises:
        ValueError: ``device`` is not a device of this machine (:func:`check_device`), naming it.
    """
    if device is None:
        return torch.device(state.device)
    chosen = check_device(device)
    if chosen.type == "cuda" and chosen.index is None and state.num_processes > 1:
        return check_device(f"cuda:{state.local_process_index}")
    return chosen


def process_share(items: list, state: PartialState | None = None) -> list:
    """This process's share of ``items``: all of them, in order, when ``state`` is None or a single process; else the
    contiguous block :meth:`accelerate.PartialState.split_between_processes` gives it (process 0 the first block;
    the first ``len % N`` processes one more; a process past the end none), so the blocks in process order are
    ``items`` again."""
    if state is None:
        return list(items)
    with state.split_between_processes(list(items)) as share:
        return list(share)
