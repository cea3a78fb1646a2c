"""``avdiff analyze AUDIO``: print the rhythm of a track as JSON."""

from __future__ import annotations

import argparse
import json
import sys

from avdiff.commands import add_audio_track_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="tempo, beats and onsets of an audio file, as JSON",
        description="Tempo (global, and per beat: beat_tempo_bpm), beats and onsets of a track, as "
        "JSON. A tempo change is followed section by section.",
    )
    p.add_argument("audio", help="any audio file, or the audio track of a video")
    p.add_argument(
        "--fps",
        default="25",
        help="video frame rate for the per-frame envelopes, from 1 to 120 (25, 29.97, 30000/1001; default 25)",
    )
    p.add_argument(
        "--per-frame",
        action="store_true",
        help="include the per-frame onset, rms and percussive envelopes and the tempo curve (tempo_curve_bpm)",
    )
    p.add_argument(
        "--max-duration",
        type=float,
        default=None,
        metavar="S",
        help="refuse audio longer than S seconds (S > 0; default: no limit)",
    )
    add_audio_track_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from avdiff.audio import load_audio
    from avdiff.audio.rhythm import analyze_rhythm
    from avdiff.commands import checked_fps, checked_max_duration

    fps = checked_fps(args.fps)  # checked before the audio is read
    checked_max_duration(args.max_duration)
    wav = load_audio(args.audio, max_duration_s=args.max_duration, audio_track=args.audio_track)
    rhythm = analyze_rhythm(wav, fps)
    out = {"audio": args.audio, "duration_s": round(wav.duration_s, 6), **rhythm.to_dict(per_frame=args.per_frame)}
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
