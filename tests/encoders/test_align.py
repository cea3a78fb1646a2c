"""The contrastive aligner: loss, retrieval metric, the synthetic set, and real training to MiniLM's space."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from avdiff.cli import main
from avdiff.data.sound_captions import build_sound_captions, split_combos
from avdiff.encoders.alignment import AlignerConfig, AudioTextAligner, info_nce, pool_tokens
from avdiff.metrics.retrieval import retrieval_recall


def test_info_nce_prefers_matched_pairs_and_handles_shared_captions():
    e = torch.nn.functional.normalize(torch.randn(6, 16), dim=-1)
    scale = torch.tensor(20.0)
    matched = info_nce(e, e, scale)
    shuffled = info_nce(e, e[torch.randperm(6)], scale)
    assert matched < 0.1 < shuffled
    # two clips of one content with paraphrased captions: with `same`, they are not pushed apart
    base = torch.randn(16)
    near = lambda: torch.nn.functional.normalize(base + 0.05 * torch.randn(16), dim=0)  # noqa: E731
    audio, text = e.clone(), e.clone()
    audio[0], audio[1], text[0], text[1] = near(), near(), near(), near()
    same = torch.eye(6, dtype=torch.bool)
    same[0, 1] = same[1, 0] = True
    assert info_nce(audio, text, scale, same) < info_nce(audio, text, scale) - 0.1


def test_retrieval_recall_against_known_rankings():
    text = torch.eye(4)
    audio = torch.eye(4)[[0, 0, 1, 2, 3, 3]]
    keys_t = ["a", "b", "c", "d"]
    perfect = retrieval_recall(audio, ["a", "a", "b", "c", "d", "d"], text, keys_t, ks=(1,))
    assert perfect["a2t_r@1"] == 1.0 and perfect["t2a_r@1"] == 1.0
    wrong = retrieval_recall(audio, ["b", "b", "c", "d", "a", "a"], text, keys_t, ks=(1,))
    assert wrong["a2t_r@1"] == 0.0
    assert perfect["chance_a2t_r@1"] == 0.25 and perfect["chance_t2a_r@1"] == pytest.approx(
        (2 / 6 + 1 / 6 + 1 / 6 + 2 / 6) / 4
    )
    with pytest.raises(ValueError, match="without a caption"):
        retrieval_recall(audio, ["a", "a", "b", "c", "d", "z"], text, keys_t)


def test_held_out_combinations_are_unseen_but_their_attributes_are_not():
    train, test = set(split_combos("train")), set(split_combos("test"))
    assert not train & test and len(test) == 20
    sounds = [c for c in train if c.timbre != "speech"]
    for c in test:
        if c.timbre == "speech":
            assert any(t.word == c.word for t in train) and any(t.speaker == c.speaker for t in train)
        else:
            for attr in ("timbre", "pitch", "rhythm", "envelope"):
                assert any(getattr(t, attr) == getattr(c, attr) for t in sounds)


@pytest.mark.slow
def test_scene_sounds_hold_out_seeds_and_a_loudness_family():
    from avdiff.data.scenes import SOUNDING
    from avdiff.data.sound_captions import SCENE_CAPTIONS, scene_combos

    train, test = scene_combos("train"), scene_combos("test")
    assert {c.word for c in train} == {c.word for c in test} == set(SOUNDING) == set(SCENE_CAPTIONS)
    assert not {c.envelope for c in train} & {c.envelope for c in test}
    for word, captions in SCENE_CAPTIONS.items():
        assert word in captions  # the bare object word is a training caption
        assert word in captions[0].split()  # the held-out clips are retrieved by a caption naming the object
    plain = build_sound_captions("test", 1, 0)
    with_scenes = build_sound_captions("test", 1, 0, per_scene_sound=2)
    assert torch.equal(with_scenes.audio[: len(plain)], plain.audio)  # adding scene sounds changes no other clip
    scene = [i for i, c in enumerate(with_scenes.combos) if c.timbre == "scene"]
    assert len(scene) == 16 and with_scenes.captions[scene[0]] == SCENE_CAPTIONS[with_scenes.combos[scene[0]].word][0]
    again = build_sound_captions("test", 1, 0, per_scene_sound=2)
    assert torch.equal(again.audio, with_scenes.audio)
    train_set = build_sound_captions("train", 0, 0, per_scene_sound=1)
    assert not any(torch.equal(a, b) for a in train_set.audio for b in with_scenes.audio[scene])


@pytest.mark.requires_espeak  # the set includes spoken words
def test_synthetic_sounds_have_their_attributes():
    import numpy as np

    data = build_sound_captions("train", 1, 0)
    rms = lambda x: float(np.sqrt((x**2).mean()))  # noqa: E731
    spectrum_peak_hz = lambda x: np.argmax(np.abs(np.fft.rfft(x))) / 2  # noqa: E731  (0.5 Hz bins over 2 s)
    for combo, clip in zip(data.combos, data.audio.numpy()):
        if combo.timbre == "speech":
            continue
        first, last = rms(clip[:8000]), rms(clip[-8000:])
        if combo.envelope == "rising":
            assert last > 2 * first, combo
        elif combo.envelope == "falling":
            assert first > 2 * last, combo
        if combo.timbre == "whistle":
            peak = spectrum_peak_hz(clip)
            assert (peak < 200) if combo.pitch == "low" else (peak > 700), combo


def test_aligner_shapes_save_and_load(tmp_path):
    model = AudioTextAligner(AlignerConfig(width=64, num_tokens=3)).eval()
    out = model(torch.randn(2, 32000))
    assert out.embedding.shape == (2, 384) and out.tokens.shape == (2, 3, 384)
    assert torch.allclose(out.embedding.norm(dim=-1), torch.ones(2))
    model.save_pretrained(tmp_path)
    again = AudioTextAligner.from_pretrained(tmp_path)
    x = torch.randn(1, 32000)
    assert torch.equal(model(x).embedding, again(x).embedding)
    with pytest.raises(FileNotFoundError, match="no aligner"):
        AudioTextAligner.from_pretrained(tmp_path / "nothing")


def test_pool_tokens_respects_the_mask():
    tokens = torch.arange(12.0).reshape(1, 6, 2)
    mask = torch.tensor([[True, True, True, True, False, False]])
    assert pool_tokens(tokens, mask, 2).tolist() == [[[1.0, 2.0], [5.0, 6.0]]]


@pytest.mark.slow
@pytest.mark.requires_espeak
def test_train_then_eval_align_beats_chance_five_times(tmp_path, capsys):
    """A short real run against pretrained MiniLM: held-out R@1 must reach 5x chance, and eval must reproduce it."""
    config = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "configs" / "train" / "align_tiny.yaml").read_text()
    )
    config["trainer"].update(
        output_dir=str(tmp_path / "run"), max_steps=250, batch_size=32, checkpoint_every=0, eval_every=0, log_every=50
    )
    config["task"].update(
        per_sound_combo=8,
        per_speech_combo=3,
        test_per_sound_combo=3,
        test_per_speech_combo=2,
        per_scene_sound=4,
        test_per_scene_sound=4,
    )
    path = tmp_path / "align.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", "align", "--config", str(path), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", "align", "--checkpoint", str(tmp_path / "run" / "final"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_text"] == 20 + 8  # 12 sound combinations, 8 word-voice pairs, 8 scene words
    assert result["a2t_r@1"] >= 5 * result["chance_a2t_r@1"]
    # SHORT-TRAINING BOUND (250 steps, 4 recordings per word and loudness family): select_token picks the sounding
    # object's word for >= 80 % of the 32 held-out scene sounds (unseen seeds, an unseen loudness family) in scene
    # prompts of 2-4 objects. Only the prompt's objects are candidates (places and times of day are not), so chance is
    # about 0.29. The shipped recipe's number (>= 90 %) is in docs/benchmarks.md.
    assert result["scene_token_n"] == 32 and result["scene_token_chance"] < 0.35
    assert result["scene_token_acc"] >= 0.8
    assert result["t2a_r@1"] >= 5 * result["chance_t2a_r@1"]
    assert main(["eval", "align", "--checkpoint", str(tmp_path / "run" / "final"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == result  # deterministic

    # the trained aligner behind the AudioTextEncoder interface picks the prompt word its sound belongs to
    from avdiff.data.sound_captions import SoundCombo, synthesize
    from avdiff.encoders import AlignedEncoder

    encoder = AlignedEncoder.from_pretrained(tmp_path / "run" / "final")
    import numpy as np

    bell = torch.from_numpy(synthesize(SoundCombo("bell", "high", "slow", "steady"), np.random.default_rng(7)))
    choice = encoder.select_token("a whistle, a drum and a bell", bell)
    assert choice.word == "bell", choice.candidates
    assert encoder.audio_tokens(bell).shape == (1, 4, 384)
