"""Face identity: does a generated video still show the person in the reference photo?

The measure is dlib's face-recognition ResNet (Davis King, dlib 19.3; a ResNet-29 trained with a metric loss on about
3 million faces, 99.38 % on the LFW benchmark), whose 128-d descriptors of one person lie within a Euclidean
distance of 0.6 of each other: dlib's same-person threshold. The network and its weights come inside the PyPI
wheels ``dlib-bin`` (the library) and ``face-recognition-models`` (the ``.dat`` files), so this runs offline.

For each frame a face is located with dlib's HOG frontal-face detector (with mediapipe's detector as the fallback,
for faces HOG misses), its five landmarks placed by dlib's 5-point shape predictor, and its descriptor computed on
the face chip dlib aligns from them. Against the reference photo's descriptor, per video:

* ``mean_distance``: the mean Euclidean descriptor distance over the frames with a face (lower: more alike);
* ``same_person_share``: the share of those frames under the 0.6 threshold;
* ``csim``: the mean cosine similarity of the descriptors, the CSIM that talking-head papers report (they usually
  compute it with ArcFace, whose weights do not reach this machine: compare our CSIM only with our CSIM).

A video with fewer than :data:`MIN_SCORED_FRAMES` frames with a face, or a reference photo without one, gets no score
(every score None), never a number computed from nothing.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from avdiff._extras import MissingExtraError, missing_extra_sentence, require
from avdiff.video.face import detect_faces
from avdiff.video.image import ImageLike, load_image
from avdiff.video.reader import read_video
from avdiff.video.writer import frames_to_uint8

logger = logging.getLogger(__name__)

SAME_PERSON_THRESHOLD = 0.6  # dlib's: descriptors of one person are closer than this
MIN_SCORED_FRAMES = 5  # fewer frames with a face than this: no identity score
DESCRIPTOR_DIM = 128
_MODELS_PACKAGE = "face_recognition_models"
_RECOGNIZER_FILE = "dlib_face_recognition_resnet_model_v1.dat"
_SHAPE_FILE = "shape_predictor_5_face_landmarks.dat"


class IdentityModelError(RuntimeError):
    """dlib or its model files are missing. The message says which package to install."""


def _models_dir() -> Path:
    """The ``models`` folder of the ``face-recognition-models`` wheel, found without importing the package (its
    ``__init__`` imports ``pkg_resources``, which a modern virtual environment may lack)."""
    spec = importlib.util.find_spec(_MODELS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise IdentityModelError(missing_extra_sentence("The identity measure", "eval"))
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    for name in (_RECOGNIZER_FILE, _SHAPE_FILE):
        if not (folder / name).is_file():
            raise IdentityModelError(f"{folder / name} is missing; reinstall face-recognition-models")
    return folder


class FaceRecognizer:
    """dlib's face detector, 5-point shape predictor and face-recognition ResNet, loaded once
    (:meth:`default` shares one per process).

    Raises:
        IdentityModelError: dlib or its model files are missing (the ``eval`` extra), or a model file is gone.
    """

    def __init__(self):
        try:
            dlib = require("dlib", "eval", "The identity measure")
        except MissingExtraError as e:
            raise IdentityModelError(str(e)) from e
        folder = _models_dir()
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape_predictor = dlib.shape_predictor(str(folder / _SHAPE_FILE))
        self.recognizer = dlib.face_recognition_model_v1(str(folder / _RECOGNIZER_FILE))

    @classmethod
    @functools.cache
    def default(cls) -> FaceRecognizer:
        return cls()

    def locate(self, rgb: np.ndarray):
        """The most confident face of a uint8 [H, W, 3] image as a ``dlib.rectangle``, or None.

        HOG finds faces of about 80 px and up; images under 400 px are searched once upsampled. Of several
        detections the highest-scoring one is taken (a false positive can be larger than the face). Where HOG finds
        nothing (blurred or small faces), mediapipe's detector is asked, and its landmark box is used.
        """
        upsample = 1 if min(rgb.shape[:2]) < 400 else 0
        found, scores, _ = self.detector.run(rgb, upsample, 0.0)
        if len(found):
            return found[int(np.argmax(scores))]

        faces = detect_faces(rgb, max_faces=1) if min(rgb.shape[:2]) >= 16 else []
        if not faces:
            return None
        x0, y0, x1, y1 = faces[0].box
        return self._dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1)))

    def descriptor(self, image: ImageLike) -> np.ndarray | None:
        """The 128-d descriptor (float32 [128]) of the largest face in ``image``, or None when there is no face."""
        rgb = np.ascontiguousarray(load_image(image))
        box = self.locate(rgb)
        if box is None:
            return None
        shape = self.shape_predictor(rgb, box)
        return np.asarray(self.recognizer.compute_face_descriptor(rgb, shape), dtype=np.float32)

    def descriptors(self, frames, progress_bar: bool = False) -> np.ndarray:
        """Descriptors of every frame (uint8 [F, H, W, 3]): float32 [F, 128], NaN rows where no face was found."""
        from tqdm.auto import tqdm

        out = np.full((len(frames), DESCRIPTOR_DIM), np.nan, dtype=np.float32)
        for i, frame in enumerate(tqdm(frames, desc="identity", unit="frame", disable=not progress_bar)):
            d = self.descriptor(np.asarray(frame))
            if d is not None:
                out[i] = d
        return out


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between descriptors [..., 128] (broadcast); NaN where either is NaN."""
    return np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity between descriptors [..., 128] (broadcast); NaN where either is NaN."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def same_person(a: ImageLike, b: ImageLike, recognizer: FaceRecognizer | None = None) -> bool | None:
    """Whether two photos show the same person by dlib's threshold; None when either has no face."""
    recognizer = recognizer or FaceRecognizer.default()
    da, db = recognizer.descriptor(a), recognizer.descriptor(b)
    if da is None or db is None:
        return None
    return bool(descriptor_distance(da, db) < SAME_PERSON_THRESHOLD)


@dataclass
class IdentityScores:
    """How well the frames of a video keep the identity of a reference photo (see the module docstring).

    Attributes:
        mean_distance: mean descriptor distance to the reference over the frames with a face (lower: more alike).
        same_person_share: share of those frames judged the reference's person (distance < ``threshold``), [0, 1].
        csim: mean cosine similarity to the reference's descriptor, [-1, 1].
        valid_frames: frames with a face found.
        num_frames: frames in the video.
        threshold: the same-person distance (dlib's 0.6).
        reason: why there is no score (None when scored).
    """

    mean_distance: float | None
    same_person_share: float | None
    csim: float | None
    valid_frames: int
    num_frames: int
    threshold: float = SAME_PERSON_THRESHOLD
    reason: str | None = None

    @property
    def scored(self) -> bool:
        return self.mean_distance is not None

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("mean_distance", "same_person_share", "csim"):
            out[key] = None if out[key] is None else round(float(out[key]), 6)
        return out


def identity_scores(
    frames,
    reference: ImageLike | np.ndarray,
    recognizer: FaceRecognizer | None = None,
    progress_bar: bool = False,
) -> IdentityScores:
    """Identity of every frame of a video against a reference photo.

    Args:
        frames: uint8 [F, H, W, 3] (numpy or torch), or a video path.
        reference: the reference photo (anything :func:`avdiff.video.image.load_image` reads), or its descriptor
            float [128].
        recognizer: the models (default: :meth:`FaceRecognizer.default`).

    Returns:
        :class:`IdentityScores`; every score None (with ``reason``) when the reference has no face or fewer than
        :data:`MIN_SCORED_FRAMES` frames show one.
    """

    recognizer = recognizer or FaceRecognizer.default()
    if isinstance(frames, (str, os.PathLike)):
        frames = read_video(frames, with_audio=False).frames
    video = frames_to_uint8(frames)
    if isinstance(reference, np.ndarray) and reference.shape == (DESCRIPTOR_DIM,):
        ref = reference.astype(np.float32)
    else:
        ref = recognizer.descriptor(reference)
    if ref is None:
        return IdentityScores(None, None, None, 0, len(video), reason="no face in the reference photo")
    desc = recognizer.descriptors(video, progress_bar=progress_bar)
    found = np.isfinite(desc).all(axis=1)
    valid = int(found.sum())
    if valid < MIN_SCORED_FRAMES:
        reason = f"a face in only {valid} of {len(video)} frames (fewer than {MIN_SCORED_FRAMES})"
        logger.warning("no identity score: %s", reason)
        return IdentityScores(None, None, None, valid, len(video), reason=reason)
    dist = descriptor_distance(desc[found], ref)
    return IdentityScores(
        mean_distance=float(dist.mean()),
        same_person_share=float((dist < SAME_PERSON_THRESHOLD).mean()),
        csim=float(cosine_similarity(desc[found], ref).mean()),
        valid_frames=valid,
        num_frames=len(video),
    )
