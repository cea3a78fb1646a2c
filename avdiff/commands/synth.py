"""``avdiff synth``: synthetic speech–video pairs with a known ground-truth aperture."""

from __future__ import annotations

import argparse
import re


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="synthetic talking-face clips (espeak-ng speech + mouth warp) with ground-truth aperture",
        description="Write one clip (--text or --audio) or a varied dataset (--dataset N) in the DATA format: "
        "OUT/index.jsonl, OUT/clips/ID.mp4 (25 fps, 16 kHz speech) and OUT/clips/ID.aperture.npy.",
    )
    p.add_argument("--face", action="append", help="face photo (repeat for several; default: the built-in astronaut)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="a sentence for espeak-ng to speak")
    what.add_argument("--audio", help="a speech recording to use instead of synthesized speech")
    what.add_argument("--dataset", type=int, metavar="N", help="make N varied clips")
    p.add_argument("--out", required=True, help="the DATA folder to write (created if needed)")
    p.add_argument("--id", help="clip id for a single clip, a file name: letters, digits, '_', '.', '-' "
                   "(default: from the text or audio name)")
    p.add_argument("--voice", default="en-us", help="espeak-ng voice, e.g. en-us, en-gb+f3")
    p.add_argument("--speed", type=int, default=160, help="words per minute")
    p.add_argument("--split", default="train", choices=["train", "test", "all"], help="sentence pool for --dataset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-augment", action="store_true", help="--dataset without face augmentations")
    p.set_defaults(func=run)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "clip"


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from avdiff.audio.io import load_audio
    from avdiff.audio.tts import speak
    from avdiff.cli import CommandError
    from avdiff.data.format import append_index, check_name
    from avdiff.data.synthetic import default_face, make_clip, make_dataset

    if args.id is not None:
        if args.dataset is not None:
            raise CommandError("--id names a single clip; --dataset names its clips itself")
        try:
            check_name(args.id, "--id")  # before any work: it becomes OUT/clips/ID.mp4
        except ValueError as e:
            raise CommandError(str(e)) from e
    faces = args.face or None
    if args.dataset is not None:
        records = make_dataset(args.out, args.dataset, faces, split=args.split, seed=args.seed, augment=not args.no_augment)
        print(f"wrote {len(records)} clips to {args.out} (index: {Path(args.out) / 'index.jsonl'})")
        return 0
    face = faces[0] if faces else default_face()
    if args.text is not None:
        speech = speak(args.text, voice=args.voice, speed_wpm=args.speed)
        clip_id = args.id or _slug(args.text)
    else:
        speech = load_audio(args.audio)
        clip_id = args.id or _slug(Path(args.audio).stem)
    record = make_clip(args.out, clip_id, face, speech, text=args.text, source={"voice": args.voice, "speed_wpm": args.speed})
    append_index(args.out, record)
    print(f"wrote {Path(args.out) / record.video} ({record.num_frames} frames, {record.duration_s:.2f} s) "
          f"and {Path(args.out) / record.aperture}")
    return 0
