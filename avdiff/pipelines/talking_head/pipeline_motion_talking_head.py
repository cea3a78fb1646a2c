"""MotionTalkingHeadPipeline: a face photo plus speech gives a talking head by moving the photo itself.

Sound drives a small **motion** representation (:class:`~avdiff.video.motion.Motion`: the mouth's shape, eyelids,
brows and head pose) through a diffusion model, and a renderer moves the real photo by it at the photo's own
resolution, the way the fast talking-head systems work (Ditto, JoyVASA, FLOAT; SadTalker's 3-D coefficients). No
pixel is generated at a lower resolution and pasted back, so the face stays as sharp as the photo.

A diffusers ``DiffusionPipeline`` with one component and an optional second, saved and loaded with
``save_pretrained`` / ``from_pretrained`` (a bundled name such as ``"avdiff/talking-head-motion"``, a folder or a hub
id):

* ``motion_model``: a :class:`~avdiff.models.motion.MotionDenoiser`, a temporal denoiser over windows of motion
  conditioned on per-frame speech features, the motion just before the window and the controls;
* ``mouth_painter`` (optional): a :class:`~avdiff.models.mouth_painter.MouthPainter`, the latent video UNet that
  paints the inside of the mouth (teeth, tongue) where the lips part, used with ``paint_mouth=True``.

Generation, in the numbered steps of ``__call__``:

1. the audio as given (muxed into the video) and a mono copy at the model's rate;
2. the photo (bounded by :data:`~avdiff.pipelines.output.MAX_OUTPUT_SIDE`) and its face's mesh with depth, from
   which a :class:`~avdiff.video.render.FaceRenderer` is built once;
3. motion, window by window (:func:`~avdiff.pipelines.talking_head.motion_sampling.iter_motion`: DDIM with
   classifier-free guidance on the audio, each window continuing the one before);
4. each window's frames rendered as soon as it is sampled; with ``paint_mouth``, the inside of each open mouth
   painted (:class:`~avdiff.pipelines.talking_head.mouth_painting.MouthPainting`: only the pixels inside the lips
   change); then each frame goes through ``callback_on_step_end``, and is
5. pushed into the :class:`~avdiff.pipelines.output.FrameSink`: streamed to the mp4 with ``output_path`` (memory
   flat in the audio's length, the first frame after one window), or collected.

The output also holds the whole :class:`Motion` (for the demo's plot and for evaluation) and the seconds spent in
each stage (``timings``: ``audio``, ``motion``, ``render``, ``paint``, ``encode``, and ``first_frame``, the wall time from the
call to the first frame handed to the sink), which ``avdiff bench talk`` reports.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch
from diffusers import DiffusionPipeline
from tqdm.auto import tqdm

from avdiff import bundled
from avdiff.audio.clock import FpsLike, FrameClock, parse_fps
from avdiff.audio.io import AudioSource, describe_source, load_audio
from avdiff.audio.silence import speech_warnings
from avdiff.data.motion_truth import JAW_PER_OPEN
from avdiff.models.motion import MotionDenoiser
from avdiff.models.mouth_painter import MouthPainter
from avdiff.pipelines.output import MAX_OUTPUT_SIDE, FrameSink, VideoPipelineOutput, check_output_type
from avdiff.pipelines.talking_head.motion_sampling import SCHEDULERS, iter_motion
from avdiff.pipelines.talking_head.mouth_painting import MOUTH_GUIDANCE, MOUTH_STEPS, MouthPainting
from avdiff.pipelines.utils import (
    apply_frame_callback,
    check_callback,
    check_face_and_speech,
    check_generator,
    check_max_duration,
    check_num_inference_steps,
    check_number,
    check_talking_head_output,
)
from avdiff.video.face import detect_face
from avdiff.video.image import ImageLike, load_image
from avdiff.video.motion import Motion
from avdiff.video.render import FaceRenderer

logger = logging.getLogger(__name__)

STAGES = ("audio", "motion", "render", "paint", "encode")


@dataclass
class MotionTalkingHeadOutput(VideoPipelineOutput):
    """:class:`~avdiff.pipelines.output.VideoPipelineOutput` plus what the motion made.

    Attributes:
        motion: the generated :class:`~avdiff.video.motion.Motion`, one row per frame.
        timings: seconds per stage (:data:`STAGES`) and ``first_frame`` (from the call to the first frame).
    """

    motion: Motion | None = None
    timings: dict[str, float] = field(default_factory=dict)


class MotionTalkingHeadPipeline(DiffusionPipeline):
    """Talking heads from motion: speech -> motion (diffusion) -> the photo moved at its own resolution.

    Example::

        pipe = MotionTalkingHeadPipeline.from_pretrained("avdiff/talking-head-motion")
        out = pipe("face.jpg", "speech.wav", generator=torch.Generator().manual_seed(0))
        out.save("talking.mp4")                      # the photo's size, the speech muxed in
        out.motion.mouth_open                        # float32 [F]: what the mouth did

    Args:
        motion_model: the trained motion denoiser.
        mouth_painter: the trained mouth painter, or None (``paint_mouth=True`` then refuses).
    """

    _callback_tensor_inputs = ["motion", "frame"]
    _optional_components = ["mouth_painter"]

    def __init__(self, motion_model: MotionDenoiser, mouth_painter: MouthPainter | None = None):
        super().__init__()
        if not isinstance(motion_model, MotionDenoiser):
            raise ValueError(f"motion_model must be a MotionDenoiser, got {type(motion_model).__name__}")
        if mouth_painter is not None and not isinstance(mouth_painter, MouthPainter):
            raise ValueError(f"mouth_painter must be a MouthPainter or None, got {type(mouth_painter).__name__}")
        self.register_modules(motion_model=motion_model, mouth_painter=mouth_painter)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """As diffusers' ``from_pretrained``, with bundled names (``"avdiff/talking-head-motion"``) resolved first."""
        return super().from_pretrained(bundled.resolve(pretrained_model_name_or_path), **kwargs)

    def check_inputs(
        self,
        image: ImageLike | None,
        audio: AudioSource | None,
        fps: FpsLike,
        num_inference_steps: int,
        guidance_scale: float,
        blink_rate_per_min: float,
        head_amount: float,
        scheduler: str,
        paint_mouth: bool,
        mouth_steps: int | None,
        mouth_guidance: float,
        output_type: str,
        generator: torch.Generator | None,
        callback_on_step_end: Callable | None,
        callback_on_step_end_tensor_inputs: list[str] | None,
        max_duration_s: float | None,
        output_path: str | os.PathLike | None,
    ) -> None:
        """Raise a ValueError naming the argument and its value for anything that cannot work. A photo without a
        face raises ``NoFaceError`` in step 2; audio longer than ``max_duration_s`` raises ``AudioLoadError`` (a
        ValueError) when it is loaded, before any generation."""
        check_face_and_speech(image, audio)
        parse_fps(fps)
        check_num_inference_steps(num_inference_steps)
        check_number("guidance_scale", guidance_scale)
        check_number("blink_rate_per_min", blink_rate_per_min)
        check_number("head_amount", head_amount)
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
        if paint_mouth and self.mouth_painter is None:
            raise ValueError("paint_mouth=True, but this pipeline has no mouth_painter (the bundled default has one)")
        if not paint_mouth and mouth_steps is not None:
            raise ValueError(f"mouth_steps={mouth_steps!r}, but paint_mouth is False: the mouth is not painted")
        if mouth_steps is not None and (
            isinstance(mouth_steps, bool) or not isinstance(mouth_steps, int) or mouth_steps < 1
        ):
            raise ValueError(f"mouth_steps must be an integer >= 1, got {mouth_steps!r}")
        check_number("mouth_guidance", mouth_guidance)
        check_output_type(output_type)
        check_generator(generator)
        check_callback(callback_on_step_end, callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)
        check_max_duration(max_duration_s)
        check_talking_head_output(output_path, image, audio)

    @torch.no_grad()
    def __call__(
        self,
        image: ImageLike,
        audio: AudioSource,
        *,
        fps: FpsLike = 25,
        num_inference_steps: int = 10,
        guidance_scale: float = 2.0,
        blink_rate_per_min: float = 15.0,
        head_amount: float = 1.0,
        still_head: bool = False,
        scheduler: str = "ddim",
        paint_mouth: bool = False,
        mouth_steps: int | None = None,
        mouth_guidance: float = MOUTH_GUIDANCE,
        generator: torch.Generator | None = None,
        max_duration_s: float | None = 600.0,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        output_path: str | os.PathLike | None = None,
    ) -> MotionTalkingHeadOutput | tuple:
        """Make the face in ``image`` say ``audio``.

        Args:
            image: a face photo (a path, a PIL image or a uint8/float array); the largest face is used, and the video
                has the photo's size (after bounding it to ``MAX_OUTPUT_SIDE``).
            audio: speech (a path to any audio or video file, bytes, an array with a rate, or a ``Waveform``).
            fps: frame rate, 1 to 120.
            num_inference_steps: DDIM steps per motion window.
            guidance_scale: classifier-free guidance on the audio, >= 0 ("expressiveness"): 0 ignores the speech
                (the audio-dropped twin), 1 is the plain conditional model, more exaggerates the mouth.
            blink_rate_per_min: how often the eyes blink (people: 10-20 a minute).
            head_amount: head motion, >= 0 (0 still, 1 natural: turns, leans and nods with the speech).
            still_head: keep the head's pose fixed whatever ``head_amount`` says.
            scheduler: ``"ddim"`` or ``"dpm"`` (DPM-Solver++).
            paint_mouth: paint the inside of the open mouth (teeth, tongue) with the ``mouth_painter``; off, the
                renderer's own dark cavity is shown (the fast path). The motion is the same either way.
            mouth_steps: the painter's DDIM steps, >= 1 (None: ``MOUTH_STEPS``, 4); only with ``paint_mouth``.
            mouth_guidance: the painter's classifier-free guidance on the audio, >= 0 (default ``MOUTH_GUIDANCE``,
                1.0: one plain pass a step).
            generator: the only source of randomness; the same seed gives the same video (the painter's noise comes
                from a generator seeded by ``generator.initial_seed() + 1``, so painting leaves the motion alone; a
                generator reused for a second call draws new motion but the same paint noise).
            max_duration_s: refuse longer audio (``AudioLoadError``).
            output_type: ``"np"`` uint8 [F, H, W, 3]; ``"pt"`` the same as a torch tensor; ``"pil"`` a list of
                PIL images.
            return_dict: return a :class:`MotionTalkingHeadOutput`, else ``(frames, fps, audio)``.
            callback_on_step_end: ``f(pipe, i, i, {"motion": float32 [15], "frame": uint8 [H, W, 3]}) -> dict`` once
                per frame ``i``; a ``"frame"`` it returns (same shape, uint8) replaces the frame.
            callback_on_step_end_tensor_inputs: which of ``["motion", "frame"]`` it receives (default both).
            output_path: stream the video to this mp4 as it is made (``frames`` is None; memory flat in length).

        Returns:
            :class:`MotionTalkingHeadOutput` with ``F = FrameClock(fps, rate).num_frames(N)`` frames, the fps, the
            audio as given, ``motion`` and ``timings``, and ``warnings`` for silent or near-empty speech.

        Raises:
            ValueError: a bad argument (naming it); ``NoFaceError`` (a ValueError) for a photo without a face; and
                ``AudioLoadError`` (a ValueError) for unreadable or too long audio.
        """
        start = time.perf_counter()
        if callback_on_step_end_tensor_inputs is None:
            callback_on_step_end_tensor_inputs = list(self._callback_tensor_inputs)
        self.check_inputs(
            image,
            audio,
            fps,
            num_inference_steps,
            guidance_scale,
            blink_rate_per_min,
            head_amount,
            scheduler,
            paint_mouth,
            mouth_steps,
            mouth_guidance,
            output_type,
            generator,
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
            max_duration_s,
            output_path,
        )
        rate = Fraction(parse_fps(fps))
        timings = dict.fromkeys(STAGES, 0.0)

        # 1. The audio as given, and a mono copy for the motion model.
        tick = time.perf_counter()
        original = load_audio(audio, mono=False, max_duration_s=max_duration_s)
        warnings = speech_warnings(original, describe_source(audio))
        speech = load_audio(original, mono=True)
        num_frames = FrameClock(rate, speech.sample_rate).num_frames(speech.samples.shape[-1])
        timings["audio"] += time.perf_counter() - tick

        # 2. The photo and its face: the renderer is built once.
        tick = time.perf_counter()
        photo = load_image(image, max_side=MAX_OUTPUT_SIDE)
        renderer = FaceRenderer(photo, detect_face(photo))
        # the model's jaw is the chin's drop from a closed mouth (its training truth); the photo's may be parted
        jaw_offset = JAW_PER_OPEN * renderer.aperture
        timings["render"] += time.perf_counter() - tick
        painting = None
        if paint_mouth:
            tick = time.perf_counter()
            seeded = (
                None if generator is None else torch.Generator().manual_seed((generator.initial_seed() + 1) % 2**64)
            )
            painting = MouthPainting(
                self.mouth_painter, renderer, speech, rate, guidance_scale=mouth_guidance, generator=seeded,
                num_inference_steps=MOUTH_STEPS if mouth_steps is None else mouth_steps,
            )  # fmt: skip
            timings["paint"] += time.perf_counter() - tick

        # 3-5. Motion window by window; each window's frames rendered and handed to the sink at once.
        windows = iter_motion(
            self.motion_model,
            speech,
            rate,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            generator=generator,
            blink_rate_per_min=blink_rate_per_min,
            head_amount=head_amount,
            still_head=still_head,
            scheduler=scheduler,
        )
        pieces, index = [], 0
        with (
            FrameSink(rate, original, output_path=output_path, num_frames=num_frames) as sink,
            tqdm(total=num_frames, desc="talking head", unit="frame", disable=not self._progress_enabled()) as bar,
        ):
            while True:
                tick = time.perf_counter()
                window = next(windows, None)
                timings["motion"] += time.perf_counter() - tick
                if window is None:
                    break
                window = window.replace(jaw=window.jaw - jaw_offset)
                pieces.append(window)
                tick = time.perf_counter()
                if painting is None:  # the window's mesh solved at once, its frames drawn one by one
                    frames, stage = renderer.frames(window), "render"
                else:  # drawn a chunk at a time as the painter asks for them, their open mouths painted
                    drawn = renderer.frames(window, return_interior=True, return_landmarks=True)
                    frames, stage = painting.paint(_timed(drawn, timings, "render"), index), "paint"
                for j in range(len(window)):
                    drawing = timings["render"]
                    frame = next(frames)
                    timings[stage] += time.perf_counter() - tick - (timings["render"] - drawing)  # less the drawing
                    tick = time.perf_counter()
                    if callback_on_step_end is not None:
                        tensors = {"motion": torch.from_numpy(window.as_array()[j]), "frame": torch.from_numpy(frame)}
                        frame = apply_frame_callback(
                            callback_on_step_end, self, index, index, tensors, callback_on_step_end_tensor_inputs
                        )
                    timings["render"] += time.perf_counter() - tick
                    if index == 0:
                        timings["first_frame"] = time.perf_counter() - start
                    tick = time.perf_counter()
                    sink.write(frame)
                    timings["encode"] += time.perf_counter() - tick
                    index += 1
                    bar.update(1)
                    tick = time.perf_counter()
            tick = time.perf_counter()
            motion = Motion.from_array(np.concatenate([w.as_array() for w in pieces]))
            result = sink.finish(
                output_type=output_type,
                return_dict=return_dict,
                output_class=MotionTalkingHeadOutput,
                warnings=warnings,
                motion=motion,
                timings=timings,
            )
            timings["encode"] += time.perf_counter() - tick
        logger.info(
            "%d frames from %.2f s of speech in %.2f s (%s)",
            num_frames,
            speech.duration_s,
            time.perf_counter() - start,
            ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()),
        )
        return result

    def _progress_enabled(self) -> bool:
        return not getattr(self, "_progress_bar_config", {}).get("disable", False)


def _timed(items: Iterable, timings: dict[str, float], stage: str) -> Iterator:
    """``items`` as they come, the time each one takes to come added to ``timings[stage]``."""
    items = iter(items)
    while True:
        tick = time.perf_counter()
        item = next(items, None)
        timings[stage] += time.perf_counter() - tick
        if item is None:
            return
        yield item
