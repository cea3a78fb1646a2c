"""Small helpers that several pipelines share: argument checks and the sizes a UNet and codec can make.

The ``check_*`` functions are the argument checks the talking-head pipelines (the pixel one, the warp baseline, the
motion one and its sampler) share; each raises a ValueError whose message names the argument and the value given,
word for word the same in every pipeline that uses it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from avdiff.video.writer import check_output_path

logger = logging.getLogger(__name__)


def is_int(x: object) -> bool:
    """True for an ``int`` that is not a ``bool`` (``True`` is not a step count)."""
    return isinstance(x, int) and not isinstance(x, bool)


def check_face_and_speech(image: object, audio: object) -> None:
    """A talking head's two inputs: a face photo and speech, neither None (their contents are read later).

    Raises:
        ValueError: ``image`` or ``audio`` is None.
    """
    if image is None:
        raise ValueError("image must be a face photo (a path, a PIL image or an array), got None")
    if audio is None:
        raise ValueError("audio must be speech (a path, bytes, an array or a Waveform), got None")


def check_num_inference_steps(num_inference_steps: object) -> None:
    """Denoising steps: an ``int`` >= 1 (not a bool, not a float such as ``10.0``).

    Raises:
        ValueError: anything else, naming the value.
    """
    if not is_int(num_inference_steps) or num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be an integer >= 1, got {num_inference_steps!r}")


def check_number(name: str, value: object, low: float = 0, *, convert: bool = False) -> float:
    """A setting that must be a finite number >= ``low``, returned as a float.

    Args:
        name: the argument's name, for the message.
        value: what was given.
        low: the smallest value allowed; it appears in the message as given (``0`` reads ">= 0", ``0.0`` ">= 0.0").
        convert: False takes only a Python ``int`` or ``float`` (not a bool, a string or a numpy scalar other than
            float64); True takes anything ``float()`` reads (``"2"``, ``True``, numpy scalars), as a sampler called
            directly does.

    Returns:
        ``float(value)``.

    Raises:
        ValueError: not a number (``convert`` False: not an int or float; True: ``float()`` fails), NaN, infinite,
            or below ``low``, naming ``name`` and the value.
    """
    bad = f"{name} must be a finite number >= {low}, got {value!r}"
    if not convert and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(bad)
    try:
        x = float(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a number >= {low}, got {value!r}") from e
    if not math.isfinite(x) or x < low:
        raise ValueError(bad)
    return x


def check_generator(generator: object, allow_list: bool = False) -> None:
    """A ``torch.Generator`` or None (with ``allow_list``, also a list, whose length the caller checks).

    Raises:
        ValueError: anything else, naming its type.
    """
    allowed = (torch.Generator, list) if allow_list else torch.Generator
    if generator is not None and not isinstance(generator, allowed):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def check_callback(callback: object, tensor_inputs: Sequence[str] | None, allowed: Sequence[str]) -> None:
    """``callback_on_step_end`` is callable or None, and the tensors it asks for are among ``allowed`` (the
    pipeline's ``_callback_tensor_inputs``; see :func:`check_callback_tensor_inputs`).

    Raises:
        ValueError: the callback is not callable, or an unknown tensor name (all of them listed).
    """
    if callback is not None and not callable(callback):
        raise ValueError(f"callback_on_step_end must be callable, got {type(callback).__name__}")
    check_callback_tensor_inputs(tensor_inputs, allowed)


def check_callback_tensor_inputs(tensor_inputs: Sequence[str] | None, allowed: Sequence[str]) -> None:
    """Every name in ``callback_on_step_end_tensor_inputs`` (None: none) is among ``allowed``.

    Raises:
        ValueError: listing ``allowed`` and the unknown names.
    """
    unknown = [k for k in tensor_inputs or [] if k not in allowed]
    if unknown:
        raise ValueError(f"callback_on_step_end_tensor_inputs must be among {allowed}, got {unknown}")


def check_max_duration(max_duration_s: float | None) -> None:
    """``max_duration_s``, seconds: positive, or None for no limit.

    Raises:
        ValueError: zero, negative or NaN.
    """
    if max_duration_s is not None and not max_duration_s > 0:
        raise ValueError(f"max_duration_s must be positive, got {max_duration_s}")


def check_talking_head_output(output_path: str | os.PathLike | None, image: object, audio: object) -> None:
    """``output_path`` (None: the frames are returned) can take the video without overwriting the photo or the
    speech given (:func:`avdiff.video.writer.check_output_path`).

    Raises:
        ValueError: from ``check_output_path``, naming ``output_path``.
    """
    if output_path is not None:
        check_output_path(output_path, {"image": image, "audio": audio})


@contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """torch's intra-op threads set to ``num_threads`` inside the block and restored after it.

    For models too small to gain from intra-op parallelism (the motion denoiser): on a CPU that other processes
    share, their threads wait on each other at every small op, and measured on the 2-core machine one such call took
    100× longer with 2 threads than with 1 while another process trained. torch's count is process-wide, so the block
    should not run beside other torch work in the same process.
    """
    before = torch.get_num_threads()
    if before == num_threads:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def latent_multiple(unet) -> int:
    """Latent sides must be multiples of this: the :class:`~avdiff.models.AudioVideoUNet` halves them once per down
    block but the last."""
    return 2 ** (len(unet.unet.config.block_out_channels) - 1)


def pixel_multiple(unet, codec) -> int:
    """Output sides (the talking head's crop sides) must be multiples of this many pixels: :func:`latent_multiple`
    times the codec's downscale."""
    return latent_multiple(unet) * codec.downscale


def default_size(unet, codec) -> int:
    """The side, px, the UNet was built for (the talking head's crop side): its ``sample_size`` times the codec's
    downscale."""
    return int(unet.unet.config.sample_size) * codec.downscale


def apply_frame_callback(
    callback: Callable, pipe, index: int, t: float, tensors: dict[str, torch.Tensor], inputs: list[str]
) -> np.ndarray:
    """Run ``callback_on_step_end(pipe, index, t, {name: tensors[name] for name in inputs})`` for one frame of the
    pipelines that call back once per frame (the warp baseline, the motion talking head, the music job).
    ``tensors["frame"]`` is the frame, uint8 [H, W, 3]; a ``"frame"`` the callback returns (same shape, uint8; a
    tensor or an array) replaces it.

    Returns:
        The frame, uint8 [H, W, 3] (numpy).

    Raises:
        ValueError: the callback returned a frame of another shape or dtype.
    """
    frame = tensors["frame"]
    returned = callback(pipe, index, t, {k: tensors[k] for k in inputs})
    new = (returned or {}).get("frame")
    if new is None:
        return frame.numpy()
    new = new.detach().cpu().numpy() if isinstance(new, torch.Tensor) else np.asarray(new)
    if new.shape != tuple(frame.shape) or new.dtype != np.uint8:
        raise ValueError(
            f"callback_on_step_end returned a frame of shape {new.shape} and dtype {new.dtype}; expected "
            f"{tuple(frame.shape)} uint8"
        )
    return new
