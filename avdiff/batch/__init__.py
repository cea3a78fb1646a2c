"""Batch jobs from a manifest: one video per row, shared between the processes of an ``accelerate launch``, resumable,
with one report (docs/batch.md).

Modules: :mod:`~avdiff.batch.manifest` (reading and typing the rows), :mod:`~avdiff.batch.jobs` (talk, visualize,
scene: columns, checks, making and scoring) and :mod:`~avdiff.batch.runner` (the shares, the run, the report).
"""

from avdiff.batch.jobs import JOBS, Job, get_job
from avdiff.batch.manifest import Column, ManifestError, Row, read_manifest
from avdiff.batch.runner import RowResult, format_table, gather_results, run_batch, write_report

__all__ = [
    "JOBS",
    "Column",
    "Job",
    "ManifestError",
    "Row",
    "RowResult",
    "format_table",
    "gather_results",
    "get_job",
    "read_manifest",
    "run_batch",
    "write_report",
]
