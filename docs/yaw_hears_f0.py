"""Does a motion model turn the head with the F0 it hears, or with the F0 that espeak-ng's rules would give the words?

Each clip's speech is given a new intonation (:func:`avdiff.audio.intonation.random_intonation`: its F0 moved by a
smooth random contour of 3 semitones spread, timing and voice kept), and the model's yaw for it (guidance 2, seeds 0
and 1) is correlated with the F0 part of the head turn (:func:`avdiff.data.motion_truth.speech_prosody`) of the speech
it heard, and with that of the original speech. A model that hears the F0 follows the first; one that guesses the
contour from the words follows the second. The original speech's row is the control.

    python docs/yaw_hears_f0.py DATA [MODEL]     # DATA: an `avdiff synth --style motion` folder; MODEL: default
                                                 # avdiff/talking-head-motion; about 2 minutes for 12 clips
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from avdiff.audio.intonation import random_intonation
from avdiff.audio.phonemes import speak_with_phonemes
from avdiff.data.format import read_index
from avdiff.data.motion_truth import speech_prosody
from avdiff.pipelines import MotionTalkingHeadPipeline
from avdiff.pipelines.talking_head import sample_motion

FPS = 25
SEEDS = 2


def yaw(model, speech) -> list[np.ndarray]:
    return [
        np.asarray(
            sample_motion(model, speech, FPS, guidance_scale=2.0, generator=torch.Generator().manual_seed(s)).yaw
        )
        for s in range(SEEDS)
    ]


def main(data: Path, model_path: str) -> None:
    torch.set_num_threads(1)
    model = MotionTalkingHeadPipeline.from_pretrained(model_path).motion_model
    rows = {"original speech": [], "new intonation": []}
    for k, record in enumerate(read_index(data)):
        s = record.source
        speech, events = speak_with_phonemes(
            record.text, voice=s["voice"], speed_wpm=s["speed_wpm"], pitch=s["pitch"], sample_rate=16000
        )
        retoned = random_intonation(speech, np.random.default_rng(k), semitones=3.0)
        n = speech.num_samples * FPS // speech.sample_rate
        heard = {"original speech": speech, "new intonation": retoned}
        part_original = speech_prosody(events, speech, n, FPS)["f0"]
        for name, w in heard.items():
            part_heard = speech_prosody(events, w, n, FPS)["f0"]
            ys = [y[:n] for y in yaw(model, w)]
            rows[name].append(
                (np.mean([np.corrcoef(y, part_heard)[0, 1] for y in ys]),
                 np.mean([np.corrcoef(y, part_original)[0, 1] for y in ys]))
            )  # fmt: skip
        print(record.id, s["voice"], *(f"{name}: {r[-1][0]:.2f} / {r[-1][1]:.2f}" for name, r in rows.items()))
    print(f"\n{len(rows['new intonation'])} clips of {data}, model {model_path}: the yaw's mean r with the F0 part of")
    print("| speech | the F0 it hears | the original speech's F0 |\n| --- | --- | --- |")
    for name, r in rows.items():
        heard, original = np.mean(r, axis=0)
        print(f"| {name} | {heard:.3f} | {original:.3f} |")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) == 3 else "avdiff/talking-head-motion")
