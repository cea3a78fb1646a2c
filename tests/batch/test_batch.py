"""Batch jobs: bad rows skipped with their reason, atomic outputs and resume, one report; and under 2 processes
(accelerate launch, gloo on the CPU) the same videos, byte for byte, as one process makes, none made twice, with the
commands of docs/batch.md as they are written there."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from launching import doc_command, finish, kill_all, launch
from PIL import Image

from avdiff.audio import load_audio, save_audio
from avdiff.batch import get_job, read_manifest, run_batch
from avdiff.cli import main
from avdiff.video import read_video

ROOT = Path(__file__).resolve().parents[2]
SPEECH = ROOT / "avdiff" / "demo" / "assets" / "example_speech.flac"


def _inputs(folder: Path, seconds: float = 0.8) -> None:
    """face.png (the astronaut, 256 px), noise.png (no face) and speech.wav (the demo's speech, cut)."""
    Image.fromarray(skimage.data.astronaut()).resize((256, 256), Image.LANCZOS).save(folder / "face.png")
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "noise.png")
    speech = load_audio(SPEECH, sample_rate=16000, mono=True)
    save_audio(folder / "speech.wav", speech.__class__(speech.samples[:, : int(seconds * 16000)], 16000))


def _manifest(folder: Path, good: int, bad_at: int | None) -> Path:
    lines = ["image,audio,name"]
    for i in range(good + (bad_at is not None)):
        lines.append(f"{'noise' if i == bad_at else 'face'}.png,speech.wav,row{i}")
    (folder / "jobs.csv").write_text("\n".join(lines) + "\n")
    return folder / "jobs.csv"


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_a_batch_skips_bad_rows_with_their_reason_and_a_rerun_makes_only_what_is_missing(tmp_path, capsys):
    _inputs(tmp_path, seconds=2.0)  # long enough for a lip-sync score
    manifest = _manifest(tmp_path, good=2, bad_at=1)
    with manifest.open("a") as f:
        f.write("face.png,missing.wav,row3\n")
    out = tmp_path / "out"
    args = ["batch", "talk", "--manifest", str(manifest), "--out", str(out), "--model", "baseline", "--no-progress"]
    assert main(args) == 0
    report = _report(out)
    statuses = {r["name"]: (r["status"], r["reason"]) for r in report["rows"]}
    assert statuses["row0"] == ("done", None) and statuses["row2"] == ("done", None)
    assert statuses["row1"][0] == "skipped" and "no face" in statuses["row1"][1]
    assert (
        statuses["row3"][0] == "skipped"
        and "missing.wav" in statuses["row3"][1]
        and "no such file" in statuses["row3"][1]
    )
    assert report["summary"] == {"done": 2, "skipped": 2, "failed": 0}
    assert sorted(p.name for p in out.glob("row*.mp4")) == ["row0.mp4", "row2.mp4"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no partial file left behind
    done = next(r for r in report["rows"] if r["name"] == "row0")
    assert done["scores"]["lip sync r"] > 0.5 and done["seconds"] > 0  # the warp's mouth follows the speech
    table = capsys.readouterr().out
    assert "no face" in table and "2 done, 2 skipped, 0 failed" in table

    (out / "row2.mp4").unlink()
    before = (out / "row0.mp4").stat().st_mtime_ns
    assert main(args) == 0
    rerun = {r["name"]: (r["status"], r["reason"]) for r in _report(out)["rows"]}
    assert rerun["row0"] == ("skipped", "made by an earlier run") and rerun["row2"] == ("done", None)
    assert (out / "row0.mp4").stat().st_mtime_ns == before
    earlier = next(r for r in _report(out)["rows"] if r["name"] == "row0")
    assert earlier["scores"] == done["scores"]  # carried from the video's record, OUT/row0.json

    text = manifest.read_text().replace("face.png,speech.wav,row0", "face.png,speech.wav,row0,9")
    manifest.write_text(text.replace("image,audio,name", "image,audio,name,seed"))  # row 0 gets another seed
    assert main(args) == 0
    changed = {r["name"]: r["status"] for r in _report(out)["rows"]}
    assert changed["row0"] == "done" and changed["row2"] == "skipped"  # made again: its settings changed
    assert (out / "row0.mp4").stat().st_mtime_ns != before


def test_a_stale_partial_video_is_removed_only_for_its_own_row(tmp_path):
    from avdiff.batch.runner import remove_partial_videos

    mine, other = tmp_path / ".a.k2j4_x9q.partial.mp4", tmp_path / ".a.b.k2j4_x9q.partial.mp4"
    mine.write_bytes(b"x")
    other.write_bytes(b"x")
    remove_partial_videos(tmp_path, "a")
    assert not mine.exists() and other.exists()  # row "a.b"'s file being written is not row "a"'s


def test_the_python_api_yields_each_rows_result_and_a_bad_model_raises_before_any_work(tmp_path):
    _inputs(tmp_path)
    job = get_job("talk")
    rows = read_manifest(_manifest(tmp_path, good=1, bad_at=0), job.columns)
    results = list(run_batch(job, rows, tmp_path / "out", model="baseline", score=False, progress=False))
    assert [(r.name, r.status) for r in results] == [("row0", "skipped"), ("row1", "done")]
    assert results[1].scores == {} and Path(results[1].output).is_file()
    with pytest.raises(ValueError, match="no-such-model"):
        list(run_batch(job, rows, tmp_path / "out2", model=str(tmp_path / "no-such-model"), progress=False))
    assert not (tmp_path / "out2").exists() or not list((tmp_path / "out2").iterdir())
    with pytest.raises(ValueError, match="not a talking-head pipeline"):  # a scene model, refused by its class
        list(run_batch(job, rows, tmp_path / "out3", model="avdiff/scene-tiny", progress=False))


def test_the_default_motion_model_takes_its_own_settings_per_row_and_skips_a_pixel_setting(tmp_path):
    """The bundled default (the motion model): a row's blink rate, head motion and mouth painting reach the pipeline
    (a still head makes another video than a moving one, a painted mouth another than the renderer's), a row with a
    pixel model's setting, or painter steps without painting, is skipped with its reason."""
    _inputs(tmp_path, seconds=2.0)
    (tmp_path / "jobs.csv").write_text(
        "image,audio,name,seed,head_motion,blink_rate,audio_guidance,paint_mouth,mouth_steps\n"
        "face.png,speech.wav,moving,0,1,15,,,\n"
        "face.png,speech.wav,still,0,0,15,,,\n"
        "face.png,speech.wav,pixel,0,,,2,,\n"
        "face.png,speech.wav,painted,0,1,15,,yes,2\n"
        "face.png,speech.wav,unpainted_steps,0,1,15,,no,2\n"
    )
    job = get_job("talk")
    rows = read_manifest(tmp_path / "jobs.csv", job.columns)
    results = {r.name: r for r in run_batch(job, rows, tmp_path / "out", score=False, progress=False)}
    assert results["moving"].status == "done" and results["still"].status == "done"
    assert results["pixel"].status == "skipped" and "audio_guidance" in results["pixel"].reason
    assert "motion model" in results["pixel"].reason
    assert (
        results["unpainted_steps"].status == "skipped" and "paint_mouth is False" in results["unpainted_steps"].reason
    )
    moving, still, painted = (read_video(tmp_path / "out" / f"{n}.mp4").frames for n in ("moving", "still", "painted"))
    assert moving.shape == still.shape and not np.array_equal(moving, still)
    assert results["painted"].status == "done" and not np.array_equal(painted, moving)  # the same motion, painted


def test_a_manifest_that_cannot_be_used_is_one_error_line(tmp_path, capsys):
    (tmp_path / "jobs.csv").write_text("image,audio,voice\na,b,c\n")
    code = main(["batch", "talk", "--manifest", str(tmp_path / "jobs.csv"), "--out", str(tmp_path / "o")])
    assert code == 2 and "unknown column(s) ['voice']" in capsys.readouterr().err


def test_music_videos_and_scenes_by_manifest_each_row_seeded_by_itself(tmp_path):
    from avdiff.bench.audio_scene import stepped_sound
    from avdiff.bench.visualize import make_keyframes, make_song

    make_song(tmp_path / "song.wav", 6.0)
    make_keyframes(tmp_path / "keys", 64)
    save_audio(tmp_path / "crackle.wav", stepped_sound(1.5))
    (tmp_path / "v.csv").write_text(
        "audio,images,size\nsong.wav,keys/astronaut.png;keys/coffee.png,64\nsong.wav,keys/nope.png,64\n"
    )
    assert main(["batch", "visualize", "--manifest", str(tmp_path / "v.csv"), "--out", str(tmp_path / "v")]) == 0
    rows = _report(tmp_path / "v")["rows"]
    assert rows[0]["status"] == "done" and rows[0]["scores"]["Beat Align Score"] > 0.5  # cuts land on the beats
    assert rows[1]["status"] == "skipped" and "nope.png" in rows[1]["reason"]

    prompt = "a campfire beside a lake at night"
    (tmp_path / "s.csv").write_text(f"prompt,audio,name,seed\n{prompt},crackle.wav,a,1\n{prompt},crackle.wav,b,2\n")
    (tmp_path / "again.csv").write_text(f"prompt,audio,name,seed\n{prompt},crackle.wav,a,1\n")
    for manifest, out in (("s.csv", "s"), ("again.csv", "again")):
        args = ["batch", "scene", "--manifest", str(tmp_path / manifest), "--out", str(tmp_path / out), "--steps", "3"]
        assert main(args) == 0
    assert (tmp_path / "s" / "a.mp4").read_bytes() == (tmp_path / "again" / "a.mp4").read_bytes()  # its seed alone
    assert (tmp_path / "s" / "a.mp4").read_bytes() != (tmp_path / "s" / "b.mp4").read_bytes()  # another seed


# --- several processes, with the commands of docs/batch.md ------------------------------------------------------


def _doc_command(label: str) -> str:
    return doc_command("batch.md", label)


def _one_process(folder: Path) -> Path:
    main(["batch", "talk", "--manifest", "jobs.csv", "--out", str(folder / "single"), "--steps", "8", "--no-progress"])
    return folder / "single"


@pytest.fixture(scope="module")
def batch_folder(tmp_path_factory):
    """Six talking-head rows (row 2 has no face) and their videos made by one process (the bundled model)."""
    folder = tmp_path_factory.mktemp("batch")
    _inputs(folder, seconds=4.0)  # long enough that a batch can be killed between two videos of the fast default
    _manifest(folder, good=5, bad_at=2)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        _one_process(folder)
    finally:
        os.chdir(cwd)
    return folder


def _same_videos(out: Path, single: Path) -> None:
    names = sorted(p.name for p in single.glob("row*.mp4"))
    assert names == [f"row{i}.mp4" for i in (0, 1, 3, 4, 5)]
    assert sorted(p.name for p in out.glob("row*.mp4")) == names
    for name in names:
        assert (out / name).read_bytes() == (single / name).read_bytes(), name


@pytest.mark.slow
@pytest.mark.parametrize("label", ["one machine", "cluster"])
def test_two_processes_make_the_same_videos_as_one_none_twice(batch_folder, label):
    out = batch_folder / "out"
    shutil.rmtree(out, ignore_errors=True)  # the folder's tests share it: each starts with none
    command = _doc_command(label)
    output = finish(launch(command, batch_folder))
    _same_videos(out, batch_folder / "single")
    rows = _report(out)["rows"]
    assert [r["index"] for r in rows] == list(range(6))  # every row once: none made by both processes
    assert {r["process"] for r in rows if r["status"] == "done"} == {0, 1}
    assert rows[2]["status"] == "skipped" and "no face" in rows[2]["reason"]
    assert output.count("wrote out/report.json") == 1  # one report, by the main process


@pytest.mark.slow
def test_a_killed_batch_resumes_making_only_the_missing_videos(batch_folder):
    out = batch_folder / "out"
    shutil.rmtree(out, ignore_errors=True)
    command = _doc_command("one machine")
    process = launch(command, batch_folder)
    deadline = time.monotonic() + 300
    while not list(out.glob("row*.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    kill_all(process)
    # finished: a video with its record (a video whose record was not yet written when killed is made again)
    made = {p.with_suffix(".mp4").name: p.with_suffix(".mp4").stat().st_mtime_ns for p in out.glob("row*.json")}
    assert made and len(made) < 5, "the batch should be killed after its first video"
    finish(launch(command, batch_folder))
    report = _report(out)
    for row in report["rows"]:
        if f"{row['name']}.mp4" in made:
            assert (row["status"], row["reason"]) == ("skipped", "made by an earlier run")
        elif row["index"] != 2:
            assert row["status"] == "done", row
    assert {n: (out / n).stat().st_mtime_ns for n in made} == made  # not made again
    _same_videos(out, batch_folder / "single")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.gpu
def test_a_batch_on_the_gpu_makes_the_cpus_rows(tmp_path):
    """One process on CUDA (the bundled talking-head model, float32): every good row done, on the GPU."""
    _inputs(tmp_path)
    manifest = _manifest(tmp_path, good=2, bad_at=1)
    args = ["batch", "talk", "--manifest", str(manifest), "--steps", "2", "--no-progress", "--device", "cuda"]
    assert main([*args, "--out", str(tmp_path / "gpu")]) == 0
    report = _report(tmp_path / "gpu")
    assert report["summary"] == {"done": 2, "skipped": 1, "failed": 0}
