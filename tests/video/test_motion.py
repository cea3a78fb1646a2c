"""Motion read from the face mesh against known truth: the astronaut's real 3-D landmarks moved by known amounts."""

import dataclasses
import re
import warnings

import numpy as np
import pytest
import skimage.data

from avdiff.metrics import aperture_from_landmarks
from avdiff.video.face import CHIN, INNER_LIP_PAIRS, MOUTH_LEFT, MOUTH_RIGHT, NOSE_TIP, detect_face, track_landmarks
from avdiff.video.motion import (
    CENTRAL_LIPS,
    CLOSED_APERTURE,
    FIELDS,
    LEFT_BROW,
    LEFT_LIDS,
    RIGHT_LIDS,
    STABLE,
    Motion,
    closure_from_aperture,
    face_frame,
    motion_from_landmarks,
    motion_track,
    neutral_frame,
    plot_motion,
    rotation_from_euler,
)

RELATIVE = [f for f in FIELDS if f not in ("mouth_open", "lip_closure", "yaw", "pitch", "roll", "tx", "ty", "scale")]
LOWER_INNER_LIP = [lower for _, lower in INNER_LIP_PAIRS]


@pytest.fixture(scope="module")
def astro_face():
    return detect_face(skimage.data.astronaut())


@pytest.fixture(scope="module")
def ref(astro_face) -> np.ndarray:
    """The astronaut's landmarks with depth, float64 [478, 3] px."""
    pts = astro_face.points3d.astype(np.float64)
    assert pts.shape == (478, 3) and np.isfinite(pts).all()
    return pts


def ref_geometry(ref: np.ndarray) -> tuple[np.ndarray, float]:
    """(the reference face's down axis [2], its size in px)."""
    _, _, down, size = face_frame(ref[None])
    return down[0], float(size[0])


def moved(ref, yaw=0.0, pitch=0.0, roll=0.0, scale=1.0, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    """The reference turned about its centroid, scaled and shifted: a known rigid motion."""
    c = ref[STABLE].mean(axis=0)
    return scale * (ref - c) @ rotation_from_euler(yaw, pitch, roll).T + c + np.asarray(shift)


POSES = [
    dict(yaw=0.3, pitch=0.0, roll=0.0),
    dict(yaw=0.0, pitch=-0.25, roll=0.0),
    dict(yaw=0.0, pitch=0.0, roll=0.35),
    dict(yaw=-0.2, pitch=0.15, roll=-0.1, scale=1.7, shift=(40.0, -25.0, 3.0)),
    dict(yaw=0.1, pitch=-0.1, roll=0.2, scale=0.6, shift=(-30.0, 12.0, 0.0)),
]


@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_a_known_rigid_motion_is_recovered_and_leaves_the_expression_alone(ref, noise):
    _, size = ref_geometry(ref)
    rng = np.random.default_rng(0)
    frames = np.stack([moved(ref, **p) + rng.normal(0, noise, ref.shape) for p in POSES])
    m = motion_from_landmarks(frames, ref)
    assert len(m) == len(POSES)
    tol = np.deg2rad(1.0) if noise else 1e-6
    for i, p in enumerate(POSES):
        for angle in ("yaw", "pitch", "roll"):
            assert abs(getattr(m, angle)[i] - p[angle]) < tol, (angle, p)
        assert abs(m.scale[i] - p.get("scale", 1.0)) < (0.01 if noise else 1e-6)
        shift = np.asarray(p.get("shift", (0.0, 0.0, 0.0)))[:2] / size  # the centroid moves by the shift alone
        np.testing.assert_allclose([m.tx[i], m.ty[i]], shift, atol=0.01 if noise else 1e-6)
    for name in RELATIVE:  # the expression, measured in the pose-normalised frame, does not change
        # the astronaut's lid gap is ~3 px, so 0.3 px of noise moves the eyes' ratio by up to ~0.1
        loose = 0.15 if name.startswith("eye") else 0.03
        assert np.abs(getattr(m, name)).max() < (loose if noise else 1e-6), name
    base = aperture_from_landmarks(ref[:, :2])[0]
    np.testing.assert_allclose(m.mouth_open, base, atol=0.01 if noise else 1e-5)


def test_the_signs_of_the_angles(ref):
    """Positive yaw turns the nose towards the image's left, positive pitch tips it down, positive roll turns the face
    clockwise in the image (y points down)."""
    centre = ref[STABLE].mean(axis=0)

    def nose(**pose):
        return moved(ref, **pose)[NOSE_TIP] - ref[NOSE_TIP]

    assert nose(yaw=0.2)[0] < -1.0
    assert nose(pitch=0.2)[1] > 1.0
    chin = moved(ref, roll=0.2)[CHIN] - centre
    assert chin[0] < ref[CHIN, 0] - centre[0] - 1.0  # the chin swings to the left: clockwise with y down
    m = motion_from_landmarks(np.stack([moved(ref, yaw=0.2), moved(ref, pitch=0.2), moved(ref, roll=0.2)]), ref)
    np.testing.assert_allclose([m.yaw[0], m.pitch[1], m.roll[2]], 0.2, atol=1e-6)


def test_mouth_open_follows_the_lower_lip_and_not_the_image_size_or_the_pose(ref):
    down, size = ref_geometry(ref)
    drops = np.linspace(0.0, 12.0, 9)
    frames = []
    for d in drops:
        f = ref.copy()
        f[LOWER_INNER_LIP, :2] += d * down
        frames.append(f)
    frames = np.stack(frames)
    m = motion_from_landmarks(frames, ref)
    assert np.corrcoef(drops, m.mouth_open)[0, 1] > 0.99
    np.testing.assert_allclose(np.diff(m.mouth_open), np.diff(drops) / size, rtol=1e-4)  # px / face size
    assert m.lip_closure[0] == 0.0  # the astronaut's lips are parted
    # the same landmarks at twice the image size, with the reference at its own size: the same expression
    twice = motion_from_landmarks(frames * 2, ref)
    for name in ("mouth_open", *RELATIVE):
        np.testing.assert_allclose(getattr(twice, name), getattr(m, name), atol=1e-6, err_msg=name)
    np.testing.assert_allclose(twice.scale, 2.0, rtol=1e-6)
    # and with the head turned
    turned = motion_from_landmarks(np.stack([moved(f, yaw=0.25, pitch=0.1, roll=-0.2) for f in frames]), ref)
    np.testing.assert_allclose(turned.mouth_open, m.mouth_open, atol=1e-6)


def test_mouth_open_is_the_metric_s_aperture(ref):
    down, _ = ref_geometry(ref)
    frames = []
    for d in (0.0, 4.0, 9.0, -30.0):  # the last one shuts the mouth: aperture clipped at 0
        f = ref.copy()
        f[LOWER_INNER_LIP, :2] += d * down
        frames.append(f)
    frames = np.stack(frames)
    m = motion_from_landmarks(frames, ref)
    np.testing.assert_allclose(m.mouth_open, aperture_from_landmarks(frames[..., :2]), atol=1e-6)
    assert m.mouth_open[-1] == 0.0 and m.lip_closure[-1] == 1.0
    # in-plane roll and scale change neither (both rules are roll- and scale-invariant)
    rolled = np.stack([moved(f, roll=0.3, scale=1.4) for f in frames])
    np.testing.assert_allclose(aperture_from_landmarks(rolled[..., :2]), m.mouth_open, atol=1e-5)


def test_closure_from_aperture_is_one_shut_and_zero_from_the_closed_aperture_up(ref):
    apertures = np.array([-0.01, 0.0, CLOSED_APERTURE / 4, CLOSED_APERTURE / 2, CLOSED_APERTURE, 0.2, np.nan])
    for dtype in (np.float32, np.float64):
        closure = closure_from_aperture(apertures.astype(dtype))
        assert closure.dtype == dtype and closure.shape == apertures.shape
        np.testing.assert_allclose(closure[:-1], [1.0, 1.0, 0.75, 0.5, 0.0, 0.0], atol=1e-6)
        assert np.isnan(closure[-1])
    grid = closure_from_aperture(np.full((2, 3), CLOSED_APERTURE / 2))  # any shape
    assert grid.shape == (2, 3) and np.allclose(grid, 0.5)
    assert float(closure_from_aperture(0.0)) == 1.0 and float(closure_from_aperture(1.0)) == 0.0
    # the measure reads lip_closure with it: a mouth shut little by little
    down, size = ref_geometry(ref)
    frames = []
    for d in np.linspace(0.0, -30.0, 7):
        f = ref.copy()
        f[LOWER_INNER_LIP, :2] += d * down
        frames.append(f)
    m = motion_from_landmarks(np.stack(frames), ref)
    assert m.lip_closure.min() == 0.0 and m.lip_closure.max() == 1.0  # from parted to shut
    np.testing.assert_allclose(m.lip_closure, closure_from_aperture(m.mouth_open), atol=1e-6)


@pytest.mark.parametrize("side", ["left", "right"])
def test_closing_one_eye(ref, side):
    lids = LEFT_LIDS if side == "left" else RIGHT_LIDS
    f = ref.copy()
    for upper, lower in lids:
        f[upper] = f[lower]
    m = motion_from_landmarks(np.stack([f, moved(f, yaw=0.2, roll=0.1, scale=1.3)]), ref)
    other = "right" if side == "left" else "left"
    np.testing.assert_allclose(getattr(m, f"eye_{side}"), 1.0, atol=1e-6)
    np.testing.assert_allclose(getattr(m, f"eye_{other}"), 0.0, atol=1e-6)
    # half way
    half = ref.copy()
    for upper, lower in lids:
        half[upper] = (half[upper] + half[lower]) / 2
    assert abs(getattr(motion_from_landmarks(half[None], ref), f"eye_{side}")[0] - 0.5) < 1e-6


def test_jaw_brows_width_and_rounding(ref):
    down, size = ref_geometry(ref)
    jaw = ref.copy()
    jaw[CHIN, :2] += 10 * down
    brow = ref.copy()
    brow[LEFT_BROW, :2] -= 6 * down
    narrow = ref.copy()
    mid = (narrow[MOUTH_LEFT] + narrow[MOUTH_RIGHT]) / 2
    narrow[[MOUTH_LEFT, MOUTH_RIGHT]] = mid + 0.8 * (narrow[[MOUTH_LEFT, MOUTH_RIGHT]] - mid)
    pout = ref.copy()
    pout[CENTRAL_LIPS, 2] -= 5.0  # nearer the camera
    m = motion_from_landmarks(np.stack([jaw, brow, narrow, pout]), ref)
    assert abs(m.jaw[0] - 10 / size) < 1e-6 and abs(m.jaw[1]) < 1e-6
    assert abs(m.brow_left[1] - 6 / size) < 1e-6 and abs(m.brow_right[1]) < 1e-6
    assert abs(m.mouth_width[2] + 0.2) < 1e-5 and abs(m.mouth_round[2] - 0.2) < 1e-5
    assert abs(m.mouth_round[3] - 5 / size) < 1e-6 and abs(m.mouth_width[3]) < 1e-6


def test_frames_without_a_face_are_nan_quietly_and_bad_shapes_are_named(ref):
    frames = np.stack([ref, np.full_like(ref, np.nan), ref])
    frames[2, 5, 2] = np.nan  # one missing depth is no face as well
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = motion_from_landmarks(frames, ref)
    a = m.as_array()
    assert np.isfinite(a[0]).all() and np.isnan(a[1:]).all()
    assert m.missing().tolist() == [False, True, True]
    for bad in (ref[:, :2][None], ref, np.zeros((2, 468, 3))):
        with pytest.raises(ValueError, match=r"\[F, 478, 3\].*" + re.escape(str(bad.shape))):
            motion_from_landmarks(bad, ref)
    with pytest.raises(ValueError, match=r"reference must be \[478, 3\].*\(1, 478, 3\)"):
        motion_from_landmarks(ref[None], ref[None])
    with pytest.raises(ValueError, match="reference landmarks hold NaN"):
        motion_from_landmarks(ref[None], np.full_like(ref, np.nan))


def test_the_container(tmp_path, ref):
    m = motion_from_landmarks(np.stack([moved(ref, yaw=0.1 * k) for k in range(5)]), ref)
    a = m.as_array()
    assert a.shape == (5, len(FIELDS)) == (5, 15) and a.dtype == np.float32
    assert FIELDS.index("yaw") == 9 and np.allclose(a[:, 9], 0.1 * np.arange(5), atol=1e-6)
    assert np.array_equal(Motion.from_array(a).as_array(), a)
    assert np.array_equal(m[1:3].yaw, m.yaw[1:3]) and len(m[1:3]) == 2 and len(m[-1]) == 1
    assert m[-1].yaw[0] == m.yaw[-1]
    m.save(tmp_path / "motion.npz")
    assert np.array_equal(Motion.load(tmp_path / "motion.npz").as_array(), a)
    assert np.array_equal(Motion.from_dict(m.to_dict()).as_array(), a)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.yaw = m.pitch  # frozen
    with pytest.raises(ValueError, match=r"\[F, 15\].*\(5, 3\)"):
        Motion.from_array(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="lacks the fields"):
        Motion.from_dict({"yaw": m.yaw})
    with pytest.raises(ValueError, match="same length"):
        m.replace(yaw=np.zeros(2))
    # NaN frames filled linearly from their neighbours, the nearest at the ends
    holes = a.copy()
    holes[[0, 2]] = np.nan
    filled = Motion.from_array(holes).interpolate_missing().as_array()
    np.testing.assert_allclose(filled[2], (a[1] + a[3]) / 2, atol=1e-6)
    np.testing.assert_allclose(filled[0], a[1])
    with pytest.raises(ValueError, match="no frame"):
        Motion.from_array(np.full((3, 15), np.nan)).interpolate_missing()


def test_the_astronaut_against_itself_tracked_with_depth(astro_face, ref):
    """The real path: the photo as two video frames through track_landmarks(depth=True)."""
    photo = skimage.data.astronaut()
    tracked = track_landmarks([photo, photo], depth=True)
    assert tracked.shape == (2, 478, 3) and np.isfinite(tracked).all()
    m = motion_from_landmarks(tracked, ref)
    # the first frame is the photo's own detection: no motion at all
    assert (
        np.abs(m[0].as_array()[0, [FIELDS.index(n) for n in ("yaw", "pitch", "roll", "tx", "ty", *RELATIVE)]]).max()
        < 1e-5
    )
    # the second is mediapipe's tracking of the same still photo: its jitter (measured: 0.75 degree of pitch, 1.3 % of
    # scale, 0.025 of width, 0.035 of eye closure) is the floor of what motion can tell apart
    assert np.abs(np.concatenate([m.yaw, m.pitch, m.roll])).max() < np.deg2rad(1.5)
    np.testing.assert_allclose(m.scale, 1.0, atol=0.03)
    for name in ("tx", "ty", *RELATIVE):
        assert np.abs(getattr(m, name)).max() < 0.06, name
    np.testing.assert_allclose(m.mouth_open, aperture_from_landmarks(astro_face.landmarks)[0], atol=0.02)
    assert track_landmarks([photo]).shape == (1, 478, 2)  # without depth, as before


def test_the_neutral_frame_of_a_video_and_its_motion_track(ref):
    """Of a turned head, a blink, an open mouth, a missing face and the portrait itself (scaled and shifted), the
    portrait is picked; the track is relative to it and fills the missing frame."""
    down, size = ref_geometry(ref)
    blink = ref.copy()
    for upper, lower in LEFT_LIDS + RIGHT_LIDS:
        blink[upper] = blink[lower]
    open_mouth = ref.copy()
    open_mouth[LOWER_INNER_LIP, :2] += 0.2 * size * down
    frames = np.stack(
        [
            moved(ref, yaw=0.3),
            blink,
            open_mouth,
            np.full_like(ref, np.nan),
            moved(ref, scale=1.2, shift=(10.0, 5.0, 0.0)),
            moved(ref, pitch=-0.02),
        ]
    )
    assert neutral_frame(frames) == 4
    motion, reference = motion_track(frames)
    assert reference == 4 and not motion.missing().any()
    assert motion.scale[4] == pytest.approx(1.0) and motion.scale[0] == pytest.approx(1 / 1.2, rel=1e-4)
    assert motion.eye_left[1] == pytest.approx(1.0, abs=1e-6)
    assert motion.yaw[3] == pytest.approx((motion.yaw[2] + motion.yaw[4]) / 2)  # interpolated
    with pytest.raises(ValueError, match="no frame of the 2 has a face"):
        neutral_frame(np.full((2, 478, 3), np.nan))
    with pytest.raises(ValueError, match=r"\[F, 478, 3\]"):
        neutral_frame(ref)


def test_a_motion_plot_is_an_image_and_refuses_nothing_to_plot():
    motion = Motion.from_array(np.zeros((50, len(FIELDS)), np.float32))
    image = plot_motion(motion, 25, width_px=600, height_px=300)
    assert image.shape == (300, 600, 3) and image.dtype == np.uint8 and image.std() > 0
    with pytest.raises(ValueError, match="no frames"):
        plot_motion(motion[:0], 25)
    with pytest.raises(ValueError, match="fps must be positive"):
        plot_motion(motion, 0)
