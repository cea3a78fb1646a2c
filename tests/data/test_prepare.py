"""Issue 7, part 1: ``avdiff prepare`` turns a folder of talking-face videos into aligned DATA clips."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import skimage.data
import torch

from avdiff.audio.envelope import frame_power
from avdiff.audio.io import Waveform, encode_audio_frames, load_audio, save_audio
from avdiff.cli import main
from avdiff.commands.prepare import DEFAULTS
from avdiff.data.format import read_index
from avdiff.data.prepare import (
    MARKER_DIR,
    PrepareConfig,
    WorkerCrashed,
    find_videos,
    prepare_videos,
    run_parallel,
    segment_id,
    several_faces,
)
from avdiff.data.synthetic import make_dataset
from avdiff.video.face import track_landmarks
from avdiff.video.motion import Motion
from avdiff.video.reader import read_video
from avdiff.video.writer import write_video

pytestmark = pytest.mark.requires_espeak  # every test makes speech with espeak-ng

ARGS = ["--size", "128", "--segment-s", "2", "--min-segment-s", "1", "--no-progress"]
AUDIO_DELAY_S = 0.2  # the mkv's audio track starts this late


def write_other_rate(path: Path, frames: np.ndarray, speech: Waveform, delay_s: float) -> None:
    """A 30 fps matroska file with 44.1 kHz stereo AAC whose audio stream starts ``delay_s`` after the video."""
    idx = np.minimum(np.round(np.arange(len(frames) * 30 // 25) * 25 / 30).astype(int), len(frames) - 1)
    audio = np.repeat(speech.resample(44100).samples.numpy(), 2, axis=0)
    offset = round(delay_s * 44100)
    with av.open(str(path), "w", format="matroska") as out:
        v = out.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        a = out.add_stream("aac", rate=44100, layout="stereo")
        for frame in frames[idx]:
            out.mux(v.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(v.encode(None))
        chunk = a.codec_context.frame_size or 1024
        for start in range(0, audio.shape[1], chunk):
            block = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(audio[:, start : start + chunk]), format="fltp", layout="stereo"
            )
            block.sample_rate, block.pts, block.time_base = 44100, start + offset, Fraction(1, 44100)
            out.mux(a.encode(block))
        out.mux(a.encode(None))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Synthetic clips (two in a subfolder, one re-encoded at other rates), a corrupt file, a file with no audio, a
    video with no face, one with two faces, one with silence, and a text file."""
    root = tmp_path_factory.mktemp("prepare")
    videos = root / "videos"
    (videos / "speaker a").mkdir(parents=True)
    records = make_dataset(root / "synth", 3, split="train", seed=0, progress_bar=False)
    for r in records[:2]:
        shutil.copy(root / "synth" / r.video, videos / "speaker a" / Path(r.video).name)
    clip = read_video(root / "synth" / records[2].video)
    frames, speech = clip.frames.numpy(), clip.audio
    write_other_rate(videos / "other_rate.mkv", frames, speech, AUDIO_DELAY_S)
    data = (root / "synth" / records[0].video).read_bytes()
    (videos / "corrupt.mp4").write_bytes(data[: len(data) // 3])
    write_video(videos / "noaudio.mp4", frames[:50], 25)
    short = Waveform(speech.samples[:, : 2 * 16000], 16000)
    rocket = cv2.resize(skimage.data.rocket(), (512, 384), interpolation=cv2.INTER_AREA)
    write_video(videos / "noface.mp4", np.repeat(rocket[None], 50, axis=0), 25, short)
    face = skimage.data.astronaut()[:256, 100:356]
    two = np.concatenate([face, face[:, ::-1]], axis=1)
    write_video(videos / "twofaces.mp4", np.repeat(two[None], 50, axis=0), 25, short)
    hiss = np.random.default_rng(0).normal(0, 1e-4, (1, 2 * 16000)).astype(np.float32)
    write_video(videos / "silent.mp4", frames[:50], 25, Waveform(hiss, 16000))
    damaged = bytearray(data)  # intact container, random bytes over the middle of the media data
    damaged[2000 : len(data) // 2] = (
        np.random.default_rng(1).integers(0, 256, len(data) // 2 - 2000, np.uint8).tobytes()
    )
    (videos / "damaged.mp4").write_bytes(bytes(damaged))
    save_audio(root / "voice.m4a", short)
    shutil.copy(root / "voice.m4a", videos / "voice_only.mp4")  # an audio file named like a video
    write_blip(videos / "blip.mp4")
    (videos / "notes.txt").write_text("not a video")
    return root, videos, records


def write_blip(path: Path) -> None:
    """One second of video with 7 ms of audio: not one frame is covered by sound."""
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=25)
        v.width = v.height = 64
        v.pix_fmt = "yuv420p"
        a = out.add_stream("aac", rate=16000, layout="mono")
        for _ in range(25):
            out.mux(v.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), 100, np.uint8), format="rgb24")))
        out.mux(v.encode(None))
        encode_audio_frames(out, a, np.full((1, 100), 0.1, np.float32), 16000, "mono")


@pytest.fixture(scope="module")
def prepared(folder):
    """The first run, through the CLI with two workers: (DATA, exit code, stdout, seconds)."""
    root, videos, _ = folder
    out = root / "DATA"
    stdout = io.StringIO()
    tick = time.perf_counter()
    with contextlib.redirect_stdout(stdout):
        code = main(["prepare", "--videos", str(videos), "--out", str(out), "--workers", "2", *ARGS])
    return out, code, stdout.getvalue(), time.perf_counter() - tick


def report_of(out: Path) -> dict:
    report = json.loads((out / "prepare_report.json").read_text())
    return report | {"by_file": {f["file"]: f for f in report["files"]}}


@pytest.mark.slow
def test_prepare_keeps_the_good_clips_and_names_every_dropped_file(folder, prepared):
    out, code, stdout, _ = prepared
    assert code == 0
    report = report_of(out)
    files = report["by_file"]
    assert set(files) == {
        "speaker a/train_000_00000.mp4",
        "speaker a/train_000_00001.mp4",
        "other_rate.mkv",
        "corrupt.mp4",
        "damaged.mp4",
        "voice_only.mp4",
        "blip.mp4",
        "noaudio.mp4",
        "noface.mp4",
        "twofaces.mp4",
        "silent.mp4",
    }
    assert report["ignored"] == ["notes.txt"]
    expected = {
        "corrupt.mp4": ("error", "unreadable"),
        "damaged.mp4": ("error", "unreadable"),
        "voice_only.mp4": ("error", "no_video"),
        "blip.mp4": ("dropped", "too_short"),
        "noaudio.mp4": ("dropped", "no_audio"),
        "noface.mp4": ("dropped", "no_face"),
        "twofaces.mp4": ("dropped", "multiple_faces"),
        "silent.mp4": ("dropped", "silence"),
    }
    for name, (status, reason) in expected.items():
        assert (files[name]["status"], files[name]["reason"]) == (status, reason), files[name]
        assert files[name]["detail"]
        assert files[name]["records"] == []
        assert f"{name}" in stdout and reason in stdout  # the human summary names each one
    for name in ("speaker a/train_000_00000.mp4", "speaker a/train_000_00001.mp4", "other_rate.mkv"):
        assert files[name]["status"] == "kept"
    assert report["totals"]["kept_files"] == 3 and report["totals"]["error_files"] == 3
    assert report["totals"]["dropped_reasons"] == {
        "no_audio": 1,
        "no_face": 1,
        "multiple_faces": 1,
        "silence": 1,
        "too_short": 1,
    }
    assert files["blip.mp4"]["detail"] == "no decodable frames with audio"
    assert (out / "prepare_report.txt").read_text() in stdout


@pytest.mark.slow
def test_kept_clips_are_aligned_25fps_16khz_with_landmarks(folder, prepared):
    root, _, records = folder
    out = prepared[0]
    index = read_index(out)
    report = report_of(out)
    kept = [s for f in report["files"] for s in f["segments"] if s["status"] == "kept"]
    assert sorted(r.id for r in index) == sorted(s["id"] for s in kept)
    for record in index:
        assert record.aligned and record.fps == 25 and record.sample_rate == 16000 and record.split == "train"
        clip = read_video(out / record.video)
        assert clip.frames.shape[1:] == (128, 128, 3) and clip.fps == 25
        assert clip.num_frames == record.num_frames and abs(record.duration_s - record.num_frames / 25) < 1e-6
        assert clip.audio.sample_rate == 16000 and clip.audio.num_channels == 1
        assert abs(clip.audio.duration_s - clip.duration_s) <= 1 / 25
        landmarks = np.load(out / record.landmarks)
        assert landmarks.shape == (record.num_frames, 478, 2) and np.isfinite(landmarks).all()
        # the eyes and mouth sit near the canonical points of a 128 px crop
        eyes_y = landmarks[:, [33, 133, 362, 263], 1].mean()
        assert abs(eyes_y - 0.40 * 128) < 6
        src = record.source
        assert src["end_s"] - src["start_s"] == pytest.approx(record.duration_s)
        assert record.id == segment_id(src["file"], src["segment"])
    # a 3.76 s clip in 2 s segments: two clips, the second 1.76 s long
    first = [r for r in index if r.source["file"] == "speaker a/train_000_00000.mp4"]
    assert [r.num_frames for r in sorted(first, key=lambda r: r.source["segment"])] == [50, records[0].num_frames - 50]
    # the second synthetic clip is 2.16 s: its 0.16 s tail is reported as too short
    second = report["by_file"]["speaker a/train_000_00001.mp4"]["segments"]
    assert [s["status"] for s in second] == ["kept", "dropped"] and second[1]["reason"] == "too_short"


@pytest.mark.slow
def test_each_clip_has_its_motion_track_measured_in_the_source_frames(folder, prepared):
    """The motion track of a prepared clip follows the mouth the synthetic clip was made with (its known aperture),
    and the head, which the synthetic warp never moves, stays still."""
    root, _, records = folder
    out = prepared[0]
    for name, truth in [(Path(r.video).name, np.load(root / "synth" / r.aperture)) for r in records[:2]]:
        for record in [r for r in read_index(out) if r.source["file"] == f"speaker a/{name}"]:
            motion = Motion.load(out / record.motion)
            assert len(motion) == record.num_frames and not motion.missing().any()
            reference = record.source["motion_reference"]
            assert 0 <= reference < record.num_frames
            first = record.source["segment"] * 50
            r = np.corrcoef(motion.mouth_open, truth[first : first + record.num_frames])[0, 1]
            assert r > 0.9, (record.id, r)
            yaw, pitch, roll = np.abs(np.rad2deg([motion.yaw, motion.pitch, motion.roll])).max(axis=1)
            # mediapipe's mesh of an upscaled 25 px LFW face tips forward a little as the jaw drops (about 3 degrees)
            assert yaw < 3 and roll < 3 and pitch < 6, (yaw, pitch, roll)
            assert np.abs(motion.eye_left).max() < 0.3  # the warp never closes an eye


@pytest.mark.slow
def test_other_rates_are_resampled_and_a_late_audio_stream_is_placed_on_the_video_timeline(folder, prepared):
    root, _, records = folder
    out = prepared[0]
    entry = report_of(out)["by_file"]["other_rate.mkv"]
    assert entry["source_fps"] == 30 and entry["source_sample_rate"] == 44100
    clips = sorted(
        (r for r in read_index(out) if r.source["file"] == "other_rate.mkv"), key=lambda r: r.source["segment"]
    )
    assert sum(r.num_frames for r in clips) == pytest.approx(records[2].num_frames, abs=1)
    audio = load_audio(out / clips[0].video, sample_rate=16000)
    db = 10 * np.log10(frame_power(audio, 25) + 1e-12)
    delay = round(AUDIO_DELAY_S * 25)  # 5 frames of silence before the speech starts
    assert (db[: delay - 1] < -60).all() and db[delay + 1 : delay + 5].max() > -40


@pytest.mark.slow
def test_a_second_run_skips_the_finished_files(folder, prepared, tmp_path):
    root, videos, _ = folder
    first, _, _, first_seconds = prepared
    out = tmp_path / "DATA"  # a copy (times kept): the first run's report stays as the other tests read it
    shutil.copytree(first, out)
    index_before = (out / "index.jsonl").read_text()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "clips").iterdir()}
    report = prepare_videos(
        videos, out, PrepareConfig(size=128, segment_s=2, min_segment_s=1), workers=2, progress_bar=False
    )
    assert report.totals()["skipped_files"] == 11 and all(f.skipped for f in report.files)
    assert report.totals()["kept_files"] == 3 and report.totals()["error_files"] == 3
    assert (out / "index.jsonl").read_text() == index_before
    assert {p: p.stat().st_mtime_ns for p in (out / "clips").iterdir()} == stamps
    assert report.seconds < first_seconds / 2
    assert "skipped:  11 files already prepared" in report.summary()


def single(tmp_path: Path, folder) -> Path:
    """A folder holding one synthetic clip."""
    videos = tmp_path / "one"
    videos.mkdir()
    shutil.copy(folder[0] / "synth" / folder[2][1].video, videos / "clip.mp4")
    return videos


@pytest.mark.slow
def test_a_changed_file_is_redone_and_force_redoes_everything(folder, tmp_path):
    videos = single(tmp_path, folder)
    out = tmp_path / "DATA"
    config = PrepareConfig(size=64, segment_s=1.0, min_segment_s=1.0)
    first = prepare_videos(videos, out, config, workers=1, progress_bar=False)
    assert [s.status for s in first.files[0].segments] == ["kept", "kept", "dropped"]  # 2.16 s: 1 s + 1 s + 0.16 s
    assert len(read_index(out)) == 2
    # the file is replaced by a shorter one: its old second segment disappears from the index and the disk
    clip = read_video(videos / "clip.mp4")
    write_video(videos / "clip.mp4", clip.frames[:30], 25, clip.audio)
    redo = prepare_videos(videos, out, config, workers=1, progress_bar=False)
    assert not redo.files[0].skipped and [s.status for s in redo.files[0].segments] == ["kept", "dropped"]
    assert [r.id for r in read_index(out)] == [segment_id("clip.mp4", 0)]
    assert not (out / "clips" / f"{segment_id('clip.mp4', 1)}.mp4").exists()
    assert prepare_videos(videos, out, config, workers=1, progress_bar=False).files[0].skipped
    assert not prepare_videos(videos, out, config, workers=1, force=True, progress_bar=False).files[0].skipped
    (marker,) = (out / MARKER_DIR).iterdir()
    marker.write_text("{not json")  # a damaged marker is not trusted: the file is redone
    assert not prepare_videos(videos, out, config, workers=1, progress_bar=False).files[0].skipped
    # other settings are other outputs: the file is redone
    assert (
        not prepare_videos(
            videos, out, PrepareConfig(size=64, segment_s=1.0, min_segment_s=0.5), workers=1, progress_bar=False
        )
        .files[0]
        .skipped
    )


@pytest.mark.slow
def test_a_face_too_small_is_dropped(folder, tmp_path):
    videos = single(tmp_path, folder)
    report = prepare_videos(
        videos, tmp_path / "DATA", PrepareConfig(size=64, segment_s=4, min_face_px=400), workers=1, progress_bar=False
    )
    (entry,) = report.files
    assert (entry.status, entry.reason) == ("dropped", "face_too_small")
    assert "under min_face_px=400" in entry.detail and 80 < entry.segments[0].face_px < 200
    assert read_index(tmp_path / "DATA") == []


@pytest.mark.slow
def test_an_internal_error_is_reported_removes_what_was_written_and_is_retried(folder, tmp_path, monkeypatch):
    import avdiff.data.prepare.segments as prepare  # where each segment is tracked

    videos = single(tmp_path, folder)
    out = tmp_path / "DATA"
    config = PrepareConfig(size=64, segment_s=1, min_segment_s=1)
    calls = []

    def fails_on_the_second_segment(frames, **kwargs):
        calls.append(len(frames))
        if len(calls) == 2:
            raise RuntimeError("a bug")
        return track_landmarks(frames, **kwargs)

    monkeypatch.setattr(prepare, "track_landmarks", fails_on_the_second_segment)
    report = prepare_videos(videos, out, config, workers=1, progress_bar=False)
    assert (report.files[0].status, report.files[0].reason) == ("error", "internal_error")
    assert "RuntimeError: a bug" in report.files[0].detail and report.files[0].segments == []
    assert not list((out / "clips").iterdir())  # the first segment had been written: it is gone again
    assert not (out / MARKER_DIR).exists() and read_index(out) == []
    monkeypatch.undo()
    again = prepare_videos(videos, out, config, workers=1, progress_bar=False)
    assert not again.files[0].skipped and again.files[0].status == "kept"


def tiny_vae(path: Path) -> Path:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )
    vae.save_pretrained(path)
    return path


@pytest.mark.slow
def test_cached_latents_with_a_vae_folder(folder, tmp_path, capsys):
    from diffusers import AutoencoderKL

    videos = single(tmp_path, folder)
    vae_dir = tiny_vae(tmp_path / "sd" / "vae")  # Stable Diffusion's layout: the VAE in the pipeline's vae/ folder
    out = tmp_path / "DATA"
    assert (
        main(
            [
                "prepare",
                "--videos",
                str(videos),
                "--out",
                str(out),
                "--size",
                "64",
                "--segment-s",
                "4",
                "--latents",
                str(tmp_path / "sd"),
                "--workers",
                "1",
                "--no-progress",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["totals"]["kept_files"] == 1
    (record,) = read_index(out)
    latents = torch.load(out / record.latents)
    vae = AutoencoderKL.from_pretrained(vae_dir)
    assert latents["mean"].shape == (record.num_frames, 4, 32, 32) and latents["mean"].dtype == torch.float16
    assert latents["scaling_factor"] == vae.config.scaling_factor
    assert torch.isfinite(latents["mean"].float()).all() and (latents["std"] > 0).all()
    # the cached mean is the VAE's posterior mean of the clip's crops, scaled (the mp4 is lossy: compare loosely)
    crops = read_video(out / record.video).frames[:4].permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        again = vae.encode(crops).latent_dist.mean * vae.config.scaling_factor
    assert torch.nn.functional.cosine_similarity(again.flatten(), latents["mean"][:4].float().flatten(), dim=0) > 0.99
    # a folder that is not a VAE is refused up front, naming the option; a size the VAE cannot take too
    assert (
        main(
            [
                "prepare",
                "--videos",
                str(videos),
                "--out",
                str(tmp_path / "x"),
                "--latents",
                str(tmp_path / "nope"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "--latents" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert (
        main(
            [
                "prepare",
                "--videos",
                str(videos),
                "--out",
                str(tmp_path / "x"),
                "--latents",
                str(tmp_path / "empty"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "not a diffusers AutoencoderKL folder" in capsys.readouterr().err
    assert (
        main(
            [
                "prepare",
                "--videos",
                str(videos),
                "--out",
                str(tmp_path / "x"),
                "--latents",
                str(vae_dir),
                "--size",
                "65",
                "--no-progress",
            ]
        )
        == 2
    )
    assert "multiple of the VAE" in capsys.readouterr().err


@pytest.mark.slow
def test_a_crashing_worker_is_isolated_and_the_other_files_finish():
    # The worker function is the builtin eval, so the spawned workers import nothing of the tests; one item kills its
    # process as a crash in native code would, one raises an ordinary exception.
    crash, fails = "__import__('os')._exit(1)", "1 // 0"
    results = {
        item: (result, error) for item, result, error in run_parallel(eval, ["1", "2", crash, fails], workers=2)
    }
    assert results["1"] == (1, None) and results["2"] == (2, None)
    assert isinstance(results[crash][1], WorkerCrashed) and crash in str(results[crash][1])
    assert isinstance(results[fails][1], ZeroDivisionError)
    inline = {item: (result, error) for item, result, error in run_parallel(eval, ["1", fails], workers=1)}
    assert inline["1"] == (1, None) and isinstance(inline[fails][1], ZeroDivisionError)


def test_find_videos_ids_and_settings(tmp_path, capsys):
    videos = tmp_path / "v"
    (videos / ".hidden").mkdir(parents=True)
    (videos / "DATA").mkdir()
    for name in ("a b.mp4", "a_b.mp4", "x.MOV", ".hidden/h.mp4", "DATA/out.mp4", "readme.md"):
        (videos / name).write_bytes(b"")
    found, others = find_videos(videos, exclude=videos / "DATA")
    assert [p.name for p in found] == ["a b.mp4", "a_b.mp4", "x.MOV"] and [p.name for p in others] == ["readme.md"]
    assert segment_id("a b.mp4", 0) != segment_id("a_b.mp4", 0)
    assert segment_id("Speaker 1/Talk (take 2).mov", 3).startswith("speaker_1_talk_take_2_")
    assert segment_id("x.mp4", 7) == segment_id("x.mp4", 7) and segment_id("x.mp4", 7).endswith("_007")
    with pytest.raises(ValueError, match="size"):
        PrepareConfig(size=8).validate()
    with pytest.raises(ValueError, match="min_segment_s"):
        PrepareConfig(segment_s=2, min_segment_s=3).validate()
    assert main(["prepare", "--videos", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["prepare", "--videos", str(videos), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
    assert main(["prepare", "--videos", str(videos), "--out", str(tmp_path / "o"), "--size", "8"]) == 2
    assert "size" in capsys.readouterr().err
    with pytest.raises(ValueError, match="workers"):
        prepare_videos(videos, tmp_path / "o", workers=0)
    # the defaults --help shows are PrepareConfig's
    assert DEFAULTS == {k: v for k, v in asdict(PrepareConfig()).items() if k in DEFAULTS}


def test_a_much_smaller_second_face_does_not_count():
    face = skimage.data.astronaut()[:256, 100:356]
    small = cv2.resize(face, (200, 200), interpolation=cv2.INTER_AREA)
    frame = np.full((256, 480, 3), 200, np.uint8)
    frame[:, :256], frame[28:228, 270:470] = face, small
    frames = frame[None]
    several, why = several_faces(frames, 1, 0.5)  # the second face is ~0.8 the size of the first
    assert several and "2 faces" in why
    assert several_faces(frames, 1, 0.9) == (False, "")
