"""The alignment job: train :class:`AudioTextAligner` into a frozen text encoder's space, and measure retrieval.

``avdiff train align --config configs/train/align_tiny.yaml`` runs it through the shared trainer;
``avdiff eval align --checkpoint RUN/final`` reports recall@1/@5 on held-out attribute combinations against chance,
and, when the run trained on scene sounds, how often ``select_token`` picks the sounding object's word out of a scene
prompt of two to four objects (:func:`evaluate_scene_tokens`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from avdiff.bundled import bundled_path
from avdiff.data.scenes import sample_scene
from avdiff.data.sound_captions import SoundCaptionSet, build_sound_captions
from avdiff.encoders.alignment import AlignedEncoder, AlignerConfig, AudioTextAligner, info_nce, pool_tokens
from avdiff.encoders.base import content_words
from avdiff.encoders.text import SentenceEncoder
from avdiff.metrics.retrieval import retrieval_recall
from avdiff.training.trainer import strict_from_dict

logger = logging.getLogger(__name__)


@dataclass
class AlignTaskConfig:
    """The ``task:`` section of an alignment YAML."""

    text_model: str = "minilm"
    per_sound_combo: int = 24
    per_speech_combo: int = 8
    test_per_sound_combo: int = 6
    test_per_speech_combo: int = 3
    per_scene_sound: int = 0
    test_per_scene_sound: int = 0
    data_seed: int = 0
    token_weight: float = 0.5
    gain_db: float = 6.0
    shift_frames: int = 8
    aligner: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict) -> AlignTaskConfig:
        return strict_from_dict(cls, values, "align task")


class CaptionedMels(Dataset):
    """Items: (log-mel [n_mels, T], caption embedding [D], caption tokens pooled [N, D], combination id)."""

    def __init__(self, mels: torch.Tensor, pooled: torch.Tensor, tokens: torch.Tensor, key_ids: torch.Tensor):
        self.mels, self.pooled, self.tokens, self.key_ids = mels, pooled, tokens, key_ids

    def __len__(self) -> int:
        return len(self.mels)

    def __getitem__(self, i: int):
        return self.mels[i], self.pooled[i], self.tokens[i], self.key_ids[i]


class AlignTask:
    """Trains the aligner with symmetric InfoNCE (pooled) plus a token-matching loss (pseudo-tokens)."""

    def __init__(self, config: AlignTaskConfig):
        self.config = config
        self.aligner_config = AlignerConfig(text_model=config.text_model, **config.aligner)
        self._text: SentenceEncoder | None = None
        self._test: SoundCaptionSet | None = None

    def config_dict(self) -> dict:
        return asdict(self.config)

    @property
    def text_encoder(self) -> SentenceEncoder:
        if self._text is None:
            self._text = SentenceEncoder.from_pretrained(self.config.text_model)
            if self._text.dim != self.aligner_config.text_dim:
                raise ValueError(
                    f"text_dim={self.aligner_config.text_dim} but {self.config.text_model} has {self._text.dim}"
                )
        return self._text

    def build_model(self) -> AudioTextAligner:
        return AudioTextAligner(self.aligner_config)

    def build_dataset(self) -> CaptionedMels:
        c = self.config
        data = build_sound_captions("train", c.per_sound_combo, c.per_speech_combo, c.data_seed, c.per_scene_sound)
        mel = AudioTextAligner(self.aligner_config).mel
        with torch.no_grad():
            mels = torch.cat([mel(chunk) for chunk in data.audio.split(256)])
        text = self.text_encoder.encode(data.captions)
        tokens = pool_tokens(text.tokens, text.mask, self.aligner_config.num_tokens)
        keys = {k: i for i, k in enumerate(sorted(set(data.keys)))}
        key_ids = torch.tensor([keys[k] for k in data.keys])
        logger.info("alignment training set: %d clips, %d combinations", len(data), len(keys))
        return CaptionedMels(mels, text.pooled, tokens, key_ids)

    def compute_loss(self, model: AudioTextAligner, batch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        mels, pooled, tokens, key_ids = batch
        mels = self._augment(mels)
        out = model(mels, is_mel=True)
        same = key_ids[:, None] == key_ids[None, :]
        unwrapped = getattr(model, "module", model)
        contrastive = info_nce(out.embedding, pooled, unwrapped.logit_scale_value(), same)
        token_loss = torch.nn.functional.mse_loss(out.tokens, tokens)
        loss = contrastive + self.config.token_weight * token_loss
        logs = {
            "infonce": contrastive.item(),
            "token_mse": token_loss.item(),
            "scale": unwrapped.logit_scale_value().item(),
        }
        return loss, logs

    def _augment(self, mels: torch.Tensor) -> torch.Tensor:
        """Random gain (± gain_db), a small time shift (± shift_frames, edge-padded) and a little noise."""
        B = mels.shape[0]
        gain = (torch.rand(B, 1, 1, device=mels.device) * 2 - 1) * self.config.gain_db * 0.2303  # dB -> natural log
        shift = int(torch.randint(-self.config.shift_frames, self.config.shift_frames + 1, ()))
        if shift:
            mels = torch.roll(mels, shift, dims=-1)
            edge = slice(0, shift) if shift > 0 else slice(shift, None)
            mels[..., edge] = mels[..., [shift if shift > 0 else shift - 1]]
        return mels + gain + 0.1 * torch.randn_like(mels)

    def save_model(self, model: AudioTextAligner, path: Path) -> None:
        model.save_pretrained(path)

    def test_set(self) -> SoundCaptionSet:
        if self._test is None:
            c = self.config
            self._test = build_sound_captions(
                "test", c.test_per_sound_combo, c.test_per_speech_combo, c.data_seed, c.test_per_scene_sound
            )
        return self._test

    @torch.no_grad()
    def evaluate(self, model: AudioTextAligner, step: int = 0) -> dict[str, float]:
        metrics = evaluate_alignment(model, self.text_encoder, self.test_set())
        if any(c.timbre == "scene" for c in self.test_set().combos):
            metrics.update(evaluate_scene_tokens(AlignedEncoder(model, self.text_encoder), self.test_set()))
        return metrics


@torch.no_grad()
def evaluate_alignment(
    model: AudioTextAligner, text_encoder: SentenceEncoder, data: SoundCaptionSet
) -> dict[str, float]:
    """Recall@1/@5 in both directions on ``data`` (one query per clip, one per distinct caption), with chance."""
    model.eval()
    audio = torch.cat([model(chunk).embedding for chunk in data.audio.split(128)])
    keys = data.keys
    unique = sorted(set(keys))
    text = text_encoder.encode(unique).pooled
    return retrieval_recall(audio, keys, text, unique, ks=(1, 5))


@torch.no_grad()
def evaluate_scene_tokens(encoder: AlignedEncoder, data: SoundCaptionSet, seed: int = 0) -> dict[str, float]:
    """How often ``select_token`` picks the sounding object's word for the scene sounds of ``data``.

    Each scene clip (object word ``w``) gets a scene prompt of two to four objects that holds ``w``, drawn like a
    training scene's caption (colours, places, sky: every content word is a candidate), e.g. "a red car on the left
    beside a campfire at night". Returns ``scene_token_acc`` (share of clips whose chosen word is ``w``),
    ``scene_token_n`` (clips), ``scene_token_chance`` (the mean of 1 / number of candidate words) and
    ``scene_token_acc/<word>`` per word.

    Raises:
        ValueError: ``data`` holds no scene sound.
    """
    import numpy as np

    was_training = encoder.aligner.training
    encoder.aligner.eval()
    scene = [i for i, c in enumerate(data.combos) if c.timbre == "scene"]
    if not scene:
        raise ValueError("data holds no scene sounds (build it with per_scene_sound > 0)")
    hits: dict[str, list[bool]] = {}
    chance = []
    for i in scene:
        word = data.combos[i].word
        rng = np.random.default_rng([seed, i])
        prompt = sample_scene(rng, "train", include=word, count=int(rng.integers(2, 5))).caption
        choice = encoder.select_token(prompt, data.audio[i])
        hits.setdefault(word, []).append(choice.word.lower() == word)
        chance.append(1.0 / len({w.lower() for _, w in content_words(prompt)}))
    encoder.aligner.train(was_training)
    every = [h for word_hits in hits.values() for h in word_hits]
    out = {
        "scene_token_acc": float(np.mean(every)),
        "scene_token_n": float(len(every)),
        "scene_token_chance": float(np.mean(chance)),
    }
    out.update({f"scene_token_acc/{w}": float(np.mean(h)) for w, h in sorted(hits.items())})
    return out


def evaluate_checkpoint(checkpoint: str | Path, task_config: AlignTaskConfig | None = None) -> dict[str, float]:
    """Load a trained aligner (a folder or a bundled name) and evaluate it on its run's held-out test split."""

    model = AudioTextAligner.from_pretrained(checkpoint)
    folder = Path(checkpoint) if Path(checkpoint).is_dir() else bundled_path(str(checkpoint))
    # the run's settings: beside a run's final folder, or inside a shipped one (run_config.json)
    for run_config in (folder / "run_config.json", folder.parent / "config.json"):
        if task_config is None and run_config.is_file():
            task_config = AlignTaskConfig.from_dict(json.loads(run_config.read_text())["task"])
    task = AlignTask(task_config or AlignTaskConfig(text_model=model.config.text_model))
    return task.evaluate(model)
