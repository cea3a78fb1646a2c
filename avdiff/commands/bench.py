"""``avdiff bench ...``: speed and memory benchmarks, reported as ratios measured in the same run."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (audio)")
    bench = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    a = bench.add_parser("audio", help="loading, log-mel and rhythm analysis as multiples of real time")
    a.add_argument("--duration", type=float, default=180.0, metavar="S", help="length of the generated track (s)")
    a.add_argument("--fps", type=float, default=25.0)
    a.add_argument("--repeats", type=int, default=3)
    a.set_defaults(func=run_audio)


def run_audio(args: argparse.Namespace) -> int:
    from avdiff.bench.audio import main

    print(main(args.duration, args.fps, args.repeats))
    return 0
