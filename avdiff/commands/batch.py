"""``avdiff batch talk|visualize|scene --manifest jobs.csv --out DIR``: one video per manifest row.

Under ``accelerate launch --num_processes N -m avdiff batch ...`` (or ``torchrun``) the rows are shared between the
processes, each on its own device, and the main process writes the one report (docs/batch.md).
"""

from __future__ import annotations

import argparse
import sys

from avdiff.commands import DEFAULT_MAX_DURATION_S, CommandError, add_variant_arg, checked_max_duration

JOB_HELP = {
    "talk": "talking heads: a face photo and speech per row",
    "visualize": "music videos: a song and keyframe images or prompts per row",
    "scene": "audio-aligned scenes: a prompt and sounds per row",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="many videos from a manifest (CSV or JSONL), across processes with accelerate launch",
        description="Make one video per row of a manifest (CSV with a header, or JSON Lines; paths relative to "
        "the manifest). Every row is checked before any work; a bad row is reported and skipped. Videos are "
        "written atomically to OUT/NAME.mp4, and a rerun skips those that exist, so a killed batch resumes. "
        "OUT/report.json lists every row. Under `accelerate launch --num_processes N -m avdiff batch ...` the "
        "rows are shared between the processes.",
    )
    jobs = p.add_subparsers(dest="job", metavar="JOB", required=True)
    for name, text in JOB_HELP.items():
        j = jobs.add_parser(name, help=text, description=f"{text}. Columns: see `avdiff batch {name} --columns`.")
        j.add_argument("--manifest", required=False, metavar="FILE", help="jobs.csv or jobs.jsonl, one row per video")
        j.add_argument("--out", required=False, metavar="DIR", help="the folder of the videos and report.json")
        j.add_argument("--columns", action="store_true", help="list this job's manifest columns and exit")
        j.add_argument(
            "--model",
            default=None,
            help="the model of every row: a bundled name, a saved folder or a hub id"
            + ("; 'baseline' for the model-free mouth warp" if name == "talk" else "")
            + " (default: the bundled one)",
        )
        add_variant_arg(j)
        j.add_argument("--seed", type=int, default=0, help="base seed: a row without its own seed gets SEED + row")
        j.add_argument("--fps", default=None, help="default frame rate of the rows that give none")
        j.add_argument("--steps", type=int, default=None, help="default denoising steps of the rows that give none")
        j.add_argument(
            "--max-duration",
            type=float,
            default=DEFAULT_MAX_DURATION_S,
            metavar="S",
            help=f"skip rows whose audio is longer than S seconds (default {DEFAULT_MAX_DURATION_S:g})",
        )
        j.add_argument("--device", default=None, help="torch device (default: each process's own: cuda:N or cpu)")
        j.add_argument("--overwrite", action="store_true", help="make every row again, even those already made")
        j.add_argument("--no-score", action="store_true", help="do not score the videos (lip sync, beat alignment)")
        j.add_argument("--no-progress", action="store_true", help="no progress bar")
        j.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from avdiff.batch import ManifestError, format_table, gather_results, get_job, read_manifest, run_batch
    from avdiff.batch.runner import summary, write_report
    from avdiff.loading import process_state

    job = get_job(args.job)
    if args.columns:
        for name, column in job.columns.items():
            print(f"{name:<20} {column.kind:<6} {'required' if column.required else 'optional':<9} {column.help}")
        return 0
    if not args.manifest or not args.out:
        raise CommandError("--manifest and --out are required (or --columns to list the columns)")
    checked_max_duration(args.max_duration)
    if not 0 <= args.seed < 2**63:
        raise CommandError(f"--seed must be from 0 to 2**63 - 1, got {args.seed}")
    defaults = {"fps": args.fps, "steps": args.steps}
    try:
        rows = read_manifest(
            args.manifest, job.columns, {k: v for k, v in defaults.items() if k in job.columns}, seed=args.seed
        )
    except ManifestError as e:
        raise CommandError(str(e)) from e
    results = list(
        run_batch(
            job,
            rows,
            args.out,
            model=args.model,
            variant=args.variant,
            device=args.device,
            max_duration_s=args.max_duration,
            overwrite=args.overwrite,
            score=not args.no_score,
            progress=not args.no_progress,
        )
    )
    merged = gather_results(results)
    if merged is None:  # not the main process: it wrote its videos; the main one reports
        return 0
    path = write_report(
        merged,
        args.out,
        job,
        manifest=str(args.manifest),
        model=args.model or job.default_model,
        variant=args.variant,
        seed=args.seed,
        defaults={k: v for k, v in defaults.items() if v is not None},
        max_duration_s=args.max_duration,
        overwrite=args.overwrite,
        processes=process_state().num_processes,
    )
    print(format_table(merged, job))
    print(f"wrote {path}")
    counts = summary(merged)
    if counts["failed"]:
        print(f"avdiff: {counts['failed']} row(s) failed; see {path}", file=sys.stderr)
    return 1 if counts["failed"] else 0
