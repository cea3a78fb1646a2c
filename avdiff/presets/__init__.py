"""Model presets: YAML files shipped inside the package, read through :mod:`importlib.resources`, so that
``AudioVideoUNet.from_preset("tiny")`` and ``TalkingHeadPipeline.from_preset("tiny")`` work from an installed wheel as
well as from a checkout. (``configs/`` at the top of the repository keeps the training recipes users copy and edit.)
"""

from __future__ import annotations

import logging
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

logger = logging.getLogger(__name__)


def preset_names(prefix: str = "") -> list[str]:
    """The names of the shipped presets whose file name starts with ``prefix`` (the prefix removed), sorted."""
    return sorted(f.name.removesuffix(".yaml").removeprefix(prefix) for f in resources.files(__name__).iterdir()
                  if f.name.endswith(".yaml") and f.name.startswith(prefix))  # fmt: skip


def preset_file(name_or_path: str | Path, prefix: str = "", what: str = "model") -> Traversable | Path:
    """The YAML of a preset: a shipped one by name (``"tiny"`` -> ``avdiff/presets/<prefix>tiny.yaml``), or a
    ``.yaml``/``.yml`` path as given.

    Raises:
        FileNotFoundError: no such preset; the message lists the shipped ones.
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"no {what} preset file {str(name_or_path)!r}")
        return path
    found = resources.files(__name__).joinpath(f"{prefix}{name_or_path}.yaml")
    if not found.is_file():
        raise FileNotFoundError(f"no {what} preset {str(name_or_path)!r}; presets: {preset_names(prefix)}")
    return found
