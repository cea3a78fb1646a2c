"""Timeline rows as a user writes them (the music tab's table, ``avdiff visualize --timeline``): every bad row named
in one error by the number the user sees, rows out of order sorted, rows past the song's end refused, and no server
path in any sentence the music tab shows."""

from __future__ import annotations

import json
import logging

import gradio as gr
import pytest

from avdiff.bench.visualize import make_keyframes, make_song
from avdiff.cli import main
from avdiff.demo import build_app
from avdiff.demo.tabs import MusicTab
from avdiff.pipelines.beat_visualizer.timeline import Interval, Timeline, TimelineError

GOOD = [[0, 4, "a", "b", "subject"], [4, 8, "b", "c", "color"], [8, 12, "c", "d", "pulse"]]


def test_every_bad_row_is_named_in_one_error():
    rows = [
        [0, 4, "a", "b", "subject"],
        ["four", 8, "b", "c", "subject"],
        [8, 12, "c", "d", "zoom"],
        ["", "", "", "", ""],
        [12, 16, "d", "image:", "subject"],
        [16, 15, "e", "f", "subject"],
    ]
    with pytest.raises(TimelineError) as e:
        Timeline.from_rows(rows)
    message = str(e.value)
    for part in [
        "row 2: start_s must be a number of seconds, got 'four'",
        "row 3: pattern must be one of subject, color, style, time, drift, pulse, got 'zoom'",
        "row 5: end: 'image:' names no image file",
        "row 6: end_s (15) must be after start_s (16)",
    ]:
        assert part in message, (part, message)
    assert "row 1" not in message and "row 4" not in message and message.count("\n") == 0
    with pytest.raises(TimelineError) as e:  # a gap and an overlap: both, by the rows the user sees
        Timeline.from_rows([[0, 4, "a", "b"], ["", "", "", ""], [3, 8, "b", "c"], [9, 12, "c", "d"]])
    assert str(e.value) == (
        "row 3 starts at 3 s, inside row 1 (0-4 s): intervals must not overlap; row 4 starts at "
        "9 s, 1.000 s after row 3 ends (8 s): intervals must touch, with no gaps"
    )


def test_rows_out_of_order_are_sorted_with_a_log_line(caplog):
    with caplog.at_level(logging.INFO, logger="avdiff.pipelines.beat_visualizer.timeline"):
        tl = Timeline.from_rows([GOOD[2], GOOD[0], GOOD[1]])
    assert tl == Timeline.from_rows(GOOD) and tl.labels == ("row 2", "row 3", "row 1")
    assert "not in order: sorted by their start (row 2, row 3, row 1)" in caplog.text
    with pytest.raises(TimelineError, match=r"^row 1 ends at 12 s, 2.000 s after the song ends \(10.000 s\)"):
        tl.with_duration(10.0)  # the user's row numbers survive the sort


def test_rows_past_the_songs_end_are_refused():
    with pytest.raises(TimelineError) as e:  # 400 s on a 20 s song: not cut without a word
        Timeline.from_rows([[0, 10, "a", "b"], [10, 400, "b", "c"]], duration_s=20.0)
    assert str(e.value) == (
        "row 2 ends at 400 s, 380.000 s after the song ends (20.000 s); the timeline must end with the song"
    )
    with pytest.raises(TimelineError) as e:
        Timeline.from_rows(
            [[0, 10, "a", "b"], [10, 20, "b", "c"], [20, 30, "c", "d"], [30, 40, "d", "e"]], duration_s=20.0
        )
    assert str(e.value) == (
        "row 3 starts at 20 s, after the song ends (20.000 s); row 4 starts at 30 s, after the song ends (20.000 s)"
    )
    tl = Timeline([Interval(0, 10, "a", "b"), Interval(10, 20.3, "b", "c")], 20.0)  # a re-encoded copy's length
    assert tl[-1].end_s == 20.0


def test_visualize_refuses_a_timeline_past_the_song_naming_each_interval(tmp_path, capsys):
    song = make_song(tmp_path / "song.wav", 2.0)
    keys = make_keyframes(tmp_path / "keys", 32)
    timeline = tmp_path / "t.json"
    a, b = f"image:{keys[0]}", f"image:{keys[1]}"
    timeline.write_text(
        json.dumps(
            [{"start_s": 1, "end_s": 400, "start": b, "end": a}, {"start_s": 0, "end_s": 1, "start": a, "end": b}]
        )
    )  # out of order, and too long
    out = tmp_path / "v.mp4"
    assert main(["visualize", "--audio", str(song), "--timeline", str(timeline), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == (
            "avdiff: error: interval 1 ends at 400 s, 398.000 s after the song ends (2.000 s); the timeline "
            "must end with the song\n"
        )
        and not out.exists()
    )
    timeline.write_text(json.dumps([{"start_s": 0, "end_s": "1"}, {"start_s": 0, "end_s": 2, "start": "a"}, 7]))
    assert main(["visualize", "--audio", str(song), "--timeline", str(timeline), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "interval 1: missing start, end; interval 2: missing end; interval 3: expected an object, got 7" in err


def test_visualize_names_every_missing_image_of_a_timeline_with_its_interval(tmp_path, capsys):
    song = make_song(tmp_path / "song.wav", 2.0)
    keys = make_keyframes(tmp_path / "keys", 32)
    timeline = tmp_path / "t.json"
    timeline.write_text(
        json.dumps(
            [
                {"start_s": 0, "end_s": 1, "start": "image:gone1.png", "end": f"image:{keys[0]}"},
                {"start_s": 1, "end_s": 2, "start": f"image:{keys[1]}", "end": "image:gone2.png"},
            ]
        )
    )
    out = tmp_path / "v.mp4"
    assert main(["visualize", "--audio", str(song), "--timeline", str(timeline), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not out.exists()
    assert "interval 1: start" in err and "gone1.png" in err and "interval 2: end" in err and "gone2.png" in err


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rows")
    return (
        build_app(bundled=False, tabs=[MusicTab]).avdiff_tabs[0],
        make_song(folder / "song.wav", 3.0),
        make_keyframes(folder / "keys", 32),
    )


def render_error(tab, song, images, rows) -> str:
    with pytest.raises(gr.Error) as e:
        tab.render(
            str(song), [str(p) for p in images], {"data": rows}, "beats", "25", 64, progress=lambda *a, **k: None
        )
    return e.value.message


@pytest.mark.slow
def test_the_music_tab_names_every_bad_row(music):
    tab, song, keys = music
    a, b = keys[0].name, keys[1].name
    message = render_error(
        tab,
        song,
        keys,
        [[0, 1, f"image:{a}", f"image:{b}", "subject"], [1, 400, f"image:{b}", f"image:{a}", "subject"]],
    )
    assert message == (
        "The timeline cannot be used: row 2 ends at 400 s, 397.000 s after the song ends (3.000 s); "
        "the timeline must end with the song."
    )
    message = render_error(tab, song, keys, [[0, 1, f"image:{a}", "image:gone.png"], ["x", 3, f"image:{a}", "image:"]])
    assert message == (
        "The timeline cannot be used: row 2: start_s must be a number of seconds, got 'x'; row 2: end: "
        "'image:' names no image file."
    )


def test_the_music_tabs_sentences_hold_no_server_path(music, tmp_path):
    tab, song, keys = music
    a = keys[0].name
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    messages = [
        render_error(tab, song, keys, [[0, 3, f"image:{a}", "image:gone.png"]]),
        render_error(tab, song, [bad], [[0, 3, "image:bad.png", "image:bad.png"]]),
    ]
    with pytest.raises(gr.Error) as e:
        tab.plan(str(song), [str(bad)], "beats", 8, ["subject"], "25")
    messages.append(e.value.message)
    for text in messages:
        assert str(tmp_path) not in text and str(keys[0].parent) not in text and "/tmp" not in text, text
    names = ", ".join(p.name for p in keys)
    assert messages[0] == f"Row 1: image:gone.png is not one of the uploaded images ({names})."
    assert (
        messages[1]
        == messages[2]
        == ("The image bad.png: cannot be read as an image (not an image file, or corrupt or truncated).")
    )
    message = render_error(
        tab, song, keys, [[1, 3, "image:other.png", f"image:{a}"], [0, 1, f"image:{a}", "image:gone.png"]]
    )
    assert message.startswith(
        "Row 2: image:gone.png is not one of the uploaded images; row 1: image:other.png is not "
        f"one of the uploaded images ({a}, "
    )
