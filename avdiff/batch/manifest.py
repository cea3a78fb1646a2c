"""A batch manifest: one row per video, read from CSV or JSON Lines, each value typed by the job's columns.

A manifest names the inputs of each video (paths relative to the manifest's own folder), its output name and seed,
and any per-row settings; a column left empty (or absent) takes the default given on the command line. A problem of
the manifest as a whole (unreadable, an unknown column, a required column missing from the header) raises
:class:`ManifestError`; a problem of one row (a value that is not a number, a required value left empty, an output
name used twice) is kept on that row as its ``problem`` and the batch goes on without it.

Example (``jobs.csv`` of ``avdiff batch talk``)::

    image,audio,name,seed,steps
    faces/ada.jpg,voice/hello.wav,ada_hello,,
    faces/bob.png,voice/hello.wav,bob_hello,7,12
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from avdiff.audio.clock import parse_fps

logger = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".csv", ".jsonl")
# an output name: a file name without its suffix, no folders (letters, digits, '.', '_', '-')
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_SEED = 2**63 - 1
BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


class ManifestError(ValueError):
    """The manifest as a whole cannot be used (naming the file and the reason); nothing was made."""


@dataclass(frozen=True)
class Column:
    """A manifest column: its ``kind`` (how a value is read), whether every row must give it, and its help.

    Kinds: ``path`` (a file, relative to the manifest's folder), ``paths`` (several, separated by ``;``), ``text``,
    ``int``, ``float``, ``bool`` (``true``/``false``, ``yes``/``no``, ``1``/``0``; JSON's ``true``/``false``) and
    ``fps`` (a frame rate as ``avdiff talk --fps`` takes it: 25, 29.97, 30000/1001).
    """

    kind: str
    required: bool = False
    help: str = ""


# The columns of every job.
COMMON_COLUMNS = {
    "name": Column("text", help="output name: OUT/NAME.mp4 (default: the row's number and its first input's name)"),
    "seed": Column("int", help="seed of the row's generator (default: --seed plus the row's number)"),
}


@dataclass
class Row:
    """One row of a manifest.

    Attributes:
        index: the row's position, from 0 (the first row under the header).
        line: its line in the file, from 1 (for messages).
        name: its output name (``OUT/NAME.mp4``).
        seed: the seed of its generator: the row's own, else the base seed plus ``index``; never a function of how
            many processes share the batch.
        values: the job's columns, typed: paths as :class:`~pathlib.Path`, numbers as int or float; a column neither
            the row nor the defaults give is absent.
        problem: why the row cannot be made (None when it can); set while reading or by the job's check.
    """

    index: int
    line: int
    name: str
    seed: int
    values: dict[str, object] = field(default_factory=dict)
    problem: str | None = None


def _records(path: Path) -> list[tuple[int, dict[str, object]]]:
    """``(line, {column: value})`` of each row of a CSV (with a header) or JSON Lines file."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames:
                raise ManifestError(f"manifest {str(path)!r} is empty (a CSV manifest starts with a header line)")
            rows = []
            for record in reader:
                if None in record:  # more values than the header has columns
                    raise ManifestError(
                        f"manifest {str(path)!r}, line {reader.line_num}: {len(record) - 1 + len(record[None])} "
                        f"values for the header's {len(reader.fieldnames)} columns"
                    )
                if any(v not in (None, "") for v in record.values()):  # a blank line is no row
                    rows.append((reader.line_num, record))
            return rows
    rows = []
    with path.open(encoding="utf-8") as f:
        for line, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as e:
                raise ManifestError(f"manifest {str(path)!r}, line {line}: not JSON ({e.msg})") from e
            if not isinstance(record, dict):
                raise ManifestError(
                    f"manifest {str(path)!r}, line {line}: a row must be a JSON object, got {type(record).__name__}"
                )
            rows.append((line, record))
    return rows


def _typed(column: Column, value: object, folder: Path) -> object:
    """``value`` read as ``column.kind`` (ValueError naming what is wrong)."""
    if column.kind == "path":
        return folder / os.path.expanduser(str(value).strip())
    if column.kind == "paths":
        items = value if isinstance(value, list) else str(value).split(";")
        paths = [folder / os.path.expanduser(str(p).strip()) for p in items if str(p).strip()]
        if not paths:
            raise ValueError("no path given")
        return paths
    if column.kind == "text":
        return str(value).strip()
    if column.kind == "int":
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"not a whole number: {value!r}")
        try:
            return int(str(value).strip()) if not isinstance(value, (int, float)) else int(value)
        except ValueError:
            raise ValueError(f"not a whole number: {value!r}") from None
    if column.kind == "float":
        try:
            return float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
        except ValueError:
            raise ValueError(f"not a number: {value!r}") from None
    if column.kind == "bool":
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in BOOL_WORDS:
            return BOOL_WORDS[word]
        raise ValueError(f"not true or false: {value!r} (true/false, yes/no or 1/0)")
    if column.kind == "fps":
        parse_fps(value)  # a ValueError naming the value and the range
        return value if isinstance(value, (int, float)) else str(value).strip()
    raise AssertionError(f"unknown column kind {column.kind!r}")


def _empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def read_manifest(
    path: str | os.PathLike, columns: dict[str, Column], defaults: dict[str, object] | None = None, *, seed: int = 0
) -> list[Row]:
    """The rows of the manifest at ``path`` (``.csv`` with a header, or ``.jsonl``), every value typed.

    Args:
        columns: the job's columns (see :class:`Column`); ``name`` and ``seed`` are every job's.
        defaults: a value for each column a row leaves empty (the command line's settings); None values are no
            default.
        seed: the base seed: a row without its own seed gets ``seed + index``.

    Returns:
        Every row, in order; a row that cannot be made has its ``problem`` set (and is kept, to be reported).

    Raises:
        ManifestError: the file is missing, unreadable, of another format, has no rows, or has a column the job does
            not take, or lacks a required column (naming the file and the columns the job takes).
    """
    path = Path(path)
    columns = {**COMMON_COLUMNS, **columns}
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise ManifestError(f"manifest {str(path)!r}: a .csv (with a header) or .jsonl file, got {path.suffix!r}")
    if not path.is_file():
        raise ManifestError(f"manifest {str(path)!r}: no such file")
    try:
        records = _records(path)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ManifestError(f"manifest {str(path)!r} cannot be read: {e}") from e
    if not records:
        raise ManifestError(f"manifest {str(path)!r} has no rows")
    given = {k for _, record in records for k in record}
    unknown = sorted(given - set(columns))
    if unknown:
        raise ManifestError(f"manifest {str(path)!r}: unknown column(s) {unknown}; this job takes {sorted(columns)}")
    defaults = {k: v for k, v in (defaults or {}).items() if v is not None}
    missing = [k for k, c in columns.items() if c.required and k not in given and k not in defaults]
    if missing:
        raise ManifestError(f"manifest {str(path)!r}: no column {missing}, which every row needs")
    folder = path.parent
    rows, names = [], {}
    for index, (line, record) in enumerate(records):
        row = Row(index=index, line=line, name="", seed=seed + index)
        problems = []
        for key, column in columns.items():
            value = record.get(key)
            if _empty(value):
                value = defaults.get(key)
            if _empty(value):
                if column.required:
                    problems.append(f"no {key}")
                continue
            try:
                row.values[key] = _typed(
                    column, value, folder if key in record and not _empty(record[key]) else Path()
                )
            except ValueError as e:
                problems.append(f"{key}: {e}")
        if "seed" in row.values:
            row.seed = row.values.pop("seed")
            if not 0 <= row.seed <= MAX_SEED:
                problems.append(f"seed: must be from 0 to 2**63 - 1, got {row.seed}")
        first = next((v for v in row.values.values() if isinstance(v, (Path, list))), None)
        first = first[0] if isinstance(first, list) else first
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", first.stem) if first else "row"  # "photo 1.jpg" -> "photo_1"
        row.name = row.values.pop("name", None) or f"{index:04d}_{stem}"
        if not NAME_PATTERN.match(row.name):
            problems.append(f"name {row.name!r}: letters, digits, '.', '_' and '-' only (no folders)")
        elif row.name.casefold() in names:  # Ada and ada are one file on macOS and Windows
            problems.append(f"name {row.name!r} is already row {names[row.name.casefold()]}'s output")
        else:
            names[row.name.casefold()] = index
        row.problem = "; ".join(problems) or None
        rows.append(row)
    logger.info("%s: %d rows (%d with a problem)", path, len(rows), sum(r.problem is not None for r in rows))
    return rows
