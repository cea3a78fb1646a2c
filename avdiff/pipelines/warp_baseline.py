"""The model-free talking-head baseline: open and close a photo's mouth with the speech's loudness.

It needs no weights and runs on the CPU at hundreds of frames per second. Every learned talking-head model must beat
it. The same animation, with its ground-truth aperture kept, makes the synthetic speech–video pairs
(:mod:`avdiff.data.synthetic`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import scipy.ndimage
from tqdm.auto import tqdm

from avdiff.audio.clock import FpsLike, as_fraction_fps
from avdiff.audio.envelope import speech_envelope
from avdiff.audio.io import AudioSource, Waveform, load_audio
from avdiff.pipelines.output import VideoPipelineOutput
from avdiff.video.face import ImageLike, detect_face, load_image
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


def animate(image: np.ndarray, speech: Waveform, fps: FpsLike = 25, max_open: float = 0.4, progress_bar: bool = False) -> Animation:
    """Warp the face in ``image`` (uint8 [H, W, 3]) to speak ``speech``, one frame per ``1/fps`` s of audio."""
    face = detect_face(image)
    warper = MouthWarper(image, face, max_open=max_open)
    amounts = mouth_amounts(speech_envelope(speech, fps))
    frames = np.stack([warper.warp(a) for a in tqdm(amounts, desc="warping", unit="frame", disable=not progress_bar)])
    aperture = np.array([warper.aperture(a) for a in amounts], dtype=np.float32)
    return Animation(frames, amounts, aperture)


class WarpBaselinePipeline:
    """Animate any face photo from any speech file with the landmark-driven mouth warp. CPU only, no weights.

    Example::

        pipe = WarpBaselinePipeline()
        out = pipe(image="face.jpg", audio="speech.wav")
        out.save("talking.mp4")
    """

    def __init__(self, fps: FpsLike = 25, max_open: float = 0.4):
        self.fps = as_fraction_fps(fps)
        self.max_open = max_open
        self.progress_bar = True

    def set_progress_bar_config(self, disable: bool = False) -> None:
        self.progress_bar = not disable

    def check_inputs(self, image: ImageLike, audio: AudioSource, max_duration_s: float | None) -> None:
        if image is None:
            raise ValueError("image must be a face photo (a path, a PIL image or an array), got None")
        if audio is None:
            raise ValueError("audio must be speech (a path, bytes, an array or a Waveform), got None")
        if max_duration_s is not None and max_duration_s <= 0:
            raise ValueError(f"max_duration_s must be positive, got {max_duration_s}")

    def __call__(self, image: ImageLike, audio: AudioSource, *, max_duration_s: float | None = 600.0) -> VideoPipelineOutput:
        """Returns frames uint8 [F, H, W, 3] with ``F = ceil(duration * fps)``, the fps and the speech (16 kHz)."""
        self.check_inputs(image, audio, max_duration_s)
        rgb = load_image(image)
        speech = load_audio(audio, sample_rate=SAMPLE_RATE, max_duration_s=max_duration_s)
        result = animate(rgb, speech, self.fps, self.max_open, progress_bar=self.progress_bar)
        logger.info("animated %d frames from %.2f s of speech", len(result.frames), speech.duration_s)
        return VideoPipelineOutput(result.frames, Fraction(self.fps), speech)
