"""``avdiff bench ...``: speed and memory benchmarks, reported as ratios measured in the same run."""

from __future__ import annotations

import argparse

from avdiff.bundled import DEFAULT_SCENE_MODEL


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmarks (audio, rhythm, unet, talk, render, scenes, scene, text-to-video, visualize, batch)",
    )
    bench = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    a = bench.add_parser("audio", help="loading, log-mel and rhythm analysis as multiples of real time")
    a.add_argument("--duration", type=float, default=180.0, metavar="S", help="length of the generated track (s)")
    a.add_argument("--fps", type=float, default=25.0)
    a.add_argument("--repeats", type=int, default=3)
    a.set_defaults(func=run_audio)
    r = bench.add_parser(
        "rhythm",
        help="beats on generated tracks with known beats: F-measure and sections on the "
        "right metrical level, avdiff against librosa's trackers",
    )
    r.add_argument(
        "--only",
        default=None,
        metavar="TEXT",
        help="run only the tracks whose name contains TEXT (case-insensitive), e.g. 'rock' or '90 -> 130'",
    )
    r.set_defaults(func=run_rhythm)
    u = bench.add_parser("unet", help="AudioVideoUNet forward/backward time and peak memory vs frames and resolution")
    u.add_argument("--frames", type=int, nargs="+", default=[8, 16, 32], metavar="F", help="frame counts")
    u.add_argument("--sizes", type=int, nargs="+", default=[16, 32], metavar="N", help="latent sizes (NxN), CPU")
    u.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (default 1: stable on shared CPUs)")
    u.add_argument("--repeats", type=int, default=1, help="training steps timed per configuration on CPU")
    u.set_defaults(func=run_unet)
    t = bench.add_parser(
        "talk",
        help="talking heads: the motion pipeline's real-time factor per stage and time to the first frame (256 and "
        "512 px, one thread and all cores), the pixel pipeline's time outside the UNet, peak memory vs audio length",
    )
    t.add_argument(
        "--durations",
        type=float,
        nargs="+",
        default=[10.0, 30.0, 120.0],
        metavar="S",
        help="audio lengths (s) for the peak-memory runs of the warp baseline and the tiny pipeline, each "
        "in a fresh process, streamed to an mp4 (default 10 30 120)",
    )
    t.add_argument("--speed-seconds", type=float, default=10.0, metavar="S", help="audio length of the timed run")
    t.add_argument("--steps", type=int, default=4, help="denoising steps per chunk in the timed run")
    t.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (default 1: stable on shared CPUs)")
    add_device_args(t)
    t.set_defaults(func=run_talk)
    v = bench.add_parser(
        "text-to-video",
        help="the scene model's training step (video and image steps) against a "
        "baseline, and the steps a CPU budget buys",
    )
    v.add_argument("--config", default="configs/train/scenes_tiny.yaml", help="training YAML (the recipe)")
    v.add_argument("--repeats", type=int, default=3, help="timed steps per kind (after a warm-up step)")
    v.add_argument("--budget-min", type=float, default=90.0, help="CPU minutes to convert into steps")
    v.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (default 1: stable on shared CPUs)")
    v.set_defaults(func=run_text_to_video)
    b = bench.add_parser("batch", help="a batch of talking heads shared by 2 processes against 1: the speed-up")
    b.add_argument("--rows", type=int, default=6, help="talking heads in the manifest")
    b.add_argument("--seconds", type=float, default=2.0, metavar="S", help="audio length of each row (s)")
    b.add_argument("--steps", type=int, default=4, help="denoising steps per chunk")
    b.add_argument("--threads", type=int, default=1, help="CPU intra-op threads of each process (default 1)")
    b.add_argument("--model", default=None, help="the talking-head model (default: the bundled one; 'baseline')")
    b.set_defaults(func=run_batch)
    rn = bench.add_parser(
        "render", help="the face renderer (mouth, lids, head) against the mouth warp: ms per frame at 512 and 1024 px"
    )
    rn.add_argument("--frames", type=int, default=50, help="frames rendered per photo")
    rn.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1: the budget is one core)")
    rn.set_defaults(func=run_render)
    s = bench.add_parser("scenes", help="procedural scene clips: milliseconds per clip by stage")
    s.add_argument("--clips", type=int, default=40, help="clips to make")
    s.set_defaults(func=run_scenes)
    sc = bench.add_parser(
        "scene",
        help="audio-aligned scenes (AADiff): seconds per second of audio, naive against "
        "shared levels, and peak memory vs audio length",
    )
    sc.add_argument(
        "--seconds", type=float, default=8.0, metavar="S", help="audio length of the timed runs (also S/2)"
    )
    sc.add_argument("--size", type=int, default=64, help="frame side in px")
    sc.add_argument("--steps", type=int, default=4, help="DDIM steps of the timed runs")
    sc.add_argument(
        "--durations",
        type=float,
        nargs="+",
        default=[60.0, 240.0, 600.0],
        metavar="S",
        help="audio lengths of the peak-memory runs, each in a fresh process (default 60 240 600)",
    )
    sc.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (default 1: stable on shared CPUs)")
    add_device_args(sc)
    sc.set_defaults(func=run_scene)
    vis = bench.add_parser(
        "visualize",
        help="music videos: seconds per second of music (keyframe images, prompts) "
        "against the encode-only baseline, and peak memory vs song length",
    )
    vis.add_argument("--seconds", type=float, default=30.0, metavar="S", help="song length of the timed runs")
    vis.add_argument("--size", type=int, default=64, help="frame side in px for the keyframe-images runs")
    vis.add_argument("--fps", default="30000/1001", help="frame rate (default 29.97)")
    vis.add_argument(
        "--durations",
        type=float,
        nargs="+",
        default=[60.0, 600.0],
        metavar="S",
        help="song lengths of the peak-memory runs, each in a fresh process (default 60 600)",
    )
    vis.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (default 1: stable on shared CPUs)")
    vis.add_argument(
        "--model",
        default=DEFAULT_SCENE_MODEL,
        help="text-to-video model of the prompts rows: a bundled "
        f"name, a folder or an SD 1.5 id (default {DEFAULT_SCENE_MODEL}); 'none' skips them",
    )
    vis.add_argument("--steps", type=int, default=20, help="DDIM steps of the prompts rows (default 20)")
    add_device_args(vis)
    vis.set_defaults(func=run_visualize)


def add_device_args(p: argparse.ArgumentParser) -> None:
    """``--device``, ``--dtype`` and ``--compile``: any of them runs the device bench (avdiff.bench.device) instead."""
    g = p.add_argument_group(
        "device bench",
        "any of these times the pipeline on a device against float32 without compile there (RTF per stage, "
        "first-frame latency, peak memory) instead of the report above; see docs/gpu.md",
    )
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    g.add_argument(
        "--dtype", default=None, choices=["float32", "float16", "bfloat16"], help="weights' dtype (default float32)"
    )
    g.add_argument("--compile", action="store_true", help="torch.compile the UNet (the first call pays for it)")


def device_bench(args: argparse.Namespace, job: str, seconds: float, **kwargs) -> bool:
    """Run and print the device bench of ``job`` when ``--device``, ``--dtype`` or ``--compile`` was given; whether
    it ran. A device that is not there, or bad numbers, raise CommandError."""
    if args.device is None and args.dtype is None and not args.compile:
        return False
    from avdiff.bench.device import main
    from avdiff.commands import CommandError

    if not seconds > 0 or args.steps < 1:
        raise CommandError(f"the audio length must be > 0 s and --steps >= 1, got {seconds:g} and {args.steps}")
    try:
        report = main(
            job,
            args.device,
            args.dtype or "float32",
            args.compile,
            seconds=seconds,
            steps=args.steps,
            threads=args.threads,
            **kwargs,
        )
    except ValueError as e:
        raise CommandError(f"bench {job}: {e}") from e
    print(report)
    return True


def run_audio(args: argparse.Namespace) -> int:
    from avdiff.bench.audio import main

    print(main(args.duration, args.fps, args.repeats))
    return 0


def run_rhythm(args: argparse.Namespace) -> int:
    from avdiff.bench.rhythm import CASES, main
    from avdiff.commands import CommandError

    cases = tuple(c for c in CASES if args.only is None or args.only.lower() in c.name.lower())
    if not cases:
        raise CommandError(
            f"--only {args.only!r} matches no track; the tracks are: " + "; ".join(c.name for c in CASES)
        )
    print(main(cases))
    return 0


def run_unet(args: argparse.Namespace) -> int:
    from avdiff.bench.unet import main

    print(main(tuple(args.frames), tuple(args.sizes), args.threads, args.repeats))
    return 0


def run_talk(args: argparse.Namespace) -> int:
    from avdiff.bench.talk import main

    if device_bench(args, "talk", args.speed_seconds):
        return 0
    print(main(tuple(args.durations), args.speed_seconds, args.steps, args.threads))
    return 0


def run_text_to_video(args: argparse.Namespace) -> int:
    from avdiff.bench.text_to_video import main

    print(main(args.config, args.repeats, args.budget_min, args.threads))
    return 0


def run_render(args: argparse.Namespace) -> int:
    from avdiff.bench.render import main
    from avdiff.commands import CommandError

    if args.frames < 1 or args.threads < 1:
        raise CommandError(f"--frames and --threads must be >= 1, got {args.frames} and {args.threads}")
    print(main(args.frames, args.threads))
    return 0


def run_scenes(args: argparse.Namespace) -> int:
    from avdiff.bench.scenes import main

    if args.clips < 1:
        from avdiff.commands import CommandError

        raise CommandError(f"--clips must be >= 1, got {args.clips}")
    print(main(args.clips))
    return 0


def run_visualize(args: argparse.Namespace) -> int:
    from avdiff.bench.visualize import main
    from avdiff.commands import CommandError

    model = None if args.model.lower() == "none" else args.model
    if args.device is not None or args.dtype is not None or args.compile:
        if model is None:
            raise CommandError("bench visualize --device/--dtype/--compile times the prompts source: give --model")
        device_bench(args, "visualize", args.seconds, model=model)
        return 0
    try:
        print(main(args.seconds, args.size, args.fps, tuple(args.durations), args.threads, model, args.steps))
    except (OSError, ValueError) as e:
        raise CommandError(f"bench visualize: {e}") from e
    return 0


def run_scene(args: argparse.Namespace) -> int:
    from avdiff.bench.audio_scene import main
    from avdiff.commands import CommandError

    if not args.seconds > 0 or args.steps < 1 or any(not d > 0 for d in args.durations):
        raise CommandError(
            f"--seconds and --durations must be > 0 and --steps >= 1, got {args.seconds:g}, "
            f"{args.durations}, {args.steps}"
        )
    if device_bench(args, "scene", args.seconds, size=args.size):
        return 0
    print(main(args.seconds, args.size, args.steps, tuple(args.durations), args.threads))
    return 0


def run_batch(args: argparse.Namespace) -> int:
    from avdiff.bench.batch import main
    from avdiff.commands import CommandError

    if args.rows < 2 or args.seconds <= 0 or args.steps < 1 or args.threads < 1:
        raise CommandError("--rows must be >= 2 and --seconds, --steps and --threads positive")
    result = main(rows=args.rows, seconds=args.seconds, steps=args.steps, threads=args.threads, model=args.model)
    return 0 if result["identical"] else 1
