"""Model-free, speech-driven mouth animation: the speech's loudness, frame by frame, opens and closes a photo's mouth
through the landmark-driven warp (:class:`avdiff.video.warp.MouthWarper`).

The warp baseline pipeline (:class:`avdiff.pipelines.talking_head.WarpBaselinePipeline`) renders with it, and the
synthetic speech–video pairs (:mod:`avdiff.data.synthetic`) keep its ground-truth aperture.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.ndimage
from tqdm.auto import tqdm

from avdiff.audio.clock import FpsLike
from avdiff.audio.envelope import speech_envelope
from avdiff.audio.io import Waveform
from avdiff.video.face import detect_face
from avdiff.video.warp import MouthWarper

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000


def mouth_amounts(envelope: np.ndarray, threshold: float = 0.3, smooth_frames: float = 0.7) -> np.ndarray:
    """Per-frame mouth opening in [0, 1] from a speech envelope in [0, 1] (see ``speech_envelope``).

    Below ``threshold`` (silence and breath) the mouth stays closed; above it the opening rises smoothly to 1.
    A light temporal smoothing (gaussian, ``smooth_frames``) keeps the motion from flickering.
    """
    x = np.clip((np.asarray(envelope, dtype=np.float64) - threshold) / (1 - threshold), 0, 1)
    x = x * x * (3 - 2 * x)
    if smooth_frames > 0 and len(x) > 1:
        x = scipy.ndimage.gaussian_filter1d(x, smooth_frames, mode="nearest")
    x[np.asarray(envelope) < threshold * 0.5] = 0.0  # true silence: closed, whatever the smoothing left
    return x.astype(np.float32)


@dataclass
class Animation:
    """A warped talking-head animation and its ground truth.

    Attributes:
        frames: uint8 [F, H, W, 3].
        amounts: float32 [F], the mouth opening driven per frame, in [0, 1].
        aperture: float32 [F], the normalised inner-lip aperture each frame shows (mean gap / face size), the quantity
            ``avdiff.metrics.mouth_openness`` measures.
    """

    frames: np.ndarray
    amounts: np.ndarray
    aperture: np.ndarray


def animate(
    image: np.ndarray, speech: Waveform, fps: FpsLike = 25, max_open: float = 0.4, progress_bar: bool = False
) -> Animation:
    """Warp the face in ``image`` (uint8 [H, W, 3]) to speak ``speech``, one frame per ``1/fps`` s of audio."""
    face = detect_face(image)
    warper = MouthWarper(image, face, max_open=max_open)
    amounts = mouth_amounts(speech_envelope(speech, fps))
    frames = np.stack([warper.warp(a) for a in tqdm(amounts, desc="warping", unit="frame", disable=not progress_bar)])
    aperture = np.array([warper.aperture(a) for a in amounts], dtype=np.float32)
    return Animation(frames, amounts, aperture)
