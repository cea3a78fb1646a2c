"""``avdiff eval segmenter`` and ``avdiff eval scenes``: the scene world's measures (registered by
:mod:`avdiff.commands.eval`)."""

from __future__ import annotations

import argparse
import json
import logging

logger = logging.getLogger(__name__)


def register(metrics: argparse._SubParsersAction) -> None:
    seg = metrics.add_parser(
        "segmenter",
        help="pixel accuracy and mean IoU of a scene segmenter on held-out scene clips",
        description="Decode every frame of the clips in DATA (a scene folder, avdiff synth scenes --split test) and "
        "compare the segmenter's labels with the true masks.",
    )
    seg.add_argument(
        "--checkpoint",
        default="avdiff/scene-segmenter",
        help="a segmenter folder or a bundled name (default: the bundled avdiff/scene-segmenter)",
    )
    seg.add_argument("--data", required=True, help="a scene folder of held-out clips")
    seg.add_argument("--max-clips", type=int, default=None, help="at most this many clips")
    seg.add_argument("--json", action="store_true", help="print the result as JSON")
    seg.set_defaults(func=run_segmenter)

    scenes = metrics.add_parser(
        "scenes",
        help="prompt fidelity (presence, absence, left/right, motion) of scene clips against their captions",
        description="Score the clips of DATA (or, with --videos, generated videos named ID.mp4 for each clip id of "
        "DATA) against their records' captions with the scene segmenter: presence of the prompt's objects, absence "
        "of the others, stated places, and whether sounding objects move while silent ones hold. The controls: the "
        "same frames scored against another clip's caption (shuffled), and the true masks instead of the segmenter.",
    )
    scenes.add_argument("--data", required=True, help="a scene folder (its index gives the captions)")
    scenes.add_argument(
        "--videos", default=None, help="a folder of generated videos ID.mp4 to score instead of DATA's own clips"
    )
    scenes.add_argument("--segmenter", default="avdiff/scene-segmenter", help="a segmenter folder or bundled name")
    scenes.add_argument("--max-clips", type=int, default=None, help="at most this many clips")
    scenes.add_argument("--json", action="store_true", help="print the result as JSON")
    scenes.set_defaults(func=run_scenes)


def run_segmenter(args: argparse.Namespace) -> int:
    from avdiff.training.segmenter import evaluate_segmenter_folder

    result = evaluate_segmenter_folder(args.checkpoint, args.data, args.max_clips)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"segmenter {args.checkpoint} on {int(result['frames'])} frames of {args.data}: pixel accuracy "
        f"{result['pixel_accuracy']:.4f}, mean IoU {result['mean_iou']:.4f}"
    )
    print("  " + ", ".join(f"{k[4:]} {v:.2f}" for k, v in result.items() if k.startswith("iou/")))
    return 0


def run_scenes(args: argparse.Namespace) -> int:
    from avdiff.evaluation.scene import score_scene_folder
    from avdiff.models.segmenter import load_segmenter

    segmenter = load_segmenter(args.segmenter)
    report = score_scene_folder(args.data, segmenter, args.videos, args.max_clips)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    source = args.videos or f"{args.data} (its own clips)"
    print(
        f"prompt fidelity of {source}, {int(report['segmenter']['clips'])} clips, "
        f"{int(report['segmenter']['prompt_objects'])} prompt objects:"
    )
    print("| labels | presence | absence | place | motion | motion sounding | motion silent |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for name, row in report.items():
        print(
            f"| {name} | "
            + " | ".join(
                fmt(row[k]) for k in ("presence", "absence", "place", "motion", "motion_sounding", "motion_silent")
            )
            + " |"
        )
    return 0
