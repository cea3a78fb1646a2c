"""What ``avdiff prepare`` did: per segment, per file, and for the run (``prepare_report.json`` / ``.txt``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from avdiff.data.prepare.config import DROPPED, ERROR, KEPT, REPORT_JSON


@dataclass
class SegmentResult:
    """What became of one segment. Times are seconds on the 25 fps time line of the source file."""

    index: int
    start_s: float
    end_s: float
    status: str
    reason: str | None = None
    detail: str | None = None
    id: str | None = None
    voiced_fraction: float | None = None
    face_px: float | None = None


@dataclass
class FileResult:
    """What became of one source file.

    Attributes:
        file: path relative to the videos folder, with ``/`` separators.
        status: ``kept`` (at least one segment kept), ``dropped`` (none kept) or ``error`` (not readable).
        reason: why it was dropped or failed (a reason code; see the module docstring), None when kept.
        detail: a human-readable explanation.
        segments: one entry per segment.
        records: the index records of the kept segments (as dicts).
        size, mtime_ns: the file's size and modification time when it was processed.
        seconds: processing time.
        source_fps, source_sample_rate: the file's own rates (None when unknown).
        skipped: True when this run found the file finished and did not redo it.
    """

    file: str
    status: str
    reason: str | None = None
    detail: str | None = None
    segments: list[SegmentResult] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    size: int = 0
    mtime_ns: int = 0
    seconds: float = 0.0
    source_fps: float | None = None
    source_sample_rate: int | None = None
    skipped: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FileResult:
        values = dict(values)
        values["segments"] = [SegmentResult(**s) for s in values.get("segments", [])]
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @property
    def kept_segments(self) -> list[SegmentResult]:
        return [s for s in self.segments if s.status == KEPT]


@dataclass
class PrepareReport:
    """The outcome of a run: one :class:`FileResult` per video, the ignored non-video files, and totals."""

    videos_dir: str
    out_dir: str
    config: dict
    files: list[FileResult]
    ignored: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def totals(self) -> dict[str, Any]:
        """Counts of files by status, segments kept and dropped, kept footage in seconds, and reasons."""
        status = Counter(f.status for f in self.files)
        segments = [s for f in self.files for s in f.segments]
        return {
            "files": len(self.files),
            "kept_files": status[KEPT],
            "dropped_files": status[DROPPED],
            "error_files": status[ERROR],
            "skipped_files": sum(f.skipped for f in self.files),
            "ignored_files": len(self.ignored),
            "segments_kept": sum(s.status == KEPT for s in segments),
            "segments_dropped": sum(s.status == DROPPED for s in segments),
            "kept_duration_s": round(sum(s.end_s - s.start_s for s in segments if s.status == KEPT), 3),
            "dropped_reasons": dict(Counter(f.reason for f in self.files if f.status == DROPPED)),
            "error_reasons": dict(Counter(f.reason for f in self.files if f.status == ERROR)),
            "segment_reasons": dict(Counter(s.reason for s in segments if s.status == DROPPED)),
        }

    def to_dict(self) -> dict:
        return {
            "version": 1,
            "videos_dir": self.videos_dir,
            "out_dir": self.out_dir,
            "config": self.config,
            "seconds": round(self.seconds, 3),
            "totals": self.totals(),
            "files": [f.to_dict() for f in self.files],
            "ignored": self.ignored,
        }

    def summary(self) -> str:
        """A human-readable summary: totals, then every file that was not kept with its reason."""
        t = self.totals()
        reasons = lambda counts: ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"  # noqa: E731
        lines = [
            f"prepare: {t['files']} videos in {self.videos_dir} -> {self.out_dir} ({self.seconds:.1f} s)",
            f"  kept:     {_count(t['kept_files'], 'file')}, {_count(t['segments_kept'], 'segment')}, "
            f"{t['kept_duration_s'] / 60:.2f} min of aligned footage",
            f"  dropped:  {_count(t['dropped_files'], 'file')} ({reasons(t['dropped_reasons'])})",
            f"  errors:   {_count(t['error_files'], 'file')} ({reasons(t['error_reasons'])})",
            f"  segments dropped: {t['segments_dropped']} ({reasons(t['segment_reasons'])})",
            f"  skipped:  {_count(t['skipped_files'], 'file')} already prepared (--force redoes them)",
        ]
        if self.ignored:
            lines.append(f"  ignored:  {_count(len(self.ignored), 'file')} without a video extension")
        not_kept = [f for f in self.files if f.status != KEPT]
        if not_kept:
            lines.append("  not kept:")
            width = max(len(f.file) for f in not_kept)
            for f in not_kept:
                lines.append(f"    {f.file:<{width}}  {f.status:<7}  {f.reason}: {f.detail}")
        lines.append(f"  report:   {Path(self.out_dir) / REPORT_JSON}")
        return "\n".join(lines) + "\n"


def _count(n: int, noun: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
