"""The jobs a batch runs: for each, its manifest columns, how its model is loaded (once per process), how a row is
checked before any work, how its video is made, and how it is scored.

* ``talk``: a face photo and speech -> a talking head (the bundled motion model by default,
  :class:`~avdiff.pipelines.MotionTalkingHeadPipeline`; a pixel model, :class:`~avdiff.pipelines.TalkingHeadPipeline`;
  whichever class the model folder's ``model_index.json`` names; or the model-free :class:`~avdiff.pipelines.WarpBaselinePipeline` with ``model="baseline"``); scored by lip sync (the
  mouth openness against the speech envelope, :func:`avdiff.metrics.lipsync.score_video`, as ``avdiff eval lipsync``
  scores it).
* ``visualize``: a song and keyframe images or prompts -> a beat-synced music video
  (:class:`~avdiff.pipelines.BeatVisualizerPipeline`, Generative Disco); scored by the Beat Align Score
  (:func:`avdiff.metrics.beats.score_video`).
* ``scene``: a prompt and sounds -> an audio-aligned scene (:class:`~avdiff.pipelines.AudioScenePipeline`, AADiff);
  not scored.

Each row's generator is seeded with the row's own seed, so a video depends on its row alone, never on the other rows
or on how many processes share the batch.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import ClassVar

import torch

from avdiff.audio.clock import parse_fps
from avdiff.audio.curves import DEFAULT_LEVELS
from avdiff.audio.io import AudioStream
from avdiff.batch.manifest import Column, Row
from avdiff.bundled import DEFAULT_SCENE_MODEL, DEFAULT_TALKING_HEAD_MODEL, PIPELINE_KINDS
from avdiff.loading import load_model, load_pipeline
from avdiff.metrics import beats, lipsync
from avdiff.pipelines import (
    AudioScenePipeline,
    BeatVisualizerPipeline,
    TalkingHeadPipeline,
    TextToVideoPipeline,
    WarpBaselinePipeline,
)
from avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer import DEFAULT_PULSE, curve_spec, pattern_settings
from avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer import check_inputs as check_visualizer_inputs
from avdiff.pipelines.beat_visualizer.prompt_keyframes import PromptKeyframes
from avdiff.pipelines.output import MAX_OUTPUT_SIDE
from avdiff.video.face import detect_face
from avdiff.video.image import load_image
from avdiff.video.reader import read_video

logger = logging.getLogger(__name__)

BASELINE = "baseline"  # the talk job's model name for the model-free warp


def _check_file(row: Row, column: str) -> Path | None:
    """The row's file in ``column`` (None when the column is not given); ValueError when it is not a file."""
    path = row.values.get(column)
    if path is None:
        return None
    if not Path(path).is_file():
        raise ValueError(f"{column} {str(path)!r}: {'not a file' if Path(path).exists() else 'no such file'}")
    return path


def _check_audio(path: Path, column: str, max_duration_s: float | None) -> None:
    """The audio at ``path`` can be read and is not too long (a scan: nothing is held)."""
    try:
        AudioStream(path, max_duration_s=max_duration_s)
    except ValueError as e:  # AudioLoadError names the file and the reason
        raise ValueError(f"{column}: {e}") from e


def _check_image(path: Path, column: str) -> None:
    try:
        load_image(path, max_side=MAX_OUTPUT_SIDE)
    except (OSError, ValueError) as e:
        raise ValueError(f"{column} {str(path)!r} cannot be read as an image ({e})") from e


class Job:
    """One kind of batch job; subclasses define its columns and its four steps.

    Attributes:
        name: the job's name (``avdiff batch NAME``).
        default_model: the model used when none is named.
        columns: its manifest columns (:class:`~avdiff.batch.manifest.Column`), besides ``name`` and ``seed``.
        score_name: the score of its report (None: not scored).
    """

    name: str = ""
    default_model: str | None = None
    columns: ClassVar[dict[str, Column]] = {}
    score_name: str | None = None

    def load(self, model: str | None, device: torch.device | str, variant: str | None, rows: list[Row]):
        """The job's pipeline on ``device``, loaded once per process for ``rows`` (those it will make); ValueError:
        no such model."""
        raise NotImplementedError

    def check(self, pipe, row: Row, output: Path, max_duration_s: float | None) -> None:
        """Raise a ValueError with the reason the row cannot be made into ``output`` (missing file, unreadable audio,
        no face, a setting the pipeline refuses). Runs for every row before any video is made."""
        raise NotImplementedError

    def make(self, pipe, row: Row, output_path: Path, max_duration_s: float | None):
        """Make the row's video, streamed to ``output_path`` (written atomically); returns the pipeline's output."""
        raise NotImplementedError

    def score(self, output_path: Path) -> dict | None:
        """The video's scores for the report, or None when the job has none; ``{"reason": ...}`` when unscored."""
        return None

    @staticmethod
    def generator(row: Row) -> torch.Generator:
        """The row's own generator, seeded with its seed (on the CPU, as every pipeline draws its noise)."""
        return torch.Generator().manual_seed(row.seed)


# A talk row's settings for each kind of talking-head model: column -> the pipeline's argument.
MOTION_SETTINGS = {
    "expressiveness": "guidance_scale",
    "blink_rate": "blink_rate_per_min",
    "head_motion": "head_amount",
    "paint_mouth": "paint_mouth",
    "mouth_steps": "mouth_steps",
}
PIXEL_SETTINGS = {"audio_guidance": "audio_guidance_scale", "reference_guidance": "reference_guidance_scale"}


def _call_defaults(pipe, names) -> dict:
    """The defaults of ``pipe.__call__`` for the argument ``names`` that have one: a row leaves out what the pipeline
    decides itself."""
    params = inspect.signature(type(pipe).__call__).parameters
    return {n: params[n].default for n in names if n in params and params[n].default is not inspect.Parameter.empty}


class TalkJob(Job):
    name: str = "talk"
    default_model: str = DEFAULT_TALKING_HEAD_MODEL
    score_name: str = "lip sync r"
    columns: ClassVar[dict[str, Column]] = {
        "image": Column("path", required=True, help="face photo"),
        "audio": Column("path", required=True, help="speech (any audio file, or a video's audio track)"),
        "fps": Column("fps", help="frame rate (default 25)"),
        "steps": Column("int", help="denoising steps (default: 10 per motion window, 20 per chunk of a pixel model)"),
        "expressiveness": Column("float", help="motion models: guidance on the audio, >= 0 (default 2)"),
        "blink_rate": Column("float", help="motion models: blinks per minute (default 15)"),
        "head_motion": Column(
            "float", help="motion models: head motion with the speech, >= 0; 0 keeps the head still (default 1)"
        ),  # fmt: skip
        "paint_mouth": Column(
            "bool", help="motion models: paint teeth and tongue with the mouth painter (default no)"
        ),
        "mouth_steps": Column("int", help="motion models, with paint_mouth: the painter's DDIM steps (default 4)"),
        "audio_guidance": Column("float", help="pixel models: audio guidance scale (default 2)"),
        "reference_guidance": Column("float", help="pixel models: reference guidance scale (default 1.5)"),
    }

    def load(self, model, device, variant, rows):
        if model == BASELINE:
            return None  # the warp has no weights; it is made per row, at the row's frame rate
        # the class the folder's model_index.json names (a motion or a pixel model); a hub id is a pixel model
        name = model or self.default_model
        pipe = load_model(name, variant=variant, device=device, hub_class=TalkingHeadPipeline)
        if PIPELINE_KINDS.get(type(pipe).__name__) != "talking-head":
            talking = sorted(k for k, v in PIPELINE_KINDS.items() if v == "talking-head")
            raise ValueError(f"--model {name!r}: a {type(pipe).__name__}, not a talking-head pipeline ({talking})")
        return pipe

    def _kwargs(self, pipe, row: Row) -> dict:
        """The pipeline call's settings from the row; a column of the other kind of model is a ValueError."""
        v = row.values
        is_motion = type(pipe).__name__ == "MotionTalkingHeadPipeline"
        own, other = (MOTION_SETTINGS, PIXEL_SETTINGS) if is_motion else (PIXEL_SETTINGS, MOTION_SETTINGS)
        wrong = [column for column in other if column in v]
        if wrong:
            kind = "a motion model" if is_motion else "a pixel model"
            raise ValueError(f"column(s) {wrong}: not a setting of {kind} ({type(pipe).__name__})")
        kwargs = {"fps": v.get("fps", 25)} | {own[c]: v[c] for c in own if c in v}
        if "steps" in v:
            kwargs["num_inference_steps"] = v["steps"]
        return kwargs

    def check(self, pipe, row, output, max_duration_s):
        image, audio = _check_file(row, "image"), _check_file(row, "audio")
        _check_audio(audio, "audio", max_duration_s)
        try:
            detect_face(load_image(image, max_side=MAX_OUTPUT_SIDE))
        except (OSError, ValueError) as e:  # NoFaceError is a ValueError
            raise ValueError(f"image {str(image)!r}: {e}") from e
        if pipe is None:
            WarpBaselinePipeline(fps=row.values.get("fps", 25)).check_inputs(
                image=image, audio=audio, max_duration_s=max_duration_s, output_path=output
            )
            return
        names = inspect.signature(pipe.check_inputs).parameters
        settings = _call_defaults(pipe, names) | self._kwargs(pipe, row)
        settings |= {"image": image, "audio": audio, "generator": self.generator(row)}
        settings |= {"max_duration_s": max_duration_s, "output_path": output}
        if "chunk_frames" in names:  # a pixel model's chunking: its own when the call leaves it out
            settings |= {"chunk_frames": pipe.chunk_frames, "motion_frames": pipe.motion_frames}
        pipe.check_inputs(**{name: value for name, value in settings.items() if name in names})

    def make(self, pipe, row, output_path, max_duration_s):
        image, audio = row.values["image"], row.values["audio"]
        if pipe is None:
            warp = WarpBaselinePipeline(fps=row.values.get("fps", 25))
            warp.set_progress_bar_config(disable=True)
            return warp(image, audio, max_duration_s=max_duration_s, output_path=output_path)
        return pipe(
            image,
            audio,
            **self._kwargs(pipe, row),
            generator=self.generator(row),
            max_duration_s=max_duration_s,
            output_path=output_path,
        )

    def score(self, output_path):
        result = lipsync.score_video(read_video(output_path))
        if not result.scored:
            return {"reason": result.reason}
        return {"lip sync r": result.r_envelope, "offset_frames": result.offset_frames}


class VisualizeJob(Job):
    name: str = "visualize"
    default_model: str = DEFAULT_SCENE_MODEL
    score_name: str = "Beat Align Score"
    columns: ClassVar[dict[str, Column]] = {
        "audio": Column("path", required=True, help="the song"),
        "images": Column("paths", help="keyframe images, separated by ';' (or give prompts)"),
        "prompts": Column("text", help="keyframe prompts separated by ';', rendered by the model"),
        "fps": Column("fps", help="frame rate (default 25)"),
        "size": Column("int", help="frame side in px (default: the keyframes')"),
        "steps": Column("int", help="denoising steps per prompt keyframe (default 20)"),
        "beats_per_interval": Column("int", help="beats from one keyframe to the next (default 8)"),
    }

    def load(self, model, device, variant, rows):
        """The text-to-video model that renders prompt keyframes when a row has prompts, else None (images need no
        model)."""
        if not any("prompts" in row.values for row in rows):
            return None
        return load_pipeline(TextToVideoPipeline, model or self.default_model, variant=variant, device=device)

    def _source(self, t2v, row: Row):
        if "prompts" not in row.values:
            return None
        return PromptKeyframes(t2v, num_inference_steps=row.values.get("steps", 20), seed=row.seed)

    def _kwargs(self, row: Row) -> dict:
        v = row.values
        prompts = [p.strip() for p in str(v.get("prompts", "")).split(";") if p.strip()] or None
        return {
            "images": [str(p) for p in v["images"]] if "images" in v else None,
            "prompts": prompts,
            "fps": v.get("fps", 25),
            "height": v.get("size"),
            "width": v.get("size"),
            "beats_per_interval": v.get("beats_per_interval", 8),
        }

    def check(self, pipe, row, output, max_duration_s):
        _check_audio(_check_file(row, "audio"), "audio", max_duration_s)
        if ("images" in row.values) == ("prompts" in row.values):
            raise ValueError("give keyframe images or prompts (one of the two)")
        for path in row.values.get("images", []):
            if not Path(path).is_file():
                raise ValueError(f"images {str(path)!r}: no such file")
            _check_image(path, "images")
        kwargs = self._kwargs(row)
        if "prompts" in row.values and not kwargs["prompts"]:
            raise ValueError("prompts: no prompt between the ';'")
        if "steps" in row.values and row.values["steps"] < 1:
            raise ValueError(f"steps must be >= 1, got {row.values['steps']}")
        check_visualizer_inputs(  # the pipeline's own checks, with its defaults for what a row does not set
            BeatVisualizerPipeline(self._source(pipe, row)).source,
            audio=str(row.values["audio"]),
            timeline=None,
            images=kwargs["images"],
            prompts=kwargs["prompts"],
            beats_per_interval=kwargs["beats_per_interval"],
            patterns=["subject"],
            curve=curve_spec("beats"),
            pulse=curve_spec(DEFAULT_PULSE),
            effects=pattern_settings(None),
            fps=kwargs["fps"],
            height=kwargs["height"],
            width=kwargs["width"],
            interpolation="auto",
            batch_size=8,
            output_type="np",
            callback_on_step_end_tensor_inputs=None,
            max_duration_s=max_duration_s,
            output_path=output,
            rhythm=None,
            generator=self.generator(row),
        )

    def make(self, pipe, row, output_path, max_duration_s):
        visualizer = BeatVisualizerPipeline(self._source(pipe, row))  # pipe: the text-to-video model, or None
        visualizer.set_progress_bar_config(disable=True)
        return visualizer(
            str(row.values["audio"]),
            **self._kwargs(row),
            generator=self.generator(row),
            max_duration_s=max_duration_s,
            output_path=output_path,
        )

    def score(self, output_path):
        result = beats.score_video(output_path)
        if not result.scored:
            return {"reason": result.reason}
        return {"Beat Align Score": result.beat_align_score}


class SceneJob(Job):
    name: str = "scene"
    default_model: str = DEFAULT_SCENE_MODEL
    columns: ClassVar[dict[str, Column]] = {
        "prompt": Column("text", required=True, help="the scene's prompt"),
        "audio": Column("paths", required=True, help="the sounds, separated by ';' (one word each)"),
        "image": Column("path", help="a start image, inverted into the scene"),
        "fps": Column("fps", help="frame rate (default: the model's)"),
        "size": Column("int", help="frame side in px (default: the model's)"),
        "steps": Column("int", help="DDIM steps (default 25)"),
    }

    def load(self, model, device, variant, rows):
        return load_pipeline(AudioScenePipeline, model or self.default_model, variant=variant, device=device)

    def check(self, pipe, row, output, max_duration_s):
        for path in row.values["audio"]:
            if not Path(path).is_file():
                raise ValueError(f"audio {str(path)!r}: no such file")
            _check_audio(path, "audio", max_duration_s)
        image = _check_file(row, "image")
        if image is not None:
            _check_image(image, "image")
        v = row.values
        pipe.check_inputs(  # the pipeline's own checks, with its defaults for what a row does not set
            prompt=v["prompt"],
            sounds=[str(p) for p in v["audio"]],
            target_words=None,
            strength=1.0,
            smoothing_s=0.0,
            signal="rms",
            levels=DEFAULT_LEVELS,
            fps=parse_fps(v["fps"]) if "fps" in v else pipe.t2v.fps,
            chunk_frames=1,
            negative_prompt=None,
            height=v.get("size", pipe.t2v.default_size),
            width=v.get("size", pipe.t2v.default_size),
            num_inference_steps=v.get("steps", 25),
            guidance_scale=3.0,
            latents=None,
            generator=self.generator(row),
            output_path=output,
        )

    def make(self, pipe, row, output_path, max_duration_s):
        v = row.values
        return pipe(
            v["prompt"],
            [str(p) for p in v["audio"]],
            fps=v.get("fps"),
            num_inference_steps=v.get("steps", 25),
            image=str(v["image"]) if "image" in v else None,
            height=v.get("size"),
            width=v.get("size"),
            generator=self.generator(row),
            max_duration_s=max_duration_s,
            output_path=output_path,
        )


JOBS: dict[str, Job] = {job.name: job for job in (TalkJob(), VisualizeJob(), SceneJob())}


def get_job(name: str) -> Job:
    """The job called ``name`` (ValueError naming the jobs there are)."""
    if name not in JOBS:
        raise ValueError(f"no batch job {name!r}; jobs: {sorted(JOBS)}")
    return JOBS[name]
