"""Manifests: CSV and JSON Lines read into typed rows; a bad manifest raises, a bad row is kept with its reason."""

import json
from pathlib import Path

import pytest

from avdiff.batch import ManifestError, get_job, read_manifest

TALK = get_job("talk").columns


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_rows_are_typed_with_paths_under_the_manifest_and_defaults_filled(tmp_path):
    m = _write(tmp_path / "jobs.csv", "image,audio,name,seed,steps\na.png,s.wav,first,,\nb.png,s.wav,,7,12\n")
    rows = read_manifest(m, TALK, {"steps": 4, "fps": "30000/1001"}, seed=100)
    assert [r.name for r in rows] == ["first", "0001_b"]
    assert [r.seed for r in rows] == [100, 7]  # base seed + row number, unless the row gives its own
    assert rows[0].values["image"] == tmp_path / "a.png" and rows[1].values["audio"] == tmp_path / "s.wav"
    assert [r.values["steps"] for r in rows] == [4, 12] and rows[0].values["fps"] == "30000/1001"
    assert all(r.problem is None for r in rows) and [r.line for r in rows] == [2, 3]


def test_yes_and_no_columns_read_the_usual_words_and_refuse_others(tmp_path):
    m = _write(tmp_path / "jobs.csv", "image,audio,paint_mouth\n" + "".join(
        f"a.png,s.wav,{word}\n" for word in ("yes", "No", "1", "false", "TRUE", "maybe")))  # fmt: skip
    rows = read_manifest(m, TALK)
    assert [r.values.get("paint_mouth") for r in rows[:5]] == [True, False, True, False, True]
    assert rows[5].problem is not None and "not true or false: 'maybe'" in rows[5].problem
    jsonl = _write(tmp_path / "jobs.jsonl", json.dumps({"image": "a.png", "audio": "s.wav", "paint_mouth": True}))
    assert read_manifest(jsonl, TALK)[0].values["paint_mouth"] is True


def test_jsonl_gives_the_same_rows_as_csv(tmp_path):
    csv = _write(tmp_path / "jobs.csv", "image,audio,steps\na.png,s.wav,3\n")
    jsonl = _write(tmp_path / "jobs.jsonl", json.dumps({"image": "a.png", "audio": "s.wav", "steps": 3}) + "\n\n")
    assert read_manifest(csv, TALK) == [r.__class__(**{**r.__dict__, "line": 2}) for r in read_manifest(jsonl, TALK)]


def test_a_bad_value_a_missing_value_or_a_reused_name_is_the_rows_problem_only(tmp_path):
    m = _write(
        tmp_path / "jobs.csv",
        "image,audio,name,steps,fps\na.png,s.wav,x,many,\n,s.wav,y,,\na.png,s.wav,x,,\na.png,s.wav,z,,500\n"
        "a.png,s.wav,../up,,\na.png,s.wav,fine,,\n",
    )
    rows = read_manifest(m, TALK)
    problems = [r.problem for r in rows]
    assert "steps: not a whole number: 'many'" in problems[0]
    assert problems[1] == "no image"
    assert problems[2] == "name 'x' is already row 0's output"
    assert "fps" in problems[3] and "500" in problems[3]
    assert "no folders" in problems[4]
    assert problems[5] is None


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("jobs.csv", "image,audio,imgae\na,b,c\n", "unknown column(s) ['imgae']"),
        ("jobs.csv", "image\na.png\n", "no column ['audio']"),
        ("jobs.csv", "image,audio\n", "has no rows"),
        ("jobs.csv", "", "is empty"),
        ("jobs.jsonl", '{"image": "a"}\n[1]\n', "line 2: a row must be a JSON object"),
        ("jobs.jsonl", "{not json\n", "line 1: not JSON"),
        ("jobs.txt", "x", "a .csv (with a header) or .jsonl file"),
    ],
)
def test_a_manifest_that_cannot_be_used_raises_naming_the_file(tmp_path, name, text, message):
    m = _write(tmp_path / name, text)
    with pytest.raises(ManifestError, match="manifest") as e:
        read_manifest(m, TALK)
    assert message in str(e.value)


def test_a_missing_manifest_raises(tmp_path):
    with pytest.raises(ManifestError, match="no such file"):
        read_manifest(tmp_path / "nope.csv", TALK)


def test_default_names_are_file_safe_and_names_differ_beyond_case(tmp_path):
    m = _write(tmp_path / "jobs.csv", "image,audio,name\nmy photo.png,s.wav,\na.png,s.wav,Ada\na.png,s.wav,ada\n")
    rows = read_manifest(m, TALK)
    assert rows[0].name == "0000_my_photo" and rows[0].problem is None
    assert rows[2].problem == "name 'ada' is already row 1's output"  # one file on macOS and Windows
