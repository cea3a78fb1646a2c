"""Phoneme events from espeak-ng exact to the sample, and visemes with coarticulation."""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction

import numpy as np
import pytest
import torch

from avdiff.audio import phonemes
from avdiff.audio.clock import FrameClock
from avdiff.audio.phonemes import EspeakLibraryNotFoundError, PhonemeEvent, speak_with_phonemes
from avdiff.audio.tts import EspeakNotFoundError, SpeechSynthesisError, speak
from avdiff.audio.visemes import MOUTH_PARAMETERS, VISEME_TARGETS, frames_of_event, viseme_of, viseme_track

needs_espeak = pytest.mark.requires_espeak  # skipped with one reason when espeak-ng is missing (conftest.py)

SR = 16000
FPS = 25


def _track(text: str, fps=FPS):
    wav, events = speak_with_phonemes(text, sample_rate=SR)
    return wav, events, viseme_track(events, FrameClock(fps, SR).num_frames(wav.num_samples), fps, SR)


# --- phoneme events ---------------------------------------------------------------------------------------------


@needs_espeak
def test_espeak_version_is_the_installed_library_s_and_read_once():
    version = phonemes.espeak_version()
    program = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?\S*", version) and f": {version} " in program  # "...: 1.51  Data at: ..."
    assert phonemes.espeak_version() is version  # cached: read once per process


def test_espeak_version_is_none_without_the_library(monkeypatch):
    phonemes.espeak_version.cache_clear()
    monkeypatch.setattr(phonemes, "espeak_library", lambda: "/nonexistent/libespeak-ng.so.1")
    try:
        assert phonemes.espeak_version() is None
    finally:
        phonemes.espeak_version.cache_clear()


@needs_espeak
@pytest.mark.parametrize("sample_rate", [22050, 16000])
def test_waveform_is_tts_speak_exactly(sample_rate):
    """The library through ctypes and the espeak-ng program are the same engine: equal samples (tolerance 0)."""
    for text, voice in (
        ("The quick brown fox, jumps!", "en-us"),
        ("pa pa pa", "en-us+f3"),
        ("Bob, hello.", "en-gb"),
        ("Bob, hello.", "en-gb+m5"),
    ):
        wav, _ = speak_with_phonemes(text, voice=voice, speed_wpm=180, pitch=40, sample_rate=sample_rate)
        ref = speak(text, voice=voice, speed_wpm=180, pitch=40, sample_rate=sample_rate)
        assert wav.sample_rate == ref.sample_rate == sample_rate
        assert wav.samples.shape == ref.samples.shape
        assert torch.equal(wav.samples, ref.samples)


@needs_espeak
def test_repeated_calls_give_the_same_samples_and_events():
    """libespeak-ng keeps state between utterances in one process (the second "pa pa pa" came out longer): each call
    runs in a fresh process, so a repeat is identical."""
    first = speak_with_phonemes("pa pa pa", sample_rate=SR)
    speak_with_phonemes("upper", sample_rate=SR)
    second = speak_with_phonemes("pa pa pa", sample_rate=SR)
    assert torch.equal(first[0].samples, second[0].samples)
    assert first[1] == second[1]


@needs_espeak
def test_events_tile_the_audio_in_order():
    wav, events = speak_with_phonemes("Hello there. How are you today?", sample_rate=SR)
    assert events[0].start_sample == 0 and events[-1].end_sample == wav.num_samples
    for prev, cur in zip(events, events[1:]):
        assert prev.end_sample == cur.start_sample
    for i, e in enumerate(events):
        assert e.start_sample < e.end_sample
        assert (events[i - 1].start_sample if i else 0) <= e.closure_sample <= e.start_sample
    assert sum(e.phoneme == "_:" for e in events) == 2  # one clause-end pause per sentence


@needs_espeak
def test_pauses_are_silent_and_vowels_are_loud():
    wav, events = speak_with_phonemes("Yes. No, maybe.", sample_rate=22050)
    x = wav.samples[0].numpy()
    pauses = [e for e in events if e.phoneme.startswith("_") and e.end_sample - e.start_sample > 2205]
    assert pauses
    for e in pauses:  # after the previous sound's last 20 ms of decay, a pause is digital silence
        assert np.abs(x[e.start_sample + 441 : e.end_sample]).max() == 0.0, e
    vowels = [e for e in events if viseme_of(e.phoneme) in ("open", "spread", "rounded")]
    for e in vowels:
        assert np.sqrt(np.mean(x[e.start_sample : e.end_sample] ** 2)) > 0.02, e


@needs_espeak
def test_pa_pa_pa_gives_three_p_events_just_before_loudness_bursts():
    wav, events = speak_with_phonemes("pa pa pa", sample_rate=SR)
    x = wav.samples[0].numpy()
    ps = [e for e in events if e.phoneme == "p"]
    assert len(ps) == 3
    for e in ps:
        before = np.abs(x[max(0, e.start_sample - 320) : e.start_sample]).max()  # 20 ms of closure: silent
        burst = np.abs(x[e.start_sample : e.start_sample + 160]).max()  # 10 ms after the release: sound
        vowel = np.abs(x[e.end_sample : e.end_sample + 1600]).max()  # the vowel after it: loud
        assert before < 0.01 < burst and vowel > 0.3, (e, before, burst, vowel)
        assert e.closure_sample <= e.start_sample - 320  # the closure is the silence before the release
        # the closure run is exactly silent at espeak-ng's rate too (checked on the resampled audio with slack)
        assert np.abs(x[e.closure_sample + 32 : e.start_sample - 32]).max() < 0.01


@needs_espeak
def test_event_positions_scale_exactly_with_the_rate():
    wav22, ev22 = speak_with_phonemes("Jumps over the lazy dog.", sample_rate=22050)
    wav16, ev16 = speak_with_phonemes("Jumps over the lazy dog.", sample_rate=SR)
    assert [e.phoneme for e in ev16] == [e.phoneme for e in ev22]
    for a, b in zip(ev22, ev16):
        assert b.start_sample == a.start_sample * SR // 22050
        assert b.closure_sample == a.closure_sample * SR // 22050
    assert ev16[-1].end_sample == wav16.num_samples


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="something to say"):
        speak_with_phonemes("   ")
    with pytest.raises(ValueError, match="speed_wpm"):
        speak_with_phonemes("hi", speed_wpm=10)
    with pytest.raises(ValueError, match="voice"):
        speak_with_phonemes("hi", voice="")


@needs_espeak
def test_unknown_voice_is_a_synthesis_error():
    with pytest.raises(SpeechSynthesisError, match="voice 'xx-nowhere'"):
        speak_with_phonemes("hi", voice="xx-nowhere")


def test_missing_library_says_how_to_install(monkeypatch):
    monkeypatch.setattr(phonemes, "espeak_library", lambda: "/nonexistent/libespeak-ng.so.1")
    with pytest.raises(EspeakLibraryNotFoundError, match="apt-get install espeak-ng") as info:
        speak_with_phonemes("hi")
    assert isinstance(info.value, EspeakNotFoundError)


# --- visemes ------------------------------------------------------------------------------------------------------


def test_viseme_classes_of_the_en_us_phonemes():
    expected = {
        "closed": "p b m",
        "rounded": "w u: U O oU",
        "spread": "i: I E eI j",
        "labiodental": "f v",
        "open": "a A: aI V @",
        "teeth": "s z t d n l T D S Z tS dZ",
        "neutral": "k g N h",
        "rest": "_ _:",
    }
    for viseme, names in expected.items():
        for name in names.split():
            assert viseme_of(name) == viseme, name
    assert viseme_of("I#") == "spread" and viseme_of("@2") == "open"  # modifiers and digits fall back


def _event(name, start, end):
    return PhonemeEvent(name, start, end, start)


@pytest.mark.parametrize("fps", [25, Fraction(30000, 1001)])
def test_frames_follow_the_frame_clock(fps):
    """An "m" held over exactly frames 10..19 (by the clock's sample ranges) closes the lips on those frames, and
    the frames far from it are at rest."""
    clock = FrameClock(fps, SR)
    start, end = clock.frame_start(10), clock.frame_start(20)
    events = [_event("_", 0, start), _event("m", start, end), _event("A:", end, clock.frame_start(40))]
    track = viseme_track(events, 40, fps, SR)
    assert set(track) == set(MOUTH_PARAMETERS)
    assert all(v.shape == (40,) and v.dtype == np.float32 for v in track.values())
    closure, opening = track["lip_closure"], track["mouth_open"]
    assert list(frames_of_event(events[1], fps, SR)) == list(range(10, 20))
    assert closure[11:19].min() > 0.97 and opening[11:19].max() < 0.05
    assert closure[:6] == pytest.approx(VISEME_TARGETS["rest"][3], abs=0.01)
    assert closure[26:].max() < 0.02 and opening[26:].min() > 0.85


def test_viseme_track_rejects_bad_input():
    with pytest.raises(ValueError, match="num_frames"):
        viseme_track([], -1, FPS, SR)
    with pytest.raises(ValueError, match="time order"):
        viseme_track([_event("a", 100, 200), _event("p", 0, 100)], 5, FPS, SR)
    with pytest.raises(ValueError, match="empty"):
        viseme_track([_event("a", 100, 100)], 5, FPS, SR)
    with pytest.raises(TypeError, match="PhonemeEvent"):
        viseme_track([("a", 0, 100)], 5, FPS, SR)


@needs_espeak
def test_pa_pa_pa_lips_close_at_each_p_and_open_at_each_a():
    _, events, track = _track("pa pa pa")
    closure, opening = track["lip_closure"], track["mouth_open"]
    ps = [i for i, e in enumerate(events) if e.phoneme == "p"]
    assert len(ps) == 3
    for i in ps:
        p, a = events[i], events[i + 1]
        p_frames = list(frames_of_event(PhonemeEvent("p", p.closure_sample, p.end_sample, p.closure_sample), FPS, SR))
        assert closure[p_frames].max() > 0.9, (p, closure[p_frames])
        a_frames = list(frames_of_event(a, FPS, SR))
        assert closure[a_frames].min() < 0.1 and opening[a_frames].max() > 0.8, (a, closure[a_frames])
    assert track["mouth_round"].max() < 0.3


@needs_espeak
def test_you_too_is_rounded_and_the_t_is_rounded_in_anticipation():
    _, events, track = _track("you too")
    rounding = track["mouth_round"]
    vowels = [e for e in events if e.phoneme == "u:"]
    t = next(e for e in events if e.phoneme == "t")
    assert len(vowels) == 2
    for e in vowels:
        assert rounding[list(frames_of_event(e, FPS, SR))].max() > 0.9
    assert rounding[list(frames_of_event(t, FPS, SR))].mean() > 0.7  # teeth alone would be 0.2: coarticulation
    assert track["mouth_width"][list(frames_of_event(vowels[1], FPS, SR))].min() < 0.25
