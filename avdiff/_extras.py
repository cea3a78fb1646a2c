"""Optional packages behind install extras, and the one sentence that names the extra when one is missing.

The core install (``pip install avdiff``) makes talking heads, scenes and music videos. The rest comes with an
extra (``pyproject.toml``): ``demo`` (Gradio, for ``avdiff demo``), ``eval`` (dlib's identity measure and
mir_eval's beat F-measure), ``clap`` (LAION-CLAP). Each place that imports one of those packages does it through
:func:`require`, so a user without the extra reads what to install instead of a ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ImportError):
    """An optional package is not installed; the message names the extra that installs it."""


def missing_extra_sentence(feature: str, extra: str) -> str:
    """The sentence for a missing extra, e.g. ``The demo needs the demo extra: pip install 'avdiff[demo]'``."""
    return f"{feature} needs the {extra} extra: pip install 'avdiff[{extra}]'"


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` saying that ``feature`` needs ``extra``.

    Args:
        module: the import name, e.g. ``"gradio"``.
        extra: the extra that installs it, e.g. ``"demo"``.
        feature: what needs it, as the sentence starts, e.g. ``"The demo"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(missing_extra_sentence(feature, extra)) from e
