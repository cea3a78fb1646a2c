"""Finding videos, stable clip ids, completion markers and the index of a DATA folder being prepared."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict
from pathlib import Path

from avdiff.data.format import ClipRecord, read_index
from avdiff.data.prepare.config import MARKER_DIR, VIDEO_EXTENSIONS
from avdiff.data.prepare.report import FileResult
from avdiff.user_files import list_files

logger = logging.getLogger(__name__)


def find_videos(
    videos_dir: str | os.PathLike, exclude: str | os.PathLike | None = None
) -> tuple[list[Path], list[Path]]:
    """Video files under ``videos_dir`` (recursively, sorted), and the other files found there.

    Hidden files and folders (starting with ``.``, such as macOS ``._name.mp4`` resource files) and other files
    tools leave behind are skipped, with a count in the log (:func:`avdiff.user_files.list_files`), as is everything
    under ``exclude`` (the output folder, when it lies inside the videos folder). A video is recognised by its
    extension (:data:`VIDEO_EXTENSIONS`).
    """
    root = Path(videos_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"--videos {str(root)!r}: no such folder")
    videos, others = [], []
    for path in list_files(root, recursive=True, exclude=exclude, label=f"--videos {str(root)!r}"):
        (videos if path.suffix.lower() in VIDEO_EXTENSIONS else others).append(path)
    return sorted(videos), sorted(others)


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators."""
    return path.relative_to(root).as_posix()


def file_key(rel: str) -> str:
    """A short stable hash of a relative path (16 hex digits)."""
    return hashlib.sha1(rel.encode("utf-8")).hexdigest()[:16]


def clip_id_prefix(rel: str) -> str:
    """The id prefix of every segment of a file: ``<safe path>_<8 hex>_``."""
    stem = rel.rsplit(".", 1)[0] if "." in Path(rel).name else rel
    slug = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")[:60] or "video"
    return f"{slug}_{file_key(rel)[:8]}_"


def segment_id(rel: str, index: int) -> str:
    """The id of segment ``index`` of the file ``rel``: stable across runs and machines."""
    return f"{clip_id_prefix(rel)}{index:03d}"


def _marker_path(out_dir: Path, rel: str) -> Path:
    return out_dir / MARKER_DIR / f"{file_key(rel)}.json"


def _read_marker(out_dir: Path, rel: str, size: int, mtime_ns: int, fingerprint: dict) -> FileResult | None:
    """The stored result of a finished file, or None when it is not finished or has changed since."""
    path = _marker_path(out_dir, rel)
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
        result = FileResult.from_dict(marker["result"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        logger.warning("ignoring the unreadable completion marker %s (%s)", path, e)
        return None
    if marker.get("file") != rel or result.size != size or result.mtime_ns != mtime_ns:
        logger.info("%s changed since it was prepared; redoing it", rel)
        return None
    if marker.get("config") != fingerprint:
        logger.info("%s was prepared with other settings; redoing it", rel)
        return None
    return result


def _write_marker(out_dir: Path, result: FileResult, fingerprint: dict) -> None:
    path = _marker_path(out_dir, result.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps({"file": result.file, "config": fingerprint, "result": result.to_dict()}, indent=1))
    os.replace(tmp, path)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def replace_file_records(out_dir: Path, prefix: str, records: list[ClipRecord]) -> list[str]:
    """Swap a file's records in ``index.jsonl`` (those whose id starts with ``prefix``) for ``records``, atomically.

    Returns the ids that were in the index and are no longer (segments a changed file lost).
    """
    old = read_index(out_dir)
    new_ids = {r.id for r in records}
    removed = [r.id for r in old if r.id.startswith(prefix) and r.id not in new_ids]
    kept = [r for r in old if not r.id.startswith(prefix)]
    _write_text_atomic(out_dir / "index.jsonl", "".join(json.dumps(asdict(r)) + "\n" for r in kept + records))
    return removed


def _remove_clip_files(out_dir: Path, clip_id: str) -> None:
    for suffix in (".mp4", ".landmarks.npy", ".motion.npz", ".latents.pt"):
        (out_dir / "clips" / f"{clip_id}{suffix}").unlink(missing_ok=True)
