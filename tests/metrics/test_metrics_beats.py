"""Beat alignment: the Beat Align Score both ways, the hit rate and chance against known truth; no score from nothing;
`avdiff eval beats`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.special import erf

from avdiff.audio.synth import drum_track
from avdiff.cli import main
from avdiff.metrics.beats import alignment_scores, beat_alignment, change_peaks, score_video, visual_change
from avdiff.video import write_video

FPS = 30.0
BEATS = 0.5 + 0.5 * np.arange(20)  # 120 BPM


def spikes(times_s, num_frames: int = 330, height: float = 5.0) -> np.ndarray:
    change = np.full(num_frames, 0.05, np.float32)
    change[np.round(np.asarray(times_s) * FPS).astype(int)] = height
    return change


def test_peaks_on_the_beats_score_one():
    r = beat_alignment(spikes(BEATS), FPS, BEATS)
    assert r.scored and r.num_peaks == 20
    assert r.beat_align_score == pytest.approx(1.0) and r.beat_align_score_music == pytest.approx(1.0)
    assert r.hit_rate == 1.0


def test_a_known_offset_gives_the_gaussian_of_its_distance():
    late = BEATS + 2 / FPS  # every peak two frames (66.7 ms) after its beat
    r = beat_alignment(spikes(late), FPS, BEATS)
    expected = math.exp(-((2 / FPS) ** 2) / (2 * 0.05**2))
    assert r.beat_align_score == pytest.approx(expected, rel=1e-6)
    assert r.beat_align_score_music == pytest.approx(expected, rel=1e-6)
    assert r.hit_rate == 0.0  # two frames out: no hit within one frame
    one = beat_alignment(spikes(BEATS + 1 / FPS), FPS, BEATS)
    assert one.hit_rate == 1.0


def test_the_two_directions_differ_as_they_should():
    # a peak on every other beat: every peak is on a beat (BAS 1), half the beats have no peak near them
    r = beat_alignment(spikes(BEATS[::2]), FPS, BEATS)
    assert r.beat_align_score == pytest.approx(1.0) and r.hit_rate == 0.5
    assert r.beat_align_score_music == pytest.approx(0.5 + 0.5 * math.exp(-(0.5**2) / (2 * 0.05**2)))


def test_chance_is_the_score_of_uniformly_placed_peaks():
    period, sigma = 0.5, 0.05
    closed_form = sigma * math.sqrt(2 * math.pi) / period * erf(period / (2 * math.sqrt(2) * sigma))
    scores = alignment_scores(BEATS, BEATS, FPS)
    assert scores["chance"] == pytest.approx(closed_form, rel=1e-3)
    rng = np.random.default_rng(0)
    random_peaks = np.sort(rng.uniform(BEATS[0], BEATS[-1], 5000))
    assert alignment_scores(random_peaks, BEATS, FPS)["beat_align_score"] == pytest.approx(closed_form, abs=0.02)


def test_no_score_from_nothing():
    still = beat_alignment(np.zeros(300, np.float32), FPS, BEATS)
    assert not still.scored and "0 visual-change peak(s)" in still.reason and still.beat_align_score is None
    noise = beat_alignment(np.random.default_rng(0).uniform(0, 0.2, 300).astype(np.float32), FPS, BEATS)
    assert not noise.scored  # encoder-noise wiggles under 0.25 grey levels are not changes
    silent = beat_alignment(spikes(BEATS), FPS, np.array([1.0, 2.0]))
    assert not silent.scored and "2 beat(s); at least 4" in silent.reason
    assert json.dumps(silent.to_dict())  # nulls, not NaN


def test_frame_difference_and_optical_flow_measure_a_moving_square():
    frames = np.zeros((6, 64, 64, 3), np.uint8)
    for i in range(6):
        x = 10 + (i if i < 3 else 2 + 4 * (i - 2))  # one pixel per frame, then four
        frames[i, 20:40, x : x + 20] = 255
    diff = visual_change(frames)
    flow = visual_change(frames, "flow")
    assert diff[0] == 0 and diff[1] == pytest.approx(2 * 20 * 255 / 64**2, rel=1e-6)
    assert flow[4] > 2.5 * flow[2] > 0
    assert change_peaks(np.array([0, 1, 0, 0, 3, 0, 0.1, 0.2, 0.1], np.float32)).tolist() == [1, 4]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A video whose picture flashes on every beat of its drum track (and fades), a still one, and one without
    audio."""
    folder = tmp_path_factory.mktemp("beat_videos")
    track = drum_track(120, duration_s=10.0)
    level = np.zeros(250)
    for t in track.beat_times_s:
        k = np.arange(250) - round(t * 25)
        level = np.maximum(level, np.where(k >= 0, np.exp(-k / 2.0), 0.0))  # bright on the beat, fading after
    frames = np.repeat((60 + 140 * level).astype(np.uint8)[:, None, None, None], 64, axis=1).repeat(64, 2).repeat(3, 3)
    jumps = np.searchsorted(np.round(track.beat_times_s * 25), np.arange(250), side="right")  # beats so far
    for i, n in enumerate(jumps):  # and a square that jumps 2 px on each beat (optical flow sees that)
        x = 4 + 2 * (n % 20)
        frames[i, 20:40, x : x + 16] = 255
    flashing = write_video(folder / "flash.mp4", frames, 25, track.waveform)
    still = write_video(folder / "still.mp4", np.full((250, 64, 64, 3), 60, np.uint8), 25, track.waveform)
    mute = write_video(folder / "mute.mp4", frames, 25)
    return flashing, still, mute


@pytest.mark.slow
def test_a_video_flashing_on_its_beats(videos):
    r = score_video(videos[0])
    assert r.scored and r.hit_rate >= 0.9 and r.beat_align_score >= 0.8 and r.num_beats >= 18


@pytest.mark.slow
def test_eval_beats_command(videos, capsys, tmp_path):
    flashing, still, mute = videos
    assert main(["eval", "beats", str(flashing)]) == 0
    text = capsys.readouterr().out
    assert "Beat Align Score (over visual peaks, sigma 50 ms)" in text and "hit rate" in text
    assert main(["eval", "beats", str(flashing), "--json", "--method", "flow"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scored"] and data["method"] == "flow" and data["hit_rate"] >= 0.9
    assert main(["eval", "beats", str(still), "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["scored"] is False and data["beat_align_score"] is None and "visual-change peak" in data["reason"]
    assert main(["eval", "beats", str(still)]) == 2
    assert "has no beat-alignment score" in capsys.readouterr().err
    assert main(["eval", "beats", str(mute)]) == 2
    assert "no (readable) audio track" in capsys.readouterr().err
    beats = tmp_path / "beats.json"
    beats.write_text(json.dumps({"beat_times_s": (0.5 + 0.5 * np.arange(19)).tolist()}))
    assert main(["eval", "beats", str(mute), "--beats", str(beats)]) == 0
    capsys.readouterr()
    for args, message in [
        (["--sigma-ms", "0"], "--sigma-ms must be a positive number"),
        (["--beats", str(tmp_path / "none.json")], "no such file"),
    ]:
        assert main(["eval", "beats", str(flashing), *args]) == 2
        assert message in capsys.readouterr().err
    assert main(["eval", "beats", str(tmp_path / "missing.mp4")]) == 2
    assert "no such file" in capsys.readouterr().err
