"""The mouth painter in the motion pipeline (a tiny random painter): it changes only the inside of the lips, leaves
the motion alone, follows the seed and the audio, costs nothing while the mouth is shut, and is refused when absent."""

import numpy as np
import pytest
import skimage.data
import torch

from avdiff.models.builders import build_motion_denoiser, build_mouth_painter, load_preset
from avdiff.models.mouth_painter import MouthPainter
from avdiff.pipelines import MotionTalkingHeadPipeline
from avdiff.pipelines.talking_head import mouth_painting
from avdiff.pipelines.talking_head.mouth_painting import CropSequence, MouthPainting, paint_crops
from avdiff.video.face import detect_face
from avdiff.video.render import FaceRenderer

from media import bursts as speech  # speech-like noise bursts

PHOTO = skimage.data.astronaut()


@pytest.fixture(scope="module")
def pipe():
    pipe = MotionTalkingHeadPipeline(  # the trained motion model: mouths that open, so there are holes to paint
        MotionTalkingHeadPipeline.from_pretrained("avdiff/talking-head-motion").motion_model,
        mouth_painter=build_mouth_painter("tiny", seed=0),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe, audio, seed=0, **kwargs):
    if kwargs.get("paint_mouth"):
        kwargs.setdefault("mouth_steps", 2)
    return pipe(PHOTO, audio, generator=torch.Generator().manual_seed(seed), num_inference_steps=3, **kwargs)


@pytest.fixture(scope="module")
def pair(pipe):
    audio = speech(1.2, 0)
    return run(pipe, audio), run(pipe, audio, paint_mouth=True)


def test_painting_changes_only_the_inside_of_the_lips_and_not_the_motion(pair):
    plain, painted = pair
    np.testing.assert_array_equal(plain.motion.as_array(), painted.motion.as_array())
    renderer = FaceRenderer(PHOTO, detect_face(PHOTO))
    changed_somewhere = False
    for i in range(len(plain.motion)):
        frame, interior = renderer.render(plain.motion, i, return_interior=True)
        np.testing.assert_array_equal(frame, plain.frames[i])  # the plain frames are the renderer's
        diff = np.abs(painted.frames[i].astype(int) - plain.frames[i]).max(axis=-1)
        assert not diff[interior == 0].any(), i
        changed_somewhere |= bool(diff[interior > 0.5].any())
    assert changed_somewhere
    assert painted.timings["paint"] > 0 and plain.timings["paint"] == 0


def test_the_seed_decides_the_paint(pipe, pair):
    _, painted = pair
    again = run(pipe, speech(1.2, 0), paint_mouth=True)
    np.testing.assert_array_equal(again.frames, painted.frames)
    other = run(pipe, speech(1.2, 0), seed=1, paint_mouth=True)
    assert not np.array_equal(other.frames, painted.frames)


def test_the_audio_changes_the_paint_and_guidance_0_does_not_hear_it(pipe):
    painter: MouthPainter = pipe.mouth_painter
    S = painter.config.pixel_size
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (4, S, S, 3), dtype=np.uint8)
    holes = np.zeros((4, S, S), np.float32)
    holes[:, S // 3 : 2 * S // 3, S // 4 : 3 * S // 4] = 1
    reference = crops[0]
    a, b = torch.randn(4, 40, 20), torch.randn(4, 40, 20)

    def paint(audio, g):
        return paint_crops(painter, crops, holes, reference, audio, num_inference_steps=2, guidance_scale=g,
                           generator=torch.Generator().manual_seed(0))  # fmt: skip

    assert not np.array_equal(paint(a, 1.0), paint(b, 1.0))
    np.testing.assert_array_equal(paint(a, 0.0), paint(b, 0.0))
    with pytest.raises(ValueError, match="crops"):
        paint_crops(painter, crops[:, :-1], holes, reference, a)
    with pytest.raises(ValueError, match="audio_windows"):
        paint_crops(painter, crops, holes, reference, a[:3])


def test_a_shut_mouth_is_not_painted_at_all(pipe, monkeypatch):
    renderer = FaceRenderer(PHOTO, detect_face(PHOTO))
    painting = MouthPainting(pipe.mouth_painter, renderer, speech(1.0, 0), 25)
    calls = []
    monkeypatch.setattr(MouthPainter, "forward", lambda *a, **k: calls.append(1))
    motion = renderer.neutral(20)
    frames = [renderer.render(motion, i) for i in range(20)]
    shut = [np.zeros(PHOTO.shape[:2], np.float32)] * 20
    out = list(painting.paint(zip(frames, shut, renderer.target_landmarks(motion)), 0))
    assert calls == [] and len(out) == 20 and all(o is f for o, f in zip(out, frames))


def test_a_pipeline_without_a_painter_refuses_to_paint_before_any_work(tmp_path):
    bare = MotionTalkingHeadPipeline(build_motion_denoiser("tiny", seed=0))
    with pytest.raises(ValueError, match="no mouth_painter"):
        bare(PHOTO, speech(1.0, 0), paint_mouth=True, output_path=tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()
    assert bare(PHOTO, speech(0.4, 0), num_inference_steps=2).frames.shape[0] == 10  # the fast path needs none


def test_the_painter_saves_and_loads_with_the_pipeline(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    loaded = MotionTalkingHeadPipeline.from_pretrained(tmp_path)
    assert isinstance(loaded.mouth_painter, MouthPainter)
    mine = dict(pipe.mouth_painter.named_parameters())
    assert all(torch.equal(p, mine[n]) for n, p in loaded.mouth_painter.named_parameters())
    with pytest.raises(ValueError, match="mouth_steps"):
        loaded(PHOTO, speech(0.4, 0), paint_mouth=True, mouth_steps=0)
    with pytest.raises(ValueError, match="paint_mouth is False"):
        loaded(PHOTO, speech(0.4, 0), mouth_steps=3)


def test_chunks_hear_their_own_frames_and_carry_the_last_ones_on(pipe, monkeypatch):
    """Over 2.4 s (60 frames: two motion windows, several chunks), every chunk the painter samples hears the speech
    of exactly its frames, and each chunk after the first starts with the four crops made just before, given whole."""
    calls = []
    real = mouth_painting.paint_crops

    def spy(painter, crops, holes, reference, windows, **kw):
        calls.append((crops.copy(), holes.copy(), windows.clone()))
        return real(painter, crops, holes, reference, windows, **kw)

    monkeypatch.setattr(mouth_painting, "paint_crops", spy)
    audio = speech(2.4, 0)
    out = run(pipe, audio, paint_mouth=True, seed=3)
    encoder = pipe.mouth_painter.speech_encoder
    features = encoder.features(audio.samples)
    clock = encoder.frame_clock(25)
    assert len(calls) >= 3
    start, carried = 0, 0
    for crops, holes, windows in calls:
        expected = encoder.frame_windows(features, clock, start - carried, len(crops))[0]
        torch.testing.assert_close(windows, expected)  # the chunk's own frames' speech
        assert (holes[:carried] == 0).all() and holes[carried:].sum() > 0  # context given whole, new frames painted
        start += len(crops) - carried
        carried = pipe.mouth_painter.config.context_frames
    assert start <= len(out.motion)


def test_a_crop_sequence_refuses_an_oversized_chunk_and_keeps_shut_mouths(pipe):
    S = pipe.mouth_painter.config.pixel_size
    seq = CropSequence(pipe.mouth_painter, np.zeros((S, S, 3), np.uint8), torch.zeros(1, 40, 200),
                       pipe.mouth_painter.speech_encoder.frame_clock(25))  # fmt: skip
    crops = np.random.default_rng(0).integers(0, 256, (16, S, S, 3), dtype=np.uint8)
    np.testing.assert_array_equal(seq.paint(crops, np.zeros((16, S, S), np.float32), 0), crops)
    assert seq.chunk_size(16) == 12 and seq.chunk_size(40) == 16  # continuing, or starting afresh
    with pytest.raises(ValueError, match="takes 12"):
        seq.paint(crops[:13], np.zeros((13, S, S), np.float32), 16)


def test_a_painter_without_context_paints_whole_chunks_from_the_first(monkeypatch):
    painter = build_mouth_painter({**load_preset("mouth_painter", "tiny"), "context_frames": 0}, seed=0)
    S = painter.config.pixel_size
    seq = CropSequence(painter, np.zeros((S, S, 3), np.uint8), torch.zeros(1, 40, 200),
                       painter.speech_encoder.frame_clock(25))  # fmt: skip
    sizes = []
    monkeypatch.setattr(
        mouth_painting, "paint_crops", lambda painter, crops, *a, **k: sizes.append(len(crops)) or crops
    )
    crops = np.zeros((40, S, S, 3), np.uint8)
    holes = np.ones((40, S, S), np.float32)
    assert seq.chunk_size(0) == 16 and seq.paint_clip(crops, holes).shape == crops.shape
    assert sizes == [16, 16, 8]  # no context carried, none given: every chunk paints only new frames


def test_the_largest_seed_paints_too(pipe):
    gen = torch.Generator().manual_seed(2**64 - 1)
    out = pipe(PHOTO, speech(0.4, 0), generator=gen, num_inference_steps=2, paint_mouth=True, mouth_steps=1)
    assert out.frames.shape[0] == 10


def test_a_painter_that_paints_the_truth_gives_the_truth_inside_and_the_frame_outside(pipe, monkeypatch):
    """An oracle painter's paint is the truth wherever the mouth is fully open, the rendered frame where it is shut,
    and in between at the soft edge (blended by the renderer's own mask: never past either)."""
    from avdiff.data.mouth_truth import draw_mouth_interior
    from avdiff.video.face import INNER_LIPS
    from avdiff.video.motion import FIELDS, Motion
    from avdiff.video.mouth_crop import mouth_crops, mouth_width

    renderer = FaceRenderer(PHOTO, detect_face(PHOTO))
    fields = {k: getattr(renderer.neutral(1), k).copy() for k in FIELDS}
    fields["mouth_open"][:], fields["lip_closure"][:] = 0.4, 0.0
    motion = Motion.from_dict(fields)
    frame, interior = renderer.render(motion, 0, return_interior=True)
    lips = renderer.target_landmarks(motion, 0)[INNER_LIPS]
    truth = draw_mouth_interior(frame, lips, interior, 1.0)
    S = pipe.mouth_painter.config.pixel_size
    crop = mouth_crops(lips[None], mouth_width(renderer.reference), 1.6, S)[0]
    rendered, hole, want = crop.cut(frame)[None], crop.cut(interior)[None], crop.cut(truth)[None]
    monkeypatch.setattr(mouth_painting, "paint_crops", lambda *a, **k: want.copy())
    seq = CropSequence(
        pipe.mouth_painter, want[0], torch.zeros(1, 40, 100), pipe.mouth_painter.speech_encoder.frame_clock(25)
    )
    got = seq.paint(rendered, hole, 0).astype(int)
    edge = (hole > 0.05) & (hole < 0.95)
    assert edge.sum() > 10 and np.abs(got - want)[hole >= 0.999].max() <= 1 and (got == rendered)[hole == 0].all()
    low, high = np.minimum(rendered, want).astype(int), np.maximum(rendered, want).astype(int)
    assert ((got >= low - 1) & (got <= high + 1))[edge].all()
    assert np.abs(got - want)[hole >= 0.999].max() < np.abs(rendered.astype(int) - want)[hole >= 0.999].max()


@pytest.mark.parametrize("max_pixel_size, expected", [(96, 64), (None, 48)])
def test_the_mouth_is_painted_at_its_native_size(monkeypatch, max_pixel_size, expected):
    """The astronaut's mouth square is 64 px of the photo (1.6 of its 40 px mouth): a painter trained across sizes
    paints it at 64 px, not shrunk to 48 and enlarged again; a painter of one size shrinks it to that size."""
    spec = load_preset("mouth_painter", "tiny")
    painter = build_mouth_painter({**spec, "max_pixel_size": max_pixel_size}, seed=0)
    sizes = []
    real = mouth_painting.paint_crops

    def spy(painter, crops, holes, reference, windows, **kw):
        sizes.append((crops.shape[1], holes.shape[1], reference.shape[0]))
        return real(painter, crops, holes, reference, windows, **kw)

    monkeypatch.setattr(mouth_painting, "paint_crops", spy)
    renderer = FaceRenderer(PHOTO, detect_face(PHOTO))
    painting = MouthPainting(painter, renderer, speech(0.6, 0), 25, num_inference_steps=1)
    assert painting.size == expected and painting.reference.shape == (expected, expected, 3)
    motion = renderer.neutral(4)
    motion.mouth_open[:] = 0.5
    frames, interiors = zip(*(renderer.render(motion, i, return_interior=True) for i in range(4)))
    out = list(painting.paint(zip(frames, interiors, renderer.target_landmarks(motion)), 0))
    assert sizes == [(expected,) * 3] and any(not np.array_equal(o, f) for o, f in zip(out, frames))


def test_frames_are_drawn_a_chunk_at_a_time(pipe):
    """The painting reads the renderer's frames as it paints them: the first frame waits for the first chunk's
    frames to be drawn, not the whole window's, and a window's frames are never all held at once."""
    renderer = FaceRenderer(PHOTO, detect_face(PHOTO))
    painting = MouthPainting(pipe.mouth_painter, renderer, speech(1.0, 0), 25, num_inference_steps=1)
    motion = renderer.neutral(24)
    motion.mouth_open[:] = 0.5
    drawn = []

    def frames():
        for item in renderer.frames(motion, return_interior=True, return_landmarks=True):
            drawn.append(item[0])
            yield item

    out = painting.paint(frames(), 0)
    first = next(out)
    assert len(drawn) == pipe.mouth_painter.config.chunk_frames and not np.array_equal(first, drawn[0])
    assert len(list(out)) == 23 and len(drawn) == 24
