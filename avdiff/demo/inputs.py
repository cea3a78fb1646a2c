"""Uploads in, checked: every bad image or audio file becomes one sentence the user can act on.

The tabs receive Gradio's raw file payloads (``preprocess=False``), so that a corrupt upload reaches avdiff's own
loaders (:func:`avdiff.video.image.load_image`, :func:`avdiff.audio.load_audio`) and their errors, rather than
failing inside Gradio's preprocessing with a generic message. :func:`user_message` maps avdiff's exceptions to the
sentences shown on the page.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from PIL import Image

from avdiff.audio.clock import parse_fps
from avdiff.audio.io import AudioLoadError, Waveform, load_audio
from avdiff.demo.context import Limits
from avdiff.pipelines.beat_visualizer.timeline import TimelineError
from avdiff.video.face import FaceError, NoFaceError
from avdiff.video.image import fit_within, load_image

logger = logging.getLogger(__name__)


NO_FACE_MESSAGE = "No face was found in the photo; use a photo with a clearly visible, roughly frontal face."


class InputError(ValueError):
    """A bad input; the message is one sentence for the user."""


def upload_limit(limits: Limits, *, audio: bool = False, image: bool = False) -> str:
    """What a file input takes, for its label: ``"at most 60 s, 50 MB"`` (``audio``), ``"up to 4096 px a side,
    50 MB"`` (``image``), or the size alone; from ``limits.max_audio_s``, ``max_image_side`` and ``max_file_size``."""
    parts = []
    if audio:
        parts.append(f"at most {limits.max_audio_s:g} s")
    if image:
        parts.append(f"up to {limits.max_image_side} px a side")
    parts.append(file_size_text(limits.max_file_size) if parts else f"at most {file_size_text(limits.max_file_size)}")
    return ", ".join(parts)


def file_size_text(size: str | int) -> str:
    """Gradio's ``max_file_size`` (``"50mb"``, ``"1.5 GB"``, or bytes) as people write it: ``"50 MB"``."""
    if isinstance(size, int):
        return f"{size / 2**20:.3g} MB"
    m = re.fullmatch(r"\s*([\d.]+)\s*([kmgt]?)b?\s*", str(size), flags=re.IGNORECASE)
    if not m:
        return str(size)
    return f"{float(m.group(1)):g} {m.group(2).upper()}B"


def file_path(payload: object) -> str | None:
    """The local path in a Gradio file payload (``{"path": ...}``, as ``preprocess=False`` passes it, or a
    ``FileData``), or a plain path; None when nothing was given."""
    if payload is None:
        return None
    if isinstance(payload, (str, os.PathLike)):
        return os.fspath(payload)
    path = payload.get("path") if isinstance(payload, dict) else getattr(payload, "path", None)
    return str(path) if path else None


@dataclass
class Photo:
    """A checked photo.

    Attributes:
        rgb: uint8 [H, W, 3], at most ``max_output_side`` on its longest side.
        original_size: ``(width, height)`` of the upload, px.
    """

    rgb: np.ndarray
    original_size: tuple[int, int]

    @property
    def scaled(self) -> bool:
        return (self.rgb.shape[1], self.rgb.shape[0]) != self.original_size


def load_photo(payload: object, limits: Limits) -> Photo:
    """The uploaded image as RGB, scaled down to ``limits.max_output_side``. InputError when missing, unreadable,
    larger than ``limits.max_image_side`` or smaller than ``limits.min_image_side`` on a side."""
    path = file_path(payload)
    if path is None:
        raise InputError("Give a face photo first: upload one or take one with the webcam.")
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise InputError("The image file is empty.")
    try:
        with Image.open(path) as im:
            width, height = im.size  # from the header, before any pixels are decoded
            check_image_size(width, height, limits)
            im.load()
            rgb = load_image(im)
    except InputError:
        raise
    except Image.DecompressionBombError as e:
        raise InputError(
            f"The image is too large to open; this app takes at most {limits.max_image_side} px on a side."
        ) from e
    except (OSError, ValueError, SyntaxError) as e:  # PIL raises all three for broken files
        raise InputError("The image cannot be read: it is not an image file, or it is corrupt or truncated.") from e
    check_image_size(rgb.shape[1], rgb.shape[0], limits)  # after EXIF rotation
    original = (rgb.shape[1], rgb.shape[0])
    return Photo(fit_within(rgb, limits.max_output_side), original)


def check_image_size(width: int, height: int, limits: Limits) -> None:
    if max(width, height) > limits.max_image_side:
        raise InputError(
            f"The image is {width}×{height} px; this app takes at most {limits.max_image_side} px on a side."
        )
    if min(width, height) < limits.min_image_side:
        raise InputError(
            f"The image is {width}×{height} px, too small to hold a face; use at least "
            f"{limits.min_image_side} px on a side."
        )


def load_speech(payload: object, limits: Limits) -> Waveform:
    """The uploaded or recorded speech, mono at its own rate. InputError for a missing, empty, corrupt, too long or
    NaN-holding file (see :func:`audio_message`)."""
    path = file_path(payload)
    if path is None:
        raise InputError("Give speech first: upload an audio file or record with the microphone.")
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise InputError("The audio file is empty.")
    try:
        return load_audio(path, mono=True, max_duration_s=limits.max_audio_s)
    except AudioLoadError as e:
        raise InputError(audio_message(e, limits)) from e


FPS_CHOICES = ["24", "25", "30000/1001", "30", "50", "60"]  # the frame-rate boxes' choices (custom values allowed)


def frame_rate(value: object, limits: Limits) -> Fraction:
    """A frame-rate box (``"25"``, ``"29.97"``, ``"30000/1001"`` or a number) -> an exact rate.

    Parsed by :func:`avdiff.audio.clock.parse_fps`, the one parser of every job (1 to 120 fps), then held to the
    app's ``limits.max_fps``. InputError with one sentence otherwise.
    """
    text = str(value).strip() if value is not None else ""
    try:
        rate = parse_fps(text, "the frame rate")
    except ValueError:
        rate = None
    if rate is None or rate > limits.max_fps:
        raise InputError(
            f"The frame rate must be a number of frames per second up to {limits.max_fps:g}, such as 25 or "
            f"30000/1001; got {text!r}."
        )
    return rate


_NON_FINITE = re.compile(r"(\d+) samples are NaN or Inf")
_TOO_LONG = re.compile(r"([\d.]+) s is longer than max_duration_s")


def audio_message(error: AudioLoadError, limits: Limits) -> str:
    """The sentence for an :class:`~avdiff.audio.io.AudioLoadError`, from its ``reason``."""
    reason = error.reason
    if m := _TOO_LONG.search(reason):
        return f"The audio is {float(m.group(1)):.1f} s long; this app takes at most {limits.max_audio_s:g} s."
    if m := _NON_FINITE.search(reason):
        return f"The audio holds {m.group(1)} NaN or infinite samples; it is broken and cannot be used."
    if "zero length" in reason:
        return "The audio file is empty: it holds no samples."
    if "no audio track" in reason:
        return "The file is a video without a sound track; give one with sound."
    return "The audio file cannot be read: it is not audio, or it is corrupt or truncated."


BUG_MESSAGE = "Something went wrong on the server (the error is in its log); try again, or another input."


def page_sentence(error: BaseException, limits: Limits, job: str) -> str:
    """The one sentence a tab shows for ``error``: :func:`user_message` for bad input; for anything else (a bug)
    :data:`BUG_MESSAGE`, with the traceback logged under ``job``."""
    message = user_message(error, limits)
    if message is None:
        logger.error("%s request failed", job, exc_info=error)
        return BUG_MESSAGE
    return message


def user_message(error: BaseException, limits: Limits) -> str | None:
    """The sentence for an error that bad input causes, or None for anything else (a bug, to be logged)."""
    if isinstance(error, InputError):
        return str(error)
    if isinstance(error, AudioLoadError):
        return audio_message(error, limits)
    if isinstance(error, NoFaceError):
        return NO_FACE_MESSAGE
    if isinstance(error, FaceError):
        return f"The face cannot be used: {error}."
    if isinstance(error, TimelineError):
        return f"The timeline cannot be used: {str(error).rstrip('.')}."
    if isinstance(error, ValueError):  # e.g. the pipeline's check_inputs: names the argument and its value
        text = str(error).strip().rstrip(".")
        return f"This request cannot be run: {text}."
    return None
