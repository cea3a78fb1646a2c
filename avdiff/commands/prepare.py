"""``avdiff prepare --videos DIR --out DATA``: turn a folder of talking-face videos into training clips.

See :mod:`avdiff.data.prepare` for what is done to each file and why a segment is dropped.
"""

from __future__ import annotations

import argparse
import logging

from avdiff.commands import add_audio_track_arg

logger = logging.getLogger(__name__)


# Defaults shown in --help; they are PrepareConfig's (tests/data/test_prepare.py checks that they agree). Options left
# out take PrepareConfig's values, so the command imports nothing heavy until it runs.
DEFAULTS = {
    "size": 256,
    "segment_s": 5.0,
    "min_segment_s": 2.0,
    "min_face_px": 64.0,
    "silence_dbfs": -45.0,
    "min_voiced_fraction": 0.1,
    "smooth_sigma": 1.5,
    "split": "train",
}


def register(sub: argparse._SubParsersAction) -> None:
    d = DEFAULTS
    p = sub.add_parser(
        "prepare",
        help="turn a folder of talking-face videos into aligned training clips (the DATA format)",
        description="Resample every video under --videos to 25 fps and 16 kHz mono, cut it into segments, drop "
        "segments that are silent or have no face, several faces or a face too small, align the face (mediapipe, "
        "smoothed landmarks) and write the clips, their index and a report (prepare_report.json) to --out. Files "
        "run in parallel; a re-run skips the files already finished; a broken file is reported and skipped.",
    )
    p.add_argument(
        "--videos", required=True, metavar="DIR", help="folder of videos (searched recursively; any container)"
    )
    p.add_argument("--out", required=True, metavar="DATA", help="the DATA folder to write (created if needed)")
    p.add_argument("--size", type=int, help=f"side of the aligned face crops, px (default {d['size']})")
    p.add_argument("--segment-s", type=float, help=f"segment length, s (default {d['segment_s']:g})")
    p.add_argument(
        "--min-segment-s",
        type=float,
        help=f"drop a last piece shorter than this, s (default {d['min_segment_s']:g}, at most --segment-s)",
    )
    p.add_argument(
        "--min-face",
        type=float,
        metavar="PX",
        help=f"drop faces smaller than this: the longer side of the landmark box in source px (default {d['min_face_px']:g})",
    )
    p.add_argument(
        "--silence-dbfs",
        type=float,
        help=f"a frame is voiced above this RMS level (default {d['silence_dbfs']:g} dBFS)",
    )
    p.add_argument(
        "--min-voiced",
        type=float,
        metavar="FRACTION",
        help=f"drop segments with fewer voiced frames than this fraction (default {d['min_voiced_fraction']:g})",
    )
    p.add_argument(
        "--smooth",
        type=float,
        metavar="FRAMES",
        help=f"temporal smoothing of the landmarks before alignment, gaussian sigma (default {d['smooth_sigma']:g})",
    )
    p.add_argument("--split", help=f"split name written into the index (default {d['split']})")
    p.add_argument(
        "--latents",
        metavar="VAE_DIR",
        default=None,
        help="also cache VAE latents per clip, encoded with this diffusers AutoencoderKL folder",
    )
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default min(4, CPU cores))")
    add_audio_track_arg(p)
    p.add_argument("--force", action="store_true", help="redo files that are already finished")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of the summary")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from avdiff.commands import CommandError
    from avdiff.data.prepare import PrepareConfig, prepare_videos
    from avdiff.video.outputs import OutputFile, check_outputs

    given = {
        "size": args.size,
        "segment_s": args.segment_s,
        "min_segment_s": args.min_segment_s,
        "min_face_px": args.min_face,
        "silence_dbfs": args.silence_dbfs,
        "min_voiced_fraction": args.min_voiced,
        "smooth_sigma": args.smooth,
        "split": args.split,
        "vae": args.latents,
        "audio_track": args.audio_track,
    }
    config = PrepareConfig(**{k: v for k, v in given.items() if v is not None})
    if args.min_segment_s is None:
        config.min_segment_s = min(config.min_segment_s, config.segment_s)
    if args.workers is not None and args.workers < 1:
        raise CommandError(f"--workers must be >= 1, got {args.workers}")
    try:
        config.validate()
    except ValueError as e:
        raise CommandError(f"bad setting: {e}") from e
    # the DATA folder, before any video is read: a folder (not a file), not the VAE's; its ValueErrors reach cli.main
    check_outputs({"--out": OutputFile(args.out, "folder")}, {"--latents": args.latents})
    report = prepare_videos(
        args.videos, args.out, config, workers=args.workers, force=args.force, progress_bar=not args.no_progress
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary(), end="")
    return 0
