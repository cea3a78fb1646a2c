"""Packages whose names are imported on first use (PEP 562), as diffusers' ``_LazyModule`` does: importing one
submodule does not import the others.

A package ``__init__`` names each export and the module that defines it, then takes its ``__getattr__`` and
``__dir__`` from :func:`lazy_exports`::

    _EXPORTS = {"FrameClock": "avdiff.audio.clock", ...}
    __all__ = sorted(_EXPORTS)
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``: a name of ``exports`` (name -> the module
    that defines it) is imported at its first use and kept in the package's namespace."""
    namespace = vars(sys.modules[package])

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
