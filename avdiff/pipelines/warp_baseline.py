"""The model-free talking-head baseline: open and close a photo's mouth with the speech's loudness.

It needs no weights and runs on the CPU at hundreds of frames per second. Every learned talking-head model must beat
it. The same animation, with its ground-truth aperture kept, makes the synthetic speech–video pairs
(:mod:`avdiff.data.synthetic`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import scipy.ndimage
from tqdm.auto import tqdm

from avdiff.audio.clock import FpsLike, parse_fps
from avdiff.audio.envelope import speech_envelope
from avdiff.audio.io import AudioSource, Waveform, describe_source, load_audio
from avdiff.audio.silence import speech_warnings
from avdiff.pipelines.output import VideoPipelineOutput, bound_output_size
from avdiff.video.face import detect_face
from avdiff.video.image import ImageLike, load_image
from avdiff.video.writer import VideoWriter, check_output_path
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
        out = pipe(image="face.jpg", audio="speech.wav")            # frames held: out.frames uint8 [F, H, W, 3]
        out.save("talking.mp4")
        pipe(image="face.jpg", audio="speech.wav", output_path="talking.mp4")   # streamed: memory flat in length

    Args:
        fps: frame rate, 1 to 120 (:func:`avdiff.audio.clock.parse_fps`).
        max_open: the widest mouth opening, as a fraction of the face size.

    A photo larger than :data:`~avdiff.pipelines.output.MAX_OUTPUT_SIDE` px is downscaled to it first. The video
    carries the audio as given (its own rate and channels); the envelope is read from a 16 kHz mono copy.
    """

    def __init__(self, fps: FpsLike = 25, max_open: float = 0.4):
        self.fps = parse_fps(fps)
        self.max_open = max_open
        self.progress_bar = True

    def set_progress_bar_config(self, disable: bool = False) -> None:
        self.progress_bar = not disable

    def check_inputs(self, image: ImageLike, audio: AudioSource, max_duration_s: float | None,
                     output_path: str | os.PathLike | None = None) -> None:  # fmt: skip
        if image is None:
            raise ValueError("image must be a face photo (a path, a PIL image or an array), got None")
        if audio is None:
            raise ValueError("audio must be speech (a path, bytes, an array or a Waveform), got None")
        if max_duration_s is not None and not max_duration_s > 0:
            raise ValueError(f"max_duration_s must be positive, got {max_duration_s}")
        if output_path is not None:
            check_output_path(output_path, {"image": image, "audio": audio})

    def __call__(self, image: ImageLike, audio: AudioSource, *, max_duration_s: float | None = 600.0,
                 output_path: str | os.PathLike | None = None) -> VideoPipelineOutput:  # fmt: skip
        """Frames uint8 [F, H, W, 3] with ``F = ceil(duration * fps)``, the fps and the audio as given; with
        ``output_path``, the frames are streamed to that mp4 and not returned (``frames`` is None). Silent or
        near-empty speech gives ``warnings`` on the output, each also logged (:mod:`avdiff.audio.silence`)."""
        self.check_inputs(image, audio, max_duration_s, output_path)
        original = load_audio(audio, mono=False, max_duration_s=max_duration_s)
        warnings = speech_warnings(original, describe_source(audio))  # silent or near-empty speech: logged, returned
        speech = load_audio(original, sample_rate=SAMPLE_RATE, mono=True)
        rgb = bound_output_size(load_image(image))
        warper = MouthWarper(rgb, detect_face(rgb), max_open=self.max_open)
        amounts = mouth_amounts(speech_envelope(speech, self.fps))
        frames = (warper.warp(a) for a in tqdm(amounts, desc="warping", unit="frame", disable=not self.progress_bar))
        if output_path is not None:
            with VideoWriter(output_path, self.fps, original) as out:
                out.write_frames(frames)
            logger.info("animated %d frames from %.2f s of speech into %s", out.num_frames, speech.duration_s, out.path)
            return VideoPipelineOutput(None, Fraction(self.fps), original, path=out.path, num_frames=out.num_frames,
                                       warnings=warnings)  # fmt: skip
        array = np.empty((len(amounts), *rgb.shape), dtype=np.uint8)
        for i, frame in enumerate(frames):
            array[i] = frame
        logger.info("animated %d frames from %.2f s of speech", len(array), speech.duration_s)
        return VideoPipelineOutput(array, Fraction(self.fps), original, warnings=warnings)
