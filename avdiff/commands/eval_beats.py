"""``avdiff eval beats VIDEO``: do a music video's visual changes land on its music's beats?

Prints the Beat Align Score (AIST++'s, in seconds: sigma 50 ms) both ways, the hit rate (beats with a visual peak
within one frame) and chance, from :func:`avdiff.metrics.beats.score_video`. A video that cannot be scored (no audio
track, fewer than 4 beats, fewer than 2 visual peaks) prints why and exits with status 2; with ``--json`` its scores
are null.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from avdiff.user_files import read_json

logger = logging.getLogger(__name__)


def register(metrics: argparse._SubParsersAction) -> None:
    p = metrics.add_parser(
        "beats",
        help="Beat Align Score and hit rate of a music video's visual changes against its music's beats",
        description="Find the peaks of VIDEO's per-frame visual change (frame difference, or optical flow) and score "
        "them against the beats of its own audio track: the Beat Align Score as AIST++ defines it (mean over visual "
        "peaks of exp(-d^2 / 2 sigma^2), d the distance to the nearest beat, sigma = 50 ms), the same over the "
        "beats, the hit rate (beats with a visual peak within one frame) and the score of peaks placed at random "
        "(chance). Exits 2 with no score when there are fewer than 4 beats or 2 visual peaks.",
    )
    p.add_argument("video", help="a video with an audio track (mp4, mov, webm ...)")
    p.add_argument(
        "--method",
        choices=["diff", "flow"],
        default="diff",
        help="visual change per frame: mean absolute frame difference (default) or optical-flow magnitude",
    )
    p.add_argument(
        "--sigma-ms",
        type=float,
        default=50.0,
        metavar="MS",
        help="the Gaussian's sigma in milliseconds (default 50: AIST++'s 3 frames at 60 fps)",
    )
    p.add_argument(
        "--beats",
        metavar="FILE",
        default=None,
        help='reference beat times instead of the audio\'s: a JSON list of seconds, or {"beat_times_s": '
        "[...]} (as `avdiff analyze` prints)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON (null scores when there are none; the exit status is then 2 too)",
    )
    p.add_argument(
        "--series", action="store_true", help="with --json: also the beat and peak times and the per-frame change"
    )
    p.set_defaults(func=run)


def load_beats(path: str):
    """Beat times from a JSON file: a list of seconds or ``{"beat_times_s": [...]}``; CommandError otherwise."""
    import math
    from pathlib import Path

    import numpy as np

    from avdiff.commands import CommandError

    file = Path(path)
    if not file.is_file():
        raise CommandError(f"--beats {path!r}: no such file")
    try:
        data = read_json(file)  # a byte-order mark (Notepad's UTF-8) is accepted
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CommandError(f"--beats {path!r}: not JSON ({e})") from e
    if isinstance(data, dict):
        data = data.get("beat_times_s")
    if not isinstance(data, list) or not all(
        isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in data
    ):
        raise CommandError(f'--beats {path!r}: expected a list of beat times in seconds, or {{"beat_times_s": [...]}}')
    return np.sort(np.asarray(data, dtype=np.float64))


def run(args: argparse.Namespace) -> int:
    import math
    import os

    from avdiff.commands import CommandError
    from avdiff.metrics.beats import score_video

    if not (math.isfinite(args.sigma_ms) and args.sigma_ms > 0):
        raise CommandError(f"--sigma-ms must be a positive number of milliseconds, got {args.sigma_ms:g}")
    if not os.path.isfile(args.video):
        raise CommandError(f"{args.video!r}: no such file")
    beats = load_beats(args.beats) if args.beats else None
    result = score_video(args.video, args.method, beats, args.sigma_ms / 1000.0)
    if args.json:
        json.dump(
            {"video": args.video, **result.to_dict(with_series=args.series)}, sys.stdout, indent=2, allow_nan=False
        )
        sys.stdout.write("\n")
        return 0 if result.scored else 2
    if not result.scored:
        raise CommandError(f"{args.video!r} has no beat-alignment score: {result.reason}")
    print(format_report(args.video, result))
    return 0


def format_report(video: str, r) -> str:
    """The scores as lines of text."""
    frame_ms = 1000.0 / r.fps
    return "\n".join(
        [
            f"beats: {video} ({r.fps:g} fps, {r.num_beats} music beats, {r.num_peaks} visual-change peaks by {r.method})",
            f"  Beat Align Score (over visual peaks, sigma {r.sigma_s * 1000:g} ms): {r.beat_align_score:.3f}   "
            f"(chance {r.chance:.3f})",
            f"  Beat Align Score (over music beats):               {r.beat_align_score_music:.3f}",
            f"  hit rate (beats with a visual peak within 1 frame = {frame_ms:.1f} ms): {r.hit_rate:.3f}",
        ]
    )
