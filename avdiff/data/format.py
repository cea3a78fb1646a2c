"""The DATA folder: speech–video clips and their index, shared by ``avdiff synth``, ``avdiff prepare`` and the
talking-head trainer.

::

    DATA/
      index.jsonl                 one JSON object per clip (a ClipRecord)
      clips/ID.mp4                25 fps H.264 video with 16 kHz mono AAC speech
      clips/ID.aperture.npy       float32 [F] ground-truth mouth aperture (synthetic clips only)
      clips/ID.landmarks.npy      float32 [F, 478, 2] face landmarks in the clip's pixels (prepared clips)
      clips/ID.motion.npz         the clip's Motion (avdiff.video.motion): the truth of synthetic clips, the
                                  measured track of prepared ones; one float32 [F] array per field
      clips/ID.latents.pt         cached VAE latents (optional)

Paths in the index are relative to DATA. ``aligned`` says whether the frames are face crops aligned by
``avdiff.video.align`` (prepared clips are; synthetic clips show the whole photo). ``identity`` names the person a
clip shows, where it is known (synthetic clips: the face pool's identity group, :mod:`avdiff.data.faces`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from avdiff.user_files import read_text
from avdiff.video.motion import Motion

logger = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def check_name(name: object, what: str) -> str:
    """``name`` if it is safe as one file or folder name; else ValueError naming ``what`` and the reason.

    Safe: 1 to 128 characters among letters, digits, ``_``, ``.`` and ``-``, not starting with ``.`` or ``-``. So no
    path separators, no ``..``, no absolute paths, no hidden files and nothing a shell reads as an option: a name
    from a user or an index can be joined to an output folder without writing outside it."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise ValueError(
            f"{what} {name!r} is not a safe file name: use 1 to 128 letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-' (no path separators)"
        )
    return name


def check_relative_path(path: object, what: str) -> str:
    """``path`` if it is a relative path that stays inside its folder (no absolute path, no ``..``); else
    ValueError naming ``what``."""
    if not isinstance(path, str) or not path or Path(path).is_absolute() or ".." in Path(path).parts or "\\" in path:
        raise ValueError(f"{what} {path!r} must be a relative path inside the DATA folder")
    return path


@dataclass
class ClipRecord:
    """One line of ``index.jsonl``. Paths are relative to the DATA folder."""

    id: str
    video: str
    fps: float
    sample_rate: int
    num_frames: int
    duration_s: float
    aperture: str | None = None
    text: str | None = None
    split: str | None = None
    source: dict = field(default_factory=dict)
    aligned: bool = False
    landmarks: str | None = None
    latents: str | None = None
    identity: str | None = None
    motion: str | None = None

    def __post_init__(self) -> None:
        # The id names written files (clips/ID.mp4, OUT/SOURCE/ID.mp4, caches) and the paths are joined to DATA:
        # an index from elsewhere must not lead reads or writes outside their folders.
        check_name(self.id, "clip id")
        for name in ("video", "aperture", "landmarks", "latents", "motion"):
            value = getattr(self, name)
            if value is not None:
                check_relative_path(value, f"clip {self.id!r}: {name}")


def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` through a temporary file and a rename, so a crash leaves no half file."""
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def save_motion(path: Path, motion: Motion) -> None:
    """:meth:`Motion.save <avdiff.video.motion.Motion.save>` through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".partial.npz")
    motion.save(tmp)
    os.replace(tmp, path)


def read_index(data_dir: str | os.PathLike) -> list[ClipRecord]:
    """The clips of a DATA folder (empty when it has no index yet)."""
    path = Path(data_dir) / "index.jsonl"
    if not path.exists():
        return []
    records = []
    for n, line in enumerate(read_text(path).splitlines(), 1):  # a byte-order mark is accepted
        if line.strip():
            try:
                records.append(ClipRecord(**json.loads(line)))
            except (json.JSONDecodeError, TypeError, ValueError) as e:
                raise ValueError(f"{path}:{n}: not a clip record ({e})") from e
    return records


def append_index(data_dir: str | os.PathLike, record: ClipRecord) -> None:
    """Add (or replace) one record in ``index.jsonl``, rewriting the file atomically."""
    path = Path(data_dir) / "index.jsonl"
    records = [r for r in read_index(data_dir) if r.id != record.id] + [record]
    tmp = path.with_name("index.jsonl.partial")
    tmp.write_text("".join(json.dumps(asdict(r)) + "\n" for r in records))
    os.replace(tmp, path)
