"""Print how well talking-head videos follow the phonemes, read back from the videos by the face mesh.

``avdiff eval talking-head --data DATA --out OUT ...`` writes ``OUT/SOURCE/ID.mp4`` for each held-out clip of DATA
(synthetic, ``--style motion``: each clip has its motion truth). This reads every video of the given sources with
mediapipe's mesh (``track_landmarks`` and ``motion_track``: the one function that reads motion from any video), and
scores it against the clip's motion truth as the motion model's own evaluation scores its motion
(``avdiff.metrics.motion_scores``: mouth opening r, lip closure on p/b/m recalled and its precision, rounding r, head
yaw and pitch r), with the phoneme events of the clip's speech (espeak-ng says the clip's text again, in its voice).

Controls come with it: the ``ground_truth`` source (the clip itself, read back: what the mesh loses); with
``--rerendered``, the truth's own motion rendered by ``FaceRenderer`` from the evaluation's photo (the clip's
most-closed frame, the photo every generated source animates) and read back: what the truth itself scores through
that photo; and with ``--made``, the motion ``avdiff/talking-head-motion`` makes for the clip's speech, not rendered
(``sample_motion`` at the evaluation's defaults: guidance 2, 15 blinks a minute, head amount 1, seed 0). Prints each
source's means over the clips (and how many clips had no score, a NaN, left out of a mean) and, for each other
source, on how many clips the first one scores higher (a NaN loses).

    python docs/phonemes_from_video.py DATA OUT motion,warp,ground_truth,still [--rerendered] [--made]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from avdiff.audio.phonemes import speak_with_phonemes
from avdiff.data.format import ClipRecord, read_index
from avdiff.data.video_dataset import load_clip
from avdiff.evaluation.talking_head import evaluation_photo, reference_aperture
from avdiff.metrics.motion_scores import motion_scores
from avdiff.pipelines import MotionTalkingHeadPipeline
from avdiff.pipelines.talking_head import sample_motion
from avdiff.video.face import detect_face, track_landmarks
from avdiff.video.motion import Motion, motion_track
from avdiff.video.reader import read_video
from avdiff.video.render import FaceRenderer

SCORES = ("mouth_open_r", "closure_recall", "closure_precision", "round_r", "yaw_r", "pitch_r")
RERENDERED = "truth, re-rendered from the photo"
MADE = "motion, as made (not rendered)"
OPTIONS = ("--rerendered", "--made")


def read_back(frames: np.ndarray) -> Motion:
    """The motion of a video uint8 [F, H, W, 3], as the mesh reads it (against the video's own neutral frame)."""
    return motion_track(track_landmarks(frames, depth=True))[0]


def rerendered(data: Path, record: ClipRecord, truth: Motion) -> np.ndarray:
    """The truth's motion rendered from the photo the evaluation animates (``evaluation_photo``: the clip's
    most-closed frame by its true aperture)."""
    clip = load_clip(data, record)
    _, photo = evaluation_photo(clip, reference_aperture(data, clip))
    return np.stack(list(FaceRenderer(photo, detect_face(photo)).frames(truth)))


def made(speech, model) -> Motion:
    """The motion the model makes for ``speech``, at the evaluation's defaults."""
    generator = torch.Generator().manual_seed(0)
    return sample_motion(
        model, speech, 25, guidance_scale=2.0, blink_rate_per_min=15, head_amount=1.0, generator=generator
    )


def main(data: Path, out: Path, sources: list[str], options: list[str]) -> None:
    names = sources + [name for name, flag in ((RERENDERED, "--rerendered"), (MADE, "--made")) if flag in options]
    model = (
        MotionTalkingHeadPipeline.from_pretrained("avdiff/talking-head-motion").motion_model if MADE in names else None
    )
    rows: dict[str, list[dict]] = {name: [] for name in names}
    for record in read_index(data):
        truth = Motion.load(data / record.motion)
        said = record.source
        speech, events = speak_with_phonemes(
            record.text, voice=said["voice"], speed_wpm=said["speed_wpm"], pitch=said["pitch"], sample_rate=16000
        )
        for name in names:
            if name == MADE:
                motion = made(speech, model)
            else:
                if name == RERENDERED:
                    frames = rerendered(data, record, truth)
                else:
                    frames = read_video(out / name / f"{record.id}.mp4").frames.numpy()
                try:
                    motion = read_back(frames)
                except ValueError as error:  # no frame with a face: every score of this clip is missing
                    print(f"{record.id} {name}: {error}")
                    rows[name].append(dict.fromkeys(SCORES, float("nan")))
                    continue
            n = min(len(motion), len(truth))
            rows[name].append(motion_scores(motion[:n], truth[:n], events, 25, 16000))
        print(record.id, flush=True)
    for name in names:
        values = {k: np.array([r[k] for r in rows[name]], np.float64) for k in SCORES}
        means = {k: round(float(np.nanmean(v)), 3) if np.isfinite(v).any() else None for k, v in values.items()}
        missing = {k: int(np.isnan(v).sum()) for k, v in values.items() if np.isnan(v).any()}
        print(f"{name}: {means}" + (f" (clips without a score: {missing})" if missing else ""))
    first = sources[0]
    for other in names[1:]:
        wins = {
            k: sum(np.nan_to_num(a[k], nan=-9) > np.nan_to_num(b[k], nan=-9) for a, b in zip(rows[first], rows[other]))
            for k in SCORES
        }
        print(f"{first} beats {other} on {wins} of {len(rows[first])} clips")


if __name__ == "__main__":
    if len(sys.argv) < 4 or any(flag not in OPTIONS for flag in sys.argv[4:]):
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(","), sys.argv[4:])
