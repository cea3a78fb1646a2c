"""``avdiff eval METRIC ...``: evaluate generated videos.

``avdiff eval lipsync VIDEO`` correlates the mouth openness in a talking-head video with the loudness of its audio
track and finds the audio offset that fits best (see :mod:`avdiff.metrics.lipsync` for the sign convention). With
``--syncnet CKPT`` it also reports a trained SyncNet's LSE-D, LSE-C and best offset
(:mod:`avdiff.metrics.syncnet_scores`), with the same sign convention.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from avdiff.commands import add_audio_track_arg
from avdiff.user_files import read_json

logger = logging.getLogger(__name__)

OFFSET_CONVENTION = (
    "offset +k means the AUDIO LAGS the video by k frames (the sound of frame i is heard at frame i+k; "
    "delaying the audio by 200 ms at 25 fps gives +5); -k means the audio leads by k frames"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate generated videos (lipsync, talking-head, scenes, beats) or a trained model (align, segmenter)",
        description="Evaluate a generated video or a trained model.",
    )
    metrics = p.add_subparsers(dest="metric", metavar="METRIC")
    p.set_defaults(func=lambda args: _print_help(p))

    lip = metrics.add_parser(
        "lipsync",
        help="correlation of mouth openness with speech loudness, and the best audio offset",
        description=(
            "Correlate the mouth openness of the face in VIDEO with the loudness envelope of its audio track, per "
            f"video frame, and search audio offsets in [-max-offset, +max-offset] frames. Sign convention: "
            f"{OFFSET_CONVENTION}. With several faces, the one whose mouth follows the audio best is scored (or the "
            "one --face/--face-box names), and all are listed. A clip with fewer than 25 frames that show a face "
            "(with audio) has no score: the command says why and exits with status 2."
        ),
    )
    lip.add_argument("video", help="a video with a face and an audio track (mp4, mov, webm ...)")
    lip.add_argument(
        "--reference-aperture",
        metavar="FILE",
        default=None,
        help='ground-truth mouth aperture per frame: a .npy float array [F], or .json with a list or {"aperture": [...]}',
    )
    lip.add_argument(
        "--max-offset", type=int, default=15, metavar="K", help="search offsets -K..K frames (default 15)"
    )
    add_syncnet_argument(
        lip,
        "a trained SyncNet folder (avdiff train syncnet) or the bundled avdiff/syncnet-motion: also report "
        "LSE-D, LSE-C and its best offset, computed as syncnet_python does",
    )
    face = lip.add_mutually_exclusive_group()
    face.add_argument(
        "--face",
        type=int,
        default=None,
        metavar="INDEX",
        help="score this face, counted from the left (0 = leftmost); by default the face whose mouth "
        "follows the audio best is scored, and every face is listed",
    )
    face.add_argument(
        "--face-box",
        default=None,
        metavar="X0,Y0,X1,Y1",
        help="score the face that overlaps this box most (pixels of the upright frame)",
    )
    lip.add_argument(
        "--reference-image",
        metavar="IMG",
        default=None,
        help="the photo the video was made from: also report identity (dlib's face-recognition network: "
        "the share of frames judged the photo's person, the mean descriptor distance and CSIM)",
    )
    lip.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON (null scores when there are none; the exit status is then 2 too)",
    )
    add_audio_track_arg(lip)
    lip.set_defaults(func=run_lipsync)

    heads = metrics.add_parser(
        "talking-head",
        help="animate held-out clips with trained models and baselines; lip sync, PSNR and SSIM per source",
        description=(
            "For each clip of DATA, animate its most-closed-mouth frame with its own speech by every source (the "
            "ground truth re-encoded, the still photo, the mouth-warp baseline, and each --model), write "
            "OUT/SOURCE/ID.mp4, and score it as `avdiff eval lipsync OUT/SOURCE/ID.mp4 --reference-aperture "
            "DATA/clips/ID.aperture.npy` does, plus face-crop PSNR/SSIM against the true frames. Writes "
            "OUT/report.json and OUT/report.md. Under several processes (python -m torch.distributed.run "
            "--standalone --nproc_per_node N -m avdiff.cli eval talking-head ..., or accelerate launch) each "
            "process does a contiguous share of the clips on its own device and the main process writes the "
            "one merged report, the same as one process's."
        ),
    )
    heads.add_argument(
        "--data", required=True, help="a DATA folder of held-out clips (e.g. avdiff synth --split test)"
    )
    heads.add_argument("--out", required=True, help="output folder for the videos and the report")
    heads.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a trained pipeline folder to evaluate, with a name for the report (repeatable)",
    )
    heads.add_argument(
        "--baselines",
        default="ground_truth,still,warp",
        help="comma-separated baselines among ground_truth, still, warp ('' for none)",
    )
    heads.add_argument("--split", default=None, help="only clips of this split")
    heads.add_argument("--max-clips", type=int, default=None, help="at most this many clips")
    heads.add_argument(
        "--max-offset", type=int, default=15, metavar="K", help="offset search, frames (also the SyncNet's)"
    )
    add_syncnet_argument(
        heads,
        "also score every video with this SyncNet (a folder, or the bundled avdiff/syncnet-motion, which "
        "times mouths that follow the phonemes): LSE-D, LSE-C and its offset",
    )
    from avdiff.commands.talk import add_generation_args

    add_generation_args(heads)
    heads.add_argument("--json", action="store_true", help="print the report as JSON")
    heads.set_defaults(func=run_talking_head)

    align = metrics.add_parser(
        "align",
        help="audio-text retrieval recall@1/@5 of a trained aligner on held-out attribute combinations",
        description="Recall@1 and @5 in both directions (audio->text, text->audio) on the held-out test split of "
        "the synthetic sound-caption set, next to chance; for an aligner trained on scene sounds, also how often "
        "select_token picks the sounding object's word out of a scene prompt of 2-4 objects.",
    )
    align.add_argument("--checkpoint", required=True, help="a trained aligner folder, e.g. runs/align_tiny/final")
    align.add_argument("--json", action="store_true", help="print the result as JSON")
    align.set_defaults(func=run_align)

    from avdiff.commands import eval_scenes

    eval_scenes.register(metrics)

    from avdiff.commands.eval_beats import register as register_beats

    register_beats(metrics)


def add_syncnet_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``--syncnet CKPT`` (default None), loaded by :func:`load_syncnet_checkpoint`."""
    parser.add_argument("--syncnet", metavar="CKPT", default=None, help=help)


def run_align(args: argparse.Namespace) -> int:
    from avdiff.training.align import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"align: {args.checkpoint} ({int(result['num_audio'])} held-out clips, {int(result['num_text'])} captions)")
    for direction, name in (("a2t", "audio -> text"), ("t2a", "text -> audio")):
        for k in (1, 5):
            r, chance = result[f"{direction}_r@{k}"], result[f"chance_{direction}_r@{k}"]
            print(f"  {name}  R@{k}: {r:.3f}  (chance {chance:.3f}, {r / chance:.1f}x)")
    if "scene_token_acc" in result:
        print(
            f"  select_token picks the sounding word in scene prompts of 2-4 objects: {result['scene_token_acc']:.3f} "
            f"of {int(result['scene_token_n'])} held-out scene sounds (chance {result['scene_token_chance']:.3f})"
        )
        per_word = {k.split("/", 1)[1]: v for k, v in result.items() if k.startswith("scene_token_acc/")}
        print("    " + ", ".join(f"{w} {v:.2f}" for w, v in per_word.items()))
    return 0


def parse_models(specs: list[str]) -> dict[str, str]:
    """``["audio=runs/a/final", ...]`` -> ``{"audio": "runs/a/final"}``; ``CommandError`` for a malformed or
    repeated name or a name that is a baseline's, ``ValueError`` for one that is not a safe folder name (it becomes
    ``OUT/NAME/``)."""
    from avdiff.commands import CommandError
    from avdiff.data.format import check_name
    from avdiff.evaluation.talking_head import BASELINES

    models: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise CommandError(f"--model {spec!r}: expected NAME=PATH, e.g. audio=runs/th_audio/final")
        check_name(name, f"--model {spec!r}: the name")
        if name in models or name in BASELINES:
            raise CommandError(f"--model {spec!r}: the name {name!r} is taken; give each model its own name")
        models[name] = path
    return models


def run_talking_head(args: argparse.Namespace) -> int:
    from avdiff.commands import CommandError, checked_fps
    from avdiff.commands.talk import flag_words, generation_kwargs
    from avdiff.evaluation.talking_head import (
        BASELINES,
        baseline_animator,
        evaluate_talking_heads,
        pipeline_animator,
        strict_json,
        write_report,
    )
    from avdiff.loading import load_model, process_device, process_state
    from avdiff.pipelines.talking_head import TalkingHeadPipeline
    from avdiff.video.outputs import OutputFile, check_outputs

    baselines = [b for b in args.baselines.split(",") if b]
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise CommandError(f"--baselines: unknown {unknown}; choose among {list(BASELINES)}")
    models = parse_models(args.model)
    if not baselines and not models:
        raise CommandError("nothing to evaluate: give --model NAME=PATH and/or --baselines")
    # the output folder, before any model is loaded: not a file, not the data, not a model
    check_outputs(
        {"--out": OutputFile(args.out, "folder")},
        {"--data": args.data, **{f"--model {name}": path for name, path in models.items()}},
    )
    sync_model = load_syncnet_checkpoint(args.syncnet) if args.syncnet else None  # refused before any video is made
    # one process, or one of several under torchrun / accelerate launch: each on its own device, with its share
    state = process_state()
    device = process_device(state, args.device)
    animators = {b: baseline_animator(b, checked_fps(args.fps)) for b in baselines}
    kwargs: dict = {"fps": checked_fps(args.fps)}  # the settings the report records (the last model's, with models)
    for name, path in models.items():
        pipe = load_model(path, variant=args.variant, device=device, hub_class=TalkingHeadPipeline)
        kwargs = generation_kwargs(args, pipe)
        kwargs.pop("generator")  # each clip gets its own, seeded by --seed (pipeline_animator)
        animators[name] = pipeline_animator(pipe, seed=args.seed, **kwargs)
    try:
        report = evaluate_talking_heads(
            args.data,
            args.out,
            animators,
            args.split,
            args.max_clips,
            args.max_offset,
            state=state,
            syncnet=sync_model,
        )
    except ValueError as e:  # a pipeline's check of its arguments, at the first clip: said in the flags' words
        raise CommandError(flag_words(str(e))) from e
    if not state.is_main_process:  # the main process holds the same merged report: it alone writes and prints
        return 0
    report.settings = {
        "data": args.data,
        "models": models,
        "baselines": baselines,
        "syncnet": args.syncnet,
        "seed": args.seed,
        **{k: str(v) for k, v in kwargs.items()},
    }
    json_path, md_path = write_report(report, args.out)
    summary = report.summary()
    unscored = {name: m["clips"] - m["scored"] for name, m in summary.items() if m["clips"] > m["scored"]}
    if unscored or report.skipped:
        print(
            f"note: clips without a lip-sync score (left out of the means): {unscored or 'none'}; clips not "
            f"animated: {len(report.skipped)}",
            file=sys.stderr,
        )
    if args.json:
        json.dump(strict_json(report.to_dict()), sys.stdout, indent=2, allow_nan=False, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(report.to_markdown(list(models)))
        syncnet = f" --syncnet {args.syncnet}" if args.syncnet else ""
        print(
            f"wrote {json_path} and {md_path}; score one video: avdiff eval lipsync OUT/SOURCE/ID.mp4 "
            f"--reference-aperture {args.data}/clips/ID.aperture.npy{syncnet}"
        )
    return 0


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 1


def load_reference_aperture(path: str | Path) -> np.ndarray:
    """A ground-truth aperture per frame, float64 [F], from .npy or .json (a list, or ``{"aperture": [...]}``).

    ``null`` entries in JSON become NaN (frames without a value). Raises ``CommandError`` for anything else.
    """
    from avdiff.commands import CommandError

    path = Path(path)
    if not path.is_file():
        raise CommandError(f"--reference-aperture {str(path)!r}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        elif suffix == ".json":
            data = read_json(path)  # a byte-order mark (Notepad's UTF-8) is accepted
            if isinstance(data, dict):
                if "aperture" not in data:
                    raise CommandError(f'--reference-aperture {str(path)!r}: a JSON object needs an "aperture" list')
                data = data["aperture"]
        else:
            raise CommandError(f"--reference-aperture {str(path)!r}: expected a .npy or .json file, got {suffix!r}")
        arr = np.asarray(data, dtype=np.float64)
    except CommandError:
        raise
    except (ValueError, TypeError, OSError) as e:
        raise CommandError(f"--reference-aperture {str(path)!r}: cannot read a float array ({e})") from e
    if arr.ndim != 1 or arr.size == 0:
        raise CommandError(
            f"--reference-aperture {str(path)!r}: expected a non-empty 1-D array [F], got shape {arr.shape}"
        )
    return arr


def parse_face_box(text: str) -> tuple[float, float, float, float]:
    """``"x0,y0,x1,y1"`` -> a box; ``CommandError`` for anything else."""
    from avdiff.commands import CommandError

    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not (box[2] > box[0] and box[3] > box[1]):
        raise CommandError(f"--face-box {text!r}: expected X0,Y0,X1,Y1 in pixels with X1 > X0 and Y1 > Y0")
    return box  # type: ignore[return-value]


def run_lipsync(args: argparse.Namespace) -> int:
    from avdiff.commands import CommandError
    from avdiff.metrics.lipsync import score_video
    from avdiff.video import read_video

    if args.max_offset < 0:
        raise CommandError(f"--max-offset must be >= 0 frames, got {args.max_offset}")
    if args.face is not None and args.face < 0:
        raise CommandError(f"--face must be a face index >= 0 (0 = leftmost), got {args.face}")
    face = parse_face_box(args.face_box) if args.face_box else args.face
    clip = read_video(args.video, audio_track=args.audio_track)
    if clip.audio is None:
        raise CommandError(f"{args.video!r} has no (readable) audio track; lipsync needs the speech")
    reference = load_reference_aperture(args.reference_aperture) if args.reference_aperture else None
    photo = load_reference_image(args.reference_image) if args.reference_image else None
    sync_model = load_syncnet_checkpoint(args.syncnet) if args.syncnet else None
    try:
        result = score_video(clip, reference, max_offset=args.max_offset, face=face)
    except ValueError as e:
        raise CommandError(f"{args.video!r}: {e}") from e
    sync = syncnet_report(sync_model, clip, args.max_offset) if sync_model is not None and result.scored else None
    identity = None
    if photo is not None:
        from avdiff.metrics.identity import identity_scores

        identity = identity_scores(clip.frames, photo)

    if args.json:
        out = {"video": args.video, "fps": str(clip.fps), **result.to_dict()}
        if sync is not None:
            out["syncnet"] = {"checkpoint": args.syncnet, **sync.to_dict()}
        if identity is not None:
            out["identity"] = {"reference_image": args.reference_image, **identity.to_dict()}
        json.dump(out, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
        return 0 if result.scored else 2
    if not result.scored:
        raise CommandError(f"{args.video!r} has no lip-sync score: {result.reason}")
    sys.stdout.write(format_report(args.video, float(clip.fps), result))
    if sync is not None:
        sys.stdout.write(format_syncnet(args.syncnet, float(sync_model.config.fps), sync, args.max_offset))
    if identity is not None:
        sys.stdout.write(format_identity(args.reference_image, identity))
    return 0


def load_reference_image(path: str):
    """The photo of ``--reference-image`` as uint8 [H, W, 3]; ``CommandError`` for a missing or unreadable file."""
    from avdiff.commands import CommandError
    from avdiff.video.image import load_image

    try:
        return load_image(path)
    except (FileNotFoundError, ValueError) as e:
        raise CommandError(f"--reference-image {path!r}: {e}") from e


def format_identity(path: str, scores) -> str:
    """The identity lines of the lipsync report (:class:`avdiff.metrics.identity.IdentityScores`)."""
    if not scores.scored:
        return f"  identity:          no score against {path}: {scores.reason}\n"
    lines = [
        f"  identity:          {scores.same_person_share:.0%} of {scores.valid_frames} frames with a face are "
        f"{path}'s person (dlib distance < {scores.threshold:g})",
        f"  identity distance: {scores.mean_distance:.3f} mean, CSIM {scores.csim:.3f}",
    ]
    return "\n".join(lines) + "\n"


def load_syncnet_checkpoint(checkpoint: str):
    """The SyncNet in the folder ``checkpoint``; ``CommandError`` when there is none."""
    from avdiff.commands import CommandError
    from avdiff.metrics.syncnet_scores import load_syncnet

    try:
        return load_syncnet(checkpoint)
    except FileNotFoundError as e:
        raise CommandError(f"--syncnet {checkpoint!r}: {e}") from e


def syncnet_report(model, clip, max_offset: int):
    """LSE-D, LSE-C and the best offset of a decoded clip under a SyncNet
    (:class:`avdiff.metrics.syncnet_scores.SyncScores`); ``CommandError`` when it shows no face."""
    from avdiff.commands import CommandError
    from avdiff.evaluation.syncnet import syncnet_scores_for_clip
    from avdiff.video.face import NoFaceError

    try:
        return syncnet_scores_for_clip(model, clip, max_offset=max_offset)
    except NoFaceError as e:
        raise CommandError(f"SyncNet scores need a face in the video: {e}") from e


def format_syncnet(checkpoint: str, fps: float, scores, max_offset: int) -> str:
    """The SyncNet lines of the lipsync report; offsets are in frames at the model's ``fps`` (the video is resampled
    to it)."""
    from avdiff.metrics.lipsync import describe_offset

    lines = [
        f"  syncnet:           {checkpoint} ({scores.num_windows} five-frame windows, offsets ±{max_offset})",
        f"  LSE-D:             {scores.lse_d:.3f}  minimum over offsets of the mean audio-video distance (lower: better)",
        f"  LSE-C:             {scores.lse_c:.3f}  median minus minimum distance (higher: more confident sync)",
        f"  syncnet offset:    {describe_offset(scores.offset_frames, fps)}",
        f"  distance at 0:     {scores.dist_at_zero:.3f}",
    ]
    return "\n".join(lines) + "\n"


def _box_text(box) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in box) + ")" if box is not None else "none"


def format_report(video: str, fps: float, result) -> str:
    """A short human-readable report of a :class:`~avdiff.metrics.lipsync.LipSyncResult`."""
    from avdiff.metrics.lipsync import describe_offset

    lines = [
        f"lipsync: {video}",
        f"  frames:            {result.num_frames} at {fps:.3f} fps, {result.valid_frames} with a face and audio",
        f"  r (offset 0):      {result.r_envelope:+.3f}  mouth openness vs speech envelope",
        f"  best offset:       {describe_offset(result.offset_frames, fps)}",
    ]
    if result.r_at_offset is not None:
        lines.append(f"  r (best offset):   {result.r_at_offset:+.3f}")
    if result.face_choice not in (None, "only", "none"):
        why = {"speaks": "its mouth follows the audio best", "index": "named by --face", "box": "named by --face-box"}
        lines.append(
            f"  face:              {result.face_index} of {len(result.faces)} (counted from the left), box "
            f"{_box_text(result.face_box)}: {why[result.face_choice]}"
        )
        for f in result.faces:
            if f["index"] != result.face_index:
                follows = "no score" if f["follows"] is None else f"r {f['follows']:+.3f} at its best offset"
                lines.append(f"  other face:        {f['index']}, box {_box_text(f['box'])}: {follows}")
    if result.r_reference is not None:
        lines.append(f"  r (reference):     {result.r_reference:+.3f}  mouth openness vs reference aperture, offset 0")
        if result.offset_reference is not None:
            lines.append(
                f"  reference offset:  {result.offset_reference:+d} frames (+k: the reference lags the video)"
            )
    if result.interior is not None:
        inner = result.interior
        if not inner.scored:
            line = f"  mouth interior:    no score ({inner.reason})"
        else:
            offset = "none" if inner.offset_frames is None else f"{inner.offset_frames:+d}"
            line = f"  mouth interior:    r {inner.r_envelope:+.3f} vs speech envelope, best offset {offset}"
        if inner.r_reference is not None:
            line += f", r {inner.r_reference:+.3f} vs reference aperture"
        lines.append(line + "  (dark share of the mouth box; reads blurred mouths)")
    lines.append(f"  sign convention:   {OFFSET_CONVENTION}")
    return "\n".join(lines) + "\n"
