"""Names and paths that come from users or from an index: they become file names, so they must stay inside their
folder (issue 14, item 7)."""

import json

import pytest

from avdiff.cli import main
from avdiff.data.format import ClipRecord, check_name, read_index

UNSAFE = ["../x", "..", ".", "/tmp/abs", "a/b", "a\\b", "", ".hidden", "-rf", "x" * 129, "a b", "ok\n"]


@pytest.mark.parametrize("name", ["stella", "train_000_00001", "no_audio", "v1.2-final", "_x", "x" * 128])
def test_safe_names_pass_unchanged(name):
    assert check_name(name, "id") == name


@pytest.mark.parametrize("name", [*UNSAFE, None, 3])
def test_unsafe_names_are_refused_with_the_argument_named(name):
    with pytest.raises(ValueError, match=r"^--id .* is not a safe file name"):
        check_name(name, "--id")


def test_an_index_whose_ids_or_paths_leave_the_folder_is_refused(tmp_path):
    good = dict(id="a", video="clips/a.mp4", fps=25.0, sample_rate=16000, num_frames=5, duration_s=0.2)
    assert ClipRecord(**good).id == "a"
    for bad, match in [
        ({"id": "../../evil"}, "clip id"),
        ({"video": "/etc/passwd"}, "video"),
        ({"video": "clips/../../x.mp4"}, "video"),
        ({"landmarks": "..\\x.npy"}, "landmarks"),
    ]:
        with pytest.raises(ValueError, match=match):
            ClipRecord(**{**good, **bad})
        (tmp_path / "index.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({**good, **bad}) + "\n")
        with pytest.raises(ValueError, match=r"index.jsonl:2: not a clip record"):
            read_index(tmp_path)


@pytest.mark.parametrize("clip_id", UNSAFE)
def test_synth_refuses_an_unsafe_id_before_any_work(tmp_path, capsys, clip_id):
    out = tmp_path / "data"
    assert main(["synth", "--text", "Hello.", "--out", str(out), f"--id={clip_id}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("avdiff: error: --id") and "not a safe file name" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing written, inside the folder or beside it


def test_evaluate_talking_heads_refuses_unsafe_source_names(tmp_path):
    from avdiff.evaluation.talking_head import evaluate_talking_heads

    with pytest.raises(ValueError, match="source name '../up'"):
        evaluate_talking_heads(tmp_path, tmp_path / "out", {"../up": lambda photo, clip: None}, progress_bar=False)
    assert not (tmp_path / "out").exists()
