"""``avdiff talk``: a talking-head video from a face photo and speech."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("talk", help="animate a face photo with speech")
    p.add_argument("--image", required=True, help="face photo")
    p.add_argument("--audio", required=True, help="speech (any audio file, or a video's audio track)")
    p.add_argument("--out", required=True, help="output mp4 (the speech is muxed in)")
    p.add_argument("--baseline", action="store_true", help="the model-free mouth-warp baseline (CPU, no weights)")
    p.add_argument("--fps", default="25")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from avdiff.cli import CommandError
    from avdiff.pipelines.warp_baseline import WarpBaselinePipeline

    if not args.baseline:
        raise CommandError("no talking-head model is available yet: use --baseline (the mouth-warp baseline)")
    pipe = WarpBaselinePipeline(fps=args.fps if "/" in args.fps else float(args.fps))
    out = pipe(args.image, args.audio)
    path = out.save(args.out)
    print(f"wrote {path} ({out.num_frames} frames at {out.fps} fps)")
    return 0
