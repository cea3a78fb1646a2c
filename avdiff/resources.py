"""Package data: the small trained models shipped in ``avdiff/bundled/``, found by name through importlib.resources
(so they load from an installed wheel as from a checkout)."""

from __future__ import annotations

import logging
import os
from importlib import resources
from pathlib import Path

logger = logging.getLogger(__name__)


def bundled_path(name: str) -> Path | None:
    """The folder ``avdiff/bundled/<name>`` of a shipped model, or None when none ships by that name (or ``name`` is
    not a plain folder name)."""
    if not isinstance(name, str) or not name or any(c in name for c in "/\\") or name.startswith("."):
        return None
    try:
        folder = resources.files("avdiff.bundled") / name
    except ModuleNotFoundError:
        return None
    return Path(str(folder)) if folder.is_dir() else None


def resolve_model_dir(name_or_path: str | os.PathLike, marker: str, what: str) -> Path:
    """A folder given as a path, or the bundled folder of that name; it must hold the file ``marker``.

    Raises:
        FileNotFoundError: neither an existing folder nor a bundled name, or the folder lacks ``marker``.
    """
    path = Path(name_or_path)
    if not path.is_dir():
        bundled = bundled_path(str(name_or_path))
        if bundled is None:
            raise FileNotFoundError(f"no {what} {str(name_or_path)!r}: not a folder, and no bundled model of that name")
        path = bundled
    if not (path / marker).is_file():
        raise FileNotFoundError(f"{str(path)!r} holds no {what} (no {marker})")
    return path
