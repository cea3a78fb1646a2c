"""The model-free talking-head baseline: open and close a photo's mouth with the speech's loudness.

It needs no weights and runs on the CPU at hundreds of frames per second. Every learned talking-head model must beat
it. The animation itself (:mod:`avdiff.video.mouth_animation`) also makes the synthetic speech–video pairs
(:mod:`avdiff.data.synthetic`), with its ground-truth aperture kept.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from fractions import Fraction

import torch
from tqdm.auto import tqdm

from avdiff.audio.clock import FpsLike, parse_fps
from avdiff.audio.envelope import speech_envelope
from avdiff.audio.io import AudioSource, describe_source, load_audio
from avdiff.audio.silence import speech_warnings
from avdiff.pipelines.output import MAX_OUTPUT_SIDE, FrameSink, VideoPipelineOutput, check_output_type
from avdiff.pipelines.utils import (
    apply_frame_callback,
    check_callback,
    check_face_and_speech,
    check_generator,
    check_max_duration,
    check_talking_head_output,
)
from avdiff.video.face import detect_face
from avdiff.video.image import ImageLike, load_image
from avdiff.video.mouth_animation import SAMPLE_RATE, mouth_amounts
from avdiff.video.warp import MouthWarper

logger = logging.getLogger(__name__)


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

    _callback_tensor_inputs = ["frame"]

    def __init__(self, fps: FpsLike = 25, max_open: float = 0.4):
        self.fps = parse_fps(fps)
        self.max_open = max_open
        self.progress_bar = True

    def set_progress_bar_config(self, disable: bool = False) -> None:
        self.progress_bar = not disable

    def check_inputs(
        self,
        image: ImageLike,
        audio: AudioSource,
        max_duration_s: float | None,
        output_path: str | os.PathLike | None = None,
        output_type: str = "np",
        generator: torch.Generator | list[torch.Generator] | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> None:
        """Raise a ValueError naming the argument and its value for anything that cannot work."""
        check_face_and_speech(image, audio)
        check_max_duration(max_duration_s)
        check_output_type(output_type)
        check_generator(generator, allow_list=True)
        check_callback(callback_on_step_end, callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)
        check_talking_head_output(output_path, image, audio)

    def __call__(
        self,
        image: ImageLike,
        audio: AudioSource,
        *,
        max_duration_s: float | None = 600.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        output_path: str | os.PathLike | None = None,
    ) -> VideoPipelineOutput | tuple:
        """Animate the face in ``image`` with the loudness of the speech in ``audio``.

        Args:
            image: a face photo (path, PIL image or uint8/float array); the largest face is used.
            audio: speech (a path to any audio or video file, bytes, an array with a rate, or a ``Waveform``).
            max_duration_s: refuse longer audio (``AudioLoadError``).
            generator: accepted for the pipeline contract and ignored: the warp draws no random numbers, so the
                same inputs always give the same frames.
            output_type: ``"np"`` uint8 [F, H, W, 3]; ``"pt"`` the same as a torch uint8 tensor; ``"pil"`` a list of
                PIL images.
            return_dict: return a :class:`VideoPipelineOutput`, else ``(frames, fps, audio)`` (frames None with
                ``output_path``).
            callback_on_step_end: ``f(pipe, i, i, {"frame": tensor}) -> dict`` once per frame ``i`` (uint8
                [H, W, 3]), as the music pipeline calls it; a ``"frame"`` it returns (same shape, uint8) replaces it.
            callback_on_step_end_tensor_inputs: the tensors passed to it (default and only one: ``["frame"]``).
            output_path: stream the video to this mp4 as it is made instead of returning the frames (``frames`` is
                None); memory then stays flat in the audio's length.

        Returns:
            ``VideoPipelineOutput``: frames uint8 [F, H, W, 3] with ``F = ceil(duration * fps)``, the fps, the audio as
            given, and ``warnings`` for silent or near-empty speech, each also logged (:mod:`avdiff.audio.silence`).
        """
        if callback_on_step_end_tensor_inputs is None:
            callback_on_step_end_tensor_inputs = ["frame"]
        self.check_inputs(
            image,
            audio,
            max_duration_s,
            output_path,
            output_type,
            generator,
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
        )
        fps = Fraction(self.fps)

        # 1. The audio as given (muxed into the video), and a 16 kHz mono copy for the envelope.
        original = load_audio(audio, mono=False, max_duration_s=max_duration_s)
        warnings = speech_warnings(original, describe_source(audio))  # silent or near-empty speech: logged, returned
        speech = load_audio(original, sample_rate=SAMPLE_RATE, mono=True)

        # 2. The photo (bounded in size) and its face.
        rgb = load_image(image, max_side=MAX_OUTPUT_SIDE)
        warper = MouthWarper(rgb, detect_face(rgb), max_open=self.max_open)

        # 3. The mouth opening per frame, from the speech's loudness.
        amounts = mouth_amounts(speech_envelope(speech, self.fps))

        # 4. Warp frame by frame (each through the callback); 5. each frame streamed to the mp4, or collected
        #    (avdiff.pipelines.output).
        with FrameSink(fps, original, output_path=output_path, num_frames=len(amounts)) as sink:
            for i, amount in enumerate(tqdm(amounts, desc="warping", unit="frame", disable=not self.progress_bar)):
                frame = warper.warp(amount)
                if callback_on_step_end is not None:
                    frame = apply_frame_callback(
                        callback_on_step_end,
                        self,
                        i,
                        i,
                        {"frame": torch.from_numpy(frame)},
                        callback_on_step_end_tensor_inputs,
                    )
                sink.write(frame)
            result = sink.finish(output_type=output_type, return_dict=return_dict, warnings=warnings)
        logger.info(
            "animated %d frames from %.2f s of speech%s",
            len(amounts),
            speech.duration_s,
            "" if output_path is None else f" into {output_path}",
        )
        return result
