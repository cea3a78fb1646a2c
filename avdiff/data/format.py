"""The DATA folder: speech–video clips and their index, shared by ``avdiff synth``, ``avdiff prepare`` and the
talking-head trainer.

::

    DATA/
      index.jsonl                 one JSON object per clip (a ClipRecord)
      clips/ID.mp4                25 fps H.264 video with 16 kHz mono AAC speech
      clips/ID.aperture.npy       float32 [F] ground-truth mouth aperture (synthetic clips only)
      clips/ID.landmarks.npy      float32 [F, 478, 2] face landmarks in the clip's pixels (prepared clips)
      clips/ID.latents.pt         cached VAE latents (optional)

Paths in the index are relative to DATA. ``aligned`` says whether the frames are face crops aligned by
``avdiff.video.align`` (prepared clips are; synthetic clips show the whole photo). ``identity`` names the person a
clip shows, where it is known (synthetic clips: the face pool's identity group, :mod:`avdiff.data.faces`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


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



def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` through a temporary file and a rename, so a crash leaves no half file."""
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def read_index(data_dir: str | os.PathLike) -> list[ClipRecord]:
    """The clips of a DATA folder (empty when it has no index yet)."""
    path = Path(data_dir) / "index.jsonl"
    if not path.exists():
        return []
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(ClipRecord(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as e:
                raise ValueError(f"{path}:{n}: not a clip record ({e})") from e
    return records


def append_index(data_dir: str | os.PathLike, record: ClipRecord) -> None:
    """Add (or replace) one record in ``index.jsonl``, rewriting the file atomically."""
    path = Path(data_dir) / "index.jsonl"
    records = [r for r in read_index(data_dir) if r.id != record.id] + [record]
    tmp = path.with_name("index.jsonl.partial")
    tmp.write_text("".join(json.dumps(asdict(r)) + "\n" for r in records))
    os.replace(tmp, path)
