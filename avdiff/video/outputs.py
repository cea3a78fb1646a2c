"""Every output of a command, checked together before any work.

A command that writes several files (``avdiff visualize --out V.mp4 --save-timeline T.json --plot P.png``, ``avdiff
scene --out --plot``) checks them all in one call of :func:`check_outputs` before it reads a sample: each is a file
(or a folder, for a folder output) that can be written, none is one of the inputs, no two are the same file (a
timeline written over the video it describes), and each can be written in its format (a plot named ``curve.xyz``
fails now, not after the whole render).
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from avdiff.video.writer import OUTPUT_SUFFIXES, check_output_path

logger = logging.getLogger(__name__)

KINDS = ("video", "picture", "file", "folder")
EXAMPLES = {"video": "out.mp4", "picture": "curve.png", "file": "out.json"}  # a file name to suggest, per kind
COMMON_PICTURES = (".png", ".jpg", ".webp", ".pdf")  # named in the error for a picture that cannot be written


@dataclass(frozen=True)
class OutputFile:
    """One output of a command.

    Attributes:
        path: where it goes (None: not asked for, not checked).
        kind: ``"video"`` (an mp4: :data:`~avdiff.video.writer.OUTPUT_SUFFIXES`), ``"picture"`` (any format Pillow
            writes in RGB, by the extension: ``.png``, ``.jpg``, ``.pdf`` ...), ``"file"`` (any name: JSON, a report)
            or ``"folder"`` (a folder the command writes into; created if needed).
    """

    path: str | os.PathLike | None
    kind: str = "video"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")


def picture_format(path: str | os.PathLike, name: str = "the picture") -> str:
    """The Pillow format that writes ``path`` by its extension (``"PNG"`` for ``curve.png``), proven by writing a small
    RGB picture to memory.

    Raises:
        ValueError: naming ``name`` and the path, for an extension no Pillow writer takes RGB pictures in.
    """
    given = os.fspath(path)
    suffix = Path(given).suffix.lower()
    Image.init()
    fmt = Image.registered_extensions().get(suffix)
    try:
        if fmt is None or fmt not in Image.SAVE:
            raise KeyError(suffix)
        Image.new("RGB", (8, 8)).save(io.BytesIO(), format=fmt)
    except Exception:  # noqa: BLE001  (any writer failure means: this format cannot be written)
        what = f"as {suffix!r}" if suffix else "without an extension"
        raise ValueError(
            f"{name} {given!r}: a picture cannot be written {what}; give a name ending in "
            f"{', '.join(COMMON_PICTURES)} (or another format Pillow writes)"
        ) from None
    return fmt


def _check_folder(path: str | os.PathLike, inputs: dict[str, object], name: str) -> Path:
    given = os.fspath(path)
    target = Path(given)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{name} {given!r} is a file; give a folder (it is created if needed)")
    for input_name, value in inputs.items():
        if (
            isinstance(value, (str, os.PathLike))
            and os.path.isdir(value)
            and target.exists()
            and os.path.samefile(value, target)
        ):
            raise ValueError(
                f"{name} {given!r} is the {input_name} {os.fspath(value)!r}; the outputs would be written "
                "among the inputs. Choose another folder"
            )
    folder = target.resolve()
    while not folder.exists():
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {given!r}: cannot write in {str(folder)!r}")
    return target


def _same(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return os.path.realpath(os.path.abspath(a)) == os.path.realpath(os.path.abspath(b))


def check_outputs(
    outputs: dict[str, OutputFile | str | os.PathLike | None], inputs: dict[str, object] | None = None
) -> dict[str, Path]:
    """Check every output of a command before any work (see the module docstring).

    Args:
        outputs: ``{flag: OutputFile}`` (a plain path is a video); outputs whose path is None are skipped.
        inputs: ``{flag: value}`` of the inputs; path values are compared as files (symlinks and hard links too).

    Returns:
        ``{flag: Path}`` of the outputs given.

    Raises:
        ValueError: one sentence naming the flag, the path and the reason: a folder where a file goes (or the reverse),
            an input, two outputs that are one file, a video not named .mp4/.m4v/.mov, a picture format that cannot be
            written, or a folder that cannot be written in.
    """
    inputs = dict(inputs or {})
    checked: dict[str, Path] = {}
    for name, output in outputs.items():
        if not isinstance(output, OutputFile):
            output = OutputFile(output)
        if output.path is None:
            continue
        if output.kind == "folder":
            path = _check_folder(output.path, inputs, name)
        else:
            if Path(output.path).is_dir():
                example = Path(output.path) / EXAMPLES[output.kind]
                raise ValueError(
                    f"{name} {os.fspath(output.path)!r} is a folder; give a file name such as {str(example)!r}"
                )
            suffixes = OUTPUT_SUFFIXES if output.kind == "video" else None
            path = check_output_path(output.path, inputs, name=name, suffixes=suffixes)
            if output.kind == "picture":
                picture_format(path, name)
        for other, other_path in checked.items():
            if _same(path, other_path):
                raise ValueError(
                    f"{name} {os.fspath(output.path)!r} and {other} {str(other_path)!r} are the same "
                    "file; one would overwrite the other. Choose another name"
                )
        checked[name] = path
    return checked
