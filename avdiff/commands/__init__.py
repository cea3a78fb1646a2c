"""Subcommands of the ``avdiff`` CLI; each module exposes ``register(subparsers)``. Flags that several commands share
are added here."""

from __future__ import annotations

import argparse


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
