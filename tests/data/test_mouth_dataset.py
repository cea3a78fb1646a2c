"""Mouth crops from a DATA folder with landmark tracks (as ``avdiff prepare`` writes them): the holes found from the
tracked inner lips are where the mouth's inside is, faceless frames have none, and folders without tracks are
refused."""

import cv2
import numpy as np
import pytest
import skimage.data

from avdiff.data.format import ClipRecord, append_index
from avdiff.data.mouth_dataset import MouthWindows, data_folder_mouth_clips
from avdiff.data.mouth_truth import draw_mouth_interior
from avdiff.models.builders import build_mouth_painter
from avdiff.video.face import INNER_LIPS, detect_face
from avdiff.video.motion import FIELDS, Motion
from avdiff.video.render import FaceRenderer
from avdiff.video.writer import write_video

from media import bursts

FRAMES = 30


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One clip of a face whose mouth opens and shuts, teeth drawn inside, its landmarks saved (three frames without
    a face), and one clip at another frame rate."""
    out = tmp_path_factory.mktemp("data")
    photo = cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    renderer = FaceRenderer(photo, detect_face(photo))
    fields = {k: np.repeat(getattr(renderer.neutral(1), k), FRAMES) for k in FIELDS}
    fields["mouth_open"] = (0.25 * np.clip(np.sin(np.arange(FRAMES) / 3), 0, None)).astype(np.float32)
    fields["lip_closure"][:] = 0
    motion = Motion.from_dict(fields)
    points = renderer.target_landmarks(motion).astype(np.float32)
    frames = [draw_mouth_interior(f, points[i, INNER_LIPS], m, 0.5)
              for i, (f, m) in enumerate(renderer.frames(motion, return_interior=True))]  # fmt: skip
    (out / "clips").mkdir()
    speech = bursts(FRAMES / 25, 0)
    write_video(out / "clips" / "a.mp4", np.stack(frames), 25, speech)
    points[[20, 21, 22]] = np.nan  # no face found there
    np.save(out / "clips" / "a.landmarks.npy", points)
    append_index(
        out, ClipRecord("a", "clips/a.mp4", 25.0, 16000, FRAMES, FRAMES / 25, landmarks="clips/a.landmarks.npy")
    )
    write_video(out / "clips" / "b.mp4", np.stack(frames[:15]), 12, None)
    np.save(out / "clips" / "b.landmarks.npy", points[:15])
    append_index(out, ClipRecord("b", "clips/b.mp4", 12.0, 16000, 15, 1.25, landmarks="clips/b.landmarks.npy"))
    return out, fields["mouth_open"]


def test_the_holes_are_the_tracked_mouths_inside(folder):
    data, opening = folder
    (clip,) = data_folder_mouth_clips(data, 25, 48, 1.6)  # the 12 fps clip is skipped
    assert clip.crops.shape == (FRAMES, 48, 48, 3) and clip.rendered is None and clip.holes.shape == (FRAMES, 48, 48)
    area = clip.holes.reshape(FRAMES, -1).sum(axis=1)
    assert (area[[20, 21, 22]] == 0).all()  # no face, no hole
    kept = np.setdiff1d(np.arange(FRAMES), [20, 21, 22])
    assert np.corrcoef(area[kept], opening[kept])[0, 1] > 0.95  # the hole opens with the mouth
    wide = int(np.argmax(np.where(np.isin(np.arange(FRAMES), kept), opening, -1)))
    inside = clip.holes[wide] > 0.9
    assert inside.sum() > 20 and clip.crops[wide][inside].mean() > 120  # the drawn teeth and tongue, not skin or dark
    assert clip.reference.shape == (48, 48, 3) and clip.samples.shape[-1] == round(FRAMES / 25 * 16000)
    windows = MouthWindows([clip], build_mouth_painter("tiny"), 25, 8)
    assert len(windows) >= 1 and windows[0]["audio"].shape[0] == 8


def test_folders_without_landmark_tracks_are_refused(folder, tmp_path):
    data, _ = folder
    with pytest.raises(FileNotFoundError, match="no usable clip"):
        data_folder_mouth_clips(data, 25, 48, 1.6, split="test")
    with pytest.raises(FileNotFoundError, match="not a DATA folder"):
        data_folder_mouth_clips(tmp_path, 25, 48, 1.6)


def test_crops_are_cut_at_the_size_asked_for_their_native_side_and_batched_by_size(folder):
    data, _ = folder
    asked = []
    (clip,) = data_folder_mouth_clips(data, 25, lambda side: asked.append(side) or 56, 1.6)
    lips = np.load(data / "clips" / "a.landmarks.npy")[:, INNER_LIPS]
    width = np.nanmedian(np.hypot(*(lips[:, 10] - lips[:, 0]).T))
    assert asked == [pytest.approx(1.6 * width)]  # the square's native side, px of the frame
    assert clip.crops.shape[1:] == (56, 56, 3) and clip.holes.shape[1:] == (56, 56) and clip.reference.shape[0] == 56
    (small,) = data_folder_mouth_clips(data, 25, 48, 1.6)
    windows = MouthWindows([clip, small], build_mouth_painter("tiny"), 25, 8)
    groups = windows.batch_groups
    assert set(groups) == {56, 48} and len(groups) == len(windows)
    assert all(windows[i]["crops"].shape[1] == g for i, g in enumerate(groups))
