"""A synthetic sound–caption set with held-out attribute combinations, for training and testing audio–text alignment.

Generated sounds vary in timbre (drum, whistle, buzz, bell), pitch (low, high), rhythm (slow, fast) and loudness
envelope (getting louder, fading away, steady), with captions such as "a slow low drum beat getting louder". Speech
clips from espeak-ng say one word each, in one of several voices, captioned 'someone saying "stop"'.

A quarter of the combinations never occur in training (every attribute value still does, only not in that
combination), so retrieval on the test split measures whether the model composes attributes, not whether it
memorised captions.

Scene sounds (:mod:`avdiff.audio.scene_sounds`: the crackle of a campfire, waves on a lake, rain, birdsong, thunder,
a car's engine, a bell, wind in grass) join with ``per_scene_sound > 0``, captioned "the crackling of a campfire",
"a campfire crackling" or just "campfire" (so the bare object word, which is what ``select_token`` compares a sound
with, is a caption too). Their held-out recordings have unseen seeds and a loudness-curve family never used in
training (``pulsing``).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np
import torch

from avdiff.audio.io import Waveform
from avdiff.audio.scene_sounds import random_envelope, scene_sound
from avdiff.audio.tts import speak
from avdiff.data.scenes.vocabulary import SOUND_OF

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
DURATION_S = 2.0
TIMBRES = {"drum": "drum beat", "whistle": "whistle", "buzz": "buzzing synth", "bell": "bell"}
PITCHES = {"low": (90.0, 180.0), "high": (700.0, 1400.0)}  # f0 range in Hz
RHYTHMS = {"slow": (1.2, 2.2), "fast": (5.0, 7.0)}  # notes per second
ENVELOPES = {"rising": "getting louder", "falling": "fading away", "steady": "at a steady volume"}
WORDS = ["hello", "yes", "no", "stop", "go", "left", "right", "seven"]
SPEAKERS = ["en-us", "en-gb+f3", "en-us+m3", "en-gb+m5"]
TEMPLATES = [
    "a {rhythm} {pitch} {timbre} {envelope}",
    "{rhythm} {pitch} {timbre} sounds {envelope}",
    "the sound of a {rhythm} {pitch} {timbre}, {envelope}",
]

# Scene sounds: object word -> captions (its sound is SOUND_OF[word] in the scene vocabulary). The first caption is
# the one a held-out clip is retrieved by; training draws any of them, the bare word included.
SCENE_CAPTIONS = {
    "campfire": ["the crackling of a campfire", "a campfire crackling", "campfire", "logs crackling in a campfire"],
    "lake": ["waves lapping on a lake", "the waves of a lake", "lake", "water splashing on a lake"],
    "rain": ["rain falling", "the sound of rain", "rain", "heavy rain pouring down"],
    "birds": ["birds singing in a tree", "birdsong", "birds", "birds chirping"],
    "thunderstorm": [
        "the rumble of thunder in a thunderstorm",
        "a thunderstorm",
        "thunderstorm",
        "thunder rolling in a storm",
    ],
    "car": ["a car engine running", "the engine of a car", "car", "a car idling"],
    "bell": ["a bell ringing", "the chime of a bell", "bell", "a ringing bell"],
    "grass": ["wind blowing through grass", "the wind in the grass", "grass", "wind rustling the grass"],
}
SCENE_TRAIN_ENVELOPES = ("steady", "rising", "falling", "smooth", "bursts")
SCENE_TEST_ENVELOPES = ("pulsing",)
SCENE_FPS = 8


@dataclass(frozen=True)
class SoundCombo:
    """One combination of attributes. For speech, ``timbre="speech"`` and ``word`` and ``speaker`` are set; for a
    scene sound, ``timbre="scene"``, ``word`` is the object word and ``envelope`` the loudness-curve family."""

    timbre: str
    pitch: str = ""
    rhythm: str = ""
    envelope: str = ""
    word: str = ""
    speaker: str = ""

    def caption(self, template: int = 0) -> str:
        if self.timbre == "speech":
            return f'someone saying "{self.word}"'
        if self.timbre == "scene":
            captions = SCENE_CAPTIONS[self.word]
            return captions[template % len(captions)]
        return TEMPLATES[template].format(
            rhythm=self.rhythm, pitch=self.pitch, timbre=TIMBRES[self.timbre], envelope=ENVELOPES[self.envelope]
        )

    @property
    def key(self) -> str:
        """What retrieval must match: the caption's content (the speaker of speech is not in its caption)."""
        return self.caption(0)


def scene_combos(split: str) -> list[SoundCombo]:
    """Scene-sound combinations of a split: every object word with each loudness-curve family of the split."""
    families = {"train": SCENE_TRAIN_ENVELOPES, "test": SCENE_TEST_ENVELOPES}.get(split)
    if families is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return [SoundCombo("scene", envelope=e, word=w) for w in SCENE_CAPTIONS for e in families]


def sound_combos() -> list[SoundCombo]:
    return [SoundCombo(t, p, r, e) for t, p, r, e in itertools.product(TIMBRES, PITCHES, RHYTHMS, ENVELOPES)]


def split_combos(split: str, seed: int = 0) -> list[SoundCombo]:
    """The combinations of a split. Test holds out 12 of the 48 sound combinations (one per timbre x envelope)
    and, for speech, one speaker per word."""
    combos = sound_combos()
    rng = np.random.default_rng(seed)
    held = set()
    for timbre, envelope in itertools.product(TIMBRES, ENVELOPES):
        group = [c for c in combos if c.timbre == timbre and c.envelope == envelope]
        held.add(group[int(rng.integers(len(group)))])
    speech = [SoundCombo("speech", word=w, speaker=s) for w, s in itertools.product(WORDS, SPEAKERS)]
    held_speech = {SoundCombo("speech", word=w, speaker=SPEAKERS[i % len(SPEAKERS)]) for i, w in enumerate(WORDS)}
    if split == "train":
        return [c for c in combos if c not in held] + [c for c in speech if c not in held_speech]
    if split == "test":
        return sorted(held, key=str) + sorted(held_speech, key=str)
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


# --- sound synthesis -----------------------------------------------------------------------------------------


def _note(timbre: str, f0: float, length: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(length) / SAMPLE_RATE
    if timbre == "drum":
        freq = f0 * (1 + 1.5 * np.exp(-t / 0.02))
        body = np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE) * np.exp(-t / 0.09)
        return body + 0.25 * rng.standard_normal(length) * np.exp(-t / 0.015)
    attack = np.minimum(1.0, t / 0.01)
    release = np.minimum(1.0, (t[-1] - t + 1e-3) / 0.03)
    if timbre == "whistle":
        vibrato = 1 + 0.01 * np.sin(2 * np.pi * 5.5 * t)
        return np.sin(2 * np.pi * np.cumsum(f0 * vibrato) / SAMPLE_RATE) * attack * release
    if timbre == "buzz":
        phase = (f0 * t) % 1.0
        return (2 * phase - 1) * 0.6 * attack * release
    if timbre == "bell":
        partials = [(1.0, 1.0), (2.76, 0.5), (5.40, 0.3), (8.93, 0.15)]
        tone = sum(a * np.sin(2 * np.pi * f0 * r * t) for r, a in partials if f0 * r < SAMPLE_RATE / 2)
        return tone * np.exp(-t / 0.25) * attack
    raise ValueError(f"unknown timbre {timbre!r}")


def synthesize(combo: SoundCombo, rng: np.random.Generator) -> np.ndarray:
    """A 2 s float32 clip of ``combo``, randomised within its attributes (exact pitch, rate, phase, noise)."""
    n = int(DURATION_S * SAMPLE_RATE)
    out = np.zeros(n)
    f0 = rng.uniform(*PITCHES[combo.pitch])
    rate = rng.uniform(*RHYTHMS[combo.rhythm])
    period = int(SAMPLE_RATE / rate)
    note_len = int(period * (0.9 if combo.timbre in ("drum", "bell") else rng.uniform(0.45, 0.7)))
    start = int(rng.integers(0, period // 2))
    while start < n:
        note = _note(combo.timbre, f0 * rng.uniform(0.98, 1.02), min(note_len, n - start), rng)
        out[start : start + len(note)] += note
        start += int(period * rng.uniform(0.95, 1.05))
    ramp = np.linspace(0, 1, n)
    shape = {"rising": 0.08 + 0.92 * ramp**1.5, "falling": 0.08 + 0.92 * (1 - ramp) ** 1.5, "steady": np.ones(n)}
    out *= shape[combo.envelope]
    out += 0.003 * rng.standard_normal(n)
    return (0.7 * out / max(1e-6, np.abs(out).max())).astype(np.float32)


def synthesize_scene(combo: SoundCombo, rng: np.random.Generator) -> np.ndarray:
    """A 2 s float32 scene sound of ``combo.word`` with a loudness curve of family ``combo.envelope`` (16 frames at
    8 fps), as the scene clips make them (RMS 0.1 where the curve is 1)."""
    frames = int(round(DURATION_S * SCENE_FPS))
    envelope = random_envelope(rng, frames, combo.envelope)
    return scene_sound(SOUND_OF[combo.word], envelope, fps=SCENE_FPS, sample_rate=SAMPLE_RATE, seed=rng)


def speak_word(combo: SoundCombo, rng: np.random.Generator) -> np.ndarray:
    """A 2 s float32 clip of ``combo.word`` spoken by ``combo.speaker`` at a random speed and pitch and offset."""

    wav = speak(
        combo.word,
        voice=combo.speaker,
        speed_wpm=int(rng.integers(120, 220)),
        pitch=int(rng.integers(25, 75)),
        sample_rate=SAMPLE_RATE,
    )
    x = wav.samples[0].numpy()
    n = int(DURATION_S * SAMPLE_RATE)
    x = x[:n]
    offset = int(rng.integers(0, max(1, n - len(x))))
    out = np.zeros(n, np.float32)
    out[offset : offset + len(x)] = x
    return 0.7 * out / max(1e-6, float(np.abs(out).max()))


@dataclass
class SoundCaptionSet:
    """Clips and captions of one split.

    Attributes:
        audio: float32 [N, S] waveforms at 16 kHz (S = 32000).
        captions: N captions (templates vary in training).
        combos: the SoundCombo of each clip.
    """

    audio: torch.Tensor
    captions: list[str]
    combos: list[SoundCombo]

    def __len__(self) -> int:
        return len(self.captions)

    def waveform(self, i: int) -> Waveform:
        return Waveform(self.audio[i : i + 1], SAMPLE_RATE)

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.combos]


def build_sound_captions(
    split: str, per_sound_combo: int, per_speech_combo: int, seed: int = 0, per_scene_sound: int = 0
) -> SoundCaptionSet:
    """Generate a split: ``per_sound_combo`` clips of each sound combination, ``per_speech_combo`` of each
    word-and-speaker combination and ``per_scene_sound`` of each scene word and loudness family. Deterministic under
    ``seed`` (clip ``k`` of a combination uses its own RNG; scene clips have their own RNG streams, so adding them
    leaves the other clips as they were)."""
    clips, captions, combos = [], [], []
    for ci, combo in enumerate(split_combos(split)):
        count = per_speech_combo if combo.timbre == "speech" else per_sound_combo
        for k in range(count):
            rng = np.random.default_rng([seed, 1 if split == "test" else 0, ci, k])
            clips.append(speak_word(combo, rng) if combo.timbre == "speech" else synthesize(combo, rng))
            template = 0 if split == "test" else int(rng.integers(len(TEMPLATES)))
            captions.append(combo.caption(template))
            combos.append(combo)
    for ci, combo in enumerate(scene_combos(split) if per_scene_sound > 0 else []):
        for k in range(per_scene_sound):
            rng = np.random.default_rng([seed, 1 if split == "test" else 0, 1000 + ci, k])
            clips.append(synthesize_scene(combo, rng))
            template = 0 if split == "test" else int(rng.integers(len(SCENE_CAPTIONS[combo.word])))
            captions.append(combo.caption(template))
            combos.append(combo)
    logger.info("%s split: %d clips, %d combinations", split, len(clips), len(set(combos)))
    return SoundCaptionSet(torch.from_numpy(np.stack(clips)), captions, combos)
