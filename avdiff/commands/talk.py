"""``avdiff talk``: a talking-head video from a face photo and speech.

Three sources of the animation, at most one of them:

* ``--model PATH``: a saved :class:`~avdiff.pipelines.talking_head.MotionTalkingHeadPipeline` or
  :class:`~avdiff.pipelines.talking_head.TalkingHeadPipeline` (``save_pretrained`` folder, e.g. ``RUN/final`` of
  ``avdiff train``; the class its ``model_index.json`` names), a training checkpoint (``RUN/checkpoints/step_N``), the
  name of a model bundled with the package (``avdiff/talking-head-motion``, ``avdiff/talking-head-tiny``) or a hub
  id (a TalkingHeadPipeline); without any of the three, the bundled :data:`DEFAULT_MODEL`;
* ``--preset NAME``: a random-weight pipeline from a preset (``tiny``): a smoke run of the whole path, not a face;
* ``--baseline``: the model-free mouth-warp baseline (CPU, no weights).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from avdiff.bundled import DEFAULT_TALKING_HEAD_MODEL as DEFAULT_MODEL
from avdiff.commands import (
    DEFAULT_MAX_DURATION_S,
    add_audio_track_arg,
    add_variant_arg,
    checked_fps,
    checked_max_duration,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "talk",
        help="animate a face photo with speech",
        description="Animate the face in a photo with speech. The video is streamed to --out as it is "
        "made (memory does not grow with the length) and carries the audio as given. Every argument "
        "is checked before any work.",
    )
    p.add_argument(
        "--image",
        required=True,
        help="face photo (a face of any size; a photo larger than 1920 px is "
        "downscaled to 1920 px on its longer side)",
    )
    p.add_argument("--audio", required=True, help="speech (any audio file, or a video's audio track)")
    p.add_argument(
        "--out",
        required=True,
        help="output .mp4 (the audio is muxed in as given); never one of the inputs, never a folder",
    )
    p.add_argument(
        "--max-duration",
        type=float,
        default=DEFAULT_MAX_DURATION_S,
        metavar="S",
        help=f"refuse audio longer than S seconds (default {DEFAULT_MAX_DURATION_S:g})",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--model",
        metavar="PATH",
        help="a saved talking-head pipeline folder (motion or pixel), a training checkpoint "
        "(RUN/checkpoints/step_N), or a bundled model's name (default: "
        f"{DEFAULT_MODEL}, trained here on synthetic speech and LFW faces)",
    )
    source.add_argument("--preset", metavar="NAME", help="a random-weight pipeline preset (tiny), for smoke runs")
    source.add_argument("--baseline", action="store_true", help="the model-free mouth-warp baseline (CPU, no weights)")
    add_generation_args(p)
    p.add_argument("--crops", action="store_true", help="write the aligned face crops instead of pasting them back")
    add_audio_track_arg(p)
    p.set_defaults(func=run)


def add_generation_args(p: argparse.ArgumentParser) -> None:
    """The flags of a talking-head pipeline call (``avdiff talk`` and ``avdiff eval talking-head``): shared, then the
    motion model's, then the pixel model's (each refused with the other kind of model)."""
    p.add_argument("--fps", default="25", help="frame rate from 1 to 120: 25, 29.97 or 30000/1001 (default 25)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: 10 per motion window, 20 per "
                   "chunk of the pixel model)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the generator that draws all the noise")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    add_variant_arg(p)
    motion = p.add_argument_group("motion models (avdiff/talking-head-motion)")
    motion.add_argument("--expressiveness", type=float, default=None, metavar="S",
                        help="guidance on the audio, >= 0: 0 ignores the speech, 1 plain, more exaggerates the mouth "
                        f"(default {MOTION_DEFAULTS['guidance_scale']:g})")  # fmt: skip
    motion.add_argument("--blink-rate", type=float, default=None, metavar="PER_MIN",
                        help=f"blinks per minute (default {MOTION_DEFAULTS['blink_rate_per_min']:g})")  # fmt: skip
    motion.add_argument("--head-motion", type=float, default=None, metavar="AMOUNT",
                        help="head motion with the speech (turns, leans, nods), >= 0 "
                             f"(default {MOTION_DEFAULTS['head_amount']:g})")  # fmt: skip
    motion.add_argument("--still-head", action="store_true", help="keep the head's pose as in the photo")
    motion.add_argument("--paint-mouth", action="store_true",
                        help="paint teeth and tongue inside the open lips with the model's mouth painter (slower; "
                        "off: the renderer's dark cavity)")  # fmt: skip
    motion.add_argument("--mouth-steps", type=int, default=None, metavar="N",
                        help=f"the mouth painter's denoising steps (default {MOTION_DEFAULTS['mouth_steps']})")  # fmt: skip
    pixel = p.add_argument_group("pixel models (avdiff/talking-head-tiny, avdiff train talking-head)")
    pixel.add_argument(
        "--chunk-frames",
        type=int,
        default=None,
        help="frames denoised together (default: the model's, the chunk it was trained on)",
    )
    pixel.add_argument(
        "--motion-frames",
        type=int,
        default=None,
        help="frames of the previous chunk each chunk continues (default: the model's)",
    )
    pixel.add_argument("--audio-guidance", type=float, default=None,
                       help=f"audio guidance scale (1 = off; default {PIXEL_DEFAULTS['audio_guidance_scale']:g})")  # fmt: skip
    pixel.add_argument("--reference-guidance", type=float, default=None,
                       help=f"reference guidance scale (1 = off; default {PIXEL_DEFAULTS['reference_guidance_scale']:g})")  # fmt: skip


TALKING_HEAD_CLASSES = ("MotionTalkingHeadPipeline", "TalkingHeadPipeline")
# the pipelines' own defaults, written here so that --help does not import them (a test checks they agree)
MOTION_DEFAULTS = {"guidance_scale": 2.0, "blink_rate_per_min": 15.0, "head_amount": 1.0, "mouth_steps": 4}
PIXEL_DEFAULTS = {"audio_guidance_scale": 2.0, "reference_guidance_scale": 1.5}
# each model's own flags: flag -> (its attribute on the parsed args, the pipeline argument it sets, the model kind)
_MODEL_FLAGS = {
    "--expressiveness": ("expressiveness", "guidance_scale", "motion"),
    "--blink-rate": ("blink_rate", "blink_rate_per_min", "motion"),
    "--head-motion": ("head_motion", "head_amount", "motion"),
    "--still-head": ("still_head", "still_head", "motion"),
    "--paint-mouth": ("paint_mouth", "paint_mouth", "motion"),
    "--mouth-steps": ("mouth_steps", "mouth_steps", "motion"),
    "--chunk-frames": ("chunk_frames", "chunk_frames", "pixel"),
    "--motion-frames": ("motion_frames", "motion_frames", "pixel"),
    "--audio-guidance": ("audio_guidance", "audio_guidance_scale", "pixel"),
    "--reference-guidance": ("reference_guidance", "reference_guidance_scale", "pixel"),
}
_MOTION_FLAGS = {flag: attr for flag, (attr, _, kind) in _MODEL_FLAGS.items() if kind == "motion"}
_PIXEL_FLAGS = {flag: attr for flag, (attr, _, kind) in _MODEL_FLAGS.items() if kind == "pixel"}
# the pipelines' argument -> the flag that sets it, for their error messages (see flag_words)
_ARGUMENT_FLAGS = {"num_inference_steps": "--steps", "max_duration_s": "--max-duration"} | {
    argument: flag for flag, (_, argument, _) in _MODEL_FLAGS.items()
}


def flag_words(message: str) -> str:
    """A pipeline's error message in the command's words: each argument it names becomes the flag that sets it
    (``mouth_steps=8, but paint_mouth is False`` -> ``--mouth-steps 8, but --paint-mouth is not given``)."""
    for name, flag in _ARGUMENT_FLAGS.items():
        message = re.sub(rf"\b{name}=True\b", flag, message)
        message = re.sub(rf"\b{name}=False\b", f"{flag} not given", message)
        message = re.sub(rf"\b{name} is False\b", f"{flag} is not given", message)
        message = re.sub(rf"\b{name}=", f"{flag} ", message)
        message = re.sub(rf"\b{name}\b", flag, message)
    return message


def generation_kwargs(args: argparse.Namespace, pipe) -> dict:
    """Keyword arguments of the pipeline's ``__call__`` from the flags of :func:`add_generation_args`, with a fresh
    generator seeded by ``--seed``. A flag of the other kind of model is a CommandError naming it."""
    import torch

    from avdiff.commands import CommandError

    kind = type(pipe).__name__  # by name: the pixel model's path does not import the motion pipeline's modules
    if kind not in TALKING_HEAD_CLASSES:
        raise CommandError(f"--model: a {kind}, not a talking-head pipeline ({', '.join(TALKING_HEAD_CLASSES)})")
    is_motion = kind == "MotionTalkingHeadPipeline"
    kind = "a motion model (MotionTalkingHeadPipeline)" if is_motion else "a pixel model (TalkingHeadPipeline)"
    refuse_flags(args, _PIXEL_FLAGS if is_motion else _MOTION_FLAGS, kind)
    if args.still_head and args.head_motion is not None:
        raise CommandError("--head-motion: the head keeps the photo's pose with --still-head; give one of the two")
    kwargs = {"fps": checked_fps(args.fps), "generator": torch.Generator().manual_seed(args.seed)}
    if args.steps is not None:
        kwargs["num_inference_steps"] = args.steps
    if is_motion:
        chosen = {"guidance_scale": args.expressiveness, "blink_rate_per_min": args.blink_rate,
                  "head_amount": args.head_motion}  # fmt: skip
        kwargs |= {k: MOTION_DEFAULTS[k] if v is None else v for k, v in chosen.items()}  # the pipeline's own
        kwargs["still_head"] = bool(args.still_head)
        if args.paint_mouth:  # the pipeline refuses it for a model without a painter, and steps without painting
            kwargs["paint_mouth"] = True
        if args.mouth_steps is not None:
            kwargs["mouth_steps"] = args.mouth_steps
    else:
        chosen = {"audio_guidance_scale": args.audio_guidance, "reference_guidance_scale": args.reference_guidance}
        kwargs |= {k: PIXEL_DEFAULTS[k] if v is None else v for k, v in chosen.items()}
        kwargs |= {"chunk_frames": args.chunk_frames, "motion_frames": args.motion_frames}
        kwargs.setdefault("num_inference_steps", 20)
    return kwargs


def refuse_flags(args: argparse.Namespace, flags: dict[str, str], what: str) -> None:
    """A CommandError naming every flag of ``flags`` (flag -> attribute) that was given: not a setting of ``what``."""
    from avdiff.commands import CommandError

    values = {flag: getattr(args, name, None) for flag, name in flags.items()}
    given = [flag for flag, value in values.items() if value is not None and value is not False]  # 0 is given
    if given:
        raise CommandError(f"{', '.join(given)}: not a setting of {what}")


def check_arguments(args: argparse.Namespace) -> None:
    """Everything that can be checked before any work: the animation source, fps, the duration limit, the inputs
    and ``--out`` (a file, not a folder, not one of the inputs, in a folder that can be written)."""
    from avdiff.commands import CommandError
    from avdiff.video.outputs import check_outputs

    if not (args.baseline or args.model or args.preset):
        from avdiff.bundled import resolve

        if resolve(DEFAULT_MODEL) == DEFAULT_MODEL:
            raise CommandError(
                f"the bundled model {DEFAULT_MODEL} is not installed; choose the animation: --model "
                "PATH (a trained pipeline), --preset tiny (random weights, a smoke run) or --baseline "
                "(the mouth-warp baseline)"
            )
        args.model = DEFAULT_MODEL
    if args.baseline:  # the warp takes the photo, the speech and the frame rate, nothing else
        model_flags = {"--steps": "steps", "--device": "device", "--variant": "variant", "--crops": "crops"}
        refuse_flags(args, {**model_flags, **_MOTION_FLAGS, **_PIXEL_FLAGS}, "the mouth-warp baseline (--baseline)")
    checked_fps(args.fps)
    checked_max_duration(args.max_duration)
    for flag, path in (("--image", args.image), ("--audio", args.audio)):
        if not os.path.isfile(path):
            raise CommandError(
                f"{flag} {path!r}: no such file" if not os.path.exists(path) else f"{flag} {path!r}: not a file"
            )
    check_outputs({"--out": args.out}, {"--image": args.image, "--audio": args.audio})


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    if args.baseline:
        from avdiff.pipelines.talking_head import WarpBaselinePipeline

        pipe, kwargs = WarpBaselinePipeline(fps=checked_fps(args.fps)), {}
    else:
        pipe = _load(args)  # its own errors (a folder, a config) as they are
        kwargs = _call_kwargs(args, pipe)
    from avdiff.audio.silence import held_back

    try:
        with held_back():  # the speech's warnings are said below, once, in the flag's words
            audio = speech_of(args)
            out = pipe(args.image, audio, **kwargs, max_duration_s=args.max_duration, output_path=args.out)
    except ValueError as e:
        worded = in_flag_words(e, args.image)
        if worded is e:
            raise
        raise worded from e
    print(f"wrote {out.path} ({out.num_frames} frames at {out.fps} fps)")
    for warning in out.warnings:  # silent or near-empty speech (avdiff.audio.silence): made, but said
        print(f"avdiff: warning: --audio {args.audio!r}: {warning}", file=sys.stderr)
    return 0


def in_flag_words(error: ValueError, image: str) -> Exception:
    """The pipeline call's ``error`` as ``avdiff talk`` says it: a photo without a face named by ``--image``, the
    pipelines' argument checks (plain ValueErrors) in :func:`flag_words`, the audio's duration limit as
    ``--max-duration``; anything else (or with ``AVDIFF_DEBUG`` set, for its traceback) the error itself."""
    from avdiff.commands import CommandError
    from avdiff.video.face import NoFaceError

    said = str(error)
    if os.environ.get("AVDIFF_DEBUG"):
        return error
    if isinstance(error, NoFaceError):
        return CommandError(f"--image {image!r}: {said}")
    if type(error) is ValueError:
        worded = flag_words(said)
    else:  # an input's error names its path, which is left as it is
        worded = re.sub(r"\bmax_duration_s=", "--max-duration ", said)
    return CommandError(worded) if worded != said else error


def speech_of(args: argparse.Namespace):
    """``--audio`` as the pipelines take it: the path, or, with ``--audio-track``, that track loaded (as given)."""
    if args.audio_track is None:
        return args.audio  # the pipeline reads the track marked default
    from avdiff.audio import load_audio

    return load_audio(args.audio, mono=False, max_duration_s=args.max_duration, audio_track=args.audio_track)


def _load(args: argparse.Namespace):
    """The pipeline of ``--model`` (a saved folder, a training checkpoint, a bundled name or a hub id; its ValueErrors
    reach cli.main) or ``--preset``."""
    from avdiff.loading import load_model, to_device
    from avdiff.pipelines.talking_head import TalkingHeadPipeline

    if args.model:
        return load_model(args.model, variant=args.variant, device=args.device, hub_class=TalkingHeadPipeline)
    return to_device(TalkingHeadPipeline.from_preset(args.preset, seed=args.seed), args.device)


def _call_kwargs(args: argparse.Namespace, pipe) -> dict:
    """:func:`generation_kwargs`, and ``output_type="crops"`` with ``--crops`` (a pixel model's only)."""
    from avdiff.commands import CommandError

    kwargs = generation_kwargs(args, pipe)
    if args.crops:
        if type(pipe).__name__ == "MotionTalkingHeadPipeline":
            raise CommandError("--crops: a motion model renders the whole photo; it has no face crops")
        kwargs["output_type"] = "crops"
    return kwargs
