"""Print how well talking-head videos follow the phonemes, read back from the videos by the face mesh.

``avdiff eval talking-head --data DATA --out OUT ...`` writes ``OUT/SOURCE/ID.mp4`` for each held-out clip of DATA
(synthetic, ``--style motion``: each clip has its motion truth). This reads every video of the given sources with
mediapipe's mesh (``track_landmarks`` and ``motion_track``: the one function that reads motion from any video), and
scores it against the clip's motion truth as the motion model's own evaluation scores its motion
(``avdiff.metrics.motion_scores``: mouth opening r, lip closure on p/b/m recalled and its precision, rounding r, head
yaw and pitch r), with the phoneme events of the clip's speech (espeak-ng says the clip's text again, in its voice).

Two controls come with it: the ``ground_truth`` source (the clip itself, read back: what the mesh loses) and, with
``--rerendered``, the truth's own motion rendered by ``FaceRenderer`` from the evaluation's photo (the clip's
most-closed frame, the photo every source animates) and read back: the most a model can score through that photo.
Prints each source's means over the clips and the clips where the first source beats each other one.

    python docs/phonemes_from_video.py DATA OUT motion,warp,ground_truth,still [--rerendered]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from avdiff.audio.phonemes import speak_with_phonemes
from avdiff.metrics.motion_scores import motion_scores
from avdiff.video.face import detect_face, track_landmarks
from avdiff.video.motion import Motion, motion_track
from avdiff.video.reader import read_video
from avdiff.video.render import FaceRenderer

SCORES = ("mouth_open_r", "closure_recall", "closure_precision", "round_r", "yaw_r", "pitch_r")
RERENDERED = "truth, re-rendered from the photo"


def read_back(frames: np.ndarray) -> Motion:
    """The motion of a video uint8 [F, H, W, 3], as the mesh reads it (against the video's own neutral frame)."""
    return motion_track(track_landmarks(frames, depth=True))[0]


def rerendered(data: Path, record: dict, truth: Motion) -> np.ndarray:
    """The truth's motion rendered from the clip's most-closed frame (the evaluation's photo)."""
    frames = read_video(data / record["video"]).frames.numpy()
    aperture = np.load(data / record["aperture"])[: len(frames)]
    photo = frames[int(np.nanargmin(aperture))]
    return np.stack(list(FaceRenderer(photo, detect_face(photo)).frames(truth)))


def main(data: Path, out: Path, sources: list[str], with_rerendered: bool) -> None:
    names = sources + ([RERENDERED] if with_rerendered else [])
    rows: dict[str, list[dict]] = {name: [] for name in names}
    for line in (data / "index.jsonl").read_text().splitlines():
        record = json.loads(line)
        truth = Motion.load(data / record["motion"])
        said = record["source"]
        _, events = speak_with_phonemes(
            record["text"], voice=said["voice"], speed_wpm=said["speed_wpm"], pitch=said["pitch"], sample_rate=16000
        )
        for name in names:
            if name == RERENDERED:
                frames = rerendered(data, record, truth)
            else:
                frames = read_video(out / name / f"{record['id']}.mp4").frames.numpy()
            motion = read_back(frames)
            n = min(len(motion), len(truth))
            rows[name].append(motion_scores(motion[:n], truth[:n], events, 25, 16000))
        print(record["id"], flush=True)
    for name in names:
        means = {k: round(float(np.nanmean([r[k] for r in rows[name]])), 3) for k in SCORES}
        print(f"{name}: {means}")
    first = sources[0]
    for other in names[1:]:
        wins = {
            k: sum(np.nan_to_num(a[k], nan=-9) > np.nan_to_num(b[k], nan=-9) for a, b in zip(rows[first], rows[other]))
            for k in SCORES
        }
        print(f"{first} beats {other} on {wins} of {len(rows[first])} clips")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(","), "--rerendered" in sys.argv[4:])
