"""AADiff on the bundled scene model (issue 18's acceptance, offline): a fire crackle whose loudness follows a known
curve chooses "campfire" in "a campfire beside a lake at night"; each frame's change from the base frame follows the
curve, and it lands inside the campfire's segment (the bundled segmenter's) rather than elsewhere; two sounds on two
words (a campfire on the ground, rain in the sky) move two regions, each with its own curve. ``-s`` prints the
numbers docs/results.md quotes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avdiff.audio.io import Waveform
from avdiff.audio.scene_sounds import scene_sound
from avdiff.data.scenes import LABELS
from avdiff.evaluation.scene import object_segment, segment_change
from avdiff.models.segmenter import load_segmenter
from avdiff.pipelines import AudioScenePipeline

PROMPT = "a campfire beside a lake at night"
FPS = 8
SECONDS = 6.0
STRENGTH = 2.0
STEPS = 20
FRAMES = int(SECONDS * FPS)


def curve(kind: str) -> np.ndarray:
    """Known loudness curves per video frame in [0.1, 1]: a slow swell and a bar-like pulse."""
    f = np.arange(FRAMES)
    if kind == "swell":
        return (0.55 - 0.45 * np.cos(2 * np.pi * f / 24)).astype(np.float32)
    return np.where((f // 6) % 2 == 0, 1.0, 0.1).astype(np.float32)


def sound(name: str, kind: str, seed: int) -> Waveform:
    return Waveform(scene_sound(name, curve(kind), fps=FPS, seed=seed), 16000)


@pytest.fixture(scope="module")
def pipe():
    pipe = AudioScenePipeline.from_pretrained("scene-tiny")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def segmenter():
    return load_segmenter("avdiff/scene-segmenter")


def change_from_base(out) -> np.ndarray:
    """Mean |frame - base frame| per frame, float [F] (0..255)."""
    return np.abs(out.frames.astype(np.float32) - out.base_frame.astype(np.float32)).mean(axis=(1, 2, 3))


@pytest.mark.slow
def test_strength_zero_is_the_base_frame_in_every_frame(pipe):
    out = pipe(
        PROMPT,
        sound("crackle", "swell", 11),
        strength=0.0,
        num_inference_steps=STEPS,
        generator=torch.Generator().manual_seed(0),
    )
    assert all(np.array_equal(frame, out.base_frame) for frame in out.frames)


def clip_segment(out, segmenter, word: str) -> np.ndarray:
    """bool [H, W]: the pixels the segmenter gives to ``word`` in the base frame or in any frame of the clip (a
    loud crackle grows the flames past the base frame's outline)."""
    labels = segmenter.predict(np.concatenate([out.base_frame[None], out.frames]))  # (1 + F, H, W)
    return (labels == LABELS.index(word)).any(axis=0)


@pytest.mark.slow
def test_a_crackle_chooses_campfire_and_moves_it_with_its_loudness(pipe, segmenter):
    out = pipe(
        PROMPT,
        sound("crackle", "swell", 11),
        strength=STRENGTH,
        num_inference_steps=STEPS,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.targets[0].word == "campfire" and out.targets[0].chosen_by == "encoder"
    change = change_from_base(out)
    r = float(np.corrcoef(change, curve("swell")[: len(change)])[0, 1])
    segment = clip_segment(out, segmenter, "campfire")
    inside = segment_change(out.frames, out.base_frame, segment)
    base_only = segment_change(out.frames, out.base_frame, object_segment(out.base_frame, "campfire", segmenter))
    print(
        f"\ncrackle on 'campfire': r(change, loudness) {r:.3f}; change inside the campfire's segment "
        f"{inside.inside.mean() * 255:.2f} vs elsewhere {inside.outside.mean() * 255:.2f} grey levels per pixel "
        f"(ratio {inside.ratio:.1f}; {segment.mean():.3f} of the frame; with the base frame's segment alone, "
        f"{base_only.ratio:.1f}); {out.num_rendered} renders for {len(out.frames)} frames"
    )
    assert r >= 0.8
    assert inside.ratio >= 3.0


@pytest.mark.slow
def test_two_sounds_move_two_regions_each_with_its_own_curve(pipe, segmenter):
    """A crackle (a slow swell) and rain (a pulse) on a campfire on the ground and rain in the sky: each sound chooses
    its word, and each object's segment follows its own sound's curve. The rain's pulse also reaches the campfire's
    segment (the whole night scene darkens and brightens with it), so only the rain's segment is asserted to ignore
    the other sound; the printed matrix is what docs/results.md reports."""
    prompt = "a campfire on the left with rain on the right at night"
    sounds = [sound("crackle", "swell", 12), sound("rain", "pulse", 13)]
    out = pipe(
        prompt, sounds, strength=STRENGTH, num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0)
    )
    assert [t.word for t in out.targets] == ["campfire", "rain"]
    curves = {"campfire": curve("swell"), "rain": curve("pulse")}
    r = {}
    for word in curves:
        region = segment_change(out.frames, out.base_frame, clip_segment(out, segmenter, word)).inside
        r[word] = {other: float(np.corrcoef(region, c[: len(region)])[0, 1]) for other, c in curves.items()}
    print(
        f"\ntwo sounds: campfire segment r with its crackle {r['campfire']['campfire']:.3f}, with the rain "
        f"{r['campfire']['rain']:.3f}; rain segment r with its rain {r['rain']['rain']:.3f}, with the crackle "
        f"{r['rain']['campfire']:.3f}"
    )
    assert r["campfire"]["campfire"] >= 0.5
    assert r["rain"]["rain"] >= 0.8 and r["rain"]["rain"] > r["rain"]["campfire"] + 0.5
