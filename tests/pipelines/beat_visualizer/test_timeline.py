"""Timeline: intervals checked, saved and loaded with clear errors, tiled onto the frames by the one clock, and laid
on the beat grid (on downbeats where found)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from avdiff.audio.rhythm import analyze_rhythm
from avdiff.audio.synth import drum_track
from avdiff.pipelines.beat_visualizer.timeline import Interval, Timeline, TimelineError, format_key, parse_key

from rhythms import rhythm_of


def three(tmp_path: Path) -> Timeline:
    return Timeline(
        [
            Interval(0, 4, "a forest at dawn", tmp_path / "sea.png"),
            Interval(4, 9.5, tmp_path / "sea.png", "a city at night", "color"),
            Interval(9.5, 12, "a city at night", "a city at night", "pulse"),
        ]
    )


def test_json_round_trip_with_prompts_and_images(tmp_path):
    tl = three(tmp_path)
    path = tl.save(tmp_path / "song.timeline.json")
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["intervals"][0]["end"] == {"image": "sea.png"}  # relative to the file
    assert data["intervals"][1]["pattern"] == "color" and data["intervals"][2]["start"] == "a city at night"
    assert Timeline.load(path) == tl
    assert tl.keyframes() == ["a forest at dawn", tmp_path / "sea.png", "a city at night"]
    assert tl.images() == [tmp_path / "sea.png"] and len(tl.prompts()) == 2


def test_keys_in_their_written_forms(tmp_path):
    assert parse_key("image: a/b.png", tmp_path) == tmp_path / "a/b.png"
    assert parse_key({"image": "/abs/c.jpg"}, tmp_path) == Path("/abs/c.jpg")
    assert parse_key({"prompt": " a cat "}) == "a cat" and parse_key("  a dog") == "a dog"
    assert format_key(Path("x.png")) == "image:x.png" and format_key("a cat") == "a cat"
    for bad in ("", "   ", "image:", {"image": ""}, {"video": "x"}, 3, None):
        with pytest.raises(TimelineError, match="keyframe"):
            parse_key(bad)


@pytest.mark.parametrize(
    "intervals, message",
    [
        ([], "at least one interval"),
        ([Interval(0.5, 4, "a", "b")], "interval 1 starts at 0.5 s; the timeline must start at 0"),
        (
            [Interval(0, 4, "a", "b"), Interval(5, 8, "b", "c")],
            "interval 2 starts at 5 s, 1.000 s after interval 1 ends",
        ),
        ([Interval(0, 4, "a", "b"), Interval(3, 8, "b", "c")], "interval 2 starts at 3 s, inside interval 1 (0-4 s)"),
        (
            [Interval(0, 4, "a", "b"), Interval(4, 6, "b", "c"), Interval(2, 8, "c", "d")],
            "interval 3 starts at 2 s, inside interval 1 (0-4 s)",
        ),
        ([Interval(0, 4, "a", "b"), Interval(4, 4, "b", "c")], "interval 2: end_s (4) must be after start_s (4)"),
        ([Interval(0, float("nan"), "a", "b")], "interval 1: end_s must be a finite number of seconds"),
        ([Interval(0, 4, "a", "  ")], "interval 1: end must be a prompt (str) or an image (pathlib.Path)"),
        (
            [Interval(0, 4, "a", "b", "zoom")],
            "interval 1: pattern must be one of subject, color, style, time, drift, pulse",
        ),
    ],
)
def test_bad_timelines_name_the_interval(intervals, message):
    with pytest.raises(TimelineError) as e:
        Timeline(intervals)
    assert message in str(e.value)


def test_the_song_must_be_covered_and_what_runs_past_it_is_refused(tmp_path):
    tl = three(tmp_path)
    with pytest.raises(TimelineError, match=r"ends at 12 s, before the song ends \(13.000 s\)"):
        tl.with_duration(13.0)
    with pytest.raises(TimelineError, match=r"interval 3 starts at 9.5 s, after the song ends \(9.000 s\)"):
        tl.with_duration(9.0)
    with pytest.raises(TimelineError, match=r"interval 3 ends at 12 s, 1.000 s after the song ends \(11.000 s\)"):
        tl.with_duration(11.0)
    cut = tl.with_duration(11.8)  # within END_TOLERANCE_S (a re-encoded copy of the song): cut at its end
    assert len(cut) == 3 and cut[-1].end_s == 11.8


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        (
            '{\n  "intervals": [\n    {"start_s": 0,,}',
            "not JSON: Expecting property name enclosed in double quotes at line 3, column 19",
        ),
        ('{"intervals": {}}', 'expected an object with an "intervals" list, got dict'),
        ('{"version": 2, "intervals": []}', "version 2 is not one this avdiff reads (1)"),
        ('[{"start_s": 0, "end_s": 4, "start": "a"}]', "interval 1: missing end"),
        ('[{"start_s": 0, "end_s": 4, "start": "a", "end": "b", "speed": 2}]', "interval 1: unknown field(s) speed"),
        (
            '[{"start_s": "0", "end_s": 4, "start": "a", "end": "b"}]',
            "interval 1: start_s must be a number of seconds",
        ),
        (
            '[{"start_s": 0, "end_s": 4, "start": "a", "end": {"image": 7}}]',
            "interval 1: end: 'image' must be a non-empty",
        ),
        (
            '[{"start_s": 0, "end_s": 4, "start": "a", "end": "b"}, {"start_s": 5, "end_s": 6, "start": "a", "end": "b"}]',
            "interval 2 starts at 5 s, 1.000 s after interval 1 ends",
        ),
    ],
)
def test_bad_files_get_one_clear_line(tmp_path, content, message):
    path = tmp_path / "t.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TimelineError) as e:
        Timeline.load(path)
    assert message in str(e.value) and repr(str(path)) in str(e.value)
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(TimelineError, match="not a text file"):
        Timeline.load(tmp_path / "bin.json")
    with pytest.raises(TimelineError, match="is a folder"):
        Timeline.load(tmp_path)


def test_frame_edges_tile_the_frames_by_the_one_clock():
    tl = Timeline([Interval(0, 1.0, "a", "b"), Interval(1.0, 2.5, "b", "c"), Interval(2.5, 3.0, "c", "d")])
    fps = Fraction(30000, 1001)
    F = 90  # ceil(3.0 * 29.97)
    edges = tl.frame_edges(fps, F)
    assert edges.tolist() == [0, round(Fraction(1) * fps), round(Fraction(5, 2) * fps), F] == [0, 30, 75, 90]
    with pytest.raises(TimelineError, match="shorter than one frame at 1 fps"):
        Timeline([Interval(0, 1.0, "a", "b"), Interval(1.0, 1.2, "b", "c"), Interval(1.2, 3, "c", "d")]).frame_edges(
            1, 3
        )
    with pytest.raises(TimelineError, match="ends at 3.000 s, before the video's last frame"):
        tl.frame_edges(25, 100)


def test_rows_for_the_demo_table(tmp_path):
    tl = three(tmp_path)
    rows = tl.rows()
    assert rows[0] == [0, 4, "a forest at dawn", f"image:{tmp_path / 'sea.png'}", "subject"]
    assert Timeline.from_rows(rows + [["", "", "", "", ""]]) == tl  # blank rows skipped
    rows[1][0] = "four"
    with pytest.raises(TimelineError, match="row 2: start_s must be a number of seconds, got 'four'"):
        Timeline.from_rows(rows)


@pytest.mark.slow
def test_from_beats_puts_edges_on_downbeats_and_shares_keyframes():
    # 4/4 bars whose first beat is accented; the first downbeat is the second beat (a one-beat pickup)
    track = drum_track(128, duration_s=30.0, accent=0.5, pickup_beats=1)
    rhythm = analyze_rhythm(track.waveform, fps=30)
    assert len(rhythm.downbeat_times_s) > 10
    tl = Timeline.from_beats(rhythm, ["a", "b", Path("c.png")], beats_per_interval=8, patterns=["subject", "pulse"])
    inner = np.array([iv.start_s for iv in tl][1:])
    assert np.all(np.isin(np.round(inner, 6), np.round(rhythm.downbeat_times_s, 6)))  # every inner edge a downbeat
    true_downbeats = track.downbeat_times_s
    assert np.all(np.abs(inner[:, None] - true_downbeats[None]).min(axis=1) < 0.03)
    assert np.allclose(np.diff(inner), 8 * 60 / 128, atol=0.03)  # two bars each
    assert tl[0].start_s == 0 and tl[-1].end_s == pytest.approx(rhythm.num_frames / 30)
    assert [iv.pattern for iv in tl][:4] == ["subject", "pulse", "subject", "pulse"]
    keys = ["a", "b", Path("c.png")]
    for i, iv in enumerate(tl):
        assert iv.start == keys[i % 3] and iv.end == keys[(i + 1) % 3]
    edges = tl.frame_edges(30, rhythm.num_frames)
    assert np.all(np.diff(edges) > 0) and edges[-1] == rhythm.num_frames


def test_from_beats_on_beats_when_the_interval_is_not_whole_bars_and_without_beats():
    beats = 1.0 + 0.5 * np.arange(40)  # 120 BPM from 1 s; downbeats on the 3rd beat
    r = rhythm_of(int(22 * 25), beats_s=beats, downbeats_s=beats[2::4])
    six = Timeline.from_beats(r, ["a", "b"], beats_per_interval=6)
    assert [iv.start_s for iv in six][1:4] == [4.0, 7.0, 10.0]  # beats 0, 6, 12 ... from the first beat (1.0 s,
    # joined with the lead-in: closer to 0 than half an interval)
    eight = Timeline.from_beats(r, ["a", "b"], beats_per_interval=8)
    assert [iv.start_s for iv in eight][1:3] == [2.0, 6.0]  # on the downbeats (beat 2, 10, ...)
    silent = Timeline.from_beats(rhythm_of(250), ["a", "b", "c"])
    assert [(iv.start_s, iv.end_s) for iv in silent] == [(0, 5.0), (5.0, 10.0)]
    with pytest.raises(TimelineError, match="beats_per_interval must be an integer >= 1, got 0"):
        Timeline.from_beats(r, ["a"], beats_per_interval=0)
    with pytest.raises(TimelineError, match="give at least one prompt or image"):
        Timeline.from_beats(r, [])
    single = Timeline.from_beats(r, [Path("one.png")], patterns=["drift"])
    assert all(iv.start == iv.end == Path("one.png") and iv.pattern == "drift" for iv in single)
