"""Subcommands of the ``avdiff`` CLI; each module exposes ``register(subparsers)``. Flags that several commands share
are added here."""

from __future__ import annotations

import argparse
import math

DEFAULT_MAX_DURATION_S = 600.0  # the longest audio a command takes unless --max-duration says otherwise


class CommandError(Exception):
    """A user-facing failure: printed as ``avdiff: error: ...`` with exit code 2, without a traceback."""


def add_variant_arg(p: argparse.ArgumentParser) -> None:
    """``--variant NAME``: the weights variant of a model folder (``fp16`` loads ``*.fp16.safetensors``)."""
    p.add_argument(
        "--variant",
        default=None,
        metavar="NAME",
        help="the model's weights variant, e.g. fp16 for *.fp16.safetensors (default: the plain weights, "
        "or the only variant a folder holds)",
    )


def add_audio_track_arg(p: argparse.ArgumentParser) -> None:
    """``--audio-track N``: of a file with several audio tracks, the one to read (counted from 0)."""
    p.add_argument(
        "--audio-track",
        type=int,
        default=None,
        metavar="N",
        help="of a file with several audio tracks, read track N, counted from 0 (default: the track "
        "marked default, else the first; the one used is logged)",
    )


def checked_fps(value: str):
    """``--fps`` as an exact Fraction in [1, 120]; ``CommandError`` naming the value given otherwise."""
    from avdiff.audio.clock import parse_fps

    try:
        return parse_fps(value, "--fps")
    except ValueError as e:
        raise CommandError(str(e)) from e


def checked_max_duration(value: float | None, flag: str = "--max-duration") -> float | None:
    """A positive, finite number of seconds (or None); ``CommandError`` otherwise."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise CommandError(f"{flag} must be a positive number of seconds, got {value:g}")
    return value
