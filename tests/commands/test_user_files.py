"""Files users' tools leave behind: macOS ``._name`` resource files and ``.DS_Store`` in a folder of media are skipped
with a count in the log, and JSON/JSONL saved by Windows Notepad (UTF-8 with a byte-order mark) is read."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

import numpy as np
import pytest
from PIL import Image

from avdiff.commands.eval import load_reference_aperture
from avdiff.commands.eval_beats import load_beats
from avdiff.commands.visualize import image_files
from avdiff.data.faces import user_faces
from avdiff.data.format import ClipRecord, read_index
from avdiff.data.prepare import find_videos
from avdiff.data.scenes.writer import SceneRecord, read_scene_index, write_scene_index
from avdiff.pipelines.beat_visualizer.timeline import Interval, Timeline
from avdiff.user_files import list_files, read_json

BOM = "\ufeff"
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "  # the header of a macOS ._name resource file


def _leave_mac_and_windows_files(folder):
    """What Finder, a Mac-made zip and Explorer leave in a folder of media."""
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    for name in ("._a.png", "._b.jpg", "._clip.mp4"):
        (folder / name).write_bytes(APPLEDOUBLE)
    (folder / "__MACOSX").mkdir()
    (folder / "__MACOSX" / "._a.png").write_bytes(APPLEDOUBLE)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for name, color in (("a.png", 40), ("b.jpg", 200)):
        Image.new("RGB", (32, 32), (color, 90, 30)).save(folder / name)
    _leave_mac_and_windows_files(folder)
    return folder


def test_images_folder_skips_resource_forks_and_dotfiles_with_a_count(photos, caplog):
    with caplog.at_level(logging.WARNING):
        files = image_files([str(photos)])
    assert [p.name for p in files] == ["a.png", "b.jpg"]
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 1 and "--images" in lines[0] and "skipped 5 " in lines[0]  # ._a ._b ._clip .DS_Store Thumbs


def test_faces_folder_skips_them_too(photos, caplog):
    with caplog.at_level(logging.WARNING):
        faces = user_faces(photos)
    assert len(faces) <= 2  # photos without a face may be dropped; a resource file never reaches the face finder
    assert not any("._" in r.getMessage() and "skipping" in r.getMessage() for r in caplog.records)
    assert sum("skipped 5 " in r.getMessage() for r in caplog.records) == 1


def test_prepare_counts_what_it_skips_in_subfolders(tmp_path, caplog):
    videos = tmp_path / "videos"
    (videos / "talks").mkdir(parents=True)
    (videos / "talks" / "one.mp4").write_bytes(b"")
    (videos / "two.mov").write_bytes(b"")
    _leave_mac_and_windows_files(videos)
    _leave_mac_and_windows_files(videos / "talks")
    with caplog.at_level(logging.WARNING):
        found, others = find_videos(videos)
    assert [p.relative_to(videos).as_posix() for p in found] == ["talks/one.mp4", "two.mov"] and others == []
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 1 and "skipped 12 " in lines[0]  # 5 files and __MACOSX/ in each of the two folders


def test_list_files_is_quiet_when_nothing_is_skipped(tmp_path, caplog):
    (tmp_path / "x.PNG").write_bytes(b"")
    (tmp_path / "y.txt").write_bytes(b"")
    (tmp_path / ".git").mkdir()  # not listed, and not counted: sub-folders are not entered without recursive
    with caplog.at_level(logging.INFO):
        assert [p.name for p in list_files(tmp_path, [".png"])] == ["x.PNG"]
        assert [p.name for p in list_files(tmp_path)] == ["x.PNG", "y.txt"]
    assert not caplog.records
    with pytest.raises(NotADirectoryError, match="not a folder"):
        list_files(tmp_path / "y.txt")


def _with_bom(path, text):
    path.write_bytes((BOM + text).encode("utf-8"))
    return path


def test_a_timeline_saved_by_notepad_loads(tmp_path):
    tl = Timeline(
        [
            Interval(0, 4, "a forest at dawn", tmp_path / "sea.png"),
            Interval(4, 9, tmp_path / "sea.png", "a city at night", "color"),
        ]
    )
    path = tl.save(tmp_path / "song.timeline.json")
    _with_bom(path, path.read_text(encoding="utf-8"))
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert Timeline.load(path) == tl


def test_beats_and_aperture_json_with_a_bom_load(tmp_path):
    beats = _with_bom(tmp_path / "beats.json", json.dumps({"beat_times_s": [1.5, 0.5, 1.0]}))
    assert load_beats(str(beats)).tolist() == [0.5, 1.0, 1.5]
    aperture = _with_bom(tmp_path / "aperture.json", json.dumps({"aperture": [0.1, None, 0.3]}))
    got = load_reference_aperture(aperture)
    assert got[0] == pytest.approx(0.1) and np.isnan(got[1])
    assert read_json(_with_bom(tmp_path / "x.json", "[1]")) == [1] and read_json(beats) == json.loads(
        beats.read_text(encoding="utf-8-sig")
    )


def test_an_index_saved_by_notepad_loads(tmp_path):
    clip = dict(id="a", video="clips/a.mp4", fps=25.0, sample_rate=16000, num_frames=5, duration_s=0.2)
    _with_bom(tmp_path / "index.jsonl", json.dumps(clip) + "\n")
    assert read_index(tmp_path) == [ClipRecord(**clip)]
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    record = SceneRecord(
        id="s", video="clips/s.mp4", masks="clips/s.masks.npy", caption="a dog", objects=[], sky="day"
    )
    write_scene_index(scenes, [record])
    _with_bom(scenes / "index.jsonl", (scenes / "index.jsonl").read_text(encoding="utf-8"))
    assert [asdict(r) for r in read_scene_index(scenes)] == [asdict(record)]
