"""Folders and text files a user hands to avdiff, read past what their tools leave behind.

macOS writes an AppleDouble twin ``._name.png`` beside every file copied to a non-Apple disk and a ``.DS_Store`` in
every folder it opens; zip archives made on a Mac carry a ``__MACOSX`` folder of such twins; Windows Explorer leaves
``Thumbs.db`` and ``desktop.ini``. None of them is the user's media, and ``._name.png`` even has an image's name.
:func:`list_files` is the one folder listing for user folders: it skips those (and every hidden name, starting with
``.``) and says how many it skipped in one log line.

Windows Notepad saves UTF-8 with a byte-order mark; :func:`read_text` and :func:`read_json` accept it
(``utf-8-sig`` reads plain UTF-8 unchanged).

This module imports nothing from avdiff, so every layer may use it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

TOOL_FILES = frozenset({"thumbs.db", "desktop.ini", "__macosx"})  # lower case; hidden names are skipped besides


def is_left_behind(name: str) -> bool:
    """Whether a file or folder name is one that tools leave behind: hidden (``.DS_Store``, macOS ``._name``
    resource files, any ``.name``) or ``Thumbs.db``, ``desktop.ini``, ``__MACOSX``."""
    return name.startswith(".") or name.lower() in TOOL_FILES


def list_files(
    folder: str | os.PathLike,
    suffixes: Iterable[str] | None = None,
    *,
    recursive: bool = False,
    exclude: str | os.PathLike | None = None,
    label: str | None = None,
) -> list[Path]:
    """The files in ``folder``, sorted by path, without the files and folders tools leave behind.

    Args:
        folder: an existing folder.
        suffixes: keep only files with one of these extensions (``".png"``, any case); None keeps every file.
        recursive: also list sub-folders (those left behind, and ``exclude``, are not entered).
        exclude: a folder inside ``folder`` not to enter (an output folder inside an input folder).
        label: how the folder is named in the log line (``"--images 'shots'"``); default its path.

    Returns:
        The kept files' paths (``folder / name``). When something was skipped, one WARNING log line gives the count.

    Raises:
        NotADirectoryError: ``folder`` is not a folder (FileNotFoundError when it does not exist).
    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"{str(root)!r}: no such folder")
    if not root.is_dir():
        raise NotADirectoryError(f"{str(root)!r}: not a folder")
    wanted = None if suffixes is None else {s.lower() for s in suffixes}
    skip = Path(exclude).resolve() if exclude is not None else None
    kept: list[Path] = []
    skipped: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if recursive:
            skipped += [name + "/" for name in dirnames if is_left_behind(name)]
        dirnames[:] = sorted(
            d
            for d in dirnames
            if recursive and not is_left_behind(d) and (skip is None or (here / d).resolve() != skip)
        )
        for name in filenames:
            if is_left_behind(name):
                skipped.append(name)
                continue
            path = here / name
            if wanted is None or path.suffix.lower() in wanted:
                kept.append(path)
    if skipped:
        examples = ", ".join(sorted(skipped)[:3]) + (", ..." if len(skipped) > 3 else "")
        logger.warning(
            "%s: skipped %d hidden or system file%s (%s)",
            label or repr(str(root)),
            len(skipped),
            "" if len(skipped) == 1 else "s",
            examples,
        )
    return sorted(kept)


def read_text(path: str | os.PathLike) -> str:
    """A UTF-8 text file's text, with or without a byte-order mark (Notepad's UTF-8 has one).

    Raises:
        OSError: the file cannot be read. UnicodeDecodeError: it is not UTF-8 text.
    """
    return Path(path).read_text(encoding="utf-8-sig")


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file's value, read as :func:`read_text` reads (a byte-order mark is accepted).

    Raises:
        OSError: the file cannot be read. UnicodeDecodeError: it is not UTF-8 text. json.JSONDecodeError: bad JSON.
    """
    return json.loads(read_text(path))
