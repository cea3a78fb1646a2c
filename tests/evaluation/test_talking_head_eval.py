"""The talking-head benchmark (`avdiff eval talking-head`): the photo it picks, the scores it gives the baselines and a
model, agreement with `avdiff eval lipsync`, the same report from 2 processes as from 1, and its errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avdiff.cli import main
from avdiff.data.format import read_index
from avdiff.data.synthetic import make_dataset
from avdiff.data.video_dataset import load_clip
from avdiff.evaluation.talking_head import (
    ClipScore,
    TalkingHeadReport,
    evaluation_photo,
    reference_aperture,
)
from avdiff.loading import process_share, process_state
from avdiff.pipelines.talking_head import TalkingHeadPipeline

pytestmark = [pytest.mark.requires_espeak, pytest.mark.usefixtures("one_thread")]  # espeak-ng speech; one thread


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("heldout")
    make_dataset(folder, 2, split="test", seed=1, progress_bar=False)
    return folder


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_model")
    TalkingHeadPipeline.from_preset("tiny", seed=0).save_pretrained(folder)
    return folder


def run_eval(capsys, *args) -> dict:
    assert main(["eval", "talking-head", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_the_photo_is_the_frame_with_the_most_closed_mouth(data):
    record = read_index(data)[0]
    clip = load_clip(data, record)
    aperture = reference_aperture(data, clip)
    index, photo = evaluation_photo(clip, aperture)
    assert aperture[index] == aperture.min() and aperture.max() - aperture[index] > 0.2
    assert np.array_equal(photo, clip.frames[index])


@pytest.mark.slow
def test_baselines_score_as_lipsync_does(data, tmp_path, capsys):
    out = tmp_path / "eval"
    report = run_eval(
        capsys, "--data", data, "--out", out, "--baselines", "ground_truth,still", "--syncnet", "avdiff/syncnet-motion"
    )
    summary = report["summary"]
    assert summary["ground_truth"]["clips"] == summary["still"]["clips"] == 2
    # real lip motion follows the true aperture; a held photo does not, and differs from the true frames
    assert summary["ground_truth"]["r_reference"] > 0.9 and summary["ground_truth"]["offset_within_1"] == 1.0
    assert abs(summary["still"]["r_reference"]) < 0.3
    assert (
        summary["ground_truth"]["r_interior_reference"] > 0.9 and abs(summary["still"]["r_interior_reference"]) < 0.3
    )
    assert summary["ground_truth"]["psnr_db"] > summary["still"]["psnr_db"] + 5
    assert summary["ground_truth"]["ssim"] > 0.98 and summary["ground_truth"]["ssim"] > summary["still"]["ssim"]
    # the mouth region tells the held photo from real lip motion more sharply than the whole face does
    assert summary["ground_truth"]["mouth_psnr_db"] > summary["still"]["mouth_psnr_db"] + 10  # measured 48.4, 27.0
    assert summary["ground_truth"]["mouth_ssim"] > summary["still"]["mouth_ssim"] + 0.05  # 0.995, 0.891
    # both show the photo's person (dlib's same-person threshold), every frame
    assert summary["ground_truth"]["identity_share"] == summary["still"]["identity_share"] == 1.0
    assert (out / "report.json").is_file() and "| ground_truth |" in (out / "report.md").read_text()
    # every per-clip number is what `avdiff eval lipsync` says of the written video
    row = next(r for r in report["clips"] if r["source"] == "ground_truth")
    record = next(r for r in read_index(data) if r.id == row["clip"])
    aperture = str(data / record.aperture)
    assert (
        main(
            [
                "eval",
                "lipsync",
                row["video"],
                "--reference-aperture",
                aperture,
                "--syncnet",
                "syncnet-motion",
                "--json",
            ]
        )
        == 0
    )
    single = json.loads(capsys.readouterr().out)
    assert single["syncnet"]["offset_frames"] == row["sync_offset_frames"]
    assert single["syncnet"]["lse_c"] == pytest.approx(row["lse_c"], abs=1e-5)
    assert single["syncnet"]["lse_d"] == pytest.approx(row["lse_d"], abs=1e-5)
    assert summary["ground_truth"]["sync_scored"] == summary["still"]["sync_scored"] == 2
    assert summary["ground_truth"]["lse_c"] > summary["still"]["lse_c"]  # real lip motion against a held photo
    assert single["r_reference"] == pytest.approx(row["r_reference"], abs=1e-6)
    assert single["r_envelope"] == pytest.approx(row["r_envelope"], abs=1e-6)
    assert single["offset_frames"] == row["offset_frames"]
    assert single["interior"]["r_reference"] == pytest.approx(row["r_interior_reference"], abs=1e-6)


@pytest.mark.slow
def test_a_model_is_animated_at_the_clip_length_and_deterministically(data, model, tmp_path, capsys):
    args = [
        "--data",
        data,
        "--model",
        f"tiny={model}",
        "--baselines",
        "",
        "--max-clips",
        "1",
        "--steps",
        "2",
        "--chunk-frames",
        "8",
        "--motion-frames",
        "2",
    ]
    first = run_eval(capsys, *args, "--out", tmp_path / "a")
    second = run_eval(capsys, *args, "--out", tmp_path / "b")
    (row,) = first["clips"]
    record = read_index(data)[0]
    assert row["source"] == "tiny" and abs(row["num_frames"] - record.num_frames) <= 1
    assert first["summary"] == second["summary"]
    assert first["settings"]["num_inference_steps"] == "2" and first["settings"]["models"] == {"tiny": str(model)}


def run_cli(out: Path, args: list, processes: int) -> subprocess.Popen:
    """``avdiff eval talking-head ARGS --out OUT`` in a new process: plain (1 process) or under torchrun with
    ``processes`` CPU processes (gloo), one OpenMP thread each, so both runs compute the same floats."""
    import avdiff

    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(Path(avdiff.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    launcher = (
        ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] if processes > 1 else []
    )
    cli = ["-m", "avdiff.cli", "-v", "eval", "talking-head", *map(str, args), "--out", str(out)]  # -v: info logs
    cmd = [sys.executable, *launcher, *cli]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def three_clips(data, tmp_path_factory) -> Path:
    """``data`` and one clip more (make_dataset keeps the clips already there): 3 clips, shared 2 + 1 by 2 processes."""
    folder = tmp_path_factory.mktemp("heldout3") / "data"
    shutil.copytree(data, folder)
    make_dataset(folder, 3, split="test", seed=1, progress_bar=False)
    return folder


@pytest.mark.slow
def test_two_processes_write_the_report_one_process_writes(three_clips, model, tmp_path):
    """torchrun with 2 CPU processes: each animates and scores its share of the 3 clips, and the main process alone
    writes and prints the merged report, whose per-clip scores equal a plain 1-process run's, in the same order, each
    clip done once per source."""
    args = [
        "--data",
        three_clips,
        "--model",
        f"tiny={model}",
        "--baselines",
        "still,warp",
        "--steps",
        "2",
        "--chunk-frames",
        "8",
        "--motion-frames",
        "2",
        "--syncnet",
        "avdiff/syncnet-motion",
    ]
    one, two = tmp_path / "one", tmp_path / "two"
    runs = {one: run_cli(one, args, 1), two: run_cli(two, args, 2)}  # side by side
    printed = {}
    for out, proc in runs.items():
        printed[out], _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, printed[out][-3000:]
    reports = {out: json.loads((out / "report.json").read_text()) for out in runs}
    ids = [record.id for record in read_index(three_clips)]
    assert len(ids) == 3
    for out, report in reports.items():
        for source in ("tiny", "still", "warp"):  # each clip once per source, in the index's order
            assert [row["clip"] for row in report["clips"] if row["source"] == source] == ids, (out, source)
        videos = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mp4"))
        assert videos == sorted(f"{s}/{i}.mp4" for s in ("still", "tiny", "warp") for i in ids), out
        assert printed[out].count("report.json and ") == 1 and printed[out].count("| source |") == 1, printed[out][
            -3000:
        ]
        for clip in ids:  # each video made and scored by one process only (the per-clip log line)
            for source in ("tiny", "still", "warp"):
                assert printed[out].count(f"talking_head: {clip} {source}: r_reference") == 1, (out, clip, source)
    # the split happened: 2 + 1 contiguous clips
    assert f"process 0 of 2: 2 of the 3 clips ({ids[0]}, {ids[1]})" in printed[two], printed[two][-3000:]
    assert f"process 1 of 2: 1 of the 3 clips ({ids[2]})" in printed[two]

    def scores(report: dict) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "video"} for row in report["clips"]]

    # the SyncNet's fields are gathered too; a video it cannot score (no face it can track) says why
    clips = reports[two]["clips"]
    assert any(row["lse_c"] is not None for row in clips), clips
    assert all(row["sync_reason"] for row in clips if row["lse_c"] is None), clips
    assert scores(reports[two]) == scores(reports[one])  # the same floats, not merely close
    assert reports[two]["summary"] == reports[one]["summary"]
    assert reports[two]["settings"] == reports[one]["settings"] and reports[two]["skipped"] == []
    assert "process 0 of" not in printed[one]


def test_one_process_does_every_clip_in_order():
    state = process_state()
    assert state.num_processes == 1 and state.is_main_process  # pytest is started plainly: one process
    records = ["c", "a", "b", "e", "d"]
    assert process_share(records, state) == records and process_share(records) == records
    assert process_share([], state) == []


def test_report_summary_and_paired_wins():
    def score(clip, source, r):
        return ClipScore(
            clip, source, f"{source}/{clip}.mp4", r, r / 2, 0 if r > 0.5 else 4, -r, 0.0, 20.0, 0.8, 10, 10
        )

    report = TalkingHeadReport(
        [score("a", "m", 0.8), score("b", "m", 0.1), score("a", "still", 0.0), score("b", "still", 0.2)]
    )
    summary = report.summary()
    assert summary["m"]["r_reference"] == pytest.approx(0.45) and summary["m"]["offset_within_1"] == 0.5
    assert summary["m"]["r_interior_reference"] == pytest.approx(-0.45)
    assert report.wins("m", "still") == (1, 2) and report.wins("m", "still", "r_interior_reference") == (1, 2)
    # a mouth that does not move is scored (r 0) but has no offset: not "within a frame" of sync
    still = ClipScore("c", "frozen", "frozen/c.mp4", 0.0, 0.0, None, 0.0, 0.0, 20.0, 0.8, 10, 10)
    frozen = TalkingHeadReport([still]).summary()["frozen"]
    assert frozen["scored"] == 1 and frozen["offset_within_1"] == 0.0
    markdown = report.to_markdown(["m"])
    assert "- m beats still on 1 of 2 clips by openness r" in markdown
    assert "- m beats still on 1 of 2 clips by interior r" in markdown


def test_syncnet_scores_are_summarised_over_the_clips_it_scored():
    def score(clip, source, sync_offset, lse_c, reason=None):
        return ClipScore(
            clip, source, f"{source}/{clip}.mp4", 0.5, 0.5, 3, 0.5, 0.5, 20.0, 0.8, 10, 10,
            lse_d=None if lse_c is None else 1.0 - lse_c, lse_c=lse_c, sync_offset_frames=sync_offset,
            sync_reason=reason,
        )  # fmt: skip

    plain = TalkingHeadReport([score("a", "m", None, None)])
    assert plain.summary()["m"]["sync_offset_within_1"] is None and plain.summary()["m"]["sync_scored"] == 0
    assert "SyncNet" not in plain.to_markdown()  # no SyncNet, no columns
    report = TalkingHeadReport(
        [
            score("a", "m", 1, 0.3),
            score("b", "m", -4, 0.1),
            score("c", "m", None, None, reason="no face"),
            score("a", "still", 9, 0.02),
        ]
    )
    summary = report.summary()
    # the loudness offset (3) is outside the window on every clip; the SyncNet's is inside on one of its two
    assert summary["m"]["offset_within_1"] == 0.0 and summary["m"]["sync_offset_within_1"] == 0.5
    assert summary["m"]["sync_scored"] == 2 and summary["m"]["lse_c"] == pytest.approx(0.2)
    assert summary["m"]["lse_d"] == pytest.approx(0.8)
    markdown = report.to_markdown(["m"])
    assert "SyncNet offset within 1 frame | LSE-C | LSE-D |" in markdown
    assert "| 50% (2) | 0.200 | 0.800 |" in markdown and "| 0% (1) | 0.020 | 0.980 |" in markdown
    assert "- m beats still on 1 of 1 clips by SyncNet LSE-C (same clip)" in markdown
    assert "by SyncNet LSE-C" not in plain.to_markdown(["m"])


def test_unscored_clips_are_counted_and_left_out_of_the_means(tmp_path):
    # a clip whose video shows no face has no lip-sync score: it is not a zero, not "within 1 frame", and the JSON
    # report stays strict (no bare NaN)
    from avdiff.evaluation.talking_head import write_report

    scored = ClipScore("a", "m", "m/a.mp4", 0.8, 0.6, 0, 0.7, 0.5, 30.0, 0.9, 100, 100)
    empty = ClipScore(
        "b",
        "m",
        "m/b.mp4",
        None,
        None,
        None,
        None,
        None,
        12.0,
        0.4,
        0,
        100,
        reason="only 0 of 100 frames have both a face and audio",
    )
    report = TalkingHeadReport(
        [
            scored,
            empty,
            ClipScore("a", "still", "s/a.mp4", None, None, None, None, None, 20.0, 0.8, 3, 100, reason="too few"),
        ]
    )
    summary = report.summary()
    assert summary["m"]["clips"] == 2 and summary["m"]["scored"] == 1
    assert summary["m"]["r_reference"] == pytest.approx(0.8) and summary["m"]["r_envelope"] == pytest.approx(0.6)
    assert summary["m"]["offset_within_1"] == 1.0  # of the one scored clip, not 2 of 2 with a fake 0
    assert summary["m"]["psnr_db"] == pytest.approx(21.0)  # the similarity to the truth exists either way
    assert summary["still"]["scored"] == 0 and summary["still"]["r_envelope"] is None
    assert summary["still"]["offset_within_1"] is None
    assert report.wins("m", "still") == (0, 0)
    assert "| m | 1 of 2 |" in report.to_markdown() and "| still | 0 of 1 | n/a |" in report.to_markdown()
    json_path, _ = write_report(report, tmp_path)

    def refuse(constant):
        raise ValueError(f"bare {constant} in report.json")

    loaded = json.loads(json_path.read_text(), parse_constant=refuse)
    assert loaded["summary"]["still"]["r_envelope"] is None and loaded["clips"][1]["reason"].startswith("only 0")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "nameonly"], "expected NAME=PATH"),
        (["--model", "still=somewhere"], "is taken"),
        (["--model", "=somewhere"], "expected NAME=PATH"),
        (["--model", "../up=somewhere"], "not a safe file name"),
        (["--model", "/abs/x=somewhere"], "not a safe file name"),
        (["--model", "a/b=somewhere"], "not a safe file name"),
        (["--model", "a\\b=somewhere"], "not a safe file name"),
        (["--model", "..=somewhere"], "not a safe file name"),
        (["--baselines", "ground_truth,mirror"], "unknown ['mirror']"),
        (["--baselines", ""], "nothing to evaluate"),
        (["--baselines", "still", "--syncnet", "no-such-syncnet"], "--syncnet 'no-such-syncnet'"),
        (  # a pipeline's own check, in the flags' words
            ["--model", "m=avdiff/talking-head-motion", "--baselines", "", "--mouth-steps", "8"],
            "--mouth-steps 8, but --paint-mouth is not given",
        ),
    ],
)
def test_bad_arguments_are_refused_before_any_work(data, tmp_path, capsys, extra, message):
    out = tmp_path / "never"
    assert main(["eval", "talking-head", "--data", str(data), "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_folder_that_is_not_data_is_refused(tmp_path, capsys):
    assert (
        main(["eval", "talking-head", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--baselines", "still"])
        == 2
    )
    assert "not a DATA folder" in capsys.readouterr().err


def test_a_folder_that_is_not_a_pipeline_is_refused(data, tmp_path, capsys):
    assert (
        main(["eval", "talking-head", "--data", str(data), "--out", str(tmp_path / "o"), "--model", f"x={tmp_path}"])
        == 2
    )
    assert "not a saved pipeline folder" in capsys.readouterr().err
