"""``avdiff generate``: clips or keyframe images from prompts with a :class:`TextToVideoPipeline`.

Two forms:

* ``--prompt TEXT --out OUT.mp4`` (or ``OUT.png`` with ``--frames 1``): one clip or one image;
* ``--captions DATA --out DIR``: one ``DIR/ID.mp4`` per clip of a SCENES DATA folder, from its caption, for
  ``avdiff eval scenes --data DATA --videos DIR`` (prompt fidelity on held-out captions).

The model is a saved pipeline folder (``avdiff train text-to-video``'s ``RUN/final``), a Stable Diffusion 1.5 folder
or hub id (with ``--motion-adapter`` for AnimateDiff), or a random-weight ``--preset`` for smoke runs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from avdiff.commands import add_variant_arg

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="clips or keyframe images from prompts (text-to-video)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model",
        metavar="PATH_OR_ID",
        help="a saved TextToVideoPipeline folder, or a Stable Diffusion 1.5 folder or hub id",
    )
    source.add_argument("--preset", metavar="NAME", help="a random-weight preset (tiny), for smoke runs")
    p.add_argument(
        "--motion-adapter", metavar="PATH_OR_ID", help="AnimateDiff motion adapter for a Stable Diffusion --model"
    )
    add_variant_arg(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", help="the prompt of one clip (or image)")
    what.add_argument("--captions", metavar="DATA", help="a SCENES DATA folder: one clip per record's caption")
    p.add_argument(
        "--out", required=True, help="OUT.mp4 (a clip), OUT.png (with --frames 1), or a folder with --captions"
    )
    p.add_argument("--frames", type=int, default=16, help="frames per clip (1: a keyframe image)")
    p.add_argument("--steps", type=int, default=25, help="denoising steps")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (1 = off)")
    p.add_argument("--negative", default=None, help="negative prompt (default: the empty prompt)")
    p.add_argument("--size", type=int, default=None, help="frame side in px (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise (clip k of --captions uses seed + k)")
    p.add_argument("--max-clips", type=int, default=None, help="with --captions: at most this many clips")
    p.add_argument("--batch", type=int, default=8, help="with --captions: clips generated together")
    p.set_defaults(func=run)


def load(args: argparse.Namespace):
    from avdiff.commands import CommandError
    from avdiff.loading import load_pipeline
    from avdiff.pipelines.text_to_video import TextToVideoPipeline

    try:
        if args.preset:
            pipe = TextToVideoPipeline.from_preset(args.preset)
        else:
            pipe = load_pipeline(
                TextToVideoPipeline, args.model, variant=args.variant, device="cpu", motion_adapter=args.motion_adapter
            )
    except (OSError, ValueError) as e:
        raise CommandError(f"cannot load the model {args.model or args.preset!r}: {e}") from e
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(args: argparse.Namespace) -> int:
    import torch

    from avdiff.commands import CommandError
    from avdiff.video.outputs import OutputFile, check_outputs

    out = Path(args.out)
    if args.prompt is not None and out.suffix not in (".mp4", ".png"):
        raise CommandError(f"--out must end in .mp4 or .png (with --frames 1), got {args.out!r}")
    if args.prompt is not None and out.suffix == ".png" and args.frames != 1:
        raise CommandError(f"--out {args.out!r} is an image: give --frames 1 (got {args.frames}) or an .mp4")
    if args.batch < 1:
        raise CommandError(f"--batch must be >= 1, got {args.batch}")
    kind = "folder" if args.prompt is None else "picture" if out.suffix == ".png" else "video"
    # before the model is loaded: a file that can be written (a folder with --captions), none of the inputs
    check_outputs(
        {"--out": OutputFile(args.out, kind)},
        {"--captions": args.captions, "--model": args.model, "--motion-adapter": args.motion_adapter},
    )
    pipe = load(args)
    kwargs = {
        "num_frames": args.frames,
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance,
        "height": args.size,
        "width": args.size,
    }
    if args.prompt is not None:
        result = pipe(
            args.prompt, negative_prompt=args.negative, generator=torch.Generator().manual_seed(args.seed), **kwargs
        )
        if out.suffix == ".png":
            from PIL import Image

            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.name}.partial.png")
            Image.fromarray(result.frames[0]).save(tmp)
            tmp.replace(out)
        else:
            result.save(out)
        print(f"wrote {out} ({result.num_frames} frame(s) at {result.fps} fps)")
        return 0
    from avdiff.data.scene_dataset import select_scene_records

    records = select_scene_records(args.captions, limit=args.max_clips)
    out.mkdir(parents=True, exist_ok=True)
    from avdiff.video.writer import write_video

    for start in range(0, len(records), args.batch):
        group = records[start : start + args.batch]
        generators = [torch.Generator().manual_seed(args.seed + start + k) for k in range(len(group))]
        negative = None if args.negative is None else [args.negative] * len(group)
        frames = pipe([r.caption for r in group], negative_prompt=negative, generator=generators, **kwargs).frames
        frames = frames.reshape(len(group), args.frames, *frames.shape[-3:])
        for record, video in zip(group, frames):
            write_video(out / f"{record.id}.mp4", video, pipe.fps, crf=12)
        logger.info("%d / %d clips", start + len(group), len(records))
    print(f"wrote {len(records)} clips to {out}; score them: avdiff eval scenes --data {args.captions} --videos {out}")
    return 0
