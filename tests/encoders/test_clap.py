"""CLAP encoders, token selection and the CLAP score, offline.

Real CLAP weights are not available here, so the backends are exercised with random weights (laion-clap's own
architectures, and a tiny transformers ClapConfig), and token selection and scores are checked exactly with a small
encoder whose answers are known by construction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avdiff.audio.io import Waveform
from avdiff.encoders import AudioTextEncoder, HFClapEncoder, LaionClapEncoder, TokenChoice, content_words
from avdiff.encoders.base import STOPWORDS, pool_windows, repeat_pad, split_windows, window_starts
from avdiff.encoders.clap_laion import CLAP_WINDOW, quantize_int16
from avdiff.metrics import clap_score

from conftest import tone

SR = 48_000
WORDS = ["a dog barks in the park", "the sound of a whistle", "drum and bass music", "birds sing at dawn"]


def noise_clip(seconds: float, seed: int, sample_rate: int = SR) -> torch.Tensor:
    """Deterministic band-limited noise plus a tone, float32 [N]."""
    g = torch.Generator().manual_seed(seed)
    n = int(round(seconds * sample_rate))
    noise = torch.randn(n, generator=g) * 0.05
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    return (noise + 0.3 * torch.sin(2 * torch.pi * (300 + 100 * seed) * t).float()).float()


def harmonic_tone(seconds: float, sample_rate: int) -> Waveform:
    t = torch.arange(int(round(seconds * sample_rate)), dtype=torch.float64) / sample_rate
    x = sum(0.3 / k * torch.sin(2 * torch.pi * 440 * k * t) for k in range(1, 6)) * (
        1 + 0.5 * torch.sin(2 * torch.pi * 3 * t)
    )
    return Waveform(x.float()[None], sample_rate)


# --- fixtures: tiny offline models --------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _one_intra_op_thread():
    """One torch thread for this module. On a busy 2-core machine the two intra-op threads of each of the HTSAT's
    hundreds of small ops wait for each other's time slice: a 10 s window took 4.9 s with two threads against 0.5 s
    with one (measured at load average 4). Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import RobertaTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],  # roberta's ids 0..4
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(WORDS, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return RobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )


@pytest.fixture(scope="module")
def tokenizer():
    return _tiny_tokenizer()


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory, tokenizer):
    """A local 'roberta' folder: config (768-d, 1 layer, tiny vocab) and tokenizer, no weights."""
    from transformers import RobertaConfig

    path = tmp_path_factory.mktemp("tiny-roberta")
    RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=768,
        num_hidden_layers=1,
        num_attention_heads=12,
        intermediate_size=64,
        max_position_embeddings=80,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    ).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def laion(roberta_dir):
    """laion-clap HTSAT-tiny with the tiny local roberta as its text branch (the cheap build): the audio backend."""
    return LaionClapEncoder.random(tmodel="roberta", seed=0, text_model_dir=roberta_dir)


@pytest.fixture(scope="module")
def laion_clip_text():
    """laion-clap's default offline build: the CLIP-style "transformer" text branch and tokenizer."""
    return LaionClapEncoder.random()


def _tiny_hf(tokenizer, fusion: bool = False):
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    config = ClapConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=37,
            max_position_embeddings=80,
        ),
        # 16 mel bins and spec_size 128: freq_ratio 8, so the 1001 frames of 10 s fit the 1024-frame input.
        audio_config=dict(
            num_mel_bins=16,
            spec_size=128,
            window_size=8,
            patch_size=4,
            patch_stride=(4, 4),
            hidden_size=32,
            patch_embeds_hidden_size=16,
            depths=[1, 1],
            num_attention_heads=[2, 2],
            num_hidden_layers=2,
            enable_fusion=fusion,
            fusion_type="aff_2d" if fusion else None,
        ),
        projection_dim=24,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = ClapModel(config)
    extractor = ClapFeatureExtractor(feature_size=16, truncation="fusion" if fusion else "rand_trunc")
    return model, ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def hf_pair(tokenizer):
    model, processor = _tiny_hf(tokenizer)
    return model, processor


@pytest.fixture(scope="module")
def hf(hf_pair):
    return HFClapEncoder(*hf_pair)


@pytest.fixture(params=["laion", "hf"])
def backend(request):
    return request.getfixturevalue(request.param)


# --- a known encoder: answers by construction ---------------------------------------------------------------------


class ToneEncoder(AudioTextEncoder):
    """Known words map to orthogonal axes; a tone's frequency maps to a fixed mix of them.

    220 Hz -> "drum", 880 Hz -> "whistle", 440 Hz -> 0.8 "dog" + 0.6 "park", 660 Hz -> "dog" and "park" equally.
    Any other word -> the "other" axis. Texts map by their last word, so templates like "the sound of {word}" work.
    """

    AXES = ["drum", "whistle", "dog", "park", "bird", "other"]
    TONES = {220: {"drum": 1.0}, 880: {"whistle": 1.0}, 440: {"dog": 0.8, "park": 0.6}, 660: {"dog": 1.0, "park": 1.0}}

    def __init__(self, text_template: str = "{word}", sample_rate: int = 8000):
        super().__init__(sample_rate=sample_rate, text_template=text_template)
        self.texts_seen: list[str] = []

    @property
    def embedding_dim(self) -> int:
        return len(self.AXES)

    def _axis(self, name: str) -> torch.Tensor:
        return F.one_hot(torch.tensor(self.AXES.index(name)), len(self.AXES)).float()

    def embed_texts(self, texts):
        self.texts_seen.extend(texts)
        words = [t.split()[-1].lower() for t in texts]
        return torch.stack([self._axis(w if w in self.AXES else "other") for w in words])

    def embed_clips(self, clips):
        out = []
        for clip in clips:
            freq = int(round(float(torch.fft.rfft(clip).abs().argmax()) * self.sample_rate / clip.shape[0]))
            out.append(F.normalize(sum(w * self._axis(k) for k, w in self.TONES[freq].items()), dim=-1))
        return torch.stack(out)


@pytest.fixture(scope="module")
def known():
    return ToneEncoder()


# --- prompt words -------------------------------------------------------------------------------------------------


def test_content_words_drop_stopwords_and_punctuation():
    assert content_words("a dog and a whistle, in the park.") == [(1, "dog"), (4, "whistle"), (7, "park")]
    assert content_words("The dog's bark -- it's LOUD!") == [(1, "dog"), (2, "bark"), (5, "LOUD")]
    assert content_words("the and of a , 42") == []
    with pytest.raises(TypeError, match="prompt"):
        content_words(["a dog"])


def test_content_words_are_objects_never_places_directions_or_times():
    assert content_words("a campfire on the left beside a lake at night") == [(1, "campfire"), (7, "lake")]
    assert content_words("Rain in the background, a bell at the top, by Day.") == [(0, "Rain"), (5, "bell")]
    assert content_words("on the left at night") == []


def test_select_token_picks_the_word_nearest_the_audio(known):
    choice = known.select_token("a dog and a whistle in the park", tone(1.0, 8000, 880))
    assert choice == TokenChoice(
        word="whistle", index=4, score=1.0, candidates={"dog": 0.0, "whistle": 1.0, "park": 0.0}
    )
    choice = known.select_token("a dog and a whistle in the park", tone(1.0, 8000, 440))
    assert (choice.word, choice.index) == ("dog", 1)
    assert choice.candidates == pytest.approx({"dog": 0.8, "whistle": 0.0, "park": 0.6})
    drum = known.select_token("Drums: a drum, then a whistle.", tone(0.5, 8000, 220))
    assert (drum.word, drum.index, drum.score) == ("drum", 2, 1.0)
    assert "Drums" in drum.candidates  # a plural is its own word


def test_select_token_candidates_never_stopwords_and_ties_go_to_the_first(known):
    prompt = "there is a dog in the park and it is with the bird of some of them"
    choice = known.select_token(prompt, tone(1.0, 8000, 660))
    assert list(choice.candidates) == ["dog", "park", "bird"]
    assert not set(w.lower() for w in choice.candidates) & STOPWORDS
    assert (choice.word, choice.index) == ("dog", 3)  # dog and park tie: the earlier word wins
    repeated = known.select_token("park dog park", tone(1.0, 8000, 440))
    assert list(repeated.candidates) == ["park", "dog"] and (repeated.word, repeated.index) == ("dog", 1)


def test_select_token_template_and_errors(known):
    seen = len(known.texts_seen)
    choice = known.select_token("a whistle and a drum", tone(1.0, 8000, 220), text_template="the sound of {word}")
    assert choice.word == "drum"
    assert known.texts_seen[seen:] == ["the sound of whistle", "the sound of drum"]
    assert ToneEncoder(text_template="a {word}").text_template == "a {word}"
    with pytest.raises(ValueError, match="no content words"):
        known.select_token("the and of a in it", tone(1.0, 8000, 220))
    with pytest.raises(ValueError, match="no object a sound could belong to"):
        known.select_token("on the right by day", tone(1.0, 8000, 220))
    with pytest.raises(ValueError, match="one clip"):
        known.select_token("a drum", [tone(1.0, 8000, 220), tone(1.0, 8000, 880)])
    with pytest.raises(ValueError, match="text_template"):
        known.select_token("a drum", tone(1.0, 8000, 220), text_template="the sound of")
    with pytest.raises(ValueError, match="text_template"):
        ToneEncoder(text_template="{}")


def test_audio_inputs_are_normalised(known):
    stereo_16k = Waveform(tone(1.0, 16000, 880).samples.repeat(2, 1), 16000)
    assert known.mono_clips(stereo_16k)[0].shape == (8000,)
    batch = torch.stack([tone(1.0, 8000, 220).samples[0], tone(1.0, 8000, 880).samples[0]])
    assert torch.equal(known.embed_audio(batch), known.embed_audio([tone(1.0, 8000, 220), tone(1.0, 8000, 880)]))
    assert known.embed_audio(batch[0]).shape == (1, 6)
    with pytest.raises(ValueError, match="float"):
        known.mono_clips(torch.zeros(2, 10, dtype=torch.int16))
    with pytest.raises(ValueError, match="empty"):
        known.mono_clips([])
    with pytest.raises(TypeError, match=r"audio\[0\]"):
        known.mono_clips([np.zeros(10)])
    with pytest.raises(ValueError, match="no samples"):
        known.mono_clips([Waveform(torch.zeros(1, 0), 8000)])
    with pytest.raises(ValueError, match="sample_rate"):
        ToneEncoder(sample_rate=0)


def test_similarity_is_cosine(known):
    sim = known.similarity([tone(1.0, 8000, 220), tone(1.0, 8000, 440)], ["drum", "dog", "park"])
    assert sim.shape == (2, 3)
    assert torch.allclose(sim, torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.8, 0.6]]))


# --- clap_score ---------------------------------------------------------------------------------------------------


def test_clap_score_pairs(known):
    audio = [tone(1.0, 8000, 880), tone(1.0, 8000, 220), tone(1.0, 8000, 440)]
    scores = clap_score(audio, ["whistle", "whistle", "a dog"], encoder=known)
    assert isinstance(scores, np.ndarray) and scores.shape == (3,)
    np.testing.assert_allclose(scores, [1.0, 0.0, 0.8], atol=1e-6)
    single = clap_score(tone(1.0, 8000, 440), "park", encoder=known)
    assert isinstance(single, float) and single == pytest.approx(0.6)
    assert clap_score(tone(1.0, 8000, 440), ["park"], encoder=known).shape == (1,)
    with pytest.raises(ValueError, match="2 clips and 1 texts"):
        clap_score(audio[:2], ["whistle"], encoder=known)
    with pytest.raises(ValueError, match="pretrained"):
        clap_score(audio, ["whistle"] * 3)


@pytest.mark.slow
def test_clap_score_with_a_real_backend(hf):
    audio = torch.stack([noise_clip(2.0, 1), noise_clip(2.0, 2)])
    scores = clap_score(audio, WORDS[:2], encoder=hf)
    np.testing.assert_allclose(scores, torch.diagonal(hf.similarity(audio, WORDS[:2])).numpy(), atol=1e-6)
    assert np.all(np.abs(scores) <= 1.0 + 1e-6)


# --- windowing ----------------------------------------------------------------------------------------------------


def test_window_starts_tile_and_end_align():
    assert window_starts(25 * SR, CLAP_WINDOW) == [0, 480_000, 720_000]
    assert window_starts(20 * SR, CLAP_WINDOW) == [0, 480_000]
    assert window_starts(10 * SR, CLAP_WINDOW) == [0]
    assert window_starts(3, CLAP_WINDOW) == [0]
    with pytest.raises(ValueError, match="window"):
        window_starts(10, 0)
    with pytest.raises(ValueError, match="num_samples"):
        window_starts(0, 10)


def test_split_windows_and_repeat_pad():
    x = torch.arange(25, dtype=torch.float32)
    windows = split_windows(x, 10)
    assert windows.shape == (3, 10)
    assert torch.equal(windows[2], x[15:])
    short = split_windows(torch.tensor([1.0, 2.0, 3.0]), 8)
    assert torch.equal(short, torch.tensor([[1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 0.0, 0.0]]))
    assert torch.equal(repeat_pad(torch.tensor([1.0, 2.0]), 4), torch.tensor([1.0, 2.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="length"):
        repeat_pad(torch.ones(5), 4)
    with pytest.raises(ValueError, match="mono"):
        split_windows(torch.ones(2, 5), 4)
    pooled = pool_windows(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert torch.allclose(pooled, torch.tensor([1.0, 1.0]) / 2**0.5)
    with pytest.raises(ValueError, match="embeddings"):
        pool_windows(torch.zeros(0, 3))


@pytest.mark.slow
def test_quantize_int16_matches_laion():
    from laion_clap.training.data import float32_to_int16, int16_to_float32

    x = torch.linspace(-1.5, 1.5, 1001)
    assert torch.equal(quantize_int16(x), torch.from_numpy(int16_to_float32(float32_to_int16(x.numpy()))))


# --- both backends ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_embeddings_shapes_and_unit_norm(backend):
    audio = backend.embed_audio([Waveform(noise_clip(1.0, 1), SR), Waveform(noise_clip(3.0, 2), SR)])
    text = backend.embed_text(WORDS[:3])
    assert backend.sample_rate == SR
    assert audio.shape == (2, backend.embedding_dim) and text.shape == (3, backend.embedding_dim)
    assert audio.dtype == text.dtype == torch.float32
    assert torch.allclose(audio.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(text.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert backend.embed_text("a dog").shape == (1, backend.embedding_dim)
    assert not torch.allclose(text[0], text[1], atol=1e-3)
    with pytest.raises(ValueError, match="empty"):
        backend.embed_text([])
    with pytest.raises(TypeError, match=r"texts\[0\]"):
        backend.embed_text([3])


@pytest.mark.slow
def test_batch_equals_one_by_one(backend):
    clips = [Waveform(noise_clip(11.0, 4), SR), Waveform(noise_clip(2.0, 3), SR)]
    batched = backend.embed_audio(clips)
    single = torch.cat([backend.embed_audio(c) for c in clips])
    assert torch.allclose(batched, single, atol=1e-5)
    texts = backend.embed_text(WORDS)
    assert torch.allclose(texts, torch.cat([backend.embed_text(t) for t in WORDS]), atol=1e-5)


@pytest.mark.slow
def test_long_audio_is_deterministic_and_the_mean_of_its_windows(backend):
    x = noise_clip(25.0, 6)
    first = backend.embed_audio(x)
    assert torch.equal(first, backend.embed_audio(x))  # no random crop: laion-clap's own path differs call to call
    windows = split_windows(x, CLAP_WINDOW)
    assert windows.shape == (3, CLAP_WINDOW)
    per_window = backend.embed_audio(windows)  # each exact window embeds as itself
    assert torch.allclose(first[0], pool_windows(per_window), atol=1e-6)
    assert not torch.allclose(per_window[0], per_window[1], atol=1e-3)  # the windows really differ


@pytest.mark.slow
def test_resampled_input_matches_native_rate(backend):
    native = backend.embed_audio(harmonic_tone(3.0, SR))
    from_16k = backend.embed_audio(harmonic_tone(3.0, 16_000))
    assert float(native[0] @ from_16k[0]) > 0.999


# --- laion-clap specifics -----------------------------------------------------------------------------------------


def test_laion_text_branch_from_local_roberta(laion, tokenizer):
    text = laion.embed_text(WORDS)
    assert text.shape == (4, 512) and torch.allclose(text.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert len(laion.clap.tokenize) == len(tokenizer)  # our tokenizer, not laion-clap's roberta-base
    assert laion.clap.tokenizer(["a dog"])["input_ids"].shape == (1, 77)
    branch = laion.clap.model.text_branch
    assert type(branch).__name__ == "RobertaModel"
    assert branch.config.hidden_size == 768 and branch.config.num_hidden_layers == 1
    # laion-clap's hub loaders are restored after the build
    import clap_module.model as laion_model
    import laion_clap.hook as hook
    from transformers import RobertaModel, RobertaTokenizer

    assert laion_model.RobertaModel is RobertaModel and hook.RobertaTokenizer is RobertaTokenizer


@pytest.mark.slow
def test_laion_clip_text_branch(laion_clip_text):
    assert laion_clip_text.clap.tokenize is None and laion_clip_text.tmodel == "transformer"
    text = laion_clip_text.embed_text(WORDS[:2])  # 12 layers x 77 tokens: keep it to two texts
    assert text.shape == (2, laion_clip_text.embedding_dim) == (2, 512)
    assert torch.allclose(text.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(text[0], text[1], atol=1e-3)


@pytest.mark.slow
def test_laion_checkpoint_round_trip_and_published_names(laion, roberta_dir, tmp_path):
    state = {f"module.{k}": v for k, v in laion.clap.model.state_dict().items()}
    state["module.text_branch.embeddings.position_ids"] = torch.arange(80)[None]  # saved by older transformers
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--lukewys--laion_clap"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    torch.save({"epoch": 3, "state_dict": state}, repo / "snapshots" / commit / "630k-audioset-best.pt")

    loaded = LaionClapEncoder.from_pretrained(
        "630k-audioset-best", text_model_dir=roberta_dir, cache_dir=tmp_path / "hub"
    )
    assert (loaded.amodel, loaded.tmodel, loaded.enable_fusion) == ("HTSAT-tiny", "roberta", False)
    assert torch.equal(loaded.embed_text(WORDS), laion.embed_text(WORDS))
    clip = noise_clip(2.0, 7)
    assert torch.equal(loaded.embed_audio(clip), laion.embed_audio(clip))


def test_laion_from_pretrained_dispatch(monkeypatch, tmp_path):
    """Which checkpoint and architecture from_pretrained hands to from_checkpoint (without building a model)."""
    calls = []
    monkeypatch.setattr(
        LaionClapEncoder, "from_checkpoint", classmethod(lambda cls, path, **kw: calls.append((path, kw)))
    )
    music = tmp_path / "music_audioset_epoch_15_esc_90.14.pt"
    mine = tmp_path / "mine.pt"
    music.write_bytes(b"")
    mine.write_bytes(b"")
    LaionClapEncoder.from_pretrained(music, text_model_dir="rb", text_template="the sound of {word}")
    LaionClapEncoder.from_pretrained(str(mine), enable_fusion=True)
    LaionClapEncoder.from_pretrained(music, amodel="HTSAT-tiny")
    assert calls[0] == (
        music,
        dict(
            amodel="HTSAT-base",
            tmodel="roberta",
            enable_fusion=False,
            text_model_dir="rb",
            device=None,
            trust_checkpoint=False,
            text_template="the sound of {word}",
        ),
    )
    assert (calls[1][0], calls[1][1]["amodel"], calls[1][1]["enable_fusion"]) == (mine, "HTSAT-tiny", True)
    assert calls[2][1]["amodel"] == "HTSAT-tiny"


@pytest.mark.slow
def test_laion_checkpoint_that_does_not_fit_is_refused_untouched(laion, laion_clip_text, tmp_path):
    path = tmp_path / "roberta.pt"
    torch.save({"state_dict": laion.clap.model.state_dict()}, path)
    model = laion_clip_text.clap.model
    before = model.audio_projection[0].weight.clone()
    with pytest.raises(ValueError, match="does not fit .*tmodel='transformer'"):
        laion_clip_text.load_checkpoint(path)
    assert torch.equal(model.audio_projection[0].weight, before)  # nothing was copied, not even matching keys
    empty = tmp_path / "empty.pt"
    torch.save({}, empty)
    with pytest.raises(ValueError, match="no state dict"):
        laion_clip_text.load_checkpoint(empty)


class _Touch:
    """Unpickling this runs code: it creates the file ``path`` (what a malicious checkpoint would do)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.slow
def test_laion_checkpoints_load_without_unpickling_code(laion, laion_clip_text, tmp_path):
    state = laion.clap.model.state_dict()
    # A training checkpoint as laion-clap's scripts write it: epoch, name, optimizer state, a numpy metric.
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))])
    opt.step()
    full = tmp_path / "training.pt"
    torch.save(
        {
            "epoch": np.int64(3),
            "name": "run",
            "best_map": np.float64(0.41),
            "optimizer": opt.state_dict(),
            "state_dict": {f"module.{k}": v for k, v in state.items()},
        },
        full,
    )
    plain = tmp_path / "plain.pt"
    torch.save(state, plain)
    for path in (plain, full):
        before = {k: v.clone() for k, v in laion.clap.model.state_dict().items()}
        laion.load_checkpoint(path)
        assert all(torch.equal(v, before[k]) for k, v in laion.clap.model.state_dict().items())

    pwned = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": state, "hook": _Touch(pwned)}, evil)
    with pytest.raises(ValueError, match=r"getattr.*could run code.*trust_checkpoint=True"):
        laion_clip_text.load_checkpoint(evil)
    assert not pwned.exists()  # refused before anything ran
    odd = tmp_path / "odd.pt"  # an object that is harmless but not data (an argparse.Namespace of hyperparameters)
    import argparse

    torch.save({"state_dict": state, "args": argparse.Namespace(lr=1e-4)}, odd)
    with pytest.raises(ValueError, match="argparse.Namespace"):
        laion.load_checkpoint(odd)
    laion.load_checkpoint(odd, trust_checkpoint=True)  # the caller vouches for the file: loads
    with pytest.raises(ValueError, match="trust_checkpoint"):
        LaionClapEncoder.from_checkpoint(evil, tmodel="transformer")
    assert not pwned.exists()


def test_laion_weights_missing_offline_give_clear_errors(tmp_path, roberta_dir, tokenizer):
    with pytest.raises(
        FileNotFoundError, match=r"huggingface.co/lukewys/laion_clap/resolve/main/630k-audioset-best.pt"
    ):
        LaionClapEncoder.from_pretrained("630k-audioset-best", cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a checkpoint file nor a published"):
        LaionClapEncoder.from_pretrained("no-such-clap")
    with pytest.raises(FileNotFoundError, match="no laion-clap checkpoint"):
        LaionClapEncoder.from_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(OSError, match="text_model_dir"):  # roberta-base's config/tokenizer are not on this machine
        LaionClapEncoder.random(tmodel="roberta")
    with pytest.raises(ValueError, match="tmodel"):
        LaionClapEncoder.random(tmodel="gpt")
    with pytest.raises(ValueError, match="amodel='HTSAT-huge'"):
        LaionClapEncoder.random(amodel="HTSAT-huge")
    with pytest.raises(ValueError, match="text_model_dir"):
        LaionClapEncoder.random(tmodel="transformer", text_model_dir=roberta_dir)
    from transformers import RobertaConfig

    narrow = tmp_path / "narrow"
    RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2
    ).save_pretrained(narrow)
    tokenizer.save_pretrained(narrow)
    with pytest.raises(ValueError, match="hidden_size=32"):
        LaionClapEncoder.random(tmodel="roberta", text_model_dir=narrow)


@pytest.mark.slow
def test_laion_fusion_model_is_deterministic(roberta_dir):
    fused = LaionClapEncoder.random(
        tmodel="roberta", text_model_dir=roberta_dir, enable_fusion=True, seed=1, batch_size=1
    )
    assert fused.clap.model.audio_branch.enable_fusion
    x = noise_clip(3.0, 8)
    first = fused.embed_audio(x)
    assert first.shape == (1, 512) and abs(float(first.norm()) - 1) < 1e-5
    assert torch.equal(first, fused.embed_audio(x))


def test_batch_size_validated(laion, hf_pair):
    with pytest.raises(ValueError, match="batch_size"):
        LaionClapEncoder(laion.clap, batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        HFClapEncoder(*hf_pair, batch_size=0)


# --- transformers specifics ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_hf_round_trip_reproduces_embeddings(hf, hf_pair, tmp_path):
    model, processor = hf_pair
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = HFClapEncoder.from_pretrained(tmp_path)
    assert loaded.embedding_dim == hf.embedding_dim == 24
    audio = [Waveform(noise_clip(2.0, 9), SR), Waveform(noise_clip(11.0, 10), SR)]
    batched = loaded.embed_audio(audio)
    assert torch.equal(batched, hf.embed_audio(audio))
    assert torch.allclose(batched, torch.cat([hf.embed_audio(a) for a in audio]), atol=1e-5)
    assert torch.equal(loaded.embed_text(WORDS), hf.embed_text(WORDS))


def test_hf_fusion_model_ignores_the_extractor_random_longer_flag(tokenizer):
    fused = HFClapEncoder(*_tiny_hf(tokenizer, fusion=True))
    clips = [Waveform(noise_clip(3.0, 11), SR), Waveform(noise_clip(4.0, 12), SR)]
    state = np.random.get_state()
    first = fused.embed_audio(clips)
    after = np.random.get_state()
    assert all(np.array_equal(a, b) for a, b in zip(state[1:3], after[1:3]))  # global numpy RNG untouched
    for _ in range(3):  # the extractor marks a random clip "longer"; without the override these would differ
        assert torch.equal(first, fused.embed_audio(clips))


def test_hf_unknown_hub_id_offline_gives_clear_error():
    with pytest.raises(OSError, match="cannot load a CLAP model from name_or_path='laion/clap-htsat-unfused'"):
        HFClapEncoder.from_pretrained("laion/clap-htsat-unfused")
