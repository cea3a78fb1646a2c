"""Procedural scenes: determinism, masks that match what is drawn, motion that follows the sound, held-out object
pairs, captions, and the DATA folder written by ``avdiff synth scenes``."""

import itertools
import json

import numpy as np
import pytest

from avdiff.cli import main
from avdiff.data.scenes import (
    COLOURS,
    HELD_OUT_PAIRS,
    LABELS,
    OBJECTS,
    SILENT,
    SOUNDING,
    SceneObject,
    SceneSpec,
    compose_caption,
    held_out_pairs_in,
    label_of,
    load_scene_clip,
    make_scenes,
    parse_caption,
    read_scene_index,
    record_spec,
    render_scene,
    sample_scene,
)


def spec(*objects, sky="day", seed=5):
    return SceneSpec([SceneObject(*o) if isinstance(o, tuple) else SceneObject(o) for o in objects], sky, seed)


# Every object once, in slots that do not overlap (three scenes of up to three sky and three ground objects).
SEPARATE = [
    spec(
        ("campfire", None, "left"),
        ("car", "red", "centre"),
        ("bell", "yellow", "right"),
        ("rain", None, "left"),
        ("sun", None, "right"),
    ),
    spec(
        ("lake", None, "left"),
        ("house", "blue", "centre"),
        ("grass", None, "right"),
        ("thunderstorm", None, "centre"),
        ("moon", None, "right"),
        sky="night",
    ),
    spec(("birds", None, "left"), ("mountain", None, "right"), sky="sunset"),
]


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_other_scene():
    for s in SEPARATE:
        a, b = render_scene(s), render_scene(s)
        assert a.frames.tobytes() == b.frames.tobytes() and a.masks.tobytes() == b.masks.tobytes()
        other = render_scene(SceneSpec(s.objects, s.sky, s.seed + 1))
        assert not np.array_equal(a.frames, other.frames)
        assert a.frames.shape == (16, 64, 64, 3) and a.frames.dtype == np.uint8
        assert a.masks.shape == (16, 64, 64) and a.masks.dtype == np.uint8
    rng1, rng2 = np.random.default_rng([3, 0, 7]), np.random.default_rng([3, 0, 7])
    assert sample_scene(rng1, "train") == sample_scene(rng2, "train")


@pytest.mark.parametrize("scene", range(len(SEPARATE)))
def test_masks_match_what_is_drawn(scene):
    """Leaving an object out changes exactly the pixels its mask labels, and nothing else."""
    s = SEPARATE[scene]
    full = render_scene(s)
    present = set(np.unique(full.masks))
    assert present == {0, 1} | {label_of(w) for w in s.words}
    for word in s.words:
        label = label_of(word)
        rest = render_scene(s, without=[word])
        changed = np.any(full.frames != rest.frames, axis=-1)  # (F, H, W)
        mine = full.masks == label
        assert mine.any(axis=(1, 2)).all(), f"{word} missing in some frame"
        # outside its mask only where a translucent layer (rain curtain, exhaust smoke) lies over it
        over = np.isin(full.masks, [label_of("rain"), label_of("car")]) & (full.masks != label)
        assert not (changed & ~mine & ~over).any(), f"removing {word} changed pixels outside its mask"
        assert changed[mine].mean() > 0.97, f"{word}: its mask covers pixels it did not draw"
        assert np.array_equal(rest.masks[~mine], full.masks[~mine])
        assert not (rest.masks == label).any()


def test_pixels_under_a_mask_have_the_objects_colour():
    s = spec(("car", "red", "left"), ("house", "blue", "centre"), ("bell", "white", "right"), seed=11)
    r = render_scene(s)
    # the coloured part's share of the mask: the car's body, the house's walls, the bell (its wooden frame aside)
    for word, colour, share in (("car", "red", 0.4), ("house", "blue", 0.4), ("bell", "white", 0.2)):
        pixels = r.frames[r.masks == label_of(word)].astype(float)  # (N, 3)
        near = np.linalg.norm(pixels - np.asarray(COLOURS[colour]), axis=1) < 40
        assert near.mean() > share, (word, near.mean())
        others = [c for c in COLOURS if c != colour]
        for c in others:
            assert (np.linalg.norm(pixels - np.asarray(COLOURS[c]), axis=1) < 40).mean() < 0.1, (word, c)
    sky, ground = r.frames[r.masks == 0].astype(float), r.frames[r.masks == 1].astype(float)
    assert sky[:, 2].mean() > sky[:, 0].mean() + 40  # a blue day sky
    assert abs(ground.mean(axis=0) - np.array([128, 108, 70])).max() < 25  # brown earth


def test_silent_objects_hold_still_and_sounding_ones_move():
    for s in SEPARATE:
        r = render_scene(s)
        for word in s.words:
            label = label_of(word)
            both = (r.masks[1:] == label) & (r.masks[:-1] == label)  # (F-1, H, W): the object in both frames
            change = np.abs(r.frames[1:].astype(int) - r.frames[:-1].astype(int)).sum(-1)
            union = (r.masks[1:] == label) | (r.masks[:-1] == label)
            if word in SILENT:
                assert (change[both] == 0).all(), word
                assert np.array_equal(r.masks[0] == label, r.masks[-1] == label), word
            else:
                assert (change[union] > 0).mean() > 0.05, word
        for label in (0, 1):  # the background never moves
            steady = (r.masks == label).all(axis=0)
            assert (r.frames[:, steady] == r.frames[0, steady]).all()


def test_motion_follows_the_loudness_envelope():
    ramp = np.linspace(0.0, 1.0, 16, dtype=np.float32)
    fire = render_scene(spec(("campfire", None, "centre")), envelopes={"campfire": ramp})
    flame = ((fire.masks == label_of("campfire")) & (fire.frames[..., 0] > 230)).sum(
        axis=(1, 2)
    )  # bright flame pixels
    assert np.corrcoef(flame, ramp)[0, 1] > 0.9
    rain = render_scene(spec(("rain", None, "centre")), envelopes={"rain": ramp})
    drops = ((rain.masks == label_of("rain")) & (rain.frames.min(axis=-1) > 190)).sum(axis=(1, 2))
    assert np.corrcoef(drops, ramp)[0, 1] > 0.9
    flashes = np.array([0, 0, 1, 0, 0, 0, 0.9, 0.2, 0, 0, 0, 0, 1, 0, 0, 0], np.float32)
    storm = render_scene(spec(("thunderstorm", None, "centre")), envelopes={"thunderstorm": flashes})
    bolt = (
        (storm.masks == label_of("thunderstorm")) & (storm.frames[..., 2] < 220) & (storm.frames[..., 0] > 240)
    ).sum(axis=(1, 2))
    assert np.array_equal(bolt > 0, flashes >= 0.6)
    # swinging, swaying, bouncing: the frame-to-frame change inside the object grows with the envelope
    for word in ("bell", "grass", "car", "lake", "birds"):
        quiet = render_scene(spec((word, None, "centre")), envelopes={word: np.full(16, 0.05, np.float32)})
        loud = render_scene(spec((word, None, "centre")), envelopes={word: np.ones(16, np.float32)})
        motion = [np.abs(np.diff(r.frames.astype(int), axis=0)).sum() for r in (quiet, loud)]
        assert motion[1] > 2 * motion[0], word


@pytest.mark.slow
def test_train_never_holds_a_held_out_pair_and_test_always_does():
    train = [sample_scene(np.random.default_rng([0, 0, k]), "train") for k in range(1500)]
    test = [sample_scene(np.random.default_rng([1, 1, k]), "test") for k in range(300)]
    train_pairs = {frozenset(p) for s in train for p in itertools.combinations(s.words, 2)}
    assert not train_pairs & HELD_OUT_PAIRS
    assert all(held_out_pairs_in(s.words) for s in test)
    assert {frozenset(p) for s in test for p in held_out_pairs_in(s.words)} == set(HELD_OUT_PAIRS)
    assert {w for s in train for w in s.words} == set(OBJECTS)  # every object is still seen in training
    counts = np.bincount([len(s.objects) for s in train], minlength=5)
    assert counts[1:].min() > 50
    for s in train + test:  # the sky agrees with the sun and the moon
        if "sun" in s.words and "moon" not in s.words:
            assert s.sky in ("day", "sunset")
        if "moon" in s.words and "sun" not in s.words:
            assert s.sky in ("night", "sunset")


def test_captions_parse_back_to_their_scene():
    for k in range(300):
        s = sample_scene(np.random.default_rng([9, 0, k]), "train")
        parsed = parse_caption(s.caption)
        assert sorted(parsed.words) == sorted(s.words), s.caption
        for obj in s.objects:
            got = next(o for o in parsed.objects if o["word"] == obj.word)
            assert got["colour"] == obj.colour, s.caption
            assert got["place"] == (obj.place if obj.place_stated else None), s.caption
        assert parsed.sky == (s.sky if s.sky_stated else None), s.caption
    free = parse_caption("A campfire beside a lake, at night; two red cars on the right")
    assert [(o["word"], o["colour"], o["place"]) for o in free.objects] == [
        ("campfire", None, None),
        ("lake", None, None),
        ("car", "red", "right"),
    ]
    assert free.sky == "night"
    fixed = spec(("campfire", None, "left"), ("lake", None, "centre", False), sky="night")
    assert compose_caption(fixed) == "a campfire on the left and a lake at night"


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="unknown scene object"):
        SceneObject("dragon")
    with pytest.raises(ValueError, match="place"):
        SceneObject("car", place="up")
    with pytest.raises(ValueError, match="share a slot"):
        spec(("car", None, "left"), ("house", None, "left"))
    with pytest.raises(ValueError, match="sky"):
        SceneSpec([], "dusk", 0)
    with pytest.raises(ValueError, match="16 values"):
        render_scene(spec("campfire"), envelopes={"campfire": np.ones(3)})


@pytest.mark.slow
def test_synth_scenes_writes_a_scene_folder(tmp_path, capsys):
    out = tmp_path / "scenes"
    assert (
        main(["synth", "scenes", "--n", "4", "--split", "test", "--seed", "2", "--out", str(out), "--no-progress"])
        == 0
    )
    assert "wrote 4 test scene clips" in capsys.readouterr().out
    vocab = json.loads((out / "vocabulary.json").read_text())
    assert vocab["labels"] == list(LABELS) and vocab["sounding"] == list(SOUNDING) and vocab["silent"] == list(SILENT)
    records = read_scene_index(out)
    assert [r.id for r in records] == [f"test_002_{k:05d}" for k in range(4)]
    for r in records:
        assert held_out_pairs_in(r.words) and r.split == "test" and r.num_frames == 16 and r.fps == 8.0
        clip = load_scene_clip(out, r, with_tracks=True)
        truth = render_scene(record_spec(r))
        assert np.array_equal(clip.masks, truth.masks)
        assert clip.frames.shape == (16, 64, 64, 3)
        assert np.abs(clip.frames.astype(float) - truth.frames).mean() < 4.0  # H.264 at crf 12
        assert clip.audio.sample_rate == 16000 and abs(clip.audio.duration_s - 2.0) < 0.07
        sounding = {o["word"] for o in r.objects if o["sounding"]}
        assert set(clip.envelopes) == sounding == set(clip.tracks)
        for word, env in clip.envelopes.items():
            assert np.array_equal(env, truth.envelopes[word])
        if sounding:
            assert float(clip.audio.samples.abs().max()) > 0.01
    # a second run with more clips keeps the first ones byte for byte and adds the rest
    before = {r.id: (out / r.masks).read_bytes() for r in records}
    assert (
        main(["synth", "scenes", "--n", "6", "--split", "test", "--seed", "2", "--out", str(out), "--no-progress"])
        == 0
    )
    again = read_scene_index(out)
    assert len(again) == 6 and all((out / r.masks).read_bytes() == before[r.id] for r in again[:4])
    # the same command elsewhere makes the same clips
    other = tmp_path / "other"
    make_scenes(other, 4, split="test", seed=2, progress_bar=False)
    for r in records:
        assert (other / r.masks).read_bytes() == (out / r.masks).read_bytes()
        assert (other / "index.jsonl").read_text().splitlines()[records.index(r)] == json.dumps(
            json.loads((out / "index.jsonl").read_text().splitlines()[records.index(r)])
        )


def test_synth_scenes_bad_input(tmp_path, capsys):
    assert main(["synth", "scenes", "--n", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--n must be a positive" in capsys.readouterr().err
    talking = tmp_path / "talking"
    talking.mkdir()
    (talking / "index.jsonl").write_text('{"id": "a"}\n')
    assert main(["synth", "scenes", "--n", "1", "--out", str(talking)]) == 2
    assert "not a scene folder" in capsys.readouterr().err
    assert (talking / "index.jsonl").read_text() == '{"id": "a"}\n'  # nothing lost
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["synth", "scenes", "--n", "1", "--out", str(afile)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "y")]) == 2
    assert "give one of --text, --audio or --dataset" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_scenes_reports_every_stage(capsys):
    assert main(["bench", "scenes", "--clips", "2"]) == 0
    out = capsys.readouterr().out
    for stage in ("draw frames and masks", "synthesize and mix the sounds", "encode mp4", "whole clip"):
        line = next(row for row in out.splitlines() if row.startswith(stage))
        assert float(line.split()[-3]) > 0  # ms per clip
    assert main(["bench", "scenes", "--clips", "0"]) == 2
