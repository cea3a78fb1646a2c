"""``avdiff scene``: an audio-aligned scene (AADiff): a prompt and sounds, each sound driving one word's attention.

Every argument is checked before any work; the video is written to ``--out`` with the mixed sound. The model is the
bundled scene model (``avdiff/scene-tiny``) unless ``--model`` names a saved text-to-video folder or a Stable
Diffusion 1.5 folder/id, or ``--preset tiny`` asks for random weights (a smoke run).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from pathlib import Path

from avdiff.bundled import DEFAULT_SCENE_MODEL as DEFAULT_MODEL
from avdiff.commands import DEFAULT_MAX_DURATION_S, add_variant_arg

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scene",
        help="an audio-aligned scene: each sound drives one word of the prompt (AADiff)",
        description="Make a scene from a prompt whose sounding element follows the sound (AADiff): "
        "each sound chooses a word of the prompt (or --word gives it), and that word's cross-attention "
        "is scaled frame by frame by the sound's loudness. Every argument is checked before any work.",
    )
    p.add_argument("--prompt", required=True, help="the scene, e.g. 'a campfire beside a lake at night'")
    p.add_argument(
        "--audio",
        required=True,
        action="append",
        metavar="FILE",
        help="a sound (any audio file); repeat for several sounds, each driving its own word",
    )
    p.add_argument(
        "--word",
        action="append",
        metavar="WORD",
        help="the prompt word a sound drives, one per --audio in order (default: chosen by the audio-text encoder)",
    )
    p.add_argument("--image", metavar="FILE", help="a still image to animate (DDIM-inverted with the prompt)")
    p.add_argument("--out", required=True, help="output .mp4 (with the mixed sound); never an input, never a folder")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--model",
        metavar="PATH",
        help="a saved text-to-video folder, a bundled model's name or a "
        f"Stable Diffusion 1.5 folder/id (default: {DEFAULT_MODEL})",
    )
    source.add_argument("--preset", metavar="NAME", help="a random-weight text-to-video preset (tiny), for smoke runs")
    p.add_argument("--fps", default=None, help="frame rate from 1 to 120 (default: the model's)")
    p.add_argument("--strength", type=float, default=1.0, help="attention scale 1 + strength * m, m in [0, 1]")
    p.add_argument("--smoothing", type=float, default=0.0, metavar="S", help="control curve smoothing, seconds")
    # avdiff.audio.curves' CONTROL_SIGNALS and DEPRECATED_SIGNALS, spelled out: importing it (librosa) would slow --help
    p.add_argument(
        "--signal",
        default="rms",
        choices=["rms", "onsets", "percussive", "onset"],
        help="what drives the word ('onset' is the deprecated spelling of 'onsets')",
    )
    p.add_argument("--levels", type=int, default=16, help="quantization levels (frames with equal levels share work)")
    p.add_argument(
        "--chunk-frames",
        type=int,
        default=1,
        metavar="N",
        help="frames denoised together through the "
        "motion layers (default 1: every frame alone, equal levels share one render)",
    )
    p.add_argument("--steps", type=int, default=25, help="DDIM steps")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (1 = off)")
    p.add_argument("--seed", type=int, default=0, help="seed of the one initial noise")
    p.add_argument("--size", type=int, default=None, metavar="PX", help="frame side in px (default: the model's)")
    p.add_argument(
        "--max-duration",
        type=float,
        default=DEFAULT_MAX_DURATION_S,
        metavar="S",
        help=f"refuse audio longer than S seconds (default {DEFAULT_MAX_DURATION_S:g})",
    )
    p.add_argument("--plot", metavar="PNG", help="also write a picture of the control curve(s) and their levels")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    add_variant_arg(p)
    p.set_defaults(func=run)


def check_arguments(args: argparse.Namespace) -> dict:
    """Everything that can be checked before any work; returns the pipeline call's keyword arguments."""
    from avdiff.commands import CommandError, checked_fps, checked_max_duration
    from avdiff.encoders.base import content_words
    from avdiff.video.outputs import OutputFile, check_outputs

    if not args.prompt.strip():
        raise CommandError("--prompt is empty")
    if args.word is None and not content_words(args.prompt):  # the sounds would have no word to choose
        raise CommandError(
            f"--prompt {args.prompt!r} names no object a sound could belong to (only function words, "
            "places, directions and times of day); add the object, or name the word with --word"
        )
    for path in args.audio + ([args.image] if args.image else []):
        flag = "--image" if path == args.image else "--audio"
        if not os.path.isfile(path):
            raise CommandError(
                f"{flag} {path!r}: no such file" if not os.path.exists(path) else f"{flag} {path!r}: not a file"
            )
    if args.word is not None and len(args.word) != len(args.audio):
        raise CommandError(
            f"--word is given {len(args.word)} time(s) for {len(args.audio)} --audio; give one word "
            "per sound, in order, or none"
        )
    for flag, value in (("--strength", args.strength), ("--smoothing", args.smoothing)):
        if not (math.isfinite(value) and value >= 0):
            raise CommandError(f"{flag} must be a number >= 0, got {value:g}")
    for flag, value, low in (
        ("--levels", args.levels, 2),
        ("--steps", args.steps, 1),
        ("--chunk-frames", args.chunk_frames, 1),
    ):
        if value < low:
            raise CommandError(f"{flag} must be >= {low}, got {value}")
    if not (math.isfinite(args.guidance) and args.guidance >= 1):
        raise CommandError(f"--guidance must be a number >= 1, got {args.guidance:g}")
    checked_max_duration(args.max_duration)
    inputs = {f"--audio {a}": a for a in args.audio}
    if args.image:
        inputs["--image"] = args.image
    # every output, against the inputs and each other, and the plot's format; its ValueErrors reach cli.main
    check_outputs({"--out": OutputFile(args.out), "--plot": OutputFile(args.plot, "picture")}, inputs)
    if args.word is not None:
        from avdiff.encoders.text import PromptTokens

        probe = PromptTokens(args.prompt, None, None, [], [])
        for word in args.word:
            if not probe.spans(word):
                raise CommandError(f"--word {word!r} is not a word of the prompt {args.prompt!r}")
    kwargs = {
        "fps": None if args.fps is None else checked_fps(args.fps),
        "strength": args.strength,
        "smoothing_s": args.smoothing,
        "signal": args.signal,
        "levels": args.levels,
        "num_inference_steps": args.steps,
        "chunk_frames": args.chunk_frames,
        "guidance_scale": args.guidance,
        "target_words": args.word,
        "image": args.image,
        "height": args.size,
        "width": args.size,
        "max_duration_s": args.max_duration,
    }
    return kwargs


def load_pipeline(args: argparse.Namespace):
    """The AudioScenePipeline of ``--model`` / ``--preset`` (default: the bundled scene model); the loader's
    ValueErrors (no such model, no weights) reach ``cli.main`` as they are."""
    from avdiff.bundled import resolve
    from avdiff.commands import CommandError
    from avdiff.loading import load_pipeline as load
    from avdiff.loading import to_device
    from avdiff.pipelines import AudioScenePipeline, TextToVideoPipeline

    if args.preset:
        return to_device(AudioScenePipeline(TextToVideoPipeline.from_preset(args.preset, seed=args.seed)), args.device)
    name = args.model or DEFAULT_MODEL
    folder = resolve(name)
    if not Path(folder).is_dir() and args.model is None:
        raise CommandError(
            f"the bundled scene model {DEFAULT_MODEL} is not installed; choose the model: --model PATH "
            "(a trained text-to-video folder or Stable Diffusion 1.5) or --preset tiny (random "
            "weights, a smoke run)"
        )
    return load(AudioScenePipeline, folder, variant=args.variant, device=args.device)


def run(args: argparse.Namespace) -> int:
    import torch

    kwargs = check_arguments(args)
    pipe = load_pipeline(args)
    # a word not in the prompt, unreadable audio or image, a size the model cannot take: ValueErrors reach cli.main
    out = pipe(
        args.prompt,
        list(args.audio),
        generator=torch.Generator().manual_seed(args.seed),
        output_path=args.out,
        **kwargs,
    )
    if args.plot:
        from PIL import Image

        from avdiff.audio.curves import plot_control

        picture = plot_control(out.control, out.fps, [t.word for t in out.targets], out.levels, out.num_levels)
        Image.fromarray(picture).save(args.plot)
    for audio, target in zip(args.audio, out.targets):
        scores = ", ".join(f"{w} {s:.3f}" for w, s in target.candidates.items())
        how = f"chosen ({scores})" if target.chosen_by == "encoder" else "given"
        print(f"{audio}: drives {target.word!r} ({how})")
        if not target.matched:
            print(
                f"{audio}: matches no object of the prompt (best score {target.score:.3f}); name its word with --word"
            )
    psnr = f"; image reconstruction {out.image_psnr:.2f} dB PSNR" if out.image_psnr is not None else ""
    print(
        f"wrote {out.path} ({out.num_frames} frames at {out.fps} fps; {out.num_rendered} distinct frame(s) "
        f"rendered{psnr})"
    )
    return 0
