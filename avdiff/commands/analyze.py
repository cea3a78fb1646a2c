"""``avdiff analyze AUDIO``: print the rhythm of a track as JSON."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="tempo, beats and onsets of an audio file, as JSON")
    p.add_argument("audio", help="any audio file, or the audio track of a video")
    p.add_argument("--fps", default="25", help="video frame rate for per-frame envelopes (25, 29.97, 30000/1001)")
    p.add_argument("--per-frame", action="store_true", help="include the per-frame onset, rms and percussive envelopes")
    p.add_argument("--max-duration", type=float, default=None, metavar="S", help="refuse audio longer than S seconds")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from avdiff.audio import load_audio
    from avdiff.audio.clock import as_fraction_fps
    from avdiff.audio.rhythm import analyze_rhythm

    fps = as_fraction_fps(float(args.fps) if "/" not in args.fps else args.fps)
    wav = load_audio(args.audio, max_duration_s=args.max_duration)
    rhythm = analyze_rhythm(wav, fps)
    out = {"audio": args.audio, "duration_s": round(wav.duration_s, 6), **rhythm.to_dict(per_frame=args.per_frame)}
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
