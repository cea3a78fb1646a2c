"""AudioScenePipeline (AADiff) on the tiny text-to-video model with random weights: what must hold mechanically.

64 px, 3 DDIM steps, sounds of 1.5 s at 8 fps (12 frames). With random weights the picture means nothing, so these
tests check the mechanism: strength 0 is the base frame bit for bit, frames with equal levels are equal, the change
from the base is zero at level 0 and grows with the level, shared and naive renders agree, each sound drives its own
word, the word choice follows the encoder, and the clip's length follows the sound.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avdiff.audio.io import Waveform, load_audio
from avdiff.audio.scene_sounds import scene_sound
from avdiff.demo.examples import example_files
from avdiff.encoders.base import AudioTextEncoder
from avdiff.pipelines import AudioScenePipeline, TextToVideoPipeline

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread for the module

PROMPT = "a campfire beside a lake at night"
SR = 16000
STEPS = 3


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def stepped(levels: list[float], freq_hz: float = 330.0, seconds_each: float = 0.25) -> Waveform:
    """A tone whose amplitude holds each value of ``levels`` for ``seconds_each`` (2 frames at 8 fps)."""
    env = np.repeat(levels, int(seconds_each * SR))
    t = np.arange(len(env)) / SR
    return Waveform(torch.tensor(np.sin(2 * np.pi * freq_hz * t) * env, dtype=torch.float32), SR)


CRACKLE = stepped([0.0, 0.3, 1.0, 0.3, 0.0, 1.0])  # 1.5 s: levels 0, mid, top, mid, 0, top
WAVES = stepped([1.0, 0.0, 0.0, 0.6, 1.0, 0.0], freq_hz=880.0)


@pytest.fixture(scope="module")
def t2v() -> TextToVideoPipeline:
    p = TextToVideoPipeline.from_preset("tiny", seed=0)
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def pipe(t2v) -> AudioScenePipeline:
    p = AudioScenePipeline(t2v, audio_text_encoder=ToneEncoder())
    p.set_progress_bar_config(disable=True)
    return p


class ToneEncoder(AudioTextEncoder):
    """An encoder built to know the answer: a 330 Hz tone is "campfire", an 880 Hz tone is "lake" (one-hot
    embeddings from the strongest FFT bin and from the word)."""

    WORDS = {"campfire": 0, "lake": 1}

    def __init__(self):
        super().__init__(SR)

    @property
    def embedding_dim(self) -> int:
        return 3

    def embed_clips(self, clips) -> torch.Tensor:
        out = []
        for clip in clips:
            peak_hz = torch.fft.rfft(clip).abs().argmax().item() * SR / len(clip)
            out.append(torch.eye(3)[0 if abs(peak_hz - 330) < 20 else 1 if abs(peak_hz - 880) < 20 else 2])
        return torch.stack(out)

    def embed_texts(self, texts) -> torch.Tensor:
        return torch.stack([torch.eye(3)[self.WORDS.get(t, 2)] * 0.8 + 0.1 for t in texts])


def change(frames: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Mean absolute difference of each frame from the base frame [F]."""
    return np.abs(frames.astype(np.int16) - base.astype(np.int16)).mean(axis=(1, 2, 3))


@pytest.fixture(scope="module")
def scene(pipe):
    return pipe(PROMPT, CRACKLE, target_words="campfire", strength=3.0, num_inference_steps=STEPS, generator=gen())


@pytest.mark.slow
def test_strength_zero_gives_the_base_frame_bit_for_bit(pipe, t2v):
    out = pipe(PROMPT, CRACKLE, target_words="campfire", strength=0.0, num_inference_steps=STEPS, generator=gen())
    plain = t2v(PROMPT, num_frames=1, num_inference_steps=STEPS, generator=gen(), shared_frame_noise=True).frames[0]
    assert out.num_rendered == 1
    assert out.levels.any()  # the sound was not silent: the control was there, at zero strength
    assert all(np.array_equal(frame, plain) for frame in out.frames)
    assert np.array_equal(out.base_frame, plain)


@pytest.mark.slow
def test_change_from_the_base_follows_the_level(scene):
    level, d = scene.levels[0], change(scene.frames, scene.base_frame)
    assert set(level.tolist()) >= {0, scene.num_levels - 1} and len(set(level.tolist())) >= 3
    assert np.all(d[level == 0] == 0)  # no sound, no change
    assert np.all(d[level > 0] > 0)
    for value in set(level.tolist()):  # equal levels: the same frame
        same = scene.frames[level == value]
        assert all(np.array_equal(f, same[0]) for f in same)
    by_level = [d[level == v][0] for v in sorted(set(level.tolist()))]
    assert all(a < b for a, b in zip(by_level, by_level[1:]))  # monotone in the level
    assert np.corrcoef(d, scene.control[0])[0, 1] > 0.9
    assert scene.num_rendered == len(set(level.tolist())) < len(level)


@pytest.mark.slow
def test_a_crackle_under_a_known_loudness_curve_moves_the_frames_with_that_curve(pipe):
    from avdiff.bench.audio_scene import crackle

    sound, envelope = crackle(4.0, fps=8, seed=3)  # the truth: the envelope the crackle was made with
    out = pipe(PROMPT, sound, target_words="campfire", strength=3.0, num_inference_steps=STEPS, generator=gen())
    d = change(out.frames, out.base_frame)
    assert len(d) == len(envelope) == 32
    r = np.corrcoef(d, envelope)[0, 1]
    print(f"r(change from the base frame, known loudness curve) = {r:.3f}; {out.num_rendered} renders for 32 frames")
    assert r >= 0.8


@pytest.mark.slow
def test_shared_renders_give_the_naive_frames(pipe, scene):
    naive = pipe(
        PROMPT,
        CRACKLE,
        target_words="campfire",
        strength=3.0,
        num_inference_steps=STEPS,
        generator=gen(),
        share_levels=False,
    )
    assert naive.num_rendered == 1 + len(naive.frames) > scene.num_rendered
    # batches of different makeup round differently in float32: at most one grey level apart
    assert np.abs(naive.frames.astype(np.int16) - scene.frames).max() <= 1
    one = AudioScenePipeline(pipe.t2v, render_batch_size=1)
    one.set_progress_bar_config(disable=True)
    shared = one(PROMPT, CRACKLE, target_words="campfire", strength=3.0, num_inference_steps=STEPS, generator=gen())
    naive = one(
        PROMPT,
        CRACKLE,
        target_words="campfire",
        strength=3.0,
        num_inference_steps=STEPS,
        generator=gen(),
        share_levels=False,
    )
    assert np.array_equal(shared.frames, naive.frames)  # one render per batch: bit for bit


@pytest.mark.slow
def test_a_silent_sound_moves_nothing_and_says_so(pipe, caplog):
    silence = Waveform(torch.zeros(1, SR), SR)
    with caplog.at_level("WARNING"):
        out = pipe(PROMPT, silence, target_words="lake", strength=3.0, num_inference_steps=STEPS, generator=gen())
    assert "audio[0] is silent (no rms signal): it does not move 'lake'" in caplog.text
    assert out.num_rendered == 1 and len(out.frames) == 8
    assert all(np.array_equal(f, out.base_frame) for f in out.frames)


def test_a_split_word_drives_all_its_token_pieces(pipe):
    tokens = pipe.t2v.tokenize(PROMPT)
    [target] = pipe.choose_targets(PROMPT, [CRACKLE], ["campfire"])
    assert [tokens.tokens[i] for i in target.positions] == ["camp", "##fire"]
    scales = pipe.token_scales(np.array([[0], [15]]), [target], strength=2.0, num_levels=16, cfg=True)
    assert scales.shape == (4, pipe.t2v.config.max_text_length)
    assert torch.all(scales[:3] == 1)  # the uncond half, and the level-0 video
    assert scales[3, target.positions].tolist() == [3.0, 3.0]
    assert np.all(np.delete(scales[3].numpy(), target.positions) == 1)


def test_target_words_that_are_not_in_the_prompt_fail_before_any_work(pipe):
    with pytest.raises(ValueError, match=r"target_words\[0\]: word 'volcano' is not in the prompt"):
        pipe(PROMPT, CRACKLE, target_words="volcano", num_inference_steps=STEPS)
    with pytest.raises(ValueError, match="target_words\\[0\\]: word 'camp' is not in the prompt"):
        pipe(PROMPT, CRACKLE, target_words="camp", num_inference_steps=STEPS)  # a piece of a word is not a word
    with pytest.raises(ValueError, match="one word \\(or None\\) per sound: 2 sound"):
        pipe(PROMPT, [CRACKLE, WAVES], target_words="campfire", num_inference_steps=STEPS)
    for kwargs, message in [
        ({"signal": "loud"}, "signal must be one of"),
        ({"strength": -1}, "strength must be"),
        ({"smoothing_s": float("nan")}, "smoothing_s must be"),
        ({"levels": 1}, "levels must be"),
        ({"audio": []}, "empty list"),
        ({"fps": 0}, "fps"),
    ]:
        call = {"audio": CRACKLE, **kwargs}
        with pytest.raises(ValueError, match=message):
            pipe(PROMPT, call.pop("audio"), target_words=None, num_inference_steps=STEPS, **call)
    with pytest.raises(ValueError, match="NaN"):
        pipe(PROMPT, Waveform(torch.full((1, 800), float("nan")), SR), target_words="lake", num_inference_steps=STEPS)


def test_an_encoder_that_knows_the_answer_chooses_the_word(pipe):
    targets = pipe.choose_targets(PROMPT, [CRACKLE, WAVES])
    assert [t.word for t in targets] == ["campfire", "lake"]
    assert all(t.chosen_by == "encoder" for t in targets)
    assert list(targets[0].candidates) == ["campfire", "lake"]  # every object of the prompt, in order; never "night"
    assert targets[0].score == targets[0].candidates["campfire"] == max(targets[0].candidates.values())
    assert targets[1].candidates["lake"] > targets[1].candidates["campfire"]
    user = pipe.choose_targets(PROMPT, [CRACKLE], ["night"])[0]  # the user's word overrides the choice
    assert (user.word, user.chosen_by, user.candidates) == ("night", "user", {})


def test_a_sound_that_matches_no_object_of_the_prompt_says_so(t2v, caplog):
    """With the bundled scene aligner: a crackle matches "campfire"; the demo's example speech matches nothing (it
    chose "left", a place, before places left the candidates) and its target says so, with a logged warning."""
    pipe = AudioScenePipeline(t2v)  # the bundled scene aligner, with its measured threshold
    crackle = Waveform(scene_sound("crackle", np.linspace(0.1, 1.0, 16).astype(np.float32), fps=8, seed=3), SR)
    speech = load_audio(example_files()[1])
    with caplog.at_level("WARNING", logger="avdiff.pipelines.audio_scene.pipeline_audio_scene"):
        fire, voice = pipe.choose_targets("a campfire on the left beside a lake at night", [crackle, speech])
    assert (fire.word, fire.matched) == ("campfire", True) and fire.score >= pipe.min_word_score
    assert list(voice.candidates) == ["campfire", "lake"] and voice.word in voice.candidates
    assert not voice.matched and voice.score < pipe.min_word_score
    assert "audio[1] matches no object of the prompt" in caplog.text and "audio[0]" not in caplog.text
    assert AudioScenePipeline(t2v, audio_text_encoder=ToneEncoder()).min_word_score is None  # its own scale


@pytest.mark.slow
def test_callback_on_step_end_sees_every_step_of_every_batch(pipe):
    seen = []

    def on_step(p, i, t, tensors):
        seen.append((p.batch_index, i, p.num_batches, p.num_timesteps))
        return tensors

    out = pipe(
        PROMPT,
        CRACKLE,
        target_words="campfire",
        num_inference_steps=STEPS,
        generator=gen(),
        callback_on_step_end=on_step,
    )
    batches = seen[0][2]
    assert batches >= 1 and seen == [(b, i, batches, STEPS) for b in range(batches) for i in range(STEPS)]
    plain = pipe(PROMPT, CRACKLE, target_words="campfire", num_inference_steps=STEPS, generator=gen())
    assert np.array_equal(out.frames, plain.frames)  # returning the tensors unchanged changes nothing
    with pytest.raises(ValueError, match="callback_on_step_end must be callable"):
        pipe(PROMPT, CRACKLE, target_words="campfire", num_inference_steps=STEPS, callback_on_step_end="print")


@pytest.mark.slow
def test_two_sounds_drive_two_words_each_with_its_own_curve(pipe):
    both = pipe(PROMPT, [CRACKLE, WAVES], strength=3.0, num_inference_steps=STEPS, generator=gen())
    assert [t.word for t in both.targets] == ["campfire", "lake"]
    fire = pipe(PROMPT, CRACKLE, target_words="campfire", strength=3.0, num_inference_steps=STEPS, generator=gen())
    lake = pipe(PROMPT, WAVES, target_words="lake", strength=3.0, num_inference_steps=STEPS, generator=gen())
    assert np.array_equal(both.levels, np.stack([fire.levels[0], lake.levels[0]]))
    assert np.corrcoef(both.control)[0, 1] < 0.5  # two different curves
    only_fire, only_lake = both.levels[1] == 0, both.levels[0] == 0
    assert only_fire.any() and only_lake.any() and (~only_fire & ~only_lake).any()
    # where one sound is silent, the frame is the other sound's alone (one grey level for batch rounding)
    assert np.abs(both.frames[only_fire].astype(np.int16) - fire.frames[only_fire]).max() <= 1
    assert np.abs(both.frames[only_lake].astype(np.int16) - lake.frames[only_lake]).max() <= 1
    both_on = ~only_fire & ~only_lake
    assert np.abs(both.frames[both_on].astype(np.int16) - fire.frames[both_on]).max() > 1
    assert both.audio.num_samples == CRACKLE.num_samples  # the mix


@pytest.mark.slow
def test_frame_count_and_the_mp4_follow_the_sound(pipe, tmp_path):
    from avdiff.video.reader import VideoReader

    sound = stepped([0.2, 1.0, 0.5, 0.8, 0.1], seconds_each=0.26)  # 1.3 s
    out = pipe(
        PROMPT, sound, target_words="campfire", fps=10, num_inference_steps=1, guidance_scale=1.0, generator=gen()
    )
    assert abs(len(out.frames) - round(sound.duration_s * 10)) <= 1 and out.fps == 10
    path = out.save(tmp_path / "scene.mp4")
    streamed = pipe(
        PROMPT,
        sound,
        target_words="campfire",
        fps=10,
        num_inference_steps=1,
        guidance_scale=1.0,
        generator=gen(),
        output_path=tmp_path / "streamed.mp4",
    )
    assert streamed.frames is None and streamed.num_frames == len(out.frames)
    for file in (path, streamed.path):
        with VideoReader(file) as video:
            count = sum(1 for _ in video)
            audio_s = video.audio.duration_s
        assert count == len(out.frames)
        assert abs(audio_s - sound.duration_s) < 1 / 10 + 0.03  # the clip holds the sound (padded to the last frame)


@pytest.mark.slow
def test_an_image_is_inverted_and_held_at_strength_zero(pipe):
    import skimage.data

    picture = skimage.data.astronaut()[::8, ::8][:64, :64]
    out = pipe(
        PROMPT,
        CRACKLE,
        target_words="campfire",
        image=picture,
        strength=0.0,
        guidance_scale=1.0,
        num_inference_steps=STEPS,
    )
    assert all(np.array_equal(f, out.base_frame) for f in out.frames)
    assert out.image_psnr is not None and np.isfinite(out.image_psnr)
    noise = pipe(
        PROMPT,
        CRACKLE,
        target_words="campfire",
        strength=0.0,
        guidance_scale=1.0,
        num_inference_steps=STEPS,
        generator=gen(),
    )
    from avdiff.pipelines.audio_scene.inversion import reconstruction_psnr

    print(
        f"DDIM inversion, random tiny model, {STEPS} steps: PSNR {out.image_psnr:.2f} dB "
        f"(from noise: {reconstruction_psnr(picture, noise.base_frame):.2f} dB)"
    )
    assert out.image_psnr > reconstruction_psnr(picture, noise.base_frame)  # the inversion carries the image


@pytest.fixture(scope="module")
def moving_pipe() -> AudioScenePipeline:
    """The tiny model with its motion layers switched on (random ``proj_out``; the preset zeroes them, AnimateDiff's
    initialisation), so frames denoised together influence each other."""
    t2v = TextToVideoPipeline.from_preset("tiny", seed=0)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, module in t2v.unet.unet.named_modules():
            if "motion_modules" in name and name.endswith("proj_out"):
                module.weight.normal_(0, 0.3)
    pipe = AudioScenePipeline(t2v, render_batch_size=8)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.slow
def test_chunks_are_denoised_together_through_the_motion_layers(moving_pipe):
    call = dict(target_words="campfire", strength=3.0, num_inference_steps=STEPS)
    alone = moving_pipe(PROMPT, CRACKLE, generator=gen(), **call)
    together = moving_pipe(PROMPT, CRACKLE, chunk_frames=4, generator=gen(), **call)
    assert together.levels[0][:2].tolist() == [0, 0] and together.levels[0][2:4].all()  # chunk 0: quiet, then loud
    assert np.array_equal(alone.frames[0], alone.base_frame)  # alone, a quiet frame is the base frame
    assert change(together.frames[:2], together.base_frame).min() > 1  # in a chunk, its loud neighbours move it
    naive = moving_pipe(PROMPT, CRACKLE, chunk_frames=4, share_levels=False, generator=gen(), **call)
    assert np.abs(naive.frames.astype(np.int16) - together.frames).max() <= 1
    with pytest.raises(ValueError, match="chunk_frames must be an integer from 1 to 32"):
        moving_pipe(PROMPT, CRACKLE, chunk_frames=33, **call)


@pytest.mark.slow
def test_equal_chunks_share_their_render(moving_pipe):
    sound = stepped([0.0, 1.0, 0.0, 1.0], seconds_each=0.5)  # 4 frames each at 8 fps: two chunks, each twice
    out = moving_pipe(
        PROMPT,
        sound,
        target_words="campfire",
        strength=3.0,
        chunk_frames=4,
        num_inference_steps=STEPS,
        generator=gen(),
    )
    assert np.array_equal(out.levels[0][:8], out.levels[0][8:]) and len(set(out.levels[0].tolist())) > 1
    assert out.num_rendered == 1 + 8  # the base frame and two distinct chunks, not 16 frames
    assert np.array_equal(out.frames[:8], out.frames[8:])


@pytest.mark.slow
def test_save_and_from_pretrained_give_the_same_scene(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "model")
    loaded = AudioScenePipeline.from_pretrained(tmp_path / "model", audio_text_encoder=ToneEncoder())
    loaded.set_progress_bar_config(disable=True)
    call = dict(target_words="campfire", strength=3.0, num_inference_steps=STEPS)
    a = pipe(PROMPT, CRACKLE, generator=gen(), **call)
    b = loaded(PROMPT, CRACKLE, generator=gen(), **call)
    assert np.array_equal(a.frames, b.frames)
    with pytest.raises(ValueError, match="t2v must be a TextToVideoPipeline"):
        AudioScenePipeline("scene-tiny")
