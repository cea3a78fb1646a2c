"""``avdiff synth``: synthetic speech–video pairs with a known ground-truth aperture, and ``avdiff synth scenes``:
procedural scene clips with masks and sounds."""

from __future__ import annotations

import argparse
import re


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="synthetic talking-face clips (espeak-ng speech + mouth warp) with ground-truth aperture",
        description="Write one clip (--text or --audio) or a varied dataset (--dataset N) in the DATA format: "
        "OUT/index.jsonl, OUT/clips/ID.mp4 (25 fps, 16 kHz speech) and OUT/clips/ID.aperture.npy. "
        "`avdiff synth scenes --n N --out DIR` writes procedural scene clips instead (see avdiff synth scenes -h).",
    )
    p.add_argument(
        "--face",
        action="append",
        help="face photo (repeat for several). A single clip defaults to the "
        "astronaut; with --dataset, given photos replace the face pool (no identity split)",
    )
    p.add_argument(
        "--faces",
        metavar="DIR",
        help="--dataset: a folder of face photos added to the pool of identities "
        "(LFW faces and the astronaut), split by identity like the built-in ones",
    )
    # not required here: `avdiff synth scenes ...` needs none of them (run() checks the talking-face forms)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--text", help="a sentence for espeak-ng to speak")
    what.add_argument("--audio", help="a speech recording to use instead of synthesized speech")
    what.add_argument("--dataset", type=int, metavar="N", help="make N varied clips")
    p.add_argument("--out", help="the DATA folder to write (created if needed)")
    p.add_argument(
        "--id",
        help="clip id for a single clip, a file name: letters, digits, '_', '.', '-' "
        "(default: from the text or audio name)",
    )
    p.add_argument("--voice", default="en-us", help="espeak-ng voice, e.g. en-us, en-gb+f3")
    p.add_argument("--speed", type=int, default=160, help="words per minute")
    p.add_argument(
        "--split",
        default="train",
        choices=["train", "test", "all"],
        help="--dataset: sentences and identities of this split (test: held out from train)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-augment", action="store_true", help="--dataset without face augmentations")
    p.add_argument(
        "--style",
        default="loudness",
        choices=["loudness", "motion"],
        help="loudness: the mouth alone opens with the speech's loudness (the pixel models' data); motion: the mouth "
        "follows the phonemes, with blinks and head motion, rendered at the photo's resolution, the Motion truth "
        "saved as clips/ID.motion.npz (the motion generator's data; needs --text or --dataset)",
    )
    p.add_argument(
        "--teeth",
        type=float,
        metavar="SHARE",
        help="--style motion: the share of --dataset clips whose open mouths show teeth and a tongue drawn from the "
        "phonemes instead of the renderer's dark cavity (default 0.5); a single clip: 1 draws them, 0 not (default)",
    )
    p.add_argument(
        "--sentences",
        type=int,
        default=1,
        metavar="K",
        help="--dataset: sentences each clip says, one after another (default 1; the test split has 12). Longer "
        "clips time lip sync better",
    )
    p.set_defaults(func=run)
    forms = p.add_subparsers(dest="form", metavar="FORM")
    scenes = forms.add_parser(
        "scenes",
        help="procedural 64x64 scene clips (16 frames at 8 fps) with captions, label masks and sounds",
        description="Write N scene clips into DIR: DIR/index.jsonl (one record per clip: caption, objects with "
        "colours and places, sky), DIR/vocabulary.json (labels), DIR/clips/ID.mp4 (with the objects' sounds), "
        "DIR/clips/ID.masks.npy (uint8 [16, 64, 64] label per pixel) and DIR/clips/ID.sounds.npz (loudness per "
        "sounding object). Object pairs of the held-out list appear only in --split test. Clips already in DIR's "
        "index are kept, so a larger N adds clips.",
    )
    scenes.add_argument("--n", type=int, required=True, metavar="N", help="number of clips")
    scenes.add_argument(
        "--split",
        default="train",
        choices=["train", "test"],
        help="train: no held-out object pair; test: each clip holds one",
    )
    scenes.add_argument("--seed", type=int, default=0, help="clip k comes from (seed, split, k)")
    scenes.add_argument("--out", required=True, help="the scene folder to write (created if needed)")
    scenes.add_argument("--no-progress", action="store_true", help="no progress bar")
    scenes.set_defaults(func=run_scenes)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "clip"


def run_scenes(args: argparse.Namespace) -> int:
    from pathlib import Path

    from avdiff.commands import CommandError
    from avdiff.data.scenes import make_scenes

    if args.n < 1:
        raise CommandError(f"--n must be a positive number of clips, got {args.n}")
    records = make_scenes(args.out, args.n, split=args.split, seed=args.seed, progress_bar=not args.no_progress)
    sounding = sum(any(o["sounding"] for o in r.objects) for r in records)
    print(
        f"wrote {len(records)} {args.split} scene clips to {args.out} ({sounding} with sounding objects; "
        f"index: {Path(args.out) / 'index.jsonl'})"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from avdiff.commands import CommandError

    if args.text is None and args.audio is None and args.dataset is None:
        raise CommandError("synth: give one of --text, --audio or --dataset N (or use `avdiff synth scenes`)")
    if not args.out:
        raise CommandError("synth: --out is required (the DATA folder to write)")

    from avdiff.audio.io import load_audio
    from avdiff.audio.tts import speak
    from avdiff.data.format import append_index, check_name
    from avdiff.data.synthetic import default_face, make_clip, make_dataset, make_motion_clip

    if args.id is not None:
        if args.dataset is not None:
            raise CommandError("--id names a single clip; --dataset names its clips itself")
        check_name(args.id, "--id")  # before any work: it becomes OUT/clips/ID.mp4
    if args.style == "motion" and args.audio is not None:
        raise CommandError(
            "--style motion needs --text or --dataset: its mouth follows espeak-ng's phoneme events, "
            "which a recording does not have"
        )
    if args.teeth is not None and args.style != "motion":
        raise CommandError("--teeth is for --style motion: the loudness style's mouth is the warp's")
    if args.teeth is not None and args.dataset is None and args.teeth not in (0, 1):
        raise CommandError(f"a single clip shows teeth or not: --teeth 0 or 1, got {args.teeth}")
    if args.sentences != 1 and args.dataset is None:
        raise CommandError("--sentences is for --dataset; a single clip says its --text")
    if args.dataset is not None:
        from avdiff.data.synthetic import sentences

        if not 1 <= args.sentences <= len(sentences(args.split)):
            raise CommandError(
                f"--sentences {args.sentences}: the {args.split} split has {len(sentences(args.split))} sentences; "
                "give 1 to that many"
            )
    faces = args.face or None
    if args.dataset is not None:
        records = make_dataset(
            args.out,
            args.dataset,
            faces,
            faces_dir=args.faces,
            split=args.split,
            seed=args.seed,
            augment=not args.no_augment,
            style=args.style,
            sentences_per_clip=args.sentences,
            **({} if args.teeth is None else {"teeth": args.teeth}),
        )
        print(f"wrote {len(records)} clips to {args.out} (index: {Path(args.out) / 'index.jsonl'})")
        return 0
    face = faces[0] if faces else default_face()
    if args.style == "motion":
        import numpy as np

        record = make_motion_clip(
            args.out,
            args.id or _slug(args.text),
            face,
            args.text,
            np.random.default_rng(args.seed),
            voice=args.voice,
            speed_wpm=args.speed,
            teeth=args.teeth == 1,
        )
        append_index(args.out, record)
        print(
            f"wrote {Path(args.out) / record.video} ({record.num_frames} frames, {record.duration_s:.2f} s) "
            f"and its motion truth {Path(args.out) / record.motion}"
        )
        return 0
    if args.text is not None:
        speech = speak(args.text, voice=args.voice, speed_wpm=args.speed)
        clip_id = args.id or _slug(args.text)
    else:
        speech = load_audio(args.audio)
        clip_id = args.id or _slug(Path(args.audio).stem)
    record = make_clip(
        args.out, clip_id, face, speech, text=args.text, source={"voice": args.voice, "speed_wpm": args.speed}
    )
    append_index(args.out, record)
    print(
        f"wrote {Path(args.out) / record.video} ({record.num_frames} frames, {record.duration_s:.2f} s) "
        f"and {Path(args.out) / record.aperture}"
    )
    return 0
