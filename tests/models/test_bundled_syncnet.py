"""The shipped sync expert, avdiff/syncnet-motion: it loads by name, was made by its recipe, and on held-out clips
made here (a seed that neither its training nor its evaluation used) it finds the true offset and imposed ones."""

import dataclasses
import json
from pathlib import Path

import pytest

from avdiff.bundled import bundled_path
from avdiff.data.synthetic import make_dataset
from avdiff.metrics.syncnet_scores import score_faces, shift_audio
from avdiff.models.syncnet import SyncNet
from avdiff.training.config import load_train_config
from avdiff.training.syncnet import SyncNetTaskConfig, prepare_clips

ROOT = Path(__file__).resolve().parents[2]
NAME = "avdiff/syncnet-motion"


def test_bundled_syncnet_comes_from_its_recipe():
    model = SyncNet.from_pretrained(NAME)
    assert SyncNet.from_pretrained("syncnet-motion").config == model.config  # the namespace may be left out
    trainer, task = load_train_config(ROOT / "configs" / "train" / "syncnet_motion.yaml")
    folder = bundled_path(NAME)
    ran = json.loads((folder / "run_config.json").read_text())
    assert ran["trainer"] == dataclasses.asdict(trainer)
    assert ran["task"] == dataclasses.asdict(SyncNetTaskConfig.from_dict(task))
    config = dataclasses.asdict(model.config)
    assert {k: config[k] for k in task["model"]} == {k: type(config[k])(v) for k, v in task["model"].items()}
    assert sum(p.stat().st_size for p in folder.iterdir()) < 5e6  # a few MB at most
    with pytest.raises(FileNotFoundError, match="no SyncNet 'no-such-syncnet'"):
        SyncNet.from_pretrained("no-such-syncnet")


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    """The bundled model and three held-out clips (unseen sentences and identities) as its lower faces and speech,
    cropped once."""
    folder = tmp_path_factory.mktemp("sync_heldout")
    make_dataset(folder, 3, split="test", seed=5, style="motion", progress_bar=False)
    model = SyncNet.from_pretrained(NAME)
    return model, prepare_clips(folder, model, progress_bar=False)


@pytest.mark.slow
@pytest.mark.requires_espeak
def test_the_bundled_syncnet_finds_the_true_offset_and_imposed_ones(heldout):
    model, clips = heldout
    for clip in clips:
        sync = score_faces(model, clip.faces, clip.audio)
        assert abs(sync.offset_frames) <= 1, (clip.id, sync.offset_frames)  # measured: 0 on all three
        for shift in (4, -3):  # +4: the audio 4 frames late; -3: 3 frames early
            shifted = score_faces(model, clip.faces, shift_audio(clip.audio, shift))
            assert abs(shifted.offset_frames - shift) <= 1, (clip.id, shift, shifted.offset_frames)
        late = score_faces(model, clip.faces, shift_audio(clip.audio, 10))
        assert sync.lse_c > late.lse_c and sync.dist_at_zero < late.dist_at_zero
        # a still face (the clip's first frame held) has no offset to find: its confidence is a tenth of the clip's
        still = score_faces(model, clip.faces[:1].expand_as(clip.faces).contiguous(), clip.audio)
        assert sync.lse_c > 2 * still.lse_c, (clip.id, sync.lse_c, still.lse_c)
