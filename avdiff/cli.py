"""The ``avdiff`` command.

Each subcommand lives in its own module under ``avdiff.commands`` and exposes ``register(subparsers)``, which adds
its parser and sets ``func``. Heavy imports happen inside the handlers, so ``avdiff --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading

from avdiff import __version__
from avdiff.commands import CommandError

logger = logging.getLogger(__name__)

COMMANDS = [
    "analyze",
    "bench",
    "synth",
    "prepare",
    "talk",
    "generate",
    "visualize",
    "scene",
    "batch",
    "eval",
    "train",
    "demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avdiff",
        description="Audio-conditioned video generation with latent diffusion.",
    )
    parser.add_argument("--version", action="version", version=f"avdiff {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"avdiff.commands.{name}").register(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM (``kill``, ``timeout``, SLURM, Kubernetes), raised where the command is, as Ctrl-C raises
    KeyboardInterrupt: every ``with`` and ``finally`` on the way out runs, so a half-written mp4 is removed."""


def _raise_terminated(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM does not cut the clean-up short
    raise Terminated


_fork_hook = False  # the hook below is registered once per process


def _default_sigterm_in_children() -> None:
    """A forked child (a DataLoader worker) dies of SIGTERM as Python's default has it, not by raising Terminated."""
    global _fork_hook
    if not _fork_hook and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
        _fork_hook = True


# Set AVDIFF_DEBUG=1 to see the traceback of an error that is otherwise printed as one line.


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    on_main_thread = threading.current_thread() is threading.main_thread()  # only there can a handler be set
    before = signal.signal(signal.SIGTERM, _raise_terminated) if on_main_thread else None
    if on_main_thread:
        _default_sigterm_in_children()
    try:
        code = int(args.func(args) or 0)
    except CommandError as e:
        print(f"avdiff: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("avdiff: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("avdiff: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except Exception as e:
        if os.environ.get("AVDIFF_DEBUG") or not _user_facing(e):
            raise
        print(f"avdiff: error: {e}", file=sys.stderr)
        return 2
    finally:
        if on_main_thread:  # a handler set outside Python reads as None: the default then
            signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)
    _leave_process_group()
    return code


def _leave_process_group() -> None:
    """Leave the process group a finished command joined under a launcher (``avdiff.loading.process_state``), as
    ``Accelerator.end_training`` does: a gloo group left to the interpreter's teardown can abort a process whose work
    is done ("terminate called without an active exception", seen on a batch's second rank; pytorch/pytorch#190489).
    A command that failed does not wait to leave: its peers may still be inside a collective, and the launcher stops
    them when it exits. Without torch imported, there is none to leave."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    try:
        dist.destroy_process_group()
    except Exception:  # the work is done and reported: a failed goodbye must not turn it into an error
        logger.debug("could not leave the process group", exc_info=True)


def _user_facing(error: Exception) -> bool:
    """Bad input and avdiff's own errors get one line; anything else is a bug and keeps its traceback."""
    return isinstance(error, (ValueError, FileNotFoundError)) or type(error).__module__.startswith("avdiff.")


if __name__ == "__main__":
    sys.exit(main())
