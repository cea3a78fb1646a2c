"""The motion generator's training job: windows, the loss, exact resumption, DATA folders with motion, the CLI,
and a quick run that beats its audio-dropped twin on held-out speech."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from launching import doc_command, finish, launch
from safetensors.torch import load_file

from avdiff.audio.phonemes import speak_with_phonemes
from avdiff.data.format import ClipRecord, append_index
from avdiff.data.motion_dataset import MotionWindows, data_folder_clips, estimate_controls
from avdiff.data.motion_truth import motion_truth
from avdiff.models.motion import neutral_motion
from avdiff.training import Trainer
from avdiff.training.talking_head_motion import MotionTask, MotionTaskConfig, evaluate_motion
from avdiff.video.motion import FIELDS

from media import write_av_file
from motion_model import quick_model, task_config, train_config

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.requires_espeak, pytest.mark.usefixtures("one_thread")]


def weights(run: Path) -> dict:
    return load_file(run / "final" / "motion_model" / "diffusion_pytorch_model.safetensors")


@pytest.fixture(scope="module")
def task() -> MotionTask:
    return MotionTask(task_config(synthetic_utterances=4, variants=1), progress_bar=False)


def test_windows_hold_the_past_the_window_and_the_clocks_audio(task):
    model = task.build_model()
    data = task.build_dataset()
    item = data[0]  # the first window of the first clip: its past is before the clip's start
    K, T = model.past_frames, model.window_frames
    assert item["audio"].shape == (model.audio_frames, model.config.n_mels, 20)
    assert item["past"].shape == (K, len(FIELDS)) and item["window"].shape == (T, len(FIELDS))
    assert np.array_equal(item["past"].numpy(), neutral_motion(K))
    clip = task.train_clips()[0]
    assert np.array_equal(item["window"].numpy(), clip.motion[:T])
    later = data[1]  # starts `stride` frames on: its past is the clip's frames before it
    assert np.array_equal(later["past"].numpy()[-4:], clip.motion[:4])
    # the statistics the model normalises with are the training clips'
    allm = np.concatenate([c.motion for c in task.train_clips()])
    assert np.allclose(model.config.field_mean, allm.mean(0), atol=1e-5)


def test_kill_and_resume_equals_an_uninterrupted_run_and_the_loss_falls(task, tmp_path):
    cfg = dict(max_steps=8, batch_size=4, checkpoint_every=3, log_every=1)
    Trainer(task, train_config(tmp_path / "straight", **cfg), progress_bar=False).train()
    killed = Trainer(task, train_config(tmp_path / "killed", **cfg), progress_bar=False)
    assert killed.train(stop_after=4).steps == 4  # checkpoints step_3 and step_4
    assert not (tmp_path / "killed" / "final").exists()
    Trainer(task, train_config(tmp_path / "killed", **cfg), progress_bar=False).train(resume=True)
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "killed")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # a longer run lowers the loss
    Trainer(
        task, train_config(tmp_path / "longer", max_steps=60, batch_size=8, log_every=10), progress_bar=False
    ).train()
    losses = [json.loads(line)["loss"] for line in (tmp_path / "longer" / "logs.jsonl").read_text().splitlines()]
    assert np.mean(losses[-2:]) < 0.6 * losses[0]


def test_a_quick_run_beats_its_audio_dropped_twin_on_held_out_speech(tmp_path):
    """~15 s: 300 steps of a small model; scored on held-out sentences in held-out voices (the lips' closure on
    p/b/m needs a longer run: see docs/data-and-training.md for the full run's numbers)."""
    task, model = quick_model(tmp_path)
    m = evaluate_motion(model, task.eval_clips(), 25, guidance=2.0, steps=6)
    assert m["clips"] == 3
    assert m["mouth_open_r"] > 0.5 and m["mouth_open_r"] > m["twin_mouth_open_r"] + 0.3
    assert m["wins_mouth_open_r"] == 1.0


def test_a_data_folder_with_motion_tracks_trains(tmp_path):
    """A prepared-style DATA folder: a clip's mp4 (audio read from it) and its motion at 30 fps, resampled to 25."""
    data = tmp_path / "data"
    (data / "clips").mkdir(parents=True)
    speech, events = speak_with_phonemes("Bob bought a map.", sample_rate=16000)
    write_av_file(data / "clips" / "a.mp4", speech, fps=30)
    truth = motion_truth(events, speech, 30, np.random.default_rng(0), blink_rate_per_min=20.0)
    truth.save(data / "clips" / "a.motion.npz")
    n = len(truth)
    append_index(data, ClipRecord("a", "clips/a.mp4", 30.0, 16000, n, speech.duration_s, motion="clips/a.motion.npz"))
    append_index(data, ClipRecord("b", "clips/a.mp4", 30.0, 16000, n, speech.duration_s))  # no motion: not used
    clips = data_folder_clips(data, 25, 16000)
    assert [c.id for c in clips] == ["a"]
    assert abs(len(clips[0].motion) - len(truth) * 25 / 30) <= 2
    assert clips[0].controls[1] > 0
    config = task_config(data=str(data), synthetic_utterances=0, eval_utterances=0, stride=2)
    t = MotionTask(config, progress_bar=False)
    assert len(MotionWindows(t.train_clips(), t.build_model(), 25, 2)) > 0
    Trainer(t, train_config(tmp_path / "run", max_steps=2, batch_size=2), progress_bar=False).train()
    assert (tmp_path / "run" / "final" / "model_index.json").is_file()
    with pytest.raises(FileNotFoundError, match="no clips with a motion track"):
        data_folder_clips(data, 25, 16000, split="test")


def test_estimate_controls_counts_blinks_and_head_motion():
    rng = np.random.default_rng(1)
    speech, events = speak_with_phonemes("Hello there, how are you today?", sample_rate=16000)
    long = type(speech)(speech.samples.repeat(1, 8), 16000)  # ~15 s
    still = motion_truth([], long, 25, rng, head_amount=0.0, blink_rate_per_min=20.0)
    moving = motion_truth([], long, 25, rng, head_amount=1.0, blink_rate_per_min=20.0)
    rate, head = estimate_controls(still, 25)
    assert 8 <= rate <= 40 and head == 0.0
    assert estimate_controls(moving, 25)[1] > 0.2


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"audio_dropout": 1.0}, "audio_dropout"),
        ({"synthetic_utterances": 0}, "nothing to train on"),
        ({"stride": 0}, "stride"),
        ({"fps": 0}, "fps"),
        ({"epochs": 3}, "unknown talking-head-motion task settings"),
        ({"intonation_share": 1.5}, "intonation_share"),
        ({"intonation_semitones": float("inf")}, "intonation_semitones"),
        ({"intonation_heard": "mel"}, "intonation_heard"),
    ],
)
def test_bad_task_settings_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        MotionTaskConfig.from_dict(bad)


def test_the_cli_trains_with_the_ci_config(tmp_path, monkeypatch, capsys):
    from avdiff.cli import main

    monkeypatch.chdir(tmp_path)  # the config's speech cache is relative to the working folder
    out = tmp_path / "run"
    args = ["train", "talking-head-motion", "--config", str(REPO / "configs/train/talking_head_motion_ci.yaml")]
    assert main([*args, "--output-dir", str(out), "--max-steps", "6", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "trained 6 steps" in printed and "mouth_open_r" in printed and "audio-dropped twin" in printed
    assert (out / "final" / "model_index.json").is_file() and (tmp_path / "runs" / "speech_cache").is_dir()


@pytest.mark.parametrize(
    "main, trainer_metrics, evaluations",
    [(True, True, 0), (True, False, 1), (False, False, 0)],
    ids=["trainer-evaluated-the-last-step", "trainer-did-not", "not-the-main-process"],
)
def test_the_cli_evaluates_the_final_model_once_and_on_the_main_process_only(
    tmp_path, monkeypatch, capsys, main, trainer_metrics, evaluations
):
    """The trainer's own evaluation of the last step is printed, not run again; without one the command evaluates
    the final model once; a process other than the main one (DDP) neither evaluates nor reports."""
    from avdiff.cli import main as cli
    from avdiff.models.builders import build_motion_denoiser
    from avdiff.training import TrainResult
    from avdiff.training.talking_head_motion import SCORES

    out = tmp_path / "run"
    scores = {"clips": 2.0} | {f"{p}{n}": 0.5 for n in SCORES for p in ("", "twin_", "wins_")}
    blinks = ("blinks_at_", "blink_s_min_at_", "blink_s_max_at_", "longest_open_s_at_", "model_blinks_at_",
              "model_longest_open_s_at_")  # fmt: skip
    scores |= {"blink_minutes": 1.0} | {f"{p}{r:g}": 1.0 for p in blinks for r in MotionTaskConfig().eval_blink_rates}
    calls = []

    def fake_train(self, resume=False, stop_after=None):
        self.task.save_model(build_motion_denoiser({"preset": "tiny", **self.task.config.model}), out / "final")
        return TrainResult(out, out / "final", 6, {}, {**scores, "clips": 7.0} if trainer_metrics else {}, main)

    def fake_evaluate(self, model, step=0):
        calls.append(model)
        return scores

    monkeypatch.setattr(Trainer, "train", fake_train)
    monkeypatch.setattr(MotionTask, "evaluate", fake_evaluate)
    args = ["train", "talking-head-motion", "--config", str(REPO / "configs/train/talking_head_motion_ci.yaml")]
    assert cli([*args, "--output-dir", str(out), "--max-steps", "6", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert len(calls) == evaluations
    assert "trained 6 steps" in printed
    if not main:
        assert "held-out" not in printed and "talk:" not in printed
    else:
        assert f"held-out ({7 if trainer_metrics else 2} clips" in printed and "talk: avdiff talk" in printed


@pytest.mark.slow
def test_two_process_cpu_ddp_run_with_the_documented_command(tmp_path):
    """docs/data-and-training.md's DDP command for the motion generator, 2 CPU processes (gloo): both ranks train to
    the end, and one final model and checkpoint are written."""
    (tmp_path / "configs").symlink_to(REPO / "configs", target_is_directory=True)
    output = finish(launch(doc_command("data-and-training.md", "train motion ddp"), tmp_path), timeout=400)
    assert output.count("trained 4 steps") == 2  # both ranks finished
    run = tmp_path / "runs" / "talking_head_motion_ci"
    assert (run / "final" / "model_index.json").is_file() and (run / "checkpoints" / "step_4" / "DONE").is_file()


def test_augment_mel_shifts_the_bands_and_adds_a_gain():
    from avdiff.training.talking_head_motion import augment_mel

    x = torch.arange(10.0).view(1, 1, 10, 1).repeat(64, 3, 1, 4)  # band i holds i
    torch.manual_seed(0)
    gained = augment_mel(x, 6.0, 0)
    offsets = (gained - x).flatten(1)
    assert torch.allclose(offsets, offsets[:, :1].expand_as(offsets), atol=1e-5)  # one gain per item
    assert offsets.abs().max() <= 6.0 * np.log(10) / 10 + 1e-6 and offsets.std() > 0.1
    shifted = augment_mel(x, 0.0, 2)
    moves = shifted[:, 0, 5, 0] - 5  # band 5 now holds band 5 - k
    assert set(moves.tolist()) == {-2.0, -1.0, 0.0, 1.0, 2.0}
    assert torch.equal(shifted[:, :, 0, :].clamp(min=0), shifted[:, :, 0, :])  # the edges repeat, nothing wraps
    assert torch.equal(augment_mel(x, 0.0, 0), x)


def test_the_gain_leaves_silence_at_the_floor_and_nothing_under_it():
    """A gain on the samples cannot lift digital silence (or a clip's padding) off the log floor, nor push speech
    under it: the augmented windows look like what the front end makes of louder or quieter speech."""
    from avdiff.training.talking_head_motion import augment_mel

    floor = float(np.log(1e-5))
    x = torch.full((256, 2, 10, 6), floor)
    x[:, :, :, 3:] = floor + torch.linspace(0.1, 8.0, 30).view(1, 1, 10, 3)  # quiet to loud speech after silence
    torch.manual_seed(0)
    out = augment_mel(x, 6.0, 0, floor)
    assert torch.equal(out[..., :3], x[..., :3])  # the silence did not move
    assert out.min() >= floor
    loud = (out - x)[..., -1, -1].flatten()  # the loudest cell moves by the item's whole gain, either way
    assert loud.max() > 1.0 and loud.min() < -1.0
    unfloored = augment_mel(x, 6.0, 0)  # without the floor, silence moves with the gain (the old behaviour)
    assert (unfloored[..., :3] != floor).any()
    # the front end's own silence: a clip of digital zeros then a tone, cut with the padding before it
    from avdiff.models.builders import build_motion_denoiser

    model = build_motion_denoiser("tiny", seed=0)
    t = torch.arange(16000) / 16000
    samples = torch.cat([torch.zeros(8000), 0.3 * torch.sin(2 * np.pi * 220 * t)])[None]
    windows = model.frame_windows(model.mel_features(samples), model.frame_clock(25), -4, 30)
    silent = windows == float(np.log(model.mel.log_floor))
    assert silent[:, :10].all() and not silent[:, -5:].all()  # the padding and the zeros; the tone
    out = augment_mel(windows.expand(64, -1, -1, -1), 6.0, 0, float(np.log(model.mel.log_floor)))
    assert torch.equal(out[:, silent[0]], windows[:, silent[0]].expand(64, -1)) and out.std(0).max() > 0.5


def test_windows_of_a_model_that_hears_ahead_carry_the_speech_after_the_window_and_silence_past_the_clip(task):
    from motion_model import SMALL_MODEL

    ahead = MotionTask(task_config(synthetic_utterances=4, variants=1, model={**SMALL_MODEL, "future_frames": 3}))
    data, plain = ahead.build_dataset(), task.build_dataset()
    model = ahead.build_model()
    K, T = model.past_frames, model.window_frames
    assert len(data) == len(plain)  # the same windows: hearing ahead adds no item and drops none
    first = data[0]["audio"]
    assert first.shape == (K + T + 3, model.config.n_mels, 20)
    torch.testing.assert_close(first[: K + T], plain[0]["audio"])  # past and window as before, then the frames ahead
    clip = ahead.train_clips()[0]
    last = max(i for i, (k, s) in enumerate(data.items.tolist()) if k == 0)
    start = int(data.items[last, 1])
    assert start + T + 3 + 2 > len(clip.motion)  # the last window's frames ahead (+-2 of context) pass the clip's end
    ahead_audio = data[last]["audio"][K + T :]
    assert (ahead_audio == float(np.log(ahead.build_model().mel.log_floor))).any()  # silence there, as in sampling


def test_windows_tell_a_blink_clock_model_when_the_eyes_last_blinked():
    from avdiff.data.motion_dataset import MotionClip
    from avdiff.models.builders import build_motion_denoiser

    motion = neutral_motion(100)
    eyes = [FIELDS.index("eye_left"), FIELDS.index("eye_right")]
    motion[10:14, eyes] = 1.0  # a blink the eyelids show, from frame 10
    samples = torch.zeros(16000 * 4)
    known = MotionClip("known", samples, 16000, motion, (15.0, 1.0), blink_starts=np.array([-2.0, 1.0]))
    assert known.seconds_since_blink(0, 25) == pytest.approx(2.0)  # the truth's blink before the clip
    assert known.seconds_since_blink(50, 25) == pytest.approx(1.0)
    read = MotionClip("read", samples, 16000, motion, (15.0, 1.0))  # no truth: read off the eyelids
    assert read.seconds_since_blink(20, 25) == pytest.approx(0.4)
    assert read.seconds_since_blink(5, 25) == pytest.approx(0.2 + 30 / 15)  # before any: half a mean gap ago
    model = build_motion_denoiser({"preset": "tiny", "blink_clock": True}, seed=0)
    data = MotionWindows([known], model, 25, stride=4)
    assert data[0]["controls"].tolist() == pytest.approx([15.0, 1.0, 2.0])
    assert data[12]["controls"].tolist() == pytest.approx([15.0, 1.0, 48 / 25 - 1.0])  # frame 48
    plain = MotionWindows([known], build_motion_denoiser("tiny", seed=0), 25, stride=4)
    assert plain[0]["controls"].tolist() == [15.0, 1.0]


def test_a_pitch_model_hears_its_pitch_rows_in_training_and_only_the_mel_bands_are_augmented(task, monkeypatch):
    from avdiff.training import talking_head_motion

    from motion_model import SMALL_MODEL

    pitched = MotionTask(
        task_config(synthetic_utterances=4, variants=1, model={**SMALL_MODEL, "pitch_features": True})
    )
    model, data = pitched.build_model(), pitched.build_dataset()
    item = data[0]
    k = model.config.n_mels
    assert item["audio"].shape == (model.audio_frames, k + 2, 20)
    assert (item["audio"][-1, k + 1] == 2).any()  # a frame of the clip sounds
    batch = {key: torch.stack([data[i][key] for i in range(4)]) for key in item}
    monkeypatch.setattr(talking_head_motion, "augment_mel", lambda x, gain_db, shift, floor: x + 100.0)
    heard = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **kw: heard.append(a[3]) or forward(*a, **kw))
    loss, _ = pitched.compute_loss(model, batch, 0)
    assert torch.isfinite(loss)
    torch.testing.assert_close(heard[0][:, :, :k], batch["audio"][:, :, :k] + 100.0)
    assert torch.equal(heard[0][:, :, k:], batch["audio"][:, :, k:])  # the pitch rows as they were


def test_a_new_intonation_heard_only_by_the_pitch_rows_leaves_the_mel_bands_as_espeak_made_them():
    """intonation_heard 'pitch': a re-intoned clip's windows carry the original speech's bands and the new speech's
    F0; 'speech' carries the new speech in both; a model without pitch rows cannot hear it that way."""
    from motion_model import SMALL_MODEL

    pitched = {**SMALL_MODEL, "pitch_features": True}
    common = dict(synthetic_utterances=2, variants=1, intonation_share=1.0, intonation_semitones=3.0)
    plain = MotionTask(task_config(synthetic_utterances=2, variants=1, model=pitched)).build_dataset()
    by_pitch = MotionTask(task_config(**common, intonation_heard="pitch", model=pitched)).build_dataset()
    by_speech = MotionTask(task_config(**common, model=pitched)).build_dataset()
    k = plain.model.config.n_mels
    for a, b, c in zip(plain.mels, by_pitch.mels, by_speech.mels, strict=True):
        assert torch.equal(b[:k], a[:k]) and not torch.allclose(c[:k], a[:k], atol=1e-2)
        sounds = (a[k + 1] > 0) & (b[k + 1] > 0) & (c[k + 1] > 0)
        new, old = b[k, sounds] - c[k, sounds], b[k, sounds] - a[k, sounds]  # up to the median each is taken from
        assert (new - new.median()).abs().median() < 0.01 < (old - old.median()).abs().median(), "the new F0"
    with pytest.raises(ValueError, match="pitch rows"):
        MotionTask(task_config(**common, intonation_heard="pitch", model=SMALL_MODEL)).build_dataset()
