"""Lip-sync scores on synthetic per-frame signals, and the ``avdiff eval lipsync`` argument and error paths."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from avdiff.audio.envelope import speech_envelope
from avdiff.audio.io import Waveform
from avdiff.metrics.lipsync import (
    MIN_SCORED_FRAMES,
    NO_OFFSET,
    LipSyncResult,
    choose_face,
    describe_offset,
    lipsync_scores,
    pearson,
)

L, K = 250, 15  # frames per clip, largest offset searched


def syllables(n: int, seed: int = 0) -> np.ndarray:
    """A speech-like envelope [n] in [0, 1]: random syllable bursts ~4 per second at 25 fps, smoothed."""
    rng = np.random.default_rng(seed)
    bursts = (rng.random(n) < 0.16) * rng.uniform(0.4, 1.0, n)
    s = gaussian_filter1d(bursts, sigma=1.5)
    return s / s.max()


def delayed_pair(k: int, noise: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(openness, envelope) [L] where the envelope is the openness delayed by ``k`` frames: env[j] = open[j - k]."""
    s = syllables(L + 2 * K, seed)
    rng = np.random.default_rng(seed + 100)
    openness = s[K : K + L] + noise * rng.standard_normal(L)
    envelope = s[K - k : K - k + L] + noise * rng.standard_normal(L)
    return openness, envelope


@pytest.mark.parametrize("k", [-7, 0, 5, 12])
def test_delayed_audio_recovers_offset_with_documented_sign(k):
    openness, envelope = delayed_pair(k)
    res = lipsync_scores(openness, envelope, max_offset=K)
    assert res.offset_frames == k  # +k: the audio lags the video by k frames
    assert res.r_at_offset > 0.9
    assert res.r_at_offset == max(res.correlations.values()) == res.correlations[k]
    assert sorted(res.correlations) == list(range(-K, K + 1))
    assert res.r_envelope == res.correlations[0]
    if k != 0:
        assert res.r_envelope < 0.5
    assert res.num_frames == res.valid_frames == L


def test_audio_track_delayed_200_ms_at_25_fps_gives_plus_5():
    sr, fps = 16000, 25
    s = syllables(200, seed=3)
    carrier = torch.randn(200 * 640, generator=torch.Generator().manual_seed(0))
    gain = torch.from_numpy(np.repeat(s, 640)).float()  # loudness follows the syllables, frame by frame
    audio = (0.3 * gain * carrier)[None]
    delayed = torch.nn.functional.pad(audio, (3200, 0))[:, : audio.shape[1]]  # 200 ms later
    openness = speech_envelope(Waveform(audio, sr), fps)  # the mouth moves with the undelayed speech
    res = lipsync_scores(openness, speech_envelope(Waveform(delayed, sr), fps))
    assert res.offset_frames == 5
    advanced = torch.nn.functional.pad(audio[:, 3200:], (0, 3200))  # 200 ms earlier
    assert lipsync_scores(openness, speech_envelope(Waveform(advanced, sr), fps)).offset_frames == -5


def test_a_mouth_that_does_not_move_scores_zero_and_has_no_offset():
    openness, envelope = delayed_pair(0)
    res = lipsync_scores(np.full(L, 0.3), envelope, reference=openness)
    assert res.scored and res.r_envelope == 0.0 and all(r == 0.0 for r in res.correlations.values())
    assert res.offset_frames is None and res.r_at_offset is None and res.offset_reference is None  # not "in sync"
    assert res.to_dict()["offset_frames"] is None and describe_offset(None, 25) == NO_OFFSET
    still_where_seen = np.full(L, np.nan)
    still_where_seen[: L // 2] = 0.3  # NaN (no face) elsewhere: still over the frames that are scored
    assert lipsync_scores(still_where_seen, envelope).offset_frames is None
    moving = lipsync_scores(openness, envelope)
    assert moving.offset_frames == 0 and moving.r_at_offset == moving.r_envelope
    assert pearson(np.ones(10), np.arange(10.0)) == 0.0
    assert pearson(np.arange(10.0), np.full(10, 0.1)) == 0.0


def test_nan_frames_are_ignored():
    openness, envelope = delayed_pair(4, seed=1)
    rng = np.random.default_rng(5)
    missing = rng.random(L) < 0.25
    openness[missing] = np.nan  # no face in a quarter of the frames
    res = lipsync_scores(openness, envelope)
    assert res.offset_frames == 4 and res.r_at_offset > 0.9
    assert res.valid_frames == L - int(missing.sum()) and res.num_frames == L
    assert np.isfinite(list(res.correlations.values())).all()
    ok = ~missing
    assert pearson(openness, envelope) == pytest.approx(np.corrcoef(openness[ok], envelope[ok])[0, 1], abs=1e-12)
    assert math.isnan(pearson([1.0, 2.0], [2.0, 4.0]))  # two points have no correlation


@pytest.mark.parametrize("found", [0, 2, MIN_SCORED_FRAMES - 1])
def test_too_few_frames_with_a_face_give_no_score(found):
    # no face at all, or in too few frames: no r, no offset, a reason; never r = 0 at offset 0 as if in sync
    openness, envelope = delayed_pair(0)
    sparse = np.full(L, np.nan)
    sparse[:found] = openness[:found]
    res = lipsync_scores(sparse, envelope, reference=openness)
    assert not res.scored and res.r_envelope is None and res.offset_frames is None and res.r_at_offset is None
    assert res.r_reference is None and res.offset_reference is None and res.correlations == {}
    assert res.valid_frames == found and res.num_frames == L
    assert f"only {found} of {L} frames" in res.reason and str(MIN_SCORED_FRAMES) in res.reason
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["r_envelope"] is None and d["offset_frames"] is None and d["reason"] == res.reason
    sparse[: found + 1] = openness[: found + 1]  # one frame more
    assert lipsync_scores(sparse, envelope).scored == (found + 1 >= MIN_SCORED_FRAMES)


def test_pearson_values_and_length_check():
    x = np.arange(20.0)
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(100), rng.standard_normal(100)
    assert pearson(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1])
    with pytest.raises(ValueError, match="same length"):
        pearson(x, x[:-1])


def test_reference_aperture_and_unequal_lengths():
    openness, envelope = delayed_pair(2, noise=0.1, seed=7)
    s = syllables(L + 2 * K, 7)
    reference = s[K : K + L + 1]  # one frame longer than the video: truncated
    res = lipsync_scores(openness, envelope[:-2], reference=reference)
    assert res.num_frames == L - 2
    assert res.offset_frames == 2
    assert res.r_reference > 0.8 and res.r_reference > res.r_at_offset > res.r_envelope
    assert res.offset_reference == 0
    lagging = lipsync_scores(openness, envelope, reference=s[K - 3 : K - 3 + L])
    assert lagging.offset_reference == 3  # the reference lags the openness by 3 frames
    assert lipsync_scores(openness, envelope).r_reference is None


def test_to_dict_is_json_serialisable():
    openness, envelope = delayed_pair(5)
    res = lipsync_scores(openness, envelope, reference=openness, max_offset=6)
    assert isinstance(res, LipSyncResult)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["offset_frames"] == 5 and d["offset_reference"] == 0
    assert set(d["correlations"]) == {str(k) for k in range(-6, 7)}
    assert d["r_at_offset"] == pytest.approx(res.r_at_offset, abs=1e-6)
    assert d["num_frames"] == d["valid_frames"] == L
    assert json.loads(json.dumps(lipsync_scores(openness, envelope).to_dict()))["r_reference"] is None


def test_argument_errors():
    openness, envelope = delayed_pair(0)
    with pytest.raises(ValueError, match="max_offset"):
        lipsync_scores(openness, envelope, max_offset=-1)
    with pytest.raises(ValueError, match="openness.*1-D"):
        lipsync_scores(openness[None], envelope)
    with pytest.raises(ValueError, match="envelope is empty"):
        lipsync_scores(openness, np.zeros(0))
    with pytest.raises(ValueError, match="min_frames"):
        lipsync_scores(openness, envelope, min_frames=2)
    # a clip too short to score has no score, whatever the offset range
    short = lipsync_scores(openness[:10], envelope[:10], max_offset=15)
    assert not short.scored and short.offset_frames is None
    # an offset range longer than the clip is fine: offsets whose overlap is too short are no candidates (NaN)
    n = MIN_SCORED_FRAMES + 5
    part = lipsync_scores(openness[:n], envelope[:n], max_offset=15)
    assert part.scored and len(part.correlations) == 31
    assert all(math.isnan(part.correlations[k]) == (abs(k) > 5) for k in range(-15, 16))
    assert abs(part.offset_frames) <= 5
    assert json.loads(json.dumps(part.to_dict(), allow_nan=False))["correlations"]["12"] is None


# --- avdiff eval lipsync: parsing and the failure paths (the mediapipe path is tested end to end elsewhere) ----------


def test_eval_lipsync_arguments():
    from avdiff.cli import build_parser
    from avdiff.commands.eval import run_lipsync

    args = build_parser().parse_args(["eval", "lipsync", "clip.mp4", "--max-offset", "7", "--json"])
    assert args.func is run_lipsync and args.video == "clip.mp4" and args.max_offset == 7 and args.json
    args = build_parser().parse_args(["eval", "lipsync", "clip.mp4", "--reference-aperture", "ref.npy"])
    assert args.reference_aperture == "ref.npy" and args.max_offset == 15 and not args.json


def test_eval_lipsync_video_without_audio_is_an_error(tmp_path, capsys):
    from avdiff.cli import main
    from avdiff.video import write_video

    frames = np.zeros((10, 32, 32, 3), dtype=np.uint8)
    path = write_video(tmp_path / "silent.mp4", frames, 25)
    assert main(["eval", "lipsync", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("avdiff: error:") and "no (readable) audio track" in err and "silent.mp4" in err
    assert main(["eval", "lipsync", str(tmp_path / "missing.mp4")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_reference_aperture_files(tmp_path):
    from avdiff.commands import CommandError
    from avdiff.commands.eval import load_reference_aperture
    from avdiff.metrics.lipsync import describe_offset

    ref = np.linspace(0, 1, 12)
    np.save(tmp_path / "ref.npy", ref)
    (tmp_path / "list.json").write_text(json.dumps([0.0, None, 0.5]))
    (tmp_path / "obj.json").write_text(json.dumps({"aperture": ref.tolist()}))
    (tmp_path / "bad.json").write_text(json.dumps({"mouth": [1, 2]}))
    (tmp_path / "ref.txt").write_text("1 2 3")
    np.testing.assert_allclose(load_reference_aperture(tmp_path / "ref.npy"), ref)
    np.testing.assert_allclose(load_reference_aperture(tmp_path / "obj.json"), ref)
    np.testing.assert_array_equal(load_reference_aperture(tmp_path / "list.json"), [0.0, np.nan, 0.5])
    for name, message in [("bad.json", "aperture"), ("ref.txt", ".npy or .json"), ("nothing.npy", "no such file")]:
        with pytest.raises(CommandError, match=message):
            load_reference_aperture(tmp_path / name)
    assert "audio lags the video by 5 frames" in describe_offset(5, 25.0) and "+200 ms" in describe_offset(5, 25.0)
    assert "audio leads the video by 1 frame" in describe_offset(-1, 25.0)


@pytest.mark.slow
def test_eval_lipsync_of_a_video_without_a_face_has_no_score(tmp_path, capsys):
    # issue 14: with no face found the metric used to return r = 0 at offset 0 and the CLI said "in sync"
    import cv2
    import skimage.data

    from avdiff.cli import main
    from avdiff.video import write_video

    rocket = cv2.resize(skimage.data.rocket(), (256, 192), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    speech = Waveform(
        torch.from_numpy((0.2 * rng.standard_normal(3 * 16000) * np.repeat(syllables(75), 640)).astype(np.float32)),
        16000,
    )
    path = write_video(tmp_path / "noface.mp4", np.repeat(rocket[None], 75, axis=0), 25, speech)
    assert main(["eval", "lipsync", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("avdiff: error:") and "no lip-sync score" in captured.err
    assert "no face found in any of the 75 frames" in captured.err and captured.err.count("\n") == 1
    assert main(["eval", "lipsync", str(path), "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["scored"] is False and out["r_envelope"] is None and out["offset_frames"] is None
    assert out["r_at_offset"] is None and "no face" in out["reason"]


def test_the_report_of_a_mouth_that_does_not_move_says_it_has_no_offset():
    from avdiff.commands.eval import format_report

    openness, envelope = delayed_pair(0)
    still = lipsync_scores(np.full(L, 0.3), envelope, reference=openness)
    still.interior = lipsync_scores(np.full(L, 0.1), envelope)
    text = format_report("still.mp4", 25.0, still)
    assert f"best offset:       {NO_OFFSET}" in text and "best offset none" in text
    assert "r (best offset)" not in text and "reference offset" not in text and "None" not in text
    moving = lipsync_scores(openness, envelope, reference=openness)
    moving.interior = lipsync_scores(openness, envelope)
    text = format_report("moving.mp4", 25.0, moving)
    assert "r (best offset):   +" in text and "reference offset:  +0 frames" in text and "best offset +0" in text


def test_a_face_that_does_not_move_is_still_a_candidate_with_its_r_of_0():
    openness, envelope = delayed_pair(0)
    still = lipsync_scores(np.full(L, 0.3), envelope)
    still.interior = lipsync_scores(np.full(L, 0.1), envelope)
    speaking = lipsync_scores(openness, envelope)
    speaking.interior = lipsync_scores(openness, envelope)
    assert still.follows == 0.0 and speaking.follows > 0.5
    assert choose_face([still, speaking], [(0, 0, 10, 10), (20, 0, 30, 10)], None) == (1, "speaks")
    unscored = LipSyncResult(None, None, None, num_frames=L, valid_frames=L, reason="the envelope is flat")
    assert unscored.follows is None
    # scored at r 0, the still face is chosen over a face seen as often that could not be scored, which comes first
    assert choose_face([unscored, still], [(0, 0, 10, 10), (20, 0, 30, 10)], None) == (1, "speaks")
