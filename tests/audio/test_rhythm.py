import json

import librosa
import mir_eval
import numpy as np
import pytest

from avdiff.audio import FrameClock, analyze_rhythm
from avdiff.audio.io import Waveform, save_audio
from avdiff.audio.synth import GROOVES, click_track, drum_track, groove_track
from avdiff.bench.rhythm import CASES, run_rhythm_bench
from avdiff.cli import main

TEMPI = [80, 100, 128, 150, 180]


def beat_f(reference: np.ndarray, estimated: np.ndarray) -> float:
    """mir_eval's beat F-measure (±70 ms), skipping the first 5 s as mir_eval's trim_beats does."""
    return mir_eval.beat.f_measure(mir_eval.beat.trim_beats(reference), mir_eval.beat.trim_beats(estimated), 0.07)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["click", "drum"])
@pytest.mark.parametrize("bpm", TEMPI)
def test_steady_tempo_and_beats(kind, bpm):
    track = (click_track if kind == "click" else drum_track)(bpm)
    rhythm = analyze_rhythm(track.waveform, fps=25)
    assert rhythm.tempo_bpm == pytest.approx(bpm, rel=0.02)  # also no octave error: 2x or 0.5x would fail
    assert beat_f(track.beat_times_s, rhythm.beat_times_s) >= 0.9


def test_drum_octave_candidates_are_resolved_towards_the_beat_not_the_hihat():
    # librosa's plain tracker says ~160 here (the eighth-note hi-hats); we must say 80
    rhythm = analyze_rhythm(drum_track(80).waveform, fps=25)
    assert rhythm.tempo_bpm == pytest.approx(80, rel=0.02)


def test_tempo_change_is_followed():
    track = drum_track([(100, 10.0), (140, 10.0)])
    rhythm = analyze_rhythm(track.waveform, fps=25)
    assert beat_f(track.beat_times_s, rhythm.beat_times_s) >= 0.85
    first = np.diff(rhythm.beat_times_s[(rhythm.beat_times_s > 2) & (rhythm.beat_times_s < 9)])
    second = np.diff(rhythm.beat_times_s[rhythm.beat_times_s > 12])
    assert 60 / np.median(first) == pytest.approx(100, rel=0.03)
    assert 60 / np.median(second) == pytest.approx(140, rel=0.03)


@pytest.mark.parametrize("fps", [25, "30000/1001", 60])
def test_per_frame_envelopes_follow_the_clock(fps):
    track = click_track(120, duration_s=8.0)
    rhythm = analyze_rhythm(track.waveform, fps=fps)
    clock = FrameClock(fps, track.waveform.sample_rate)
    assert rhythm.num_frames == clock.num_frames(track.waveform.num_samples)
    for name in ("onset_strength", "rms", "percussive"):
        env = getattr(rhythm, name)
        assert env.shape == (rhythm.num_frames,) and env.dtype == np.float32
        assert env.min() >= 0 and env.max() == pytest.approx(1.0)
    # onsets peak in the frames that hold a click, and are low half a beat later
    beat_frames = [clock.frame_of_time(t) for t in track.beat_times_s]
    off_frames = [clock.frame_of_time(t + 0.25) for t in track.beat_times_s[:-1]]
    on = np.maximum(rhythm.onset_strength[beat_frames], rhythm.onset_strength[np.add(beat_frames, 1)])
    assert on.mean() > 0.5 and rhythm.onset_strength[off_frames].mean() < 0.1
    assert np.all(np.abs(rhythm.onset_times_s[:, None] - track.beat_times_s[None]).min(axis=1) < 0.03)


def test_silence_has_no_beats_and_zero_envelopes():
    rhythm = analyze_rhythm(Waveform(np.zeros((1, 22050 * 3), np.float32), 22050), fps=25)
    assert rhythm.tempo_bpm == 0.0 and len(rhythm.beat_times_s) == 0
    assert rhythm.num_frames == 75 and rhythm.rms.max() == 0


def test_any_rate_and_channels_are_accepted():
    track = click_track(128, duration_s=10.0, sample_rate=44100)
    stereo = Waveform(np.repeat(track.waveform.samples.numpy(), 2, axis=0), 44100)
    rhythm = analyze_rhythm(stereo, fps=25)
    assert rhythm.tempo_bpm == pytest.approx(128, rel=0.02)
    assert rhythm.to_dict()["tempo_bpm"] == rhythm.tempo_bpm and "rms" not in rhythm.to_dict()


@pytest.mark.slow
@pytest.mark.parametrize("first, second", [(90, 130), (100, 150), (130, 90)])
def test_a_tempo_change_is_tracked_at_each_sections_own_level(first, second):
    # the two tempi are more than sqrt(2) apart: one global octave choice gets one half wrong (90 -> 130 gave 180)
    track = drum_track([(first, 20.0), (second, 20.0)], duration_s=40.0)
    rhythm = analyze_rhythm(track.waveform, fps=25)
    ref, est = track.beat_times_s, rhythm.beat_times_s
    for lo, hi, bpm in ((0.0, 20.0, first), (20.0, 40.0, second)):
        assert beat_f(ref[(ref >= lo) & (ref < hi)] - lo, est[(est >= lo) & (est < hi)] - lo) >= 0.9
        curve = rhythm.tempo_curve_bpm[int((lo + 3) * 25) : int((hi - 3) * 25)]  # away from the change
        assert np.median(curve) == pytest.approx(bpm, rel=0.03)
        assert (np.abs(curve / bpm - 1) < 0.05).mean() >= 0.9
        inside = (est > lo + 3) & (est < hi - 3)
        assert np.median(rhythm.beat_tempo_bpm[inside]) == pytest.approx(bpm, rel=0.03)
    # the global figure is one of the two tempi (the one most beats are at), never an octave of either
    assert min(abs(rhythm.tempo_bpm / first - 1), abs(rhythm.tempo_bpm / second - 1)) < 0.02
    out = rhythm.to_dict()
    assert len(out["beat_tempo_bpm"]) == len(out["beat_times_s"]) and "tempo_curve_bpm" not in out
    assert len(rhythm.to_dict(per_frame=True)["tempo_curve_bpm"]) == rhythm.num_frames == 1000


@pytest.mark.slow
def test_kick_on_every_beat_90_then_130_bpm_is_tracked_at_each_halfs_tempo(tmp_path, capsys):
    # a kick on every beat and a hi-hat on every off-beat eighth: the off-beats pulled 90 to double time (178) and
    # the kicks of 130 were taken at half time (65); as a user runs it, through `avdiff analyze`
    track = groove_track([(90, 20.0), (130, 20.0)], duration_s=40.0, groove="four_on_the_floor", sample_rate=44100)
    assert main(["analyze", str(save_audio(tmp_path / "drums.wav", track.waveform)), "--fps", "25"]) == 0
    out = json.loads(capsys.readouterr().out)
    beats = np.asarray(out["beat_times_s"])
    for lo, hi, bpm, tolerance in ((0.0, 20.0, 90, 3.0), (20.0, 40.0, 130, 4.0)):
        inside = beats[(beats > lo + 2) & (beats < hi - 2)]
        assert 60 / np.median(np.diff(inside)) == pytest.approx(bpm, abs=tolerance)
    assert beat_f(track.beat_times_s, beats) >= 0.95  # on the kicks, not between them


@pytest.mark.parametrize("groove", sorted(GROOVES))
def test_each_groove_steady_is_on_its_beat(groove):
    track = groove_track(120 if groove != "offbeat" else 96, duration_s=16.0, groove=groove)
    rhythm = analyze_rhythm(track.waveform, fps=25)
    assert rhythm.tempo_bpm == pytest.approx(track.tempo_bpm, rel=0.03)
    assert beat_f(track.beat_times_s, rhythm.beat_times_s) >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("groove, bpm", [("rock", 120), ("four_on_the_floor", 100)])
def test_a_noise_intro_gets_no_beats_and_the_groove_its_level(groove, bpm):
    # 8 s of noise at -40 dB before the drums, and under them: the tracker must not run its grid through the noise
    rng = np.random.default_rng(0)
    track = groove_track(bpm, duration_s=24.0, groove=groove)
    drums = track.waveform.samples[0].numpy()
    noisy = np.concatenate([np.zeros(8 * 22050, np.float32), drums])
    noisy += 0.01 * rng.standard_normal(len(noisy)).astype(np.float32)
    rhythm = analyze_rhythm(Waveform(noisy[None], 22050), fps=25)
    assert (rhythm.beat_times_s < 7.9).sum() == 0
    assert rhythm.tempo_bpm == pytest.approx(bpm, rel=0.02)
    assert mir_eval.beat.f_measure(track.beat_times_s + 8.0, rhythm.beat_times_s, 0.07) >= 0.95


def test_groove_track_places_swung_eighths_and_a_quiet_ending():
    straight = groove_track(120, duration_s=8.0, groove="four_on_the_floor", offset_s=0.5)
    swung = groove_track(120, duration_s=8.0, groove="four_on_the_floor", offset_s=0.5, swing=2 / 3)
    np.testing.assert_allclose(straight.beat_times_s, swung.beat_times_s)
    assert straight.downbeat_times_s.tolist() == straight.beat_times_s[::4].tolist()

    def energy(track, t0, t1, high=False):
        y = track.waveform.samples[0].numpy()[int(t0 * 22050) : int(t1 * 22050)]
        return float(((np.diff(y) if high else y) ** 2).sum())

    # the off-beat hat of the first beat (high frequencies): at 0.75 s straight, at 0.5 + 2/3 * 0.5 = 0.833 s swung
    assert energy(straight, 0.745, 0.775, True) > 5 * energy(swung, 0.745, 0.775, True)
    assert energy(swung, 0.828, 0.858, True) > 5 * energy(straight, 0.828, 0.858, True)
    quiet = groove_track(120, duration_s=8.0, groove="rock", quiet_end_s=4.0, quiet_db=-20.0)
    assert energy(quiet, 4.5, 6.5) == pytest.approx(energy(quiet, 0.5, 2.5) / 100, rel=0.05)
    with pytest.raises(ValueError, match="groove must be one of"):
        groove_track(120, groove="polka")
    with pytest.raises(ValueError, match="swing must be in"):
        groove_track(120, swing=1.0)


@pytest.mark.slow
def test_bench_rhythm_command(capsys):
    assert main(["bench", "rhythm", "--only", "swing rock"]) == 0
    text = capsys.readouterr().out
    assert "avdiff bench rhythm: 1 generated drum tracks" in text and "librosa F" in text and "tempogram DP" in text
    assert "swing rock, 100" in text and "1/1" in text
    assert main(["bench", "rhythm", "--only", "polka"]) == 2
    assert "matches no track" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_rhythm_every_section_on_its_level_and_as_good_as_librosa():
    # tempo changes both ways between 60 and 180 BPM, off-beat-heavy, syncopated and swung grooves, quiet endings
    rows = run_rhythm_bench(CASES)
    by_track = {}
    for row in rows:
        by_track.setdefault(row["track"], {})[row["tracker"]] = row
    assert len(by_track) == len(CASES)
    for track, result in by_track.items():
        ours = result["avdiff"]
        print(f"{track}: F {ours['F']:.3f} (librosa {result['librosa']['F']:.3f}), levels {ours['levels']}")
        assert ours["on_level"] == ours["sections"], track
        assert ours["F"] >= 0.95 and ours["F"] >= result["librosa"]["F"], track


def test_a_steady_track_has_a_flat_tempo_curve():
    rhythm = analyze_rhythm(drum_track(128).waveform, fps=25)
    assert rhythm.tempo_curve_bpm.shape == (rhythm.num_frames,) and rhythm.tempo_curve_bpm.dtype == np.float32
    curve = rhythm.tempo_curve_bpm[75:425]  # 3 to 17 s
    assert np.median(curve) == pytest.approx(128, rel=0.02) and (np.abs(curve / 128 - 1) < 0.03).mean() >= 0.9
    silent = analyze_rhythm(Waveform(np.zeros((1, 22050 * 2), np.float32), 22050), fps=25)
    assert len(silent.beat_tempo_bpm) == 0 and silent.tempo_curve_bpm.max() == 0


# --- block by block: the features of the whole spectrogram, without holding it ---------------------------------------


def test_blockwise_features_equal_librosa_on_the_whole_spectrogram():
    from avdiff.audio.io import AudioStream
    from avdiff.audio.onsets import step_features
    from avdiff.audio.rhythm import _local_tempo, _tempogram_blocks

    track = drum_track(128, duration_s=12.0, accent=0.5)
    y = track.waveform.samples[0].numpy()
    feats = step_features(AudioStream(track.waveform), block_steps=300)  # 4 blocks' edges to cross
    # the features as computed on the whole spectrogram
    S = np.abs(librosa.stft(y, n_fft=1024, hop_length=256, center=True))
    mel = librosa.feature.melspectrogram(S=S**2, sr=22050, n_mels=64)
    flux = librosa.onset.onset_strength(S=librosa.power_to_db(mel, ref=np.max), sr=22050, hop_length=256, n_fft=1024)
    loud = librosa.onset.onset_strength(S=np.sqrt(mel), sr=22050, hop_length=256, n_fft=1024, lag=2)
    _, P = librosa.decompose.hpss(np.sqrt(mel), kernel_size=17)
    rms = librosa.feature.rms(S=S, frame_length=1024)[0]
    assert feats.num_steps == S.shape[1] == 1 + len(y) // 256
    for name, whole in [("flux", flux), ("loud", loud), ("rms", rms), ("percussive", (P**2).sum(axis=0))]:
        np.testing.assert_allclose(getattr(feats, name), whole, rtol=1e-4, atol=1e-5 * whole.max(), err_msg=name)
    np.testing.assert_allclose(feats.bands.sum(axis=0), mel.sum(axis=0), rtol=1e-4)
    tg = librosa.feature.tempogram(onset_envelope=flux, sr=22050, hop_length=256, win_length=256)
    blocks = np.concatenate([block for _, block in _tempogram_blocks(flux, block=700)], axis=1)
    np.testing.assert_allclose(blocks, tg, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(
        _local_tempo(flux, 22050, 256), librosa.feature.tempo(tg=tg, sr=22050, hop_length=256, aggregate=None)
    )


@pytest.mark.slow
def test_a_file_is_analysed_block_by_block_as_its_waveform_is(tmp_path):
    from avdiff.audio.io import save_audio

    track = drum_track(100, duration_s=10.0, sample_rate=44100)
    path = save_audio(tmp_path / "drums.flac", track.waveform)
    from_file, in_memory = analyze_rhythm(path, fps=25), analyze_rhythm(track.waveform, fps=25)
    np.testing.assert_allclose(from_file.beat_times_s, in_memory.beat_times_s)
    np.testing.assert_allclose(from_file.rms, in_memory.rms, atol=1e-4)
    assert from_file.num_frames == 250


# --- downbeats ------------------------------------------------------------------------------------------------------


DOWNBEAT_CASES = [
    (bpm, meter, pickup) for bpm in (90, 128, 150) for meter, pickup in ((4, 0), (4, 1), (4, 3), (3, 0), (3, 2))
]


@pytest.mark.slow
@pytest.mark.parametrize("bpm, meter, pickup", DOWNBEAT_CASES)
def test_downbeats_of_accented_bars(bpm, meter, pickup):
    # bars whose first beat is accented (a crash and a louder kick), in 4/4 and 3/4, starting on a pickup
    track = drum_track(bpm, duration_s=30.0, accent=0.5, beats_per_bar=meter, pickup_beats=pickup)
    rhythm = analyze_rhythm(track.waveform, fps=25)
    f = beat_f(track.downbeat_times_s, rhythm.downbeat_times_s)
    print(f"{bpm} BPM {meter}/4 pickup {pickup}: downbeat F {f:.3f}, confidence {rhythm.downbeat_confidence:.1f}")
    assert rhythm.beats_per_bar == meter and f >= 0.9
    assert set(np.round(rhythm.downbeat_times_s, 6)) <= set(np.round(rhythm.beat_times_s, 6))


@pytest.mark.slow
@pytest.mark.parametrize("first, second", [(90, 130), (130, 90)])
def test_downbeats_agree_with_the_beats_across_a_tempo_change(first, second):
    # a beat added where the tempo changes (90 -> 130 gets one) must not shift every bar after it
    track = drum_track([(first, 20.0), (second, 20.0)], duration_s=40.0, accent=0.5)
    rhythm = analyze_rhythm(track.waveform, fps=25)
    f = beat_f(track.downbeat_times_s, rhythm.downbeat_times_s)
    print(f"{first} -> {second} BPM: downbeat F {f:.3f}, confidence {rhythm.downbeat_confidence:.1f}")
    assert rhythm.beats_per_bar == 4 and f >= 0.9 and rhythm.downbeat_confidence >= 3.0
    assert set(np.round(rhythm.downbeat_times_s, 6)) <= set(np.round(rhythm.beat_times_s, 6))


@pytest.mark.slow
def test_no_downbeats_where_no_bar_position_stands_out():
    # kick on 1 and 3 alike, snare on 2 and 4, no bass: nothing tells beat 1 from beat 3
    rhythm = analyze_rhythm(drum_track(128, duration_s=20.0, bass=False).waveform, fps=25)
    assert len(rhythm.downbeat_times_s) == 0 and rhythm.beats_per_bar == 4
    assert rhythm.downbeat_confidence < 3.0


def test_band_envelopes_follow_the_drums():
    # kicks fill the low band on beats 1 and 3; hi-hats on every eighth note fill the high band
    track = drum_track(120, duration_s=8.0, bass=False)
    rhythm = analyze_rhythm(track.waveform, fps=50)
    low, mid, high = rhythm.bands
    assert rhythm.bands.shape == (3, rhythm.num_frames) and rhythm.bands.dtype == np.float32
    kicks = np.round(track.beat_times_s[0::2] * 50).astype(int)
    snares = np.round(track.beat_times_s[1::2] * 50).astype(int)
    assert low[kicks + 1].mean() > 3 * low[snares + 1].mean()
    offbeats = np.round((track.beat_times_s[:-1] + 0.25) * 50).astype(int)
    assert high[offbeats + 1].mean() > 3 * high[offbeats - 4].mean()  # the hat against the 80 ms before it
    assert low[offbeats + 1].mean() < low[kicks + 1].mean() / 3
