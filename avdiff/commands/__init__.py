"""Subcommands of the ``avdiff`` CLI; each module exposes ``register(subparsers)``."""
