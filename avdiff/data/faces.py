"""The pool of face identities that synthetic speech–video pairs are drawn from, split by identity.

The pool holds:

* the 100 faces of ``skimage.data.lfw_subset()`` (real people from Labeled Faces in the Wild, 25 x 25 px grey crops),
  each padded with a soft, blurred surround (room for the jaw to drop) and upscaled to :data:`LFW_SIDE` px;
* skimage's astronaut (Eileen Collins, the package's example face, in colour);
* any folder of photos a user gives (``avdiff synth --faces DIR``).

Faces mediapipe cannot find, with the mouth shut or opened wide by the warp, are left out (logged): the warp
needs the landmarks, and training tracks the face through every frame. ``lfw_subset`` has no names, so faces are grouped into identities
by dlib's face descriptors (:mod:`avdiff.metrics.identity`): average-linkage clustering, two groups merging while
their mean descriptor distance is under :data:`GROUP_DISTANCE`. That is stricter than dlib's same-person threshold of
0.6, because at 25 px dlib's descriptors are weak: about 8 % of the pairs of LFW faces fall under 0.6, most of
them different people, and single-linkage at 0.6 would chain 87 of the 100 into one "person".

The split is by identity and does not depend on any command's seed, so ``avdiff synth --split train`` and
``--split test`` agree: a fixed permutation of the groups puts :data:`TEST_FRACTION` of them in ``test``. The
astronaut, the package's example face, is always in ``train``.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from avdiff.metrics.identity import DESCRIPTOR_DIM, FaceRecognizer
from avdiff.user_files import list_files
from avdiff.video.face import detect_faces
from avdiff.video.image import load_image
from avdiff.video.warp import MouthWarper

logger = logging.getLogger(__name__)

LFW_FACES = 100  # the first 100 images of lfw_subset are faces, the other 100 are not
LFW_SIDE = 256  # px of an upscaled LFW photo
LFW_PAD = 6  # px of soft surround added around the 25 px crop (before upscaling)
GROUP_DISTANCE = 0.5
TEST_FRACTION = 0.2
SPLIT_SEED = 20251130
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
ASTRONAUT = "astronaut"


@dataclass
class PoolFace:
    """One photo of the pool.

    Attributes:
        image: uint8 [H, W, 3] RGB.
        name: a unique, file-name-safe name (``lfw_017``, ``astronaut``, ``user_me``).
        source: where it came from (``skimage.data.lfw_subset()[17]``, a file path).
        identity: the identity group it belongs to (faces of one person share it).
        split: ``"train"`` or ``"test"``.
    """

    image: np.ndarray
    name: str
    source: str
    identity: str = ""
    split: str = "train"

    def describe(self) -> dict:
        """JSON-ready, without the pixels."""
        return {
            "name": self.name,
            "source": self.source,
            "identity": self.identity,
            "split": self.split,
            "size": list(self.image.shape[:2]),
        }


def lfw_photo(face: np.ndarray, side: int = LFW_SIDE, pad: int = LFW_PAD) -> np.ndarray:
    """A 25 x 25 float LFW crop in [0, 1] -> an RGB uint8 [side, side, 3] photo: the crop with a soft surround (its
    own reflection, strongly blurred, so no second face and no streaks), upscaled with bicubic interpolation."""

    grey = (np.clip(face, 0, 1) * 255).astype(np.float32)
    padded = np.pad(grey, pad, mode="reflect")
    blurred = cv2.GaussianBlur(padded, (0, 0), 0.8 * pad)
    weight = np.zeros_like(padded)
    weight[pad:-pad, pad:-pad] = 1
    weight = cv2.GaussianBlur(weight, (0, 0), 1.0)
    out = cv2.resize(weight * padded + (1 - weight) * blurred, (side, side), interpolation=cv2.INTER_CUBIC)
    return np.repeat(np.clip(out, 0, 255).round().astype(np.uint8)[..., None], 3, axis=2)


def safe_name(text: str) -> str:
    """A file-name-safe name: lower case letters, digits and underscores (never empty, never a path)."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:48] or "face"


def user_faces(folder: str | os.PathLike) -> list[PoolFace]:
    """The photos in ``folder`` (not recursive; hidden files such as macOS ``._name.png`` skipped, with a count in the
    log), by name.

    Raises:
        FileNotFoundError: ``folder`` is not a folder, or holds no image.
    """

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"--faces {str(root)!r}: no such folder")
    files = list_files(root, IMAGE_EXTENSIONS, label=f"--faces {str(root)!r}")
    if not files:
        raise FileNotFoundError(f"--faces {str(root)!r}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    out, seen = [], set()
    for path in files:
        try:
            image = load_image(path)
        except ValueError as e:
            logger.warning("skipping %s: %s", path, e)
            continue
        name = f"user_{safe_name(path.stem)}"
        while name in seen:
            name += "_"
        seen.add(name)
        out.append(PoolFace(image, name, str(path)))
    return out


def group_identities(descriptors: np.ndarray, distance: float = GROUP_DISTANCE) -> np.ndarray:
    """Identity labels int [N] for descriptors float [N, 128] by average-linkage clustering at ``distance``; a face
    without a descriptor (a NaN row) is its own identity."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    n = len(descriptors)
    labels = np.arange(n) + n  # singletons, distinct from cluster labels
    ok = np.flatnonzero(np.isfinite(descriptors).all(axis=1))
    if len(ok) >= 2:
        tree = linkage(pdist(descriptors[ok].astype(np.float64)), method="average")
        labels[ok] = fcluster(tree, distance, criterion="distance")
    elif len(ok) == 1:
        labels[ok] = 0
    return labels


def split_identities(
    identities: list[str], test_fraction: float = TEST_FRACTION, keep_in_train: tuple[str, ...] = ()
) -> dict[str, str]:
    """``{identity: "train" | "test"}``: a fixed permutation (seeded by :data:`SPLIT_SEED`) of the sorted identities
    puts ``round(test_fraction * n)`` of them (at least one when there are two or more) in ``test``."""
    names = sorted(set(identities) - set(keep_in_train))
    order = np.random.default_rng(SPLIT_SEED).permutation(len(names))
    n_test = min(len(names), max(1 if len(identities) > 1 else 0, round(test_fraction * len(names))))
    test = {names[i] for i in order[:n_test]}
    return {name: ("test" if name in test else "train") for name in set(identities)}


def face_pool(
    faces_dir: str | os.PathLike | None = None, *, lfw: bool = True, astronaut: bool = True
) -> list[PoolFace]:
    """The pool (module docstring): every face with its identity and split. Computing the identities runs dlib
    on every photo (about 20 s for the built-in 101); the built-in part is cached per process."""
    pool = [
        face for face in _builtin_pool() if (lfw or face.name == ASTRONAUT) and (astronaut or face.name != ASTRONAUT)
    ]
    pool = [PoolFace(f.image, f.name, f.source) for f in pool]  # fresh copies: identities are set below
    if faces_dir is not None:
        pool += _detectable(user_faces(faces_dir))
    if not pool:
        raise ValueError("the face pool is empty")
    descriptors = _descriptors(pool)
    labels = group_identities(descriptors)
    groups: dict[int, list[PoolFace]] = {}
    for face, label in zip(pool, labels):
        groups.setdefault(int(label), []).append(face)
    for members in groups.values():
        identity = "id_" + min(m.name for m in members)  # named after its first member: stable
        for m in members:
            m.identity = identity
    splits = split_identities(
        [f.identity for f in pool], keep_in_train=tuple(f.identity for f in pool if f.name == ASTRONAUT)
    )
    for face in pool:
        face.split = splits[face.identity]
    counts = {s: len({f.identity for f in pool if f.split == s}) for s in ("train", "test")}
    logger.info(
        "face pool: %d photos, %d identities (%d train, %d test)",
        len(pool),
        len({f.identity for f in pool}),
        counts["train"],
        counts["test"],
    )
    return pool


@functools.cache
def _builtin_pool() -> tuple[PoolFace, ...]:
    import skimage.data

    faces = [
        PoolFace(lfw_photo(img), f"lfw_{i:03d}", f"skimage.data.lfw_subset()[{i}]")
        for i, img in enumerate(skimage.data.lfw_subset()[:LFW_FACES])
    ]
    faces.append(PoolFace(skimage.data.astronaut(), ASTRONAUT, "skimage.data.astronaut()"))
    return tuple(_detectable(faces))


def _detectable(faces: list[PoolFace]) -> list[PoolFace]:
    """The faces mediapipe finds, as given and with the mouth opened wide (:func:`findable`); the others are
    logged and left out."""
    kept = [f for f in faces if findable(f.image)]
    dropped = sorted({f.name for f in faces} - {f.name for f in kept})
    if dropped:
        logger.info("left out %d photos without a face mediapipe finds: %s", len(dropped), ", ".join(dropped))
    return kept


def findable(image: np.ndarray) -> bool:
    """Whether mediapipe finds the face in ``image`` (uint8 [H, W, 3]) both as it is and with its mouth opened
    wide by the warp (blurred faces, such as upscaled LFW ones, can lose their face with an open mouth)."""

    faces = detect_faces(image, max_faces=1)
    return bool(faces) and bool(detect_faces(MouthWarper(image, faces[0]).warp(1.0), max_faces=1))


_DESCRIPTOR_CACHE: dict[str, np.ndarray] = {}


def _descriptors(pool: list[PoolFace]) -> np.ndarray:
    """dlib descriptors float32 [N, 128] of the pool's photos (NaN rows where dlib finds no face); built-in photos
    are computed once per process."""

    recognizer = FaceRecognizer.default()
    out = np.full((len(pool), DESCRIPTOR_DIM), np.nan, dtype=np.float32)
    for i, face in enumerate(pool):
        builtin = not face.name.startswith("user_")
        if builtin and face.name in _DESCRIPTOR_CACHE:
            out[i] = _DESCRIPTOR_CACHE[face.name]
            continue
        d = recognizer.descriptor(face.image)
        if d is not None:
            out[i] = d
        if builtin:
            _DESCRIPTOR_CACHE[face.name] = out[i]
    return out
