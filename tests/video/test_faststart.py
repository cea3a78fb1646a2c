"""Every mp4 the package writes is faststart: its ``moov`` atom (the index) comes before ``mdat`` (the media data),
so a browser can start playing a long video before the whole file has arrived. Checked by reading the top-level atoms
of the files each writer path makes: plain frames, frames with audio muxed, frames streamed one by one (what a
pipeline's ``output_path`` does), a saved pipeline output, and an m4a from ``save_audio``."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch

from avdiff.audio.io import Waveform, save_audio
from avdiff.pipelines.output import VideoPipelineOutput
from avdiff.video.writer import VideoWriter, write_video


def top_level_atoms(path: str | Path) -> list[str]:
    """The types of the top-level atoms (boxes) of an ISO media file, in file order.

    Each atom starts with a 4-byte big-endian size and a 4-byte type; size 1 means a 64-bit size follows the type,
    size 0 means the atom runs to the end of the file.
    """
    data = Path(path).read_bytes()
    atoms, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
        elif size == 0:
            size = len(data) - pos
        assert size >= 8, f"{path}: atom {kind!r} at byte {pos} has size {size}"
        atoms.append(kind.decode("latin-1"))
        pos += size
    assert pos == len(data), f"{path}: the atoms end at byte {pos}, the file at {len(data)}"
    return atoms


def assert_faststart(path: str | Path) -> None:
    atoms = top_level_atoms(path)
    assert "moov" in atoms and "mdat" in atoms, atoms
    assert atoms.index("moov") < atoms.index("mdat"), f"{path}: moov after mdat ({atoms})"


def test_the_atom_reader_reads_64_bit_sizes_and_sees_a_late_moov(tmp_path):
    path = tmp_path / "late.mp4"
    mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + 4) + b"\0" * 4  # a 64-bit size
    path.write_bytes(struct.pack(">I4s", 12, b"ftyp") + b"isom" + mdat + struct.pack(">I4s", 8, b"moov"))
    assert top_level_atoms(path) == ["ftyp", "mdat", "moov"]
    (tmp_path / "end.mp4").write_bytes(struct.pack(">I4s", 8, b"moov") + struct.pack(">I4s", 0, b"mdat") + b"xy")
    assert top_level_atoms(tmp_path / "end.mp4") == ["moov", "mdat"]


def frames(n: int = 12, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def speech(seconds: float = 0.5, rate: int = 16000) -> Waveform:
    t = torch.arange(int(seconds * rate)) / rate
    return Waveform(0.3 * torch.sin(2 * torch.pi * 220 * t)[None], rate)


def test_write_video_is_faststart_with_and_without_audio(tmp_path):
    assert_faststart(write_video(tmp_path / "plain.mp4", frames(), 25))
    assert_faststart(write_video(tmp_path / "audio.mp4", frames(), 25, speech()))


def test_a_streamed_video_is_faststart(tmp_path):
    wav = save_audio(tmp_path / "speech.wav", speech())
    with VideoWriter(tmp_path / "streamed.mp4", 25, wav) as out:
        for frame in frames(20):
            out.write(frame)
    assert_faststart(tmp_path / "streamed.mp4")


def test_a_saved_pipeline_output_is_faststart(tmp_path):
    # a pipeline's output_path streams through VideoWriter (above); held frames are saved through write_video
    saved = VideoPipelineOutput(frames(), fps=25, audio=speech()).save(tmp_path / "saved.mp4")
    assert_faststart(saved)


def test_m4a_audio_is_faststart(tmp_path):
    assert_faststart(save_audio(tmp_path / "speech.m4a", speech()))
