"""Issue 7, part 2: a SyncNet-style sync model, LSE-D/LSE-C as syncnet_python computes them, and the offset."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import skimage.data
import torch
import yaml

from avdiff.audio.io import Waveform, encode_audio_frames
from avdiff.cli import main
from avdiff.data.format import ClipRecord, append_index, read_index
from avdiff.data.prepare import PrepareConfig, prepare_videos
from avdiff.data.synthetic import make_dataset
from avdiff.data.video_dataset import load_clip, resize_crops, select_records
from avdiff.evaluation.syncnet import face_crops_for, syncnet_scores_for_video
from avdiff.metrics.syncnet_scores import (
    load_syncnet,
    offset_distances,
    score_faces,
    scores_from_embeddings,
    shift_audio,
    syncnet_scores,
)
from avdiff.models.syncnet import SyncNet, SyncNetConfig
from avdiff.training.syncnet import SyncChunks, SyncNetTask, SyncNetTaskConfig
from avdiff.video.reader import read_video
from avdiff.video.writer import write_video

REPO = Path(__file__).resolve().parents[2]
TINY = dict(
    crop_size=64,
    face_height=16,
    face_width=32,
    n_mels=20,
    embed_dim=8,
    video_channels=[4, 4, 8, 8],
    audio_channels=[4, 4, 8, 8],
)


def calc_pdist(feat1: torch.Tensor, feat2: torch.Tensor, vshift: int) -> list[torch.Tensor]:
    """syncnet_python's ``calc_pdist`` (SyncNetInstance.py), as it is written there: the reference."""
    win_size = vshift * 2 + 1
    feat2p = torch.nn.functional.pad(feat2, (0, 0, vshift, vshift))
    return [
        torch.nn.functional.pairwise_distance(feat1[[i], :].repeat(win_size, 1), feat2p[i : i + win_size, :])
        for i in range(len(feat1))
    ]


def test_distances_and_scores_are_syncnet_pythons():
    g = torch.Generator().manual_seed(0)
    video, audio = torch.randn(40, 8, generator=g), torch.randn(40, 8, generator=g)
    dists = offset_distances(video, audio, 15)
    reference = torch.stack(calc_pdist(video, audio, 15))  # (N, 31)
    assert torch.allclose(dists, reference, atol=1e-6)
    mdist = reference.mean(dim=0)
    minval, minidx = torch.min(mdist, 0)
    scores = scores_from_embeddings(video, audio, 15)
    assert scores.lse_d == pytest.approx(float(minval), abs=1e-6)
    assert scores.lse_c == pytest.approx(float(torch.median(mdist) - minval), abs=1e-6)
    assert scores.offset_frames == int(minidx) - 15 == -(15 - int(minidx))  # syncnet_python prints 15 - minidx
    assert scores.dist_at_zero == pytest.approx(float(mdist[15]), abs=1e-6)
    assert len(scores.mean_dists) == 31 and scores.num_windows == 40
    assert set(scores.to_dict()) == {"lse_d", "lse_c", "offset_frames", "dist_at_zero", "mean_dists", "num_windows"}
    with pytest.raises(ValueError, match="max_offset"):
        offset_distances(video, audio, -1)
    with pytest.raises(ValueError, match="N, D"):
        offset_distances(video, audio[:5], 3)


@pytest.mark.parametrize("k", [0, 4, -3])
def test_audio_that_lags_by_k_frames_is_found_at_plus_k(k):
    v = torch.nn.functional.normalize(torch.randn(60, 16, generator=torch.Generator().manual_seed(1)), dim=-1)
    a = torch.roll(v, k, dims=0)  # the sound of frame i is at frame i + k
    scores = scores_from_embeddings(v, a, 15)
    assert scores.offset_frames == k
    assert scores.lse_c > 0.5


def test_shift_audio_delays_by_whole_frames_and_keeps_the_length():
    x = torch.arange(1, 16001, dtype=torch.float32)[None]
    late = shift_audio(Waveform(x, 16000), 2, fps=25)
    assert late.num_samples == 16000 and (late.samples[0, :1280] == 0).all() and late.samples[0, 1280] == 1
    early = shift_audio(Waveform(x, 16000), -2, fps=25)
    assert early.samples[0, 0] == 1281 and (early.samples[0, -1280:] == 0).all()
    assert shift_audio(Waveform(x, 16000), 0).samples is x
    assert (shift_audio(Waveform(x, 16000), 30).samples == 0).all()


def test_model_windows_embeddings_and_files(tmp_path):
    model = SyncNet(SyncNetConfig(**TINY)).eval()
    assert model.steps == 20  # five frames of 10 ms mel steps at 25 fps
    faces = torch.arange(12, dtype=torch.uint8)[None, :, None, None].expand(1, 12, 16, 32)
    windows = model.video_windows(faces)  # (1, 8, 5, 16, 32): window t holds frames t .. t+4, centred on t + 2
    assert windows.shape == (1, 8, 5, 16, 32) and windows[0, 3, :, 0, 0].tolist() == [3, 4, 5, 6, 7]
    audio = Waveform(torch.randn(1, 16000) * 0.1, 16000)
    mels = model.mel_windows(audio, 25)
    assert mels.shape == (25, 20, 20)
    v, a = model(windows.float() / 255, mels[2:10][None])
    assert v.shape == a.shape == (1, 8, 8)
    assert torch.allclose(v.norm(dim=-1), torch.ones(1, 8)) and torch.allclose(a.norm(dim=-1), torch.ones(1, 8))
    crops = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    assert model.lower_faces(crops).shape == (3, 16, 32)
    with pytest.raises(ValueError, match="square"):
        model.lower_faces(crops[:, :32])
    model.save_pretrained(tmp_path / "m")
    again = SyncNet.from_pretrained(tmp_path / "m")
    assert torch.equal(again.embed_video(windows[0]), model.embed_video(windows[0]))
    with pytest.raises(FileNotFoundError, match="no SyncNet"):
        SyncNet.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="unknown SyncNet settings"):
        SyncNetConfig.from_dict({"width": 3})
    with pytest.raises(ValueError, match="multiples of 16"):
        SyncNetConfig(face_height=20).validate()
    for bad, match in [
        ({"crop_size": 16}, "crop_size"),
        ({"context": -1}, "context"),
        ({"video_channels": [4]}, "4 stage"),
    ]:
        with pytest.raises(ValueError, match=match):
            SyncNetConfig(**bad).validate()
    # any rate is resampled to the model's: 8 kHz speech gives the same windows as its 16 kHz version
    slow = Waveform(audio.samples[:, ::2].clone(), 8000)
    assert model.mel_windows(slow, 25).shape == (25, 20, 20)


def test_scores_need_five_frames_and_use_the_frames_that_have_audio():
    model = SyncNet(SyncNetConfig(**TINY))
    faces = torch.zeros(30, 16, 32, dtype=torch.uint8)
    audio = Waveform(torch.randn(1, 16000) * 0.1, 16000)  # 25 frames of audio for 30 of video
    assert score_faces(model, faces, audio).num_windows == 25 - 4
    with pytest.raises(ValueError, match="at least 5"):
        score_faces(model, faces[:4], audio)
    with pytest.raises(ValueError, match="no windows"):
        scores_from_embeddings(torch.zeros(0, 8), torch.zeros(0, 8))


def test_the_loss_masks_near_negatives_and_the_task_needs_data():
    task = SyncNetTask(
        SyncNetTaskConfig.from_dict({"chunk": 6, "min_negative_shift": 2, "flip": False, "model": TINY})
    )
    model = task.build_model()
    faces = torch.randint(0, 255, (3, 10, 16, 32), dtype=torch.uint8)
    mels = torch.randn(3, 6, 20, 20)
    loss, logs = task.compute_loss(model, (faces, mels), 0)
    assert torch.isfinite(loss) and 0 <= logs["accuracy"] <= 1 and logs["scale"] == pytest.approx(10.0)
    loss.backward()
    assert model.video.head.weight.grad is not None and model.audio.head.weight.grad is not None
    assert task.evaluate(model) == {}  # no eval_data: nothing to score
    with pytest.raises(ValueError, match="--data"):
        task.build_dataset()


def write_short_audio(path: Path, frames: int, samples: int) -> Path:
    """``frames`` grey frames at 25 fps with only ``samples`` samples of 16 kHz audio."""
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=25)
        v.width = v.height = 32
        v.pix_fmt = "yuv420p"
        a = out.add_stream("aac", rate=16000, layout="mono")
        for _ in range(frames):
            out.mux(v.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 90, np.uint8), format="rgb24")))
        out.mux(v.encode(None))
        encode_audio_frames(out, a, np.full((1, samples), 0.1, np.float32), 16000, "mono")
    return path


def test_load_clip_fits_the_audio_to_the_frames(tmp_path):
    (tmp_path / "clips").mkdir()
    write_short_audio(tmp_path / "clips" / "short.mp4", 25, 8000)
    write_video(tmp_path / "clips" / "mute.mp4", np.zeros((5, 32, 32, 3), np.uint8), 25)
    records = [
        ClipRecord(
            id=i, video=f"clips/{i}.mp4", fps=25.0, sample_rate=16000, num_frames=n, duration_s=n / 25, split=split
        )
        for i, n, split in (("short", 25, "train"), ("mute", 5, "test"))
    ]
    for r in records:
        append_index(tmp_path, r)
    clip = load_clip(tmp_path, select_records(tmp_path, split="train")[0])
    assert clip.num_frames == 25 and clip.audio.num_samples == 16000 and clip.landmarks is None
    assert (clip.audio.samples[:, 9000:] == 0).all()  # the missing half second is silence
    with pytest.raises(ValueError, match="no readable audio"):
        load_clip(tmp_path, records[1])
    with pytest.raises(FileNotFoundError, match="of split 'val'"):
        select_records(tmp_path, split="val")
    with pytest.raises(FileNotFoundError, match="not a DATA folder"):
        select_records(tmp_path / "clips")
    assert [r.id for r in select_records(tmp_path, limit=1)] == ["short"]
    model = SyncNet(SyncNetConfig(**TINY))
    with pytest.raises(ValueError, match="no \\(readable\\) audio"):
        syncnet_scores_for_video(model, tmp_path / "clips" / "mute.mp4")
    with pytest.raises(ValueError, match="square"):
        resize_crops(np.zeros((2, 32, 48, 3), np.uint8), 64)


def test_chunks_pair_each_video_window_with_the_audio_of_its_frames():
    faces = [
        torch.arange(30, dtype=torch.uint8)[:, None, None].expand(30, 2, 2),
        torch.zeros(10, 2, 2, dtype=torch.uint8),
    ]
    mels = [torch.arange(30, dtype=torch.float32)[:, None, None].expand(30, 3, 4), torch.zeros(10, 3, 4)]
    chunks = SyncChunks(faces, mels, chunk=8, context=2)
    assert len(chunks) == (30 - 8 - 2 - 2 + 1) + 0  # the 10-frame clip is too short for 8 windows of 5 frames
    f, m = chunks[0]
    assert f.shape == (12, 2, 2) and m.shape == (8, 3, 4)
    assert f[2:10, 0, 0].tolist() == m[:, 0, 0].tolist() == list(range(2, 10))  # centres line up
    with pytest.raises(ValueError, match="long enough"):
        SyncChunks([faces[1]], [mels[1]], chunk=8, context=2)
    with pytest.raises(ValueError, match="min_negative_shift"):
        SyncNetTaskConfig.from_dict({"chunk": 4, "min_negative_shift": 4})
    with pytest.raises(ValueError, match="chunk"):
        SyncNetTaskConfig.from_dict({"chunk": 1})
    with pytest.raises(ValueError, match="unknown syncnet task settings"):
        SyncNetTaskConfig.from_dict({"lr": 1})


# --- the acceptance: train on synthetic pairs, score held-out clips ------------------------------------------------

TRAIN_CLIPS, TEST_CLIPS, STEPS = 12, 3, 200


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Synthetic pairs -> avdiff prepare -> ``avdiff train syncnet`` (a short CPU run); held-out clips stay raw.

    The training runs here, once per module, so every test that needs the model passes alone, with ``-k``, or in
    any order. Returns the folder, the config and what the command printed."""
    root = tmp_path_factory.mktemp("syncnet")
    make_dataset(root / "synth_train", TRAIN_CLIPS, split="train", seed=0, progress_bar=False)
    make_dataset(root / "heldout", TEST_CLIPS, split="test", seed=1, progress_bar=False)
    prepare_videos(
        root / "synth_train" / "clips", root / "train", PrepareConfig(size=160), workers=2, progress_bar=False
    )
    config = yaml.safe_load((REPO / "configs" / "train" / "syncnet_tiny.yaml").read_text())
    config["trainer"].update(
        output_dir=str(root / "run"), max_steps=STEPS, checkpoint_every=0, eval_every=STEPS, log_every=50
    )
    path = root / "syncnet.yaml"
    path.write_text(yaml.safe_dump(config))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = main(
            [
                "train",
                "syncnet",
                "--config",
                str(path),
                "--data",
                str(root / "train"),
                "--eval-data",
                str(root / "heldout"),
                "--no-progress",
            ]
        )
    assert rc == 0, printed.getvalue()
    return root, path, printed.getvalue()


@pytest.mark.slow
@pytest.mark.requires_espeak
def test_train_syncnet_through_the_cli(trained):
    root, _, out = trained
    assert "held-out (3 clips): LSE-C" in out and "avdiff eval lipsync VIDEO --syncnet" in out
    logs = [json.loads(line) for line in (root / "run" / "logs.jsonl").read_text().splitlines()]
    assert logs[0]["loss"] > logs[-2]["loss"]  # the last line is the evaluation
    assert logs[-1]["eval/lse_c_sync"] > logs[-1]["eval/lse_c_shifted"]
    assert (root / "run" / "final" / "syncnet.safetensors").is_file()


@pytest.fixture(scope="module")
def heldout(trained):
    """The trained model and the held-out clips as (crops, audio), cropped once."""
    root, _, _ = trained
    model = load_syncnet(root / "run" / "final")
    clips = []
    for record in read_index(root / "heldout"):
        clip = read_video(root / "heldout" / record.video)
        clips.append((face_crops_for(model, clip.frames.numpy(), clip.fps), clip.audio))
    return model, clips


@pytest.mark.slow
@pytest.mark.requires_espeak
def test_lse_c_is_higher_in_sync_than_with_the_audio_10_frames_late(heldout):
    model, clips = heldout
    sync = [syncnet_scores(model, crops, audio) for crops, audio in clips]
    late = [syncnet_scores(model, crops, shift_audio(audio, 10)) for crops, audio in clips]
    assert np.mean([s.lse_c for s in sync]) > np.mean([s.lse_c for s in late])
    assert all(s.lse_c > t.lse_c for s, t in zip(sync, late))
    assert all(abs(s.offset_frames) <= 1 for s in sync)
    assert all(abs(t.offset_frames - 10) <= 1 for t in late)
    assert np.mean([s.dist_at_zero for s in sync]) < np.mean([t.dist_at_zero for t in late])


@pytest.mark.slow
@pytest.mark.requires_espeak
@pytest.mark.parametrize("shift", [4, -3])
def test_the_best_offset_recovers_a_known_shift(heldout, shift):
    model, clips = heldout
    for crops, audio in clips:
        assert abs(syncnet_scores(model, crops, shift_audio(audio, shift)).offset_frames - shift) <= 1


@pytest.mark.slow
@pytest.mark.requires_espeak
def test_eval_lipsync_with_a_syncnet(trained, heldout, tmp_path, capsys):
    root, _, _ = trained
    model, _ = heldout
    ckpt = str(root / "run" / "final")
    record = read_index(root / "heldout")[0]
    clip = read_video(root / "heldout" / record.video)
    late = write_video(tmp_path / "late.mp4", clip.frames, 25, shift_audio(clip.audio, 4))
    assert main(["eval", "lipsync", str(late), "--syncnet", ckpt, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert abs(report["syncnet"]["offset_frames"] - 4) <= 1 and report["syncnet"]["checkpoint"] == ckpt
    assert "r_envelope" in report  # the landmark scores are still there
    assert main(["eval", "lipsync", str(root / "heldout" / record.video), "--syncnet", ckpt]) == 0
    text = capsys.readouterr().out
    assert "LSE-D:" in text and "LSE-C:" in text and "syncnet offset:" in text and "r (offset 0):" in text
    # the same through the Python API, from the file, and for an already aligned (prepared) clip
    assert abs(syncnet_scores_for_video(model, late).offset_frames - 4) <= 1
    prepared = read_index(root / "train")[0]
    scores = syncnet_scores_for_video(model, root / "train" / prepared.video, aligned=True)
    assert abs(scores.offset_frames) <= 1
    # bad checkpoint, no face
    assert main(["eval", "lipsync", str(late), "--syncnet", str(tmp_path)]) == 2
    assert "--syncnet" in capsys.readouterr().err
    rocket = np.repeat(skimage.data.rocket()[None, :384, :512], 25, axis=0)
    noface = write_video(tmp_path / "noface.mp4", rocket, 25, Waveform(clip.audio.samples[:, :16000], 16000))
    assert main(["eval", "lipsync", str(noface), "--syncnet", ckpt]) == 2
    assert "no face found in any of the 25 frames" in capsys.readouterr().err  # no score of either kind


@pytest.mark.slow
@pytest.mark.requires_espeak
def test_train_syncnet_without_held_out_data(trained, tmp_path, capsys):
    root, config, _ = trained
    assert (
        main(
            [
                "train",
                "syncnet",
                "--config",
                str(config),
                "--data",
                str(root / "train"),
                "--max-steps",
                "2",
                "--output-dir",
                str(tmp_path / "run"),
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "trained 2 steps" in out and "held-out" not in out
    assert (tmp_path / "run" / "final" / "syncnet_config.json").is_file()


def test_train_syncnet_needs_data(tmp_path, capsys):
    shutil.copy(REPO / "configs" / "train" / "syncnet_tiny.yaml", tmp_path / "c.yaml")
    assert main(["train", "syncnet", "--config", str(tmp_path / "c.yaml")]) == 2
    assert "--data" in capsys.readouterr().err
