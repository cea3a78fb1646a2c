"""``avdiff visualize``: a music video of a song from keyframe images, prompts or a timeline, timed by its beats.

Keyframes are images (no model: ``--images DIR`` or files) or prompts (``--prompts "a; b; c"``, rendered by a
text-to-video model: ``--model``, by default the bundled scene model, offline); ``--timeline T.json`` gives the
intervals by hand (images, prompts or both). The video is streamed to ``--out`` with the song muxed in as given.
``--plan-only`` stops before the first frame (:meth:`BeatVisualizerPipeline.plan`: no model, no rendering) and writes
the timeline (``--save-timeline``) and the curve's picture (``--plot``); the timeline file is read back by
``--timeline``. Every argument is checked before any work, and the model is loaded only after.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from pathlib import Path

from avdiff.bundled import DEFAULT_SCENE_MODEL
from avdiff.commands import (
    DEFAULT_MAX_DURATION_S,
    CommandError,
    add_audio_track_arg,
    add_variant_arg,
    checked_fps,
    checked_max_duration,
)
from avdiff.user_files import list_files

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "visualize",
        help="a music video timed by the beats, from keyframe images, prompts or a timeline",
        description="Make a music video of a song (Generative Disco): intervals of the song move "
        "from one keyframe to the next at the pace of an audio-reactive curve, with transitions and "
        "holds. The video is streamed to --out with the song muxed in as given. Every argument is "
        "checked before any work.",
    )
    p.add_argument("--audio", required=True, help="the song (any audio file, or a video's audio track)")
    keys = p.add_mutually_exclusive_group(required=True)
    keys.add_argument(
        "--images",
        nargs="+",
        metavar="DIR_OR_FILE",
        help="keyframe images: a folder (its images in name order) or image files",
    )
    keys.add_argument("--prompts", metavar='"A; B; C"', help="keyframe prompts separated by ';', rendered by --model")
    keys.add_argument("--timeline", metavar="T.json", help="the intervals by hand (see --save-timeline)")
    p.add_argument(
        "--out",
        help="output .mp4 (the song muxed in as given); never an input or a folder (required unless --plan-only)",
    )
    p.add_argument("--fps", default="25", help="frame rate from 1 to 120: 25, 29.97 or 30000/1001 (default 25)")
    p.add_argument(
        "--size",
        metavar="WxH",
        help="frame size in px, e.g. 512x512 (default: the first image's aspect, "
        "at most 1024 px; with prompts the model's size)",
    )
    p.add_argument(
        "--curve",
        default="beats",
        choices=["beats", "percussive", "onsets", "bands", "rms", "linear"],
        help="what paces the motion from keyframe to keyframe (default beats)",
    )
    p.add_argument("--every", type=int, default=1, help="beats curve: a step every N beats (4: on the bars)")
    p.add_argument("--band", default="low", choices=["low", "mid", "high"], help="bands curve: which band")
    p.add_argument("--smooth", type=float, default=0.0, help="blend of the curve with a linear ramp, 0 to 1")
    p.add_argument("--gain", type=float, default=1.0, help="curve envelope gain")
    p.add_argument("--threshold", type=float, default=0.0, help="curve envelope threshold, 0 to 1")
    p.add_argument("--attack", type=float, default=0.0, metavar="S", help="curve envelope attack, seconds")
    p.add_argument("--release", type=float, default=0.0, metavar="S", help="curve envelope release, seconds")
    p.add_argument(
        "--beats-per-interval",
        type=int,
        default=8,
        help="with --images or --prompts: beats per interval (default 8: two 4/4 bars)",
    )
    p.add_argument(
        "--patterns",
        default="subject",
        help="with --images or --prompts: patterns the intervals cycle "
        "through, comma-separated: subject, color, style, time (transitions), drift, pulse (holds)",
    )
    p.add_argument(
        "--interpolation",
        default="auto",
        choices=["auto", "diffusion", "latent", "pixel"],
        help="in-between frames: pixel (a cross-fade), latent (the codec's latents), diffusion (between "
        "two prompts: slerp on the noise, lerp on the text, each frame denoised); auto = diffusion between "
        "prompts, pixel otherwise",
    )
    p.add_argument(
        "--model",
        default=DEFAULT_SCENE_MODEL,
        help="with prompts: the text-to-video model, a bundled "
        f"name, a saved folder or an SD 1.5 hub id or folder (default {DEFAULT_SCENE_MODEL}, offline)",
    )
    p.add_argument("--steps", type=int, default=20, help="with prompts: DDIM steps per keyframe (default 20)")
    p.add_argument("--guidance", type=float, default=3.0, help="with prompts: CFG scale, >= 1 (default 3)")
    p.add_argument("--seed", type=int, default=0, help="with prompts: seed of the keyframes' noise (default 0)")
    p.add_argument("--device", help="with prompts: torch device of the model (default: cuda when available, else cpu)")
    p.add_argument(
        "--max-duration",
        type=float,
        default=DEFAULT_MAX_DURATION_S,
        metavar="S",
        help=f"refuse audio longer than S seconds (default {DEFAULT_MAX_DURATION_S:g})",
    )
    p.add_argument(
        "--save-timeline",
        metavar="T.json",
        help="also write the timeline used (edit it, then pass it back with --timeline)",
    )
    p.add_argument("--plot", metavar="PNG", help="also write a picture of the curve with the beats marked")
    p.add_argument(
        "--plan-only",
        action="store_true",
        help="render nothing: find the beats, lay the keyframes on them "
        "and write --save-timeline (and --plot); no model is loaded",
    )
    add_audio_track_arg(p)
    add_variant_arg(p)
    p.set_defaults(func=run)


def image_files(items: list[str]) -> list[Path]:
    """``--images``: a folder's images in name order (hidden files such as macOS ``._name.png`` skipped, with a
    count in the log), or the files given; CommandError when there are none."""
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = [p for p in list_files(path, IMAGE_SUFFIXES, label=f"--images {item!r}") if p.is_file()]
            if not found:
                raise CommandError(f"--images {item!r}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise CommandError(f"--images {item!r}: no such file or folder")
    return files


def parse_size(text: str | None) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    parts = text.lower().split("x")
    try:
        width, height = (int(v) for v in parts)
    except ValueError:
        raise CommandError(f"--size {text!r}: expected WIDTHxHEIGHT in px, e.g. 512x512") from None
    return height, width


def check_arguments(args: argparse.Namespace) -> dict:
    """Everything that can be checked before any work; returns the pipeline's keyword arguments (but the song)."""
    from avdiff.audio.curves import CurveSpec
    from avdiff.pipelines.beat_visualizer.timeline import PATTERNS, Timeline, TimelineError
    from avdiff.video.outputs import OutputFile, check_outputs

    if args.plan_only and args.out is not None:
        raise CommandError("--plan-only renders nothing: drop --out (or drop --plan-only to render)")
    if args.plan_only and args.save_timeline is None and args.plot is None:
        raise CommandError("--plan-only writes only --save-timeline T.json (and --plot PNG): give --save-timeline")
    if not args.plan_only and args.out is None:
        raise CommandError("--out is required (or --plan-only with --save-timeline T.json)")
    fps = checked_fps(args.fps)
    checked_max_duration(args.max_duration)
    if not os.path.isfile(args.audio):
        raise CommandError(
            f"--audio {args.audio!r}: no such file"
            if not os.path.exists(args.audio)
            else f"--audio {args.audio!r}: not a file"
        )
    inputs: dict[str, object] = {"--audio": args.audio}
    kwargs: dict = {"fps": fps}
    if args.images is not None:
        files = image_files(args.images)
        kwargs["images"] = [str(f) for f in files]
        inputs.update({f"--images {f}": str(f) for f in files})
    elif args.prompts is not None:
        prompts = [p.strip() for p in args.prompts.split(";") if p.strip()]
        if not prompts:
            raise CommandError(f"--prompts {args.prompts!r}: no prompt; separate prompts with ';'")
        kwargs["prompts"] = prompts
    else:
        if not os.path.isfile(args.timeline):
            raise CommandError(f"--timeline {args.timeline!r}: no such file")
        try:
            timeline = Timeline.load(args.timeline)
        except TimelineError as e:
            raise CommandError(str(e)) from e
        missing = [
            f"{label}: {side} {str(key)!r}"
            for label, iv in zip(timeline.labels, timeline)
            for side, key in (("start", iv.start), ("end", iv.end))
            if isinstance(key, Path) and not key.is_file()
        ]
        if missing:  # every one, by the interval that names it
            raise CommandError(f"--timeline {args.timeline!r}: no such image file: {'; '.join(missing)}")
        kwargs["timeline"] = timeline
        inputs["--timeline"] = args.timeline
        inputs.update({f"--timeline image {p}": str(p) for p in timeline.images()})
    patterns = [p.strip() for p in args.patterns.split(",") if p.strip()]
    bad = [p for p in patterns if p not in PATTERNS]
    if bad or not patterns:
        raise CommandError(f"--patterns {args.patterns!r}: choose among {', '.join(PATTERNS)}")
    if args.beats_per_interval < 1:
        raise CommandError(f"--beats-per-interval must be >= 1, got {args.beats_per_interval}")
    try:
        curve = CurveSpec(
            source=args.curve,
            every=args.every,
            band=args.band,
            smooth=args.smooth,
            gain=args.gain,
            threshold=args.threshold,
            attack_s=args.attack,
            release_s=args.release,
        ).check()
    except ValueError as e:
        raise CommandError(f"curve options: {e}") from e
    try:  # every output, against the inputs and each other, and the plot's format
        check_outputs(
            {
                "--out": OutputFile(args.out),
                "--save-timeline": OutputFile(args.save_timeline, "file"),
                "--plot": OutputFile(args.plot, "picture"),
            },
            inputs,
        )
    except ValueError as e:
        raise CommandError(str(e)) from e
    if args.steps < 1:
        raise CommandError(f"--steps must be >= 1, got {args.steps}")
    if not args.guidance >= 1:
        raise CommandError(f"--guidance must be >= 1, got {args.guidance}")
    if not 0 <= args.seed < 2**63:
        raise CommandError(f"--seed must be from 0 to 2**63 - 1, got {args.seed}")
    if not math.isfinite(args.guidance):
        raise CommandError(f"--guidance must be finite, got {args.guidance}")
    height, width = parse_size(args.size)
    kwargs.update(
        curve=curve,
        patterns=patterns,
        beats_per_interval=args.beats_per_interval,
        height=height,
        width=width,
        interpolation=args.interpolation,
        max_duration_s=args.max_duration,
    )
    return kwargs


def song_source(args: argparse.Namespace):
    """``--audio``, or its ``--audio-track`` read block by block (as the pipeline reads a path)."""
    if args.audio_track is None:
        return args.audio
    from avdiff.audio.io import AudioStream

    return AudioStream(args.audio, max_duration_s=args.max_duration, audio_track=args.audio_track)


def run_plan(args: argparse.Namespace, kwargs: dict) -> int:
    """``--plan-only``: the plan (beats, timeline, curves) written as ``--save-timeline`` and ``--plot``; nothing is
    rendered and no model is loaded (prompts are only laid on the beats)."""
    from PIL import Image

    from avdiff.pipelines import BeatVisualizerPipeline

    try:
        plan = BeatVisualizerPipeline().plan(song_source(args), **kwargs)
    except ValueError as e:  # a timeline that does not fit the song, audio that cannot be read ...
        raise CommandError(str(e)) from e
    written = []
    if args.save_timeline:
        written.append(str(plan.timeline.save(args.save_timeline)))
    if args.plot:
        Image.fromarray(plan.plot()).save(args.plot)
        written.append(str(args.plot))
    r = plan.rhythm
    downbeats = f", {len(r.downbeat_times_s)} downbeats" if len(r.downbeat_times_s) else ", no downbeats found"
    print(
        f"wrote {' and '.join(written)} (planned {plan.num_frames} frames at {plan.fps} fps; {len(plan.timeline)} "
        f"intervals; {r.tempo_bpm:.1f} BPM, {len(r.beat_times_s)} beats{downbeats}; nothing rendered)"
    )
    return 0


def prompt_source(args: argparse.Namespace):
    """The :class:`PromptKeyframes` of ``--model``; CommandError when it cannot be loaded."""
    from avdiff.loading import check_device, load_pipeline
    from avdiff.pipelines.beat_visualizer.prompt_keyframes import PromptKeyframes
    from avdiff.pipelines.text_to_video import TextToVideoPipeline

    try:
        check_device(args.device)
    except ValueError as e:  # an unknown or unavailable --device, before the model loads
        raise CommandError(f"--device: {e}") from e
    try:
        pipe = load_pipeline(TextToVideoPipeline, args.model, variant=args.variant, device=args.device)
        return PromptKeyframes(pipe, num_inference_steps=args.steps, guidance_scale=args.guidance, seed=args.seed)
    except (OSError, ValueError) as e:
        raise CommandError(f"--model {args.model!r} cannot be loaded as a text-to-video model: {e}") from e
    except RuntimeError as e:  # an unknown or unavailable --device
        raise CommandError(f"--device {args.device!r}: {e}") from e


PLAN_ARGUMENTS = ("timeline", "images", "prompts", "beats_per_interval", "patterns", "curve", "fps", "max_duration_s")


def run(args: argparse.Namespace) -> int:
    from avdiff.pipelines import BeatVisualizerPipeline

    kwargs = check_arguments(args)
    if args.plan_only:
        return run_plan(args, {k: v for k, v in kwargs.items() if k in PLAN_ARGUMENTS})
    timeline = kwargs.get("timeline")
    pipe = BeatVisualizerPipeline(
        prompt_source(args) if "prompts" in kwargs or (timeline and timeline.prompts()) else None
    )
    try:
        out = pipe(song_source(args), output_path=args.out, **kwargs)
    except ValueError as e:  # a bad image, a timeline that does not fit the song ... (AudioLoadError is one too)
        raise CommandError(str(e)) from e
    if args.save_timeline:
        out.timeline.save(args.save_timeline)
    if args.plot:
        from PIL import Image

        from avdiff.audio.curves import plot_curves

        Image.fromarray(
            plot_curves(
                out.rhythm, out.position, out.envelope, out.frame_edges, title=f"curve {kwargs['curve'].source}"
            )
        ).save(args.plot)
    r = out.rhythm
    downbeats = f", {len(r.downbeat_times_s)} downbeats" if len(r.downbeat_times_s) else ", no downbeats found"
    print(
        f"wrote {out.path} ({out.num_frames} frames at {out.fps} fps; {len(out.timeline)} intervals; "
        f"{r.tempo_bpm:.1f} BPM, {len(r.beat_times_s)} beats{downbeats})"
    )
    return 0
