"""The scene world's shipped models: they load by name, were made by their recipes, and do their jobs on held-out
data generated here (seeds that neither training nor the evaluation in docs/benchmarks.md used)."""

import dataclasses
import json
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch

from avdiff.bundled import bundled_path
from avdiff.data.scenes import LABELS, SOUNDING, load_scene_clip, make_scenes, read_scene_index
from avdiff.training.config import load_train_config

ROOT = Path(__file__).resolve().parents[3]


def recipe(name):
    trainer, task = load_train_config(ROOT / "configs" / "train" / name)
    return dataclasses.asdict(trainer), task


def run_config(folder: Path) -> dict:
    return json.loads((folder / "run_config.json").read_text())


def test_bundled_files_are_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "avdiff.bundled"
    ]
    for name in ("avdiff/scene-segmenter", "avdiff/scene-aligner"):
        folder = bundled_path(name)
        assert folder is not None, name
        files = [p.relative_to(folder.parent).as_posix() for p in folder.iterdir()]
        assert files and all(
            any(fnmatch(f, pat) or fnmatch(f, pat.replace("**/", "*/")) for pat in patterns) for f in files
        )
        assert sum(p.stat().st_size for p in folder.iterdir()) < 5e6  # a few MB at most
    assert bundled_path("no_such_model") is None and bundled_path("../avdiff") is None


def test_every_bundled_name_follows_one_scheme_and_earlier_names_still_load():
    from avdiff.bundled import available, canonical_name, resolve
    from avdiff.encoders.alignment import AudioTextAligner
    from avdiff.models.segmenter import load_segmenter

    folders = sorted(
        p.name
        for p in bundled_path("avdiff/scene-tiny").parent.iterdir()
        if p.is_dir() and not p.name.startswith(("_", "."))
    )
    assert folders == [
        "scene-aligner",
        "scene-segmenter",
        "scene-tiny",
        "syncnet-motion",
        "talking-head-motion",
        "talking-head-tiny",
    ]
    assert all(name == name.lower() and "_" not in name for name in folders)
    assert {canonical_name(m.name) for m in available()} == {
        "avdiff/scene-tiny",
        "avdiff/talking-head-motion",
        "avdiff/talking-head-tiny",
    }
    for old, new in (("scene_segmenter", "scene-segmenter"), ("scene_aligner", "scene-aligner")):
        assert canonical_name(old) == canonical_name(f"avdiff/{old}") == f"avdiff/{new}"
        assert bundled_path(old) == bundled_path(f"avdiff/{old}") == bundled_path(f"avdiff/{new}") == bundled_path(new)
        assert bundled_path(old).name == new
    assert resolve("scene-tiny") == resolve("avdiff/scene-tiny") and resolve("scene-tiny") != "scene-tiny"
    old_segmenter, segmenter = load_segmenter("scene_segmenter"), load_segmenter("avdiff/scene-segmenter")
    assert all(torch.equal(a, b) for a, b in zip(old_segmenter.state_dict().values(), segmenter.state_dict().values()))
    old_aligner = AudioTextAligner.from_pretrained("scene_aligner")
    aligner = AudioTextAligner.from_pretrained("avdiff/scene-aligner")
    assert all(torch.equal(a, b) for a, b in zip(old_aligner.state_dict().values(), aligner.state_dict().values()))


def test_bundled_segmenter_comes_from_its_recipe():
    from avdiff.models.segmenter import load_segmenter
    from avdiff.training.segmenter import SegmenterTaskConfig

    model = load_segmenter("avdiff/scene-segmenter")
    trainer, task = recipe("segmenter_tiny.yaml")
    ran = run_config(bundled_path("avdiff/scene-segmenter"))
    assert ran["trainer"] == trainer
    assert ran["task"] == dataclasses.asdict(SegmenterTaskConfig.from_dict(task))
    assert dataclasses.asdict(model.config) == {"labels": list(LABELS), **task["model"]}
    with pytest.raises(FileNotFoundError, match="no segmenter"):
        load_segmenter("no_such_model")


@pytest.fixture(scope="module")
def fresh_test_scenes(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    make_scenes(out, 12, split="test", seed=91, progress_bar=False)
    return out


@pytest.mark.slow
def test_bundled_segmenter_reads_held_out_frames(fresh_test_scenes):
    """On decoded frames of clips it never saw: pixel accuracy >= 0.9 (the acceptance line), and the prompt
    fidelity of the true clips is near 1 against their own captions and low against shuffled ones."""
    from avdiff.evaluation.scene import aggregate_fidelity, prompt_fidelity, segmentation_scores
    from avdiff.models.segmenter import load_segmenter

    model = load_segmenter("avdiff/scene-segmenter")
    records = read_scene_index(fresh_test_scenes)
    clips = [load_scene_clip(fresh_test_scenes, r, with_audio=False) for r in records]
    pred = model.predict(np.concatenate([c.frames for c in clips]))
    scores = segmentation_scores(pred, np.concatenate([c.masks for c in clips]))
    assert scores["pixel_accuracy"] >= 0.95 and scores["mean_iou"] >= 0.8, scores
    own = aggregate_fidelity([prompt_fidelity(c.frames, r, model) for c, r in zip(clips, records)])
    other = aggregate_fidelity(
        [prompt_fidelity(c.frames, records[(k + 1) % len(records)], model) for k, c in enumerate(clips)]
    )
    assert own["presence"] >= 0.95 and own["absence"] >= 0.95 and own["place"] >= 0.9
    assert other["presence"] <= 0.5


def test_bundled_aligner_comes_from_its_recipe():
    from avdiff.encoders.alignment import AudioTextAligner
    from avdiff.training.align import AlignTaskConfig

    aligner = AudioTextAligner.from_pretrained("avdiff/scene-aligner")
    trainer, task = recipe("align_tiny.yaml")
    ran = run_config(bundled_path("avdiff/scene-aligner"))
    assert ran["trainer"] == trainer
    assert ran["task"] == dataclasses.asdict(AlignTaskConfig.from_dict(task))
    saved = dataclasses.asdict(aligner.config)
    assert {k: saved[k] for k in task["aligner"]} == task["aligner"] and saved["text_model"] == task["text_model"]


@pytest.mark.slow
def test_bundled_aligner_picks_the_sounding_word():
    """Fresh recordings (seeds no split used, the held-out 'pulsing' loudness family): select_token picks the
    sounding object's word in scene prompts of 2-4 objects for at least 90 % of them."""
    from avdiff.data.sound_captions import SoundCaptionSet, SoundCombo, synthesize_scene
    from avdiff.encoders import AlignedEncoder
    from avdiff.training.align import evaluate_scene_tokens

    encoder = AlignedEncoder.from_pretrained("avdiff/scene-aligner")
    combos = [SoundCombo("scene", envelope="pulsing", word=w) for w in SOUNDING for _ in range(3)]
    audio = torch.from_numpy(
        np.stack([synthesize_scene(c, np.random.default_rng([77, k])) for k, c in enumerate(combos)])
    )
    result = evaluate_scene_tokens(encoder, SoundCaptionSet(audio, [""] * len(combos), combos), seed=5)
    assert result["scene_token_n"] == 24 and result["scene_token_acc"] >= 0.9, result
    crackle = synthesize_scene(SoundCombo("scene", envelope="smooth", word="campfire"), np.random.default_rng(123))
    choice = encoder.select_token("a campfire beside a lake at night", torch.from_numpy(crackle))
    assert choice.word == "campfire" and set(choice.candidates) == {"campfire", "lake"}  # never the time "night"


@pytest.mark.slow
def test_bundled_segmenter_reads_soft_frames():
    """Generated frames are softer than drawn ones: blurred (sigma 1.2 px), the held-out frames still segment with
    pixel accuracy >= 0.95 and every prompt object found."""
    import cv2

    from avdiff.data.scenes import render_scene, sample_scene
    from avdiff.evaluation.scene import aggregate_fidelity, prompt_fidelity, segmentation_scores
    from avdiff.models.segmenter import load_segmenter

    model = load_segmenter("avdiff/scene-segmenter")
    specs = [sample_scene(np.random.default_rng([56, 1, k]), "test") for k in range(8)]
    scenes = [render_scene(s) for s in specs]
    soft = [np.stack([cv2.GaussianBlur(f, (0, 0), 1.2) for f in r.frames]) for r in scenes]
    scores = segmentation_scores(model.predict(np.concatenate(soft)), np.concatenate([r.masks for r in scenes]))
    assert scores["pixel_accuracy"] >= 0.95, scores
    fid = aggregate_fidelity([prompt_fidelity(f, s.caption, model) for f, s in zip(soft, specs)])
    assert fid["presence"] >= 0.95 and fid["absence"] >= 0.95
