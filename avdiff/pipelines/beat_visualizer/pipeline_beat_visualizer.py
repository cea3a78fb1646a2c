"""BeatVisualizerPipeline: a song and keyframes give a music video whose changes land on the beats (Generative Disco).

The song is cut into intervals (a :class:`~avdiff.pipelines.beat_visualizer.timeline.Timeline`, given or laid on the beats), each
moving from a start keyframe to an end keyframe by a design pattern (:mod:`avdiff.pipelines.beat_visualizer.patterns`), at the pace of
an audio-reactive curve (:mod:`avdiff.audio.curves`). Keyframes come from a
:class:`~avdiff.pipelines.beat_visualizer.keyframes.KeyframeSource`: the user's images, in pixel space (no model, no downloads:
:class:`~avdiff.pipelines.beat_visualizer.keyframes.ImageKeyframes`), or prompts rendered by a text-to-video model
(:class:`~avdiff.pipelines.beat_visualizer.prompt_keyframes.PromptKeyframes`: the bundled scene model offline, or SD 1.5).

Generation, in the numbered steps of ``__call__`` (steps 2 to 5 are :meth:`BeatVisualizerPipeline.plan`, which
plans without rendering: the demo's Plan and ``avdiff visualize --plan-only`` call it):

1. check every argument (before any work), and the audio (a scan: errors of ``load_audio``; nothing held), the images
   and the timeline's file;
2. analyse the rhythm (beats, downbeats, envelopes per video frame; block by block), or take the one given;
3. the timeline: given, or :meth:`Timeline.from_beats` over the images or prompts;
4. the frames of each interval by the one clock (:meth:`Timeline.frame_edges`): ``F = clock.num_frames(N)`` in
   all, the audio as given (N samples at its own rate);
5. the curves: the position ``t(f)`` in each interval and the pulse envelope ``e(f)``;
6. the keyframes, each made once (adjacent intervals share theirs; a cache keeps them across calls);
7. every frame, in order: the in-between of the interval's keyframes at ``t(f)`` (pixel, latent or diffusion: see
   :mod:`avdiff.pipelines.beat_visualizer.keyframes`), the pattern's effect, ``callback_on_step_end``;
8. out: streamed to an mp4 with the song muxed in (``output_path``: memory flat in the song's length, the song read
   block by block), or returned.

Every frame's time is ``f / fps`` from the song's start; no interval counts its own frames (Generative Disco sizes
each interval ``int((end - start) * fps)`` frames and stitches the clips, which drifts by up to a frame per interval;
stable-diffusion-videos #75 was its audio offsets drifting the same way).

Every check (:func:`check_inputs`, :func:`check_plan_inputs`, the image reader :func:`read_image`) raises a ValueError
that names the argument and its value (a :class:`TimelineError` for a timeline that cannot be rendered), so
``avdiff visualize`` and the demo print it as one line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from tqdm.auto import tqdm

from avdiff.audio.clock import FpsLike, FrameClock, parse_fps
from avdiff.audio.curves import CurveSpec, curve_envelope, curve_position, plot_curves
from avdiff.audio.io import AudioSource, AudioStream
from avdiff.audio.rhythm import Rhythm, analyze_rhythm
from avdiff.pipelines.beat_visualizer.keyframes import (
    INTERPOLATIONS,
    ImageKeyframes,
    Keyframe,
    KeyframeCache,
    KeyframeSource,
    crossfade,
    fit_image,
    image_digest,
    interpolation_mode,
    output_size,
    quantize_positions,
)
from avdiff.pipelines.beat_visualizer.patterns import PatternSettings, apply_pattern, is_hold, to_uint8
from avdiff.pipelines.beat_visualizer.timeline import PATTERNS, Timeline, TimelineError
from avdiff.pipelines.output import MAX_OUTPUT_SIDE, FrameSink, VideoPipelineOutput, check_output_type
from avdiff.pipelines.utils import apply_frame_callback, is_int
from avdiff.video.image import load_image
from avdiff.video.writer import check_output_path

logger = logging.getLogger(__name__)

DEFAULT_PULSE = CurveSpec(source="beats", release_s=0.15)
T_DECIMALS = 4  # in-between frames are cached by t rounded to this many decimals
CALLBACK_TENSOR_INPUTS = ["frame"]


@dataclass
class BeatPlan:
    """What a music video is made from, before any frame is (:meth:`BeatVisualizerPipeline.plan`).

    Attributes:
        timeline: the intervals, fitted to the song (``timeline.save(path)`` writes its JSON file).
        rhythm: the analysis (beats, downbeats, envelopes per video frame).
        position: ``t(f)``, the position of each frame in its interval, float32 [F].
        envelope: the pulse envelope ``e(f)`` per frame, float32 [F].
        frame_edges: each interval's first frame and the end, int64 [K + 1].
        fps: the video's exact frame rate.
        duration_s: the song's length.
        curve: the position curve.
    """

    timeline: Timeline
    rhythm: Rhythm
    position: np.ndarray
    envelope: np.ndarray
    frame_edges: np.ndarray
    fps: Fraction
    duration_s: float
    curve: CurveSpec

    @property
    def num_frames(self) -> int:
        """F, the frames of the video (the one clock over the song)."""
        return int(self.frame_edges[-1])

    def plot(self) -> np.ndarray:
        """A picture of the curve with the beats marked and the intervals' edges, uint8 [H, W, 3]."""
        return plot_curves(
            self.rhythm, self.position, self.envelope, self.frame_edges, title=f"curve {self.curve.source}"
        )


@dataclass
class BeatVisualizerOutput(VideoPipelineOutput):
    """:class:`~avdiff.pipelines.output.VideoPipelineOutput` plus what the video was made from.

    Attributes:
        timeline: the timeline rendered.
        rhythm: the analysis (beats, downbeats, envelopes).
        position: ``t(f)`` per frame, float32 [F].
        envelope: the pulse envelope ``e(f)`` per frame, float32 [F].
        frame_edges: each interval's first frame and the end, int64 [K + 1].
    """

    timeline: Timeline | None = None
    rhythm: Rhythm | None = None
    position: np.ndarray | None = None
    envelope: np.ndarray | None = None
    frame_edges: np.ndarray | None = None


class BeatVisualizerPipeline:
    """A music video from a song and keyframes, timed by the beats.

    Example::

        pipe = BeatVisualizerPipeline()                     # keyframe images: no model, no downloads
        out = pipe("song.mp3", images=["a.jpg", "b.jpg", "c.jpg"], curve="beats", beats_per_interval=8,
                   output_path="video.mp4")                 # streamed, with the song muxed in

        disco = BeatVisualizerPipeline(PromptKeyframes.from_pretrained("scene-tiny"))   # the bundled scene model
        out = disco("song.mp3", prompts=["a campfire by day", "a campfire at night"], output_path="disco.mp4")

    Args:
        source: where keyframes come from (default: :class:`~avdiff.pipelines.beat_visualizer.keyframes.ImageKeyframes`).
    """

    _callback_tensor_inputs = CALLBACK_TENSOR_INPUTS

    def __init__(self, source: KeyframeSource | None = None):
        self.source = source if source is not None else ImageKeyframes()
        if not isinstance(self.source, KeyframeSource):
            raise ValueError(f"source must be a KeyframeSource, got {type(self.source).__name__}")
        self.cache = KeyframeCache()
        self._progress_bar_config: dict = {}
        self._num_frames = self._frame_index = self._interval_index = self._num_intervals = 0

    # --- progress and state -------------------------------------------------------------------------------------

    def set_progress_bar_config(self, **kwargs) -> None:
        """tqdm options of the progress bar across the whole timeline (``disable=True`` turns it off)."""
        self._progress_bar_config = dict(kwargs)

    def progress_bar(self, total: int):
        return tqdm(total=total, desc="frames", unit="frame", **self._progress_bar_config)

    @property
    def num_frames(self) -> int:
        """Frames of the video being made."""
        return self._num_frames

    @property
    def frame_index(self) -> int:
        """The frame being made (0-based)."""
        return self._frame_index

    @property
    def interval_index(self) -> int:
        """The interval the current frame belongs to (0-based)."""
        return self._interval_index

    @property
    def num_intervals(self) -> int:
        return self._num_intervals

    # --- call ---------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        audio: AudioSource | AudioStream,
        timeline: Timeline | str | os.PathLike | None = None,
        *,
        images: list | None = None,
        prompts: list[str] | None = None,
        beats_per_interval: int = 8,
        patterns: list[str] | tuple[str, ...] = ("subject",),
        curve: str | CurveSpec | dict = "beats",
        pulse: CurveSpec | dict | None = None,
        effects: PatternSettings | dict | None = None,
        fps: FpsLike = 25,
        height: int | None = None,
        width: int | None = None,
        interpolation: str = "auto",
        batch_size: int = 8,
        rhythm: Rhythm | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        max_duration_s: float | None = 600.0,
        output_path: str | os.PathLike | None = None,
    ) -> BeatVisualizerOutput | tuple:
        """Make the music video of ``audio``.

        Args:
            audio: the song (a path, bytes, an array with a rate, a Waveform, or an AudioStream). A file is read block
                by block, never held whole; the video carries it as given (its own rate and channels).
            timeline: the intervals (a :class:`Timeline`, or its JSON file); or give ``images`` or ``prompts``.
            images: keyframe images (paths, PIL images or arrays), laid on the beats by ``Timeline.from_beats``.
            prompts: keyframe prompts, laid on the beats the same way (a source that renders prompts:
                :class:`~avdiff.pipelines.beat_visualizer.prompt_keyframes.PromptKeyframes`).
            beats_per_interval: beats per interval for ``images`` or ``prompts`` (8: two 4/4 bars).
            patterns: the patterns the intervals cycle through for ``images`` or ``prompts``.
            curve: the position curve: a source name (``"beats"``, ``"percussive"``, ``"onsets"``, ``"bands"``,
                ``"rms"``, ``"linear"``) or a :class:`~avdiff.audio.curves.CurveSpec` (or its fields as a dict).
            pulse: the envelope of the pulses (default: a step on each beat released over 0.15 s).
            effects: the patterns' strengths (:class:`~avdiff.pipelines.beat_visualizer.patterns.PatternSettings` or a dict).
            fps: frame rate, 1 to 120 (25, 29.97, "30000/1001").
            height, width: frame size in px (default: the source's size, or the first image's aspect with its longer
                side at most 1024 px).
            interpolation: how in-between frames are made: ``"pixel"`` (a cross-fade), ``"latent"`` (the codec's
                latents interpolated and decoded), ``"diffusion"`` (between two prompts: slerp on the noise, lerp on
                the text embeddings, each in-between denoised; as latent otherwise), or ``"auto"`` (diffusion between
                two prompts, pixel otherwise).
            batch_size: latent in-between frames decoded together.
            rhythm: a precomputed analysis of ``audio`` at ``fps`` (skips step 2).
            generator: taken for the one pipeline contract and checked, but nothing here is random: image keyframes
                are used as given, and :class:`~avdiff.pipelines.beat_visualizer.prompt_keyframes.PromptKeyframes`
                seeds its noise by its own ``seed`` (so that a keyframe is the same in every interval and call).
            output_type: ``"np"`` uint8 [F, H, W, 3]; ``"pt"`` the same as a torch tensor; ``"pil"`` a list of images.
            return_dict: return a :class:`BeatVisualizerOutput`, else ``(frames, fps, audio)``.
            callback_on_step_end: ``f(pipe, frame_index, t, tensors) -> tensors`` after every frame, ``t`` its
                position in its interval; ``tensors["frame"]`` (uint8 [H, W, 3]) returned replaces the frame.
                ``pipe.interval_index``, ``pipe.num_frames`` say where it is.
            callback_on_step_end_tensor_inputs: the tensors passed (default ``["frame"]``).
            max_duration_s: refuse longer audio (``AudioLoadError``).
            output_path: stream the video to this mp4 with the song muxed in, instead of returning the frames; memory
                then stays flat in the song's length. Never a folder or one of the inputs (checked first).

        Returns:
            :class:`BeatVisualizerOutput`: the frames (None when streamed), the exact fps, the audio (None when
            streamed from a file: the mp4 carries it), the mp4's path, the timeline, the rhythm and the curves.
        """
        # 1. Check every argument (before any work), then the audio (a scan: nothing is held), the images and the
        #    timeline's file (checked against the song's length, known from the scan).
        if callback_on_step_end_tensor_inputs is None:
            callback_on_step_end_tensor_inputs = ["frame"]
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        curve = curve_spec(curve)
        pulse = curve_spec(pulse if pulse is not None else DEFAULT_PULSE)
        effects = pattern_settings(effects)
        check_inputs(
            self.source,
            audio,
            timeline,
            images,
            prompts,
            beats_per_interval,
            patterns,
            curve,
            pulse,
            effects,
            fps,
            height,
            width,
            interpolation,
            batch_size,
            output_type,
            callback_on_step_end_tensor_inputs,
            max_duration_s,
            output_path,
            rhythm,
            generator,
        )
        fps = parse_fps(fps)
        song = AudioStream(audio, max_duration_s=max_duration_s)
        pictures = load_images(images) if images is not None else {}
        if isinstance(timeline, (str, os.PathLike)):
            timeline = Timeline.load(timeline)
        if timeline is not None:
            timeline = timeline.with_duration(song.duration_s)
            check_timeline_keys(timeline, self.source)
            pictures = load_timeline_images(timeline)

        # 2.-5. The plan: the rhythm, the timeline, the frames of each interval by the one clock, the curves.
        plan = self.plan(
            song,
            timeline,
            images=images,
            prompts=prompts,
            beats_per_interval=beats_per_interval,
            patterns=patterns,
            curve=curve,
            pulse=pulse,
            fps=fps,
            rhythm=rhythm,
            max_duration_s=max_duration_s,
        )
        timeline, edges, position, envelope = plan.timeline, plan.frame_edges, plan.position, plan.envelope
        num_frames = plan.num_frames
        self._num_frames, self._num_intervals = num_frames, len(timeline)

        # 6. The keyframes.
        first = next(iter(pictures.values()), None)
        size = output_size(first, self.source, height, width)
        keyframes = self.make_keyframes(timeline, pictures, size)
        logger.info(
            "%d frames at %s fps, %d intervals, %d keyframes (%s), %dx%d, curve %s",
            num_frames,
            fps,
            len(timeline),
            len(keyframes),
            self.source.name,
            size[1],
            size[0],
            curve.source,
        )

        # 7. Every frame, in order, each pushed out as it is made; 8. out: streamed to an mp4 with the song, or
        #    returned with the song loaded (avdiff.pipelines.output).
        with FrameSink(fps, song, output_path=output_path, num_frames=num_frames) as sink:
            for frame in self.generate_frames(
                timeline,
                edges,
                position,
                envelope,
                keyframes,
                effects,
                interpolation,
                batch_size,
                callback_on_step_end,
                callback_on_step_end_tensor_inputs,
            ):
                sink.write(frame)
            return sink.finish(
                output_type=output_type,
                return_dict=return_dict,
                output_class=BeatVisualizerOutput,
                timeline=timeline,
                rhythm=plan.rhythm,
                position=position,
                envelope=envelope,
                frame_edges=edges,
            )

    # --- plan ---------------------------------------------------------------------------------------------------

    def plan(
        self,
        audio: AudioSource | AudioStream,
        timeline: Timeline | str | os.PathLike | None = None,
        *,
        images: list | None = None,
        prompts: list[str] | None = None,
        beats_per_interval: int = 8,
        patterns: list[str] | tuple[str, ...] = ("subject",),
        curve: str | CurveSpec | dict = "beats",
        pulse: CurveSpec | dict | None = None,
        fps: FpsLike = 25,
        rhythm: Rhythm | None = None,
        max_duration_s: float | None = 600.0,
    ) -> BeatPlan:
        """Steps 2 to 5 of ``__call__`` without making a frame: the rhythm, the timeline, the frames of each interval
        and the curves. Nothing is rendered, no image is read and no model is needed (prompts are only laid on the
        beats), so it is quick; ``__call__`` makes its video from this plan, and ``plan(...).timeline.save(path)``
        writes the timeline that ``timeline=path`` renders later.

        Args: those of :meth:`__call__` of the same names.

        Returns:
            :class:`BeatPlan`.

        Raises:
            ValueError: a bad argument, named (checked first, before the song is read); ``AudioLoadError`` for audio
                that cannot be read or is too long; :class:`TimelineError` for a timeline that does not fit the song.
        """
        # 1. Check the arguments of the plan, then the audio (a scan: nothing is held) and the timeline's file.
        curve = curve_spec(curve)
        pulse = curve_spec(pulse if pulse is not None else DEFAULT_PULSE)
        check_plan_inputs(
            audio, timeline, images, prompts, beats_per_interval, patterns, curve, pulse, fps, max_duration_s, rhythm
        )
        fps = parse_fps(fps)
        song = AudioStream(audio, max_duration_s=max_duration_s)
        if isinstance(timeline, (str, os.PathLike)):
            timeline = Timeline.load(timeline)
        if timeline is not None:
            timeline = timeline.with_duration(song.duration_s)

        # 2. The rhythm.
        if rhythm is None:
            rhythm = analyze_rhythm(song, fps)
        num_frames = song_frames(song, fps)
        if rhythm.num_frames != num_frames:
            raise ValueError(
                f"rhythm has {rhythm.num_frames} frames, the song {num_frames} at {float(fps):g} fps; "
                "analyse this song at this rate"
            )

        # 3. The timeline.
        if timeline is None and prompts is not None:
            keys = [{"prompt": p.strip()} for p in prompts]  # never read as "image:PATH"
            timeline = Timeline.from_beats(rhythm, keys, beats_per_interval, patterns, duration_s=song.duration_s)
        elif timeline is None:
            keys = [image_key(image, k) for k, image in enumerate(images)]
            timeline = Timeline.from_beats(rhythm, keys, beats_per_interval, patterns, duration_s=song.duration_s)

        # 4. The frames of each interval, by the one clock.
        edges = timeline.frame_edges(fps, num_frames)

        # 5. The curves.
        position = curve_position(rhythm, edges, curve)
        envelope = curve_envelope(rhythm, pulse)
        return BeatPlan(timeline, rhythm, position, envelope, edges, Fraction(fps), song.duration_s, curve)

    # --- steps --------------------------------------------------------------------------------------------------

    def make_keyframes(self, timeline: Timeline, pictures: dict, size: tuple[int, int]) -> dict:
        """Step 6: every distinct keyframe of the timeline, fitted to ``size`` (height, width) and encoded once (and
        cached across calls): ``{key: Keyframe}``."""
        height, width = size
        out: dict = {}
        for key in timeline.keyframes():
            content = None if isinstance(key, str) else image_digest(pictures[key])  # a file may change, arrays too
            cache_key = (key, content, size, id(self.source), getattr(self.source, "settings", None))
            found = self.cache.get(self.cache.keyframes, cache_key)
            if found is None and isinstance(key, str):
                found = self.source.render_prompt(key, size)
                self.cache.put(self.cache.keyframes, cache_key, found, self.cache.max_keyframes)
            elif found is None:
                image = fit_image(pictures[key], height, width)
                found = Keyframe(key, image, self.source.encode_image(image))
                self.cache.put(self.cache.keyframes, cache_key, found, self.cache.max_keyframes)
            out[key] = found
        return out

    def generate_frames(
        self,
        timeline: Timeline,
        edges: np.ndarray,
        position: np.ndarray,
        envelope: np.ndarray,
        keyframes: dict,
        effects: PatternSettings,
        interpolation: str,
        batch_size: int,
        callback: Callable | None,
        callback_inputs: list[str],
    ) -> Iterator[np.ndarray]:
        """Step 7 as a generator: the ``F`` frames in order, uint8 [H, W, 3]; in-betweens are made ``batch_size`` at a
        time, so only a batch is held."""
        with self.progress_bar(total=int(edges[-1])) as progress:
            for k, iv in enumerate(timeline):
                self._interval_index = k
                a, b = int(edges[k]), int(edges[k + 1])
                A, B = keyframes[iv.start], keyframes[iv.end]
                mode = interpolation_mode(interpolation, A, B)
                for c0 in range(a, b, batch_size):
                    c1 = min(b, c0 + batch_size)
                    bases = self._bases(A, B, position[c0:c1], mode, is_hold(iv.pattern))
                    for f, base in zip(range(c0, c1), bases):
                        self._frame_index = f
                        u = (f - a) / (b - a)
                        frame = to_uint8(
                            apply_pattern(iv.pattern, base, float(position[f]), u, float(envelope[f]), effects)
                        )
                        if callback is not None:
                            frame = apply_frame_callback(
                                callback,
                                self,
                                f,
                                float(position[f]),
                                {"frame": torch.from_numpy(frame)},
                                callback_inputs,
                            )
                        progress.update()
                        yield frame

    def _bases(self, A: Keyframe, B: Keyframe, ts: np.ndarray, mode: str, hold: bool) -> list[np.ndarray]:
        """The base pictures of a batch of frames at positions ``ts``: float32 [H, W, 3] in [0, 1] each."""
        if hold or A is B:
            still = A.image.astype(np.float32) / 255.0
            return [still] * len(ts)
        if mode == "pixel":
            return [crossfade(A.image, B.image, float(t)) for t in ts]
        if mode == "diffusion":
            keys = quantize_positions(ts)
        else:
            keys = [round(float(t), T_DECIMALS) for t in ts]
        made: dict[float, np.ndarray] = {}
        settings = (
            id(self.source),
            getattr(self.source, "settings", None),
            image_digest(A.image),
            image_digest(B.image),
        )
        missing = []
        for t in dict.fromkeys(keys):
            if t <= 0 or t >= 1:
                made[t] = (A if t <= 0 else B).image.astype(np.float32) / 255.0
                continue
            found = self.cache.get(self.cache.frames, (mode, A.key, B.key, A.image.shape, t, settings))
            if found is not None:
                made[t] = found
            else:
                missing.append(t)
        if missing:
            if mode == "diffusion":
                images = self.source.inbetweens(A, B, missing)
            else:
                w = torch.tensor(missing, dtype=A.latent.dtype, device=A.latent.device).reshape(-1, 1, 1, 1)
                latents = A.latent + (B.latent - A.latent) * w  # (n, C, h, w)
                images = self.source.decode(latents)
            for t, image in zip(missing, images):
                picture = image.astype(np.float32) / 255.0
                made[t] = picture
                self.cache.put(
                    self.cache.frames, (mode, A.key, B.key, A.image.shape, t, settings), picture, self.cache.max_frames
                )
        return [made[t] for t in keys]


def song_frames(song: AudioStream, fps: FpsLike) -> int:
    """The frames of the one clock for the song as given: ``ceil(N * fps / sr)``."""
    return FrameClock(fps, song.sample_rate).num_frames(song.num_samples)


# --- checks and the arguments' own types ----------------------------------------------------------------------


def check_plan_inputs(
    audio,
    timeline,
    images,
    prompts,
    beats_per_interval,
    patterns,
    curve: CurveSpec,
    pulse: CurveSpec,
    fps,
    max_duration_s,
    rhythm,
) -> None:
    """The checks of :meth:`BeatVisualizerPipeline.plan`: a ValueError naming the argument and its value for anything
    that cannot be planned. ``curve`` and ``pulse`` are already parsed by :func:`curve_spec`."""
    if audio is None:
        raise ValueError("audio must be a song (a path, bytes, an array or a Waveform), got None")
    given = [
        name for name, value in (("timeline", timeline), ("images", images), ("prompts", prompts)) if value is not None
    ]
    if len(given) != 1:
        raise ValueError(f"give exactly one of timeline, images and prompts, got {given or 'none'}")
    if images is not None and (isinstance(images, (str, bytes, os.PathLike)) or not list(images)):
        raise ValueError(f"images must be a non-empty list, got {images!r}")
    if prompts is not None:
        if isinstance(prompts, str) or not list(prompts) or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise ValueError(f"prompts must be a non-empty list of non-empty strings, got {prompts!r}")
    if timeline is not None and not isinstance(timeline, (Timeline, str, os.PathLike)):
        raise ValueError(f"timeline must be a Timeline or a JSON file, got {type(timeline).__name__}")
    if not is_int(beats_per_interval) or beats_per_interval < 1:
        raise ValueError(f"beats_per_interval must be an integer >= 1, got {beats_per_interval!r}")
    if isinstance(patterns, str) or not list(patterns) or any(p not in PATTERNS for p in patterns):
        raise ValueError(f"patterns must be a list of {PATTERNS}, got {patterns!r}")
    curve.check()
    pulse.check()
    parse_fps(fps)
    if max_duration_s is not None and not (isinstance(max_duration_s, (int, float)) and max_duration_s > 0):
        raise ValueError(f"max_duration_s must be positive (or None), got {max_duration_s!r}")
    if rhythm is not None and not isinstance(rhythm, Rhythm):
        raise ValueError(f"rhythm must be an avdiff.audio.rhythm.Rhythm or None, got {type(rhythm).__name__}")
    if rhythm is not None and Fraction(rhythm.fps).limit_denominator(1001) != parse_fps(fps):
        raise ValueError(
            f"rhythm was analysed at {rhythm.fps:g} fps, the video is at {float(parse_fps(fps)):g} "
            "fps; analyse it at the video's rate"
        )


def check_inputs(
    source: KeyframeSource,
    audio,
    timeline,
    images,
    prompts,
    beats_per_interval,
    patterns,
    curve: CurveSpec,
    pulse: CurveSpec,
    effects: PatternSettings,
    fps,
    height,
    width,
    interpolation,
    batch_size,
    output_type,
    callback_on_step_end_tensor_inputs,
    max_duration_s,
    output_path,
    rhythm,
    generator=None,
) -> None:
    """Raise a ValueError naming the argument and its value for anything that cannot work: those of the plan
    (:func:`check_plan_inputs`), then those of rendering. The audio, the images and the timeline file are read by the
    pipeline right after, still before any frame is made.

    Args: those of :meth:`BeatVisualizerPipeline.__call__` (``curve``, ``pulse`` and ``effects`` already parsed by
    :func:`curve_spec` and :func:`pattern_settings`), and the keyframe ``source`` (for its pixel multiple).
    """
    check_plan_inputs(
        audio, timeline, images, prompts, beats_per_interval, patterns, curve, pulse, fps, max_duration_s, rhythm
    )
    if prompts is not None and not getattr(source, "renders_prompts", False):
        raise ValueError(
            f"prompts need a source that renders them (PromptKeyframes over a text-to-video model); "
            f"this pipeline's source is {source.name!r}"
        )
    effects.check()
    m = source.pixel_multiple
    for name, side in (("height", height), ("width", width)):
        if side is None:
            continue
        if not is_int(side) or not 16 <= side <= MAX_OUTPUT_SIDE or side % m:
            raise ValueError(f"{name} must be a multiple of {m} px in [16, {MAX_OUTPUT_SIDE}], got {side!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    check_output_type(output_type)
    if isinstance(generator, list) and (len(generator) != 1 or not isinstance(generator[0], torch.Generator)):
        raise ValueError(f"generator must be one torch.Generator (one video), got a list of {len(generator)}")
    if generator is not None and not isinstance(generator, (torch.Generator, list)):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    unknown = [k for k in callback_on_step_end_tensor_inputs or [] if k not in CALLBACK_TENSOR_INPUTS]
    if unknown:
        raise ValueError(f"callback_on_step_end_tensor_inputs must be among {CALLBACK_TENSOR_INPUTS}, got {unknown}")
    if output_path is not None:
        inputs = {"audio": audio}
        if isinstance(timeline, (str, os.PathLike)):
            inputs["timeline"] = timeline
        for k, image in enumerate(images or []):
            inputs[f"image {k + 1}"] = image
        check_output_path(output_path, inputs)


def check_timeline_keys(timeline: Timeline, source: KeyframeSource) -> None:
    """A TimelineError naming the first interval (by its label) with a prompt when ``source`` cannot render prompts (keyframe-images
    mode: give image files, or a :class:`~avdiff.pipelines.beat_visualizer.prompt_keyframes.PromptKeyframes` source)."""
    prompts = timeline.prompts()
    if prompts and not getattr(source, "renders_prompts", False):
        k = next(i for i, iv in enumerate(timeline) if isinstance(iv.start, str) or isinstance(iv.end, str))
        raise TimelineError(
            f"{timeline.labels[k]} has the prompt {prompts[0]!r}, but keyframe-images mode takes "
            "images only; give image files, or a text-to-video source for prompts"
        )


def curve_spec(value) -> CurveSpec:
    """A :class:`CurveSpec` from itself, a source name or a dict of its fields; a ValueError otherwise."""
    if isinstance(value, CurveSpec):
        return value
    if isinstance(value, str):
        return CurveSpec(source=value)
    if isinstance(value, dict):
        try:
            return CurveSpec(**value)
        except TypeError as e:
            raise ValueError(f"curve options: {e}") from None
    raise ValueError(f"curve must be a source name, a CurveSpec or a dict of its fields, got {value!r}")


def pattern_settings(value) -> PatternSettings:
    """:class:`PatternSettings` from itself, None (the defaults) or a dict of its fields; a ValueError otherwise."""
    if value is None:
        return PatternSettings()
    if isinstance(value, PatternSettings):
        return value
    if isinstance(value, dict):
        try:
            return PatternSettings(**value)
        except TypeError as e:
            raise ValueError(f"effects: {e}") from None
    raise ValueError(f"effects must be PatternSettings or a dict of its fields, got {value!r}")


def load_images(images: list) -> dict:
    """``{key: uint8 [H, W, 3]}`` (:func:`image_key`) for the images given (paths, PIL images or arrays); a
    ValueError names the one that cannot be read."""
    return {image_key(image, k): read_image(image, f"images[{k}]") for k, image in enumerate(images)}


def image_key(image, k: int) -> Path:
    """An image's key in the timeline: its path, or ``image K`` for one given as pixels."""
    return Path(image) if isinstance(image, (str, os.PathLike)) else Path(f"image {k + 1}")


def load_timeline_images(timeline: Timeline) -> dict:
    """``{path: uint8 [H, W, 3]}`` for every image of the timeline."""
    return {path: read_image(path, f"the timeline's image {str(path)!r}") for path in timeline.images()}


def read_image(image, name: str) -> np.ndarray:
    """One keyframe image as uint8 [H, W, 3]; a ValueError starting with ``name`` when it is missing, unreadable, or
    not 8 to 8192 px on a side."""
    try:
        rgb = load_image(image)
    except FileNotFoundError as e:
        raise ValueError(f"{name}: no such file") from e
    except (OSError, ValueError, SyntaxError, TypeError) as e:
        raise ValueError(f"{name}: cannot be read as an image ({e})") from e
    h, w = rgb.shape[:2]
    if min(h, w) < 8 or max(h, w) > 8192:
        raise ValueError(f"{name}: {w}x{h} px; keyframe images must be 8 to 8192 px on a side")
    return rgb


__all__ = [
    "BeatPlan",
    "BeatVisualizerOutput",
    "BeatVisualizerPipeline",
    "check_inputs",
    "check_plan_inputs",
    "song_frames",
]
