"""Faces: detection in any image mode, alignment, masks, paste-back, landmark smoothing and mouth openness.

Real mediapipe on skimage's astronaut photo (a frontal face, roughly x 180..270, y 70..180 in 512x512); detections
on it are cached in module-scoped fixtures.
"""

from __future__ import annotations

import io
import logging

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from avdiff.metrics import aperture_from_landmarks, mouth_openness
from avdiff.video import write_video
from avdiff.video.align import (
    AlignedFace,
    align_face,
    align_frames,
    alignment_matrix,
    canonical_points,
    lower_face_mask,
    mouth_mask,
    paste_back,
    reframe_matrix,
    similarity_transform,
    transform_points,
    warp_to_crop,
)
from avdiff.video.face import (
    CHIN,
    FACE_OVAL,
    INNER_LIP_PAIRS,
    INNER_LIPS,
    LEFT_EYE,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    NOSE_TIP,
    OUTER_LIPS,
    RIGHT_EYE,
    Face,
    MultipleFacesError,
    NoFaceError,
    detect_face,
    detect_faces,
)
from avdiff.video.smoothing import one_euro_landmarks, smooth_landmarks


def anchors(landmarks: np.ndarray) -> np.ndarray:
    """(left eye centre, right eye centre, mouth centre) [3, 2] of landmarks [478, 2]."""
    return np.stack(
        [
            landmarks[LEFT_EYE].mean(axis=0),
            landmarks[RIGHT_EYE].mean(axis=0),
            landmarks[[MOUTH_LEFT, MOUTH_RIGHT]].mean(axis=0),
        ]
    )


def rotate_about(points: np.ndarray, degrees: float, center: np.ndarray, scale: float = 1.0) -> np.ndarray:
    theta = np.deg2rad(degrees)
    rot = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return ((points - center) @ rot.T + center).astype(np.float32)


@pytest.fixture(scope="module")
def astro() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def astro_face(astro) -> Face:
    return detect_face(astro)


@pytest.fixture(scope="module")
def aligned(astro, astro_face) -> AlignedFace:
    return align_face(astro, astro_face, size=256)


@pytest.fixture(scope="module")
def rotated(astro, astro_face):
    """The astronaut turned 20 degrees counter-clockwise and shrunk to 0.8 about the face: (image, face)."""
    h, w = astro.shape[:2]
    center = tuple(float(v) for v in astro_face.landmarks.mean(axis=0))
    m = cv2.getRotationMatrix2D(center, 20, 0.8)
    image = cv2.warpAffine(astro, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return image, detect_face(image)


# --- detection ----------------------------------------------------------------------------------------------------


def test_detect_face_on_the_astronaut(astro, astro_face):
    lm = astro_face.landmarks
    assert lm.shape == (478, 2) and lm.dtype == np.float32
    assert np.isfinite(lm).all()
    assert (lm >= 0).all() and (lm[:, 0] < 512).all() and (lm[:, 1] < 512).all()
    x0, y0, x1, y1 = astro_face.box
    # the face is roughly x 180..270, y 70..180
    assert 160 < x0 < 200 and 250 < x1 < 290 and 50 < y0 < 90 and 160 < y1 < 200
    assert astro_face.image_size == (512, 512)
    left, right, mouth = astro_face.left_eye, astro_face.right_eye, astro_face.mouth_center
    assert left[0] + 25 < right[0]  # ~44 px apart
    assert abs(left[1] - right[1]) < 8  # upright head
    assert mouth[1] > max(left[1], right[1]) + 20
    assert left[0] < mouth[0] < right[0]
    assert lm[CHIN, 1] > mouth[1]
    assert 30 < astro_face.size < 45


def _save_exif_rotated_jpeg(rgb: np.ndarray, dest) -> None:
    """A JPEG whose pixels are stored turned 90 degrees, with EXIF Orientation 6 saying how to turn them upright."""
    stored = Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    stored.save(dest, "JPEG", quality=95, exif=exif.tobytes())


def _exif_rotated_jpeg(rgb: np.ndarray) -> Image.Image:
    buf = io.BytesIO()
    _save_exif_rotated_jpeg(rgb, buf)
    buf.seek(0)
    return Image.open(buf)


def _transparent_around_face(rgb: np.ndarray) -> Image.Image:
    rgba = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    rgba[30:230, 140:310, 3] = 255  # opaque around the face, transparent (composited on white) elsewhere
    return Image.fromarray(rgba, "RGBA")


@pytest.mark.parametrize(
    "mode, make, tol_px",
    [
        ("RGBA", _transparent_around_face, 3.0),
        ("L", lambda a: Image.fromarray(a).convert("L"), 4.0),
        ("CMYK", lambda a: Image.fromarray(a).convert("CMYK"), 3.0),
        ("numpy gray", lambda a: np.asarray(Image.fromarray(a).convert("L")), 4.0),
        ("numpy float", lambda a: a.astype(np.float64) / 255, 1.0),
        ("EXIF-rotated JPEG", _exif_rotated_jpeg, 3.0),
    ],
)
def test_detect_face_in_any_image_mode(astro, astro_face, mode, make, tol_px):
    image = make(astro)
    face = detect_face(image)
    assert face.image_size == (512, 512), mode
    err = np.abs(face.landmarks - astro_face.landmarks)
    assert err.mean() < tol_px / 3 and err.max() < tol_px, (mode, err.mean(), err.max())


def test_exif_rotated_jpeg_from_a_file(tmp_path, astro, astro_face):
    path = tmp_path / "sideways.jpg"
    _save_exif_rotated_jpeg(astro, path)
    with Image.open(path) as im:
        assert im.size == (512, 512) and im.getexif().get(0x0112) == 6
        assert np.asarray(im).shape[:2] == (512, 512)
    face = detect_face(path)
    assert np.abs(face.landmarks - astro_face.landmarks).max() < 4.0


@pytest.mark.parametrize("name", ["rocket", "coffee", "grass"])
def test_no_face(name):
    image = getattr(data, name)()
    assert detect_faces(image) == []
    with pytest.raises(NoFaceError):
        detect_face(image)


@pytest.fixture(scope="module")
def two_faces(astro):
    """A gray canvas with the astronaut's face twice: full size on the left, 0.7x on the right."""
    face = astro[20:230, 130:320]
    small = cv2.resize(face, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    canvas = np.full((260, 480, 3), 200, np.uint8)
    canvas[10 : 10 + face.shape[0], 10 : 10 + face.shape[1]] = face
    canvas[40 : 40 + small.shape[0], 260 : 260 + small.shape[1]] = small
    return canvas


@pytest.mark.slow
def test_two_faces(two_faces):
    faces = detect_faces(two_faces)
    assert len(faces) == 2
    assert faces[0].area > 1.5 * faces[1].area  # largest first
    with pytest.raises(MultipleFacesError):
        detect_face(two_faces, on_multiple="error")
    face = detect_face(two_faces)  # default: the largest
    assert face.box[2] < 240  # the big face, on the left
    with pytest.raises(ValueError, match="on_multiple"):
        detect_face(two_faces, on_multiple="first")


# --- alignment ----------------------------------------------------------------------------------------------------


def test_canonical_points():
    pts = canonical_points(256)
    assert pts.shape == (3, 2) and pts.dtype == np.float32
    (lx, ly), (rx, ry), (mx, my) = pts
    assert lx < mx < rx and ly == ry and my > ly
    assert 0.25 * 256 < rx - lx < 0.4 * 256
    np.testing.assert_allclose(canonical_points(512), 2 * pts, rtol=1e-6)
    with pytest.raises(ValueError, match="size"):
        canonical_points(0)


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (10, 2))
    theta, scale, shift = 0.4, 1.7, np.array([12.0, -30.0])
    rot = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    dst = src @ rot.T + shift
    m = similarity_transform(src, dst)
    assert m.shape == (2, 3)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-7)
    # a mirrored target is fitted with a rotation, never a reflection
    mirrored = similarity_transform(src, dst * np.array([-1.0, 1.0]))
    assert np.linalg.det(mirrored[:, :2]) > 0
    with pytest.raises(ValueError, match="N, 2"):
        similarity_transform(src, dst[:5])


def test_align_face_puts_eyes_and_mouth_on_the_canonical_points(aligned, astro_face):
    target = canonical_points(256)
    assert aligned.image.shape == (256, 256, 3) and aligned.image.dtype == np.uint8
    assert aligned.size == 256 and aligned.matrix.shape == (2, 3)
    # a 3-point least-squares fit: the astronaut's mouth is a little closer to the eyes than the template's
    assert np.abs(anchors(aligned.landmarks) - target).max() < 4.0
    np.testing.assert_allclose(aligned.landmarks, transform_points(astro_face.landmarks, aligned.matrix), atol=1e-3)
    # the whole face oval, chin included, is inside the crop with a margin
    oval = aligned.landmarks[FACE_OVAL]
    assert oval.min() > 8 and oval.max() < 256 - 8
    # inverse_matrix undoes matrix
    back = transform_points(aligned.landmarks, aligned.inverse_matrix())
    np.testing.assert_allclose(back, astro_face.landmarks, atol=1e-2)


def test_aligned_crop_is_a_face(aligned):
    face = detect_face(aligned.image)
    assert np.abs(anchors(face.landmarks) - canonical_points(256)).max() < 4.5
    assert np.abs(face.landmarks - aligned.landmarks).mean() < 2.0


def test_rotated_and_scaled_face_aligns_to_the_same_crop(rotated, aligned):
    image, face = rotated
    assert abs(face.left_eye[1] - face.right_eye[1]) > 10  # really rolled
    crop = align_face(image, face, size=256)
    assert np.abs(anchors(crop.landmarks) - canonical_points(256)).max() < 4.0
    assert np.abs(anchors(crop.landmarks) - anchors(aligned.landmarks)).max() < 1.5
    # the two crops show the same picture (the rotated one went through one more resampling)
    face_area = (slice(40, 240), slice(40, 216))
    err = np.abs(crop.image[face_area].astype(int) - aligned.image[face_area].astype(int)).mean()
    assert err < 10, err


@pytest.mark.slow
def test_align_face_detects_when_no_face_is_given(astro, aligned):
    crop = align_face(astro, size=256)
    np.testing.assert_allclose(crop.matrix, aligned.matrix, atol=1e-6)
    with pytest.raises(NoFaceError):
        align_face(data.coffee())


def test_strong_downscale_is_antialiased_and_lands_in_place(astro, astro_face):
    # 3x upscaled image into a 128 px crop: the warp shrinks by ~2.7x, through the area-averaging path
    big = cv2.resize(astro, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    big_face = Face.from_landmarks(astro_face.landmarks * 3 + 1.0, (1536, 1536))  # cv2 maps x -> 3x + 1
    small = align_face(big, big_face, size=128)
    reference = align_face(astro, astro_face, size=128)
    assert np.abs(anchors(small.landmarks) - canonical_points(128)).max() < 2.5
    err = np.abs(small.image[16:112, 16:112].astype(int) - reference.image[16:112, 16:112].astype(int)).mean()
    assert err < 5, err


def _blob(shape, center, sigma: float) -> np.ndarray:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    g = np.exp(-((xs - center[0]) ** 2 + (ys - center[1]) ** 2) / (2 * sigma**2))
    return np.repeat((255 * g).round().astype(np.uint8)[..., None], 3, axis=2)


def _centroid(image: np.ndarray) -> np.ndarray:
    w = image[..., 0].astype(np.float64)
    ys, xs = np.mgrid[0 : w.shape[0], 0 : w.shape[1]]
    return np.array([(xs * w).sum(), (ys * w).sum()]) / w.sum()


@pytest.mark.parametrize("scale", [1.6, 0.3])  # plain bilinear, and reduced by area averaging first
def test_warp_maps_points_where_the_matrix_says(scale):
    center = np.array([301.3, 257.8])
    image = _blob((600, 640), center, sigma=4 / scale)
    theta = np.deg2rad(15)
    rot = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    matrix = np.concatenate([rot, (np.array([64.0, 64.0]) - rot @ center)[:, None]], axis=1)
    crop = warp_to_crop(image, matrix, 128)
    np.testing.assert_allclose(_centroid(crop), [64.0, 64.0], atol=0.1)


def test_strong_downscale_does_not_alias():
    checker = (np.indices((600, 600)).sum(axis=0) % 2 * 255).astype(np.uint8)
    image = np.repeat(checker[..., None], 3, axis=2)  # 1 px checkerboard: mid gray once blurred
    matrix = similarity_transform(np.array([[0.0, 0.0], [600.0, 0.0]]), np.array([[0.0, 0.0], [128.0, 4.0]]))
    crop = warp_to_crop(image, matrix, 128)[8:120, 8:120]  # a shrink by ~4.7x, turned ~2 degrees
    assert abs(crop.mean() - 127.5) < 5 and crop.std() < 8, (crop.mean(), crop.std())


def test_align_frames(astro, astro_face, rotated, aligned):
    image, face = rotated
    frames = np.stack([astro, image, astro])
    landmarks = np.stack([astro_face.landmarks, face.landmarks, np.full((478, 2), np.nan, np.float32)])
    crops, matrices = align_frames(frames, landmarks, size=256)
    assert crops.shape == (3, 256, 256, 3) and crops.dtype == np.uint8 and matrices.shape == (3, 2, 3)
    np.testing.assert_array_equal(crops[0], aligned.image)
    np.testing.assert_allclose(matrices[1], alignment_matrix(face.landmarks, 256))
    np.testing.assert_allclose(matrices[2], matrices[1])  # no face: the nearest frame's alignment
    with pytest.raises(NoFaceError):
        align_frames(frames, np.full((3, 478, 2), np.nan), size=256)
    with pytest.raises(ValueError, match="frames"):
        align_frames(frames, landmarks[:2], size=256)


# --- masks and paste-back -----------------------------------------------------------------------------------------


def _crop_footprint(matrix: np.ndarray, frame_shape, size: int) -> np.ndarray:
    """bool [H, W]: frame pixels that fall inside the crop square."""
    h, w = frame_shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    pts = transform_points(np.stack([xs, ys], axis=-1).reshape(-1, 2), matrix).reshape(h, w, 2)
    return ((pts >= -1) & (pts <= size)).all(axis=-1)


def test_paste_back_of_the_unchanged_crop_reproduces_the_frame(astro, aligned, astro_face):
    out = paste_back(astro, aligned.image, aligned.matrix)
    assert out.shape == astro.shape and out.dtype == np.uint8
    x0, y0, x1, y1 = (int(round(v)) for v in astro_face.box)
    err = np.abs(out[y0:y1, x0:x1].astype(int) - astro[y0:y1, x0:x1].astype(int))
    assert err.mean() < 2.5, err.mean()
    footprint = _crop_footprint(aligned.matrix, astro.shape, 256)
    np.testing.assert_array_equal(out[~footprint], astro[~footprint])  # untouched outside the crop


def test_paste_back_really_pastes(astro, aligned, astro_face):
    out = paste_back(astro, np.zeros_like(aligned.image), aligned.matrix)
    x0, y0, x1, y1 = (int(round(v)) for v in astro_face.box)
    assert out[y0:y1, x0:x1].mean() < 2  # the face is covered by the black crop
    # the feather: the crop fades out over its border, no hard edge
    border = transform_points(np.array([[128.0, 1.0], [128.0, 4.0], [128.0, 12.0]]), aligned.inverse_matrix())
    (bx0, by0), (bx1, by1), (bx2, by2) = np.round(border).astype(int)
    original = astro[[by0, by1, by2], [bx0, bx1, bx2]].astype(int).sum(axis=-1)
    pasted = out[[by0, by1, by2], [bx0, bx1, bx2]].astype(int).sum(axis=-1)
    darkening = 1 - pasted / original
    assert darkening[0] < 0.2 and 0.05 < darkening[1] < 0.95 and darkening[2] > 0.95, darkening


def test_paste_back_of_an_edited_mouth_changes_only_the_mouth(astro, aligned, astro_face):
    crop_mask = mouth_mask(aligned.landmarks, (256, 256))
    edited = aligned.image.copy()
    edited[crop_mask > 0.5] = 0
    frame_mask = mouth_mask(astro_face.landmarks, astro.shape[:2])
    near_mouth = cv2.dilate((frame_mask > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0

    out = paste_back(astro, edited, aligned.matrix)
    lips = np.round(astro_face.landmarks[OUTER_LIPS]).astype(int)
    # against the original: the lips went black; elsewhere only resampling changes (< 80 even on the eyes' glints)
    changed = np.abs(out.astype(int) - astro.astype(int)).max(axis=-1) > 80
    assert changed[lips[:, 1], lips[:, 0]].all()
    assert not changed[~near_mouth].any(), np.argwhere(changed & ~near_mouth)[:5]
    # against pasting the unedited crop: nothing at all differs away from the mouth
    unedited = paste_back(astro, aligned.image, aligned.matrix)
    differs = np.any(out != unedited, axis=-1)
    assert not differs[~near_mouth].any() and differs[lips[:, 1], lips[:, 0]].all()

    # with the mask, nothing outside it moves at all
    out = paste_back(astro, edited, aligned.matrix, mask=crop_mask)
    moved = np.any(out != astro, axis=-1)
    assert not moved[~near_mouth].any()
    assert moved[lips[:, 1], lips[:, 0]].all()
    with pytest.raises(ValueError, match="mask"):
        paste_back(astro, edited, aligned.matrix, mask=np.ones((10, 10)))
    with pytest.raises(ValueError, match="crop"):
        paste_back(astro, edited[:, :200], aligned.matrix)


def test_mouth_mask_covers_the_mouth_not_the_eyes(astro, astro_face):
    lm = astro_face.landmarks
    mask = mouth_mask(lm, astro.shape[:2])
    assert mask.shape == (512, 512) and mask.dtype == np.float32
    assert mask.min() == 0 and mask.max() == 1
    assert ((mask > 0) & (mask < 1)).any()  # soft edge

    def at(idx):
        p = np.round(lm[idx]).astype(int).reshape(-1, 2)
        return mask[p[:, 1], p[:, 0]]

    assert (at(OUTER_LIPS) == 1).all() and (at(INNER_LIPS) == 1).all()
    between_mouth_and_chin = np.round((lm[CHIN] + astro_face.mouth_center) / 2).astype(int)
    assert mask[between_mouth_and_chin[1], between_mouth_and_chin[0]] == 1
    assert (at(LEFT_EYE) == 0).all() and (at(RIGHT_EYE) == 0).all() and at(NOSE_TIP)[0] == 0
    # the region is about the mouth: far smaller than the face
    x0, y0, x1, y1 = astro_face.box
    assert 0.05 < mask.sum() / ((x1 - x0) * (y1 - y0)) < 0.35
    # to_chin=0 keeps only the (grown) lips
    lips_only = mouth_mask(lm, astro.shape[:2], to_chin=0.0)
    assert lips_only.sum() < 0.8 * mask.sum() and (lips_only <= mask + 1e-6).all()
    with pytest.raises(ValueError, match="dilate"):
        mouth_mask(lm, astro.shape[:2], dilate=-1)


def test_lower_face_mask_in_canonical_coordinates(aligned):
    mask = lower_face_mask(256)
    assert mask.shape == (256, 256) and mask.dtype == np.float32
    (lx, ly), (rx, ry), (mx, my) = np.round(canonical_points(256)).astype(int)
    assert mask[my, mx] == 1 and mask[ly, lx] == 0 and mask[ry, rx] == 0
    lips = np.round(aligned.landmarks[OUTER_LIPS]).astype(int)
    assert (mask[lips[:, 1], lips[:, 0]] == 1).all()


# --- landmark smoothing -------------------------------------------------------------------------------------------


def _moving_face(num_frames: int = 80, seed: int = 0):
    """(clean, noisy) [F, 478, 2]: a fixed random point cloud on a slow path (<= 1 px/frame), plus 1.5 px iid noise."""
    rng = np.random.default_rng(seed)
    shape = rng.uniform(100, 200, (478, 2))
    t = np.arange(num_frames)[:, None, None]
    path = np.concatenate([20 * np.sin(2 * np.pi * t / 150), 10 * np.cos(2 * np.pi * t / 110)], axis=-1)
    clean = shape[None] + path
    return clean, clean + rng.normal(0, 1.5, clean.shape)


@pytest.mark.parametrize("sigma", [1.5, 3.0])
def test_smoothing_removes_jitter(sigma):
    clean, noisy = _moving_face()
    smoothed = smooth_landmarks(noisy, sigma_frames=sigma)
    assert smoothed.shape == noisy.shape and smoothed.dtype == np.float32
    before = np.sqrt(((noisy - clean) ** 2).mean())
    after = np.sqrt(((smoothed - clean) ** 2).mean())
    assert after < before / 2, (before, after)


def test_smoothing_keeps_a_step():
    lm = np.zeros((40, 478, 2), np.float32)
    lm[20:] += 30.0  # the head jumps 30 px between frames 19 and 20
    x = smooth_landmarks(lm, sigma_frames=1.5)[:, 0, 0]
    assert np.abs(x[:14]).max() < 0.1 and np.abs(x[26:] - 30).max() < 0.1
    assert x[17] < 5 and x[22] > 25  # a sharp edge, a few frames wide
    assert np.all(np.diff(x) >= -1e-5)


def test_smoothing_fills_missing_frames():
    clean, _ = _moving_face(40)
    lm = clean.astype(np.float32)
    lm[[0, 10, 11, 12]] = np.nan
    out = smooth_landmarks(lm, sigma_frames=0)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0], lm[1])  # held before the first face
    np.testing.assert_allclose(out[11], (lm[9] + lm[13]) / 2, atol=1e-3)  # linear between neighbours
    np.testing.assert_array_equal(out[20:], lm[20:])  # sigma 0: no smoothing
    assert np.abs(smooth_landmarks(lm)[3:] - clean[3:]).max() < 0.5  # frame 0 was held, so it lags by ~1 px
    # all NaN stays all NaN; sigma 0 on complete input is an equal copy, not the same array
    assert np.isnan(smooth_landmarks(np.full((5, 478, 2), np.nan))).all()
    full = clean.astype(np.float32)
    copy = smooth_landmarks(full, sigma_frames=0)
    np.testing.assert_array_equal(copy, full)
    assert copy is not full
    with pytest.raises(ValueError, match="sigma_frames"):
        smooth_landmarks(full, sigma_frames=-1)


def test_one_euro_filter_is_causal_and_steadies_a_still_face():
    still = 150 + np.random.default_rng(2).normal(0, 1.5, (60, 478, 2))  # noise only, around a fixed point
    out = one_euro_landmarks(still, fps=25)
    assert out.shape == still.shape and out.dtype == np.float32
    assert (out[20:] - 150).std() < 0.5 * (still[20:] - 150).std()
    changed_future = still.copy()
    changed_future[40:] += 50
    np.testing.assert_array_equal(one_euro_landmarks(changed_future, fps=25)[:40], out[:40])


# --- mouth openness -----------------------------------------------------------------------------------------------


def _synthetic_face(gap: float) -> np.ndarray:
    """[478, 2]: eyes 100 px apart at y 0, mouth centre 100 px below them, inner lips ``gap`` px apart."""
    lm = np.zeros((478, 2), np.float32)
    lm[LEFT_EYE] = (-50, 0)
    lm[RIGHT_EYE] = (50, 0)
    lm[MOUTH_LEFT], lm[MOUTH_RIGHT] = (-30, 100), (30, 100)
    for k, (upper, lower) in enumerate(INNER_LIP_PAIRS):
        x = -20 + 10 * k
        lm[upper] = (x, 100 - gap / 2)
        lm[lower] = (x + 1, 100 + gap / 2)  # a slight sideways offset, which must not count
    return lm


def test_aperture_of_synthetic_lips():
    got = aperture_from_landmarks(np.stack([_synthetic_face(g) for g in (0.0, 10.0, 25.0, -4.0)]))
    assert got.shape == (4,) and got.dtype == np.float32
    np.testing.assert_allclose(got, [0.0, 0.10, 0.25, 0.0], atol=1e-6)  # gap / face size (100 px), >= 0
    single = aperture_from_landmarks(_synthetic_face(10.0))
    assert single.shape == (1,)


def test_aperture_ignores_head_roll_and_scale(astro_face):
    base = aperture_from_landmarks(astro_face.landmarks)[0]
    assert 0.05 < base < 0.4  # the astronaut smiles with parted lips
    center = astro_face.landmarks.mean(axis=0)
    moved = np.stack(
        [
            rotate_about(astro_face.landmarks, 30, center),
            rotate_about(astro_face.landmarks, -30, center, scale=2.5) + 40,
            rotate_about(_synthetic_face(12.0), 30, np.zeros(2), scale=0.5),
        ]
    )
    got = aperture_from_landmarks(moved)
    np.testing.assert_allclose(got, [base, base, 0.12], rtol=1e-4)


def test_aperture_is_nan_without_a_face(astro_face):
    lm = np.stack([astro_face.landmarks, np.full((478, 2), np.nan, np.float32)])
    got = aperture_from_landmarks(lm)
    assert np.isfinite(got[0]) and np.isnan(got[1])
    with pytest.raises(ValueError, match="landmarks"):
        aperture_from_landmarks(np.zeros((5, 68, 2)))


def test_mouth_openness_of_a_still_face(astro, astro_face):
    frames = [Image.fromarray(astro)] * 3
    got = mouth_openness(frames)
    assert got.shape == (3,) and got.dtype == np.float32 and np.isfinite(got).all()
    assert np.ptp(got) < 0.01
    assert abs(got[0] - aperture_from_landmarks(astro_face.landmarks)[0]) < 0.02
    smoothed = mouth_openness(torch.from_numpy(np.stack([astro] * 3)), smooth=True)
    np.testing.assert_allclose(smoothed, got, atol=0.01)


def test_mouth_openness_is_nan_without_a_face(astro, caplog):
    no_face = cv2.resize(data.rocket(), (512, 512), interpolation=cv2.INTER_AREA)
    frames = np.stack([astro, no_face, astro])
    with caplog.at_level(logging.WARNING, logger="avdiff.metrics.mouth"):
        got = mouth_openness(frames, smooth=True)
    assert np.isfinite(got[[0, 2]]).all() and np.isnan(got[1])
    assert any("1 of 3 frames" in r.getMessage() for r in caplog.records)


def test_mouth_openness_of_a_video_file(tmp_path, astro):
    path = write_video(tmp_path / "still.mp4", np.stack([astro] * 4), fps=25)
    got = mouth_openness(path)
    assert got.shape == (4,) and np.isfinite(got).all() and np.ptp(got) < 0.01


def test_the_lower_face_framing_is_a_square_of_the_face_crop(astro, astro_face):
    face = align_face(astro, astro_face, size=256)
    lower = align_face(astro, astro_face, size=64, framing="lower_face")
    # the mouth sits at the centre of the lower-face crop, 0.45 down, the eyes just above it
    mouth = lower.landmarks[[61, 291]].mean(axis=0)
    assert np.allclose(mouth, [32, 0.45 * 64], atol=2.0)
    np.testing.assert_allclose(canonical_points(64, "lower_face")[:2, 1], -0.0333 * 64, atol=0.01)
    # the same pixels as cutting the square x 0.2..0.8, y 0.42..1.02 out of the face crop
    cut = warp_to_crop(face.image, reframe_matrix(64, "face", "lower_face", source_size=256), 64)
    assert np.abs(cut.astype(int) - lower.image.astype(int)).mean() < 4
    # the mouth gets 1 / 0.6 = 1.67x the pixels of a face crop of the same size
    face64 = align_face(astro, astro_face, size=64)
    width = lambda a: np.ptp(a.landmarks[[61, 291], 0])  # noqa: E731
    assert width(lower) / width(face64) == pytest.approx(1 / 0.6, rel=0.02)
    # the lower-face mask covers the same part of the face in both framings
    mask_face = (
        warp_to_crop(
            (lower_face_mask(256)[..., None] * 255).astype(np.uint8).repeat(3, 2),
            reframe_matrix(64, "face", "lower_face", source_size=256),
            64,
        )[..., 0]
        / 255
    )
    assert np.abs(mask_face - lower_face_mask(64, framing="lower_face")).mean() < 0.03
    with pytest.raises(ValueError, match="framing must be one of"):
        canonical_points(64, "upper_face")


@pytest.mark.slow
def test_float_and_integer_images_are_read_by_their_range(astro, astro_face):
    # a float64 photo in 0..255 (np.asarray(pil, dtype=float)) used to be clipped to [0, 1]: a white image, no face
    for image in (astro.astype(np.float64), astro / 255.0, astro.astype(np.int64), astro.astype(np.uint16) * 257):
        face = detect_face(image)
        assert np.abs(face.landmarks - astro_face.landmarks).max() < 2.0
    for bad, message in [
        (astro.astype(np.float32) - 1, r"span \[-1, 254\]"),
        (astro * 2.0, r"span \[0, 510\]"),
        (np.full((64, 64, 3), np.nan), "NaN"),
        (astro.astype(np.int32) - 1, "integer image"),
    ]:
        with pytest.raises(ValueError, match=message):
            detect_face(bad)


@pytest.mark.slow
def test_a_small_face_in_a_large_frame_is_found_and_tracked(astro, astro_face):
    # the astronaut's ~100 px face pasted into 1280x720: mediapipe's short-range detector alone finds nothing
    from avdiff.video.face import track_faces, track_landmarks

    frame = np.full((720, 1280, 3), 90, np.uint8)
    frame[150:662, 700:1212] = astro
    face = detect_face(frame)
    assert np.abs(face.landmarks - (astro_face.landmarks + [700, 150])).max() < 4.0
    # the depth found in the crop is mapped back to frame px too: the same face, the same depth (up to its offset)
    dz = (face.depth - face.depth.mean()) - (astro_face.depth - astro_face.depth.mean())
    assert np.abs(dz).max() < 6.0, np.abs(dz).max()
    frames = np.repeat(frame[None], 3, axis=0)
    landmarks = track_landmarks(frames)
    assert np.isfinite(landmarks).all() and np.abs(landmarks - face.landmarks).max() < 4.0
    two = frame.copy()
    two[100:356, 100:356] = cv2.resize(astro, (256, 256), interpolation=cv2.INTER_AREA)  # a smaller face on the left
    tracks = track_faces(np.repeat(two[None], 6, axis=0))
    assert tracks.num_faces == 2 and tracks.found().sum(axis=1).tolist() == [6, 6]
    left, right = tracks.boxes
    assert left[2] < 356 < 700 < right[0]  # ordered from the left
    # the half-size face is read in a crop magnified ~1.7x: its depth, mapped back to frame px, is half the photo's
    small = min(detect_faces(two), key=lambda f: f.area)
    dz = (small.depth - small.depth.mean()) - 0.5 * (astro_face.depth - astro_face.depth.mean())
    assert np.abs(dz).max() < 3.0, np.abs(dz).max()  # measured 0.5 px; unmapped it would be ~12 px
