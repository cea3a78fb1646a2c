"""The music tab: a song and keyframe images or prompts in, a beat-synced music video out (Generative Disco).

Images need no model and no downloads. Prompts are rendered by a text-to-video model of the registry (the bundled
scene model, offline, or the user's ``--model`` folder) through
:class:`~avdiff.pipelines.beat_visualizer.prompt_keyframes.PromptKeyframes`, at the model's own frame size.

**Plan** analyses the song's beats and lays the images (or prompts) on them (:meth:`BeatVisualizerPipeline.plan`, the
steps of a render before its first frame): an editable table of intervals and a plot of the chosen curve with the
beats marked, before anything is rendered. **Render** makes the video from the table (as edited) with
:class:`~avdiff.pipelines.BeatVisualizerPipeline`, the song muxed in, and scores it exactly as ``avdiff eval beats``
does (:func:`avdiff.metrics.beats.score_video`).

Named endpoints: ``plan(song, images, curve, beats_per_interval, patterns, fps, prompts) -> (table, plot, info)`` and
``render(song, images, table, curve, fps, height, model) -> (video, summary, scores)``. The table holds one row per
interval, ``[start_s, end_s, start, end, pattern]``, with keyframes as ``image:NAME`` (the uploaded file's name) or as
a prompt's text.
"""

from __future__ import annotations

import logging
import os
import shutil
from contextlib import nullcontext
from fractions import Fraction
from pathlib import Path

import gradio as gr
import numpy as np

from avdiff.audio.curves import SOURCES, CurveSpec
from avdiff.demo.context import TabContext, remove_quietly
from avdiff.demo.inputs import FPS_CHOICES, InputError, file_path, frame_rate, page_sentence, upload_limit
from avdiff.demo.status import StatusLine
from avdiff.metrics.beats import score_video
from avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer import BeatVisualizerPipeline, read_image
from avdiff.pipelines.beat_visualizer.prompt_keyframes import PromptKeyframes
from avdiff.pipelines.beat_visualizer.timeline import PATTERNS, Timeline

logger = logging.getLogger(__name__)

KIND = "music"
OUTPUT_NAME = "music.mp4"
HEADERS = ["start_s", "end_s", "start", "end", "pattern"]
MAX_IMAGES = 32
MAX_PROMPTS = 32
MAX_PROMPT_CHARS = 300
T2V_KIND = "text-to-video"


class MusicTab:
    """Plan a music video on a song's beats, edit the plan, render it with the song."""

    title = "Music video"

    def build(self, ctx: TabContext) -> None:
        self.ctx = ctx
        self._pipelines: dict[str, object] = {}  # text-to-video model key -> its BeatVisualizerPipeline
        gr.Markdown(
            "Upload a song (or record one) and a few images, or write a few prompts. **Plan** lays them on "
            "the beats: edit the table and look at the curve, then **Render** makes the video with the song "
            "and scores how its changes land on the beats."
        )
        t2v = ctx.models.choices(T2V_KIND)
        with gr.Row():
            with gr.Column():
                song = gr.Audio(
                    label=f"Song ({upload_limit(ctx.limits, audio=True)})",
                    type="filepath",
                    sources=["upload", "microphone"],
                    elem_id="mv-song",
                )
                images = gr.File(
                    label=f"Keyframe images (in order; up to {MAX_IMAGES}, {upload_limit(ctx.limits)} each)",
                    file_count="multiple",
                    file_types=["image"],
                    elem_id="mv-images",
                )
                prompts = gr.Textbox(
                    label="... or keyframe prompts, one per line (instead of images)",
                    lines=3,
                    placeholder="a campfire on the left by day\na lake at sunset\na red car at night",
                    elem_id="mv-prompts",
                )
                model = gr.Dropdown(
                    [(e.label, e.key) for e in t2v],
                    value=t2v[0].key if t2v else None,
                    label="Text-to-video model (for prompts)",
                    elem_id="mv-model",
                    info="Prompts are rendered at the model's own frame size.",
                )
                with gr.Accordion("Settings", open=True):
                    with gr.Row():
                        curve = gr.Dropdown(
                            list(SOURCES),
                            value="beats",
                            label="Curve",
                            elem_id="mv-curve",
                            info="What paces the move from keyframe to keyframe.",
                        )
                        beats = gr.Slider(1, 32, 8, step=1, label="Beats per interval", elem_id="mv-beats")
                    patterns = gr.CheckboxGroup(
                        list(PATTERNS),
                        value=["subject"],
                        label="Patterns",
                        info="The intervals cycle through these: transitions (subject, "
                        "color, style, time) and holds (drift, pulse).",
                        elem_id="mv-patterns",
                    )
                    with gr.Row():
                        fps = gr.Dropdown(
                            FPS_CHOICES, value="25", allow_custom_value=True, label="Frame rate", elem_id="mv-fps"
                        )
                        height = gr.Slider(
                            64,
                            1024,
                            256,
                            step=16,
                            label="Frame height (px)",
                            elem_id="mv-height",
                            info="The width follows the first image's aspect.",
                        )
                plan_button = gr.Button("Plan from the beats", elem_id="mv-plan")
                status = StatusLine("mv-status")
            with gr.Column():
                plot = gr.Image(label="The curve, with the beats marked", interactive=False, elem_id="mv-plot")
                info = gr.Markdown(elem_id="mv-info")
                table = gr.Dataframe(
                    headers=HEADERS,
                    datatype=["number", "number", "str", "str", "str"],
                    interactive=True,
                    label="Timeline (editable)",
                    elem_id="mv-table",
                )
                render_button = gr.Button("Render", variant="primary", elem_id="mv-render")
                video = gr.Video(label="Music video (with the song)", interactive=False, elem_id="mv-video")
                summary = gr.Markdown(elem_id="mv-summary")
                with gr.Accordion("All scores (JSON)", open=False):
                    scores = gr.JSON(label="Beat alignment", elem_id="mv-scores")

        planned = plan_button.click(
            ctx.in_worker(self.plan),
            [song, images, curve, beats, patterns, fps, prompts],
            [table, plot, info],
            api_name="plan",
            preprocess=False,
            concurrency_limit=2,
            concurrency_id="music_plan",
        )
        rendered = render_button.click(
            ctx.in_worker(self.render),
            [song, images, table, curve, fps, height, model],
            [video, summary, scores],
            api_name="render",
            preprocess=False,
            **ctx.generation_event(),
        )
        self.status = status
        status.follow(planned)
        status.follow(rendered)

    # --- events -------------------------------------------------------------------------------------------------

    def plan(
        self,
        song,
        images,
        curve,
        beats_per_interval,
        patterns,
        fps,
        prompts=None,
        progress=gr.Progress(),
        request: gr.Request = None,
    ):
        """The timeline laid on the beats (table rows), the curve's plot and a line about the rhythm. The keyframes
        are the images, or the prompts (one per line) when no image is given.

        Raises:
            gr.Error: one sentence for any bad input.
        """
        try:
            path = song_path(song)
            keys = plan_keys(images, prompts)
            rate = frame_rate(fps, self.ctx.limits)
            spec = CurveSpec(source=str(curve)).check()
            count = whole_number(beats_per_interval, "beats per interval")
            chosen = [p for p in (patterns or []) if p in PATTERNS] or ["subject"]
            given = {"images": keys} if isinstance(keys[0], Path) else {"prompts": keys}
            progress((0, 2), desc="finding the song's beats and laying the keyframes on them", unit="stages")
            plan = BeatVisualizerPipeline().plan(
                path,
                **given,
                beats_per_interval=count,
                patterns=chosen,
                curve=spec,
                fps=rate,
                max_duration_s=self.ctx.limits.max_audio_s,
            )
            progress((1, 2), desc="drawing the curve", unit="stages")
            picture = plan.plot()
        except Exception as e:
            raise self.status.error(page_sentence(e, self.ctx.limits, "music"), request) from None
        rhythm, timeline = plan.rhythm, plan.timeline
        downbeats = f"{len(rhythm.downbeat_times_s)} downbeats" if len(rhythm.downbeat_times_s) else "no downbeats"
        line = (
            f"{rhythm.tempo_bpm:.1f} BPM, {len(rhythm.beat_times_s)} beats, {downbeats}; {len(timeline)} "
            f"intervals of {count} beats over {plan.duration_s:.1f} s."
        )
        return {"headers": HEADERS, "data": timeline.rows()}, picture, line

    def render(
        self, song, images, table, curve, fps, height, model=None, progress=gr.Progress(), request: gr.Request = None
    ):
        """Render the table's timeline with the song; returns the mp4's path, the beat-alignment summary (Markdown)
        and every score (a dict, as ``avdiff eval beats --json`` prints it). Prompts in the table are rendered by
        ``model`` (a registry key of a text-to-video model), at its frame size.

        Raises:
            gr.Error: one sentence for any bad input; a generic sentence (and a logged traceback) for anything else.
        """
        folder = None
        try:
            path = song_path(song)
            rate = frame_rate(fps, self.ctx.limits)
            side = whole_number(height, "frame height")
            rows = table_rows(table)
            folder = self.ctx.request_dir(KIND)
            timeline = Timeline.from_rows(rows, base=folder)
            if timeline.images():
                uploads = keyframe_names(image_paths(images))
                check_table_images(timeline, folder, uploads)
                for name, upload in uploads.items():
                    shutil.copyfile(upload, folder / name)
            lock, pipe = self.prompt_pipeline(model) if timeline.prompts() else (None, BeatVisualizerPipeline())
            pipe.set_progress_bar_config(disable=True)

            def on_frame(p, i: int, t, tensors: dict) -> dict:
                if i % 25 == 0 or i + 1 == p.num_frames:
                    progress(
                        (i + 1, p.num_frames),
                        desc=f"interval {p.interval_index + 1} of {p.num_intervals}",
                        unit="frames",
                    )
                return tensors

            progress((0, 1), desc="analysing the song's beats", unit="stages")
            size = {} if lock is not None else {"height": side}  # prompts: the model's own size
            with lock or nullcontext():
                out = pipe(
                    path,
                    timeline,
                    curve=str(curve),
                    fps=rate,
                    callback_on_step_end=on_frame,
                    max_duration_s=self.ctx.limits.max_audio_s,
                    output_path=folder / OUTPUT_NAME,
                    **size,
                )
            progress((1, 1), desc="scoring beat alignment (as avdiff eval beats does)", unit="stages")
            result = score_video(out.path)
        except Exception as e:
            if folder is not None:
                remove_quietly(folder)
            raise self.status.error(page_sentence(e, self.ctx.limits, "music"), request) from None
        return str(out.path), format_alignment(result, out.num_frames, out.fps), result.to_dict()

    def prompt_pipeline(self, model: object):
        """``(lock, BeatVisualizerPipeline)`` over the registry's text-to-video model ``model`` (one per model, kept
        across requests so that a re-render of an edited table reuses its keyframes; used only under the lock);
        InputError when there is none."""
        keys = [e.key for e in self.ctx.models.choices(T2V_KIND)]
        if not keys:
            raise InputError(
                "The timeline has prompts, but this app has no text-to-video model to render them; use "
                "images, or start it with --model NAME=FOLDER of a saved text-to-video pipeline."
            )
        if model not in keys:
            raise InputError(f"Choose a text-to-video model for the prompts (one of {', '.join(keys)}).")
        pipe, lock = self.ctx.models.acquire(model)
        with lock:
            if model not in self._pipelines:
                self._pipelines[model] = BeatVisualizerPipeline(PromptKeyframes(pipe))
        return lock, self._pipelines[model]


def plan_keys(images: object, prompts: object) -> list:
    """The keyframes to lay on the beats: the uploaded images' names (as Paths), or the prompts when no image was
    given; InputError for both, neither, or too many."""
    lines = prompt_lines(prompts)
    has_images = bool(images) if not isinstance(images, (list, tuple)) else len(images) > 0
    if lines and has_images:
        raise InputError("Give keyframe images or prompts, not both.")
    if lines:
        return lines
    if not has_images:
        raise InputError("Give keyframe images or prompts first: upload one or more images, or write prompts.")
    return [Path(n) for n in keyframe_names(image_paths(images))]


def prompt_lines(text: object) -> list[str]:
    """The non-empty lines of the prompts box; InputError for too many or too long."""
    if text is None:
        return []
    if not isinstance(text, str):
        raise InputError(f"The prompts must be text, one per line, got {type(text).__name__}.")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_PROMPTS:
        raise InputError(f"{len(lines)} prompts were given; this app takes at most {MAX_PROMPTS}.")
    long = [line for line in lines if len(line) > MAX_PROMPT_CHARS]
    if long:
        raise InputError(f"A prompt is {len(long[0])} characters long; at most {MAX_PROMPT_CHARS}.")
    return lines


def song_path(payload: object) -> str:
    """The uploaded or recorded song's path; InputError when none was given or the file is empty."""
    path = file_path(payload)
    if path is None:
        raise InputError("Give a song first: upload an audio file or record one.")
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise InputError("The audio file is empty.")
    return path


def image_paths(payload: object) -> list[str]:
    """The uploaded images' paths, in order; InputError for none, too many, or an unreadable one (checked here, so
    the sentence names the file)."""
    items = payload if isinstance(payload, (list, tuple)) else ([] if payload is None else [payload])
    paths = [p for p in (file_path(item) for item in items) if p]
    if not paths:
        raise InputError("Give keyframe images first: upload one or more images.")
    if len(paths) > MAX_IMAGES:
        raise InputError(f"{len(paths)} images were given; this app takes at most {MAX_IMAGES}.")
    for path in paths:
        name = os.path.basename(path)
        try:
            read_image(path, name)
        except ValueError as e:
            if e.__cause__ is not None:  # the reader's own words name the server's copy of the file
                raise InputError(
                    f"The image {name}: cannot be read as an image (not an image file, or corrupt or truncated)."
                ) from e
            raise InputError(f"The image {e}.") from e
    return paths


def check_table_images(timeline: Timeline, folder: Path, uploads: dict[str, str]) -> None:
    """InputError naming every row whose image is not one of the uploads (by the name the table uses, never a
    server path)."""
    allowed = {folder / name for name in uploads}
    missing = []
    for label, iv in zip(timeline.labels, timeline):
        for key in (iv.start, iv.end):
            if isinstance(key, Path) and key not in allowed:
                shown = key.relative_to(folder) if key.is_relative_to(folder) else key
                missing.append(f"{label}: image:{shown} is not one of the uploaded images")
    if missing:
        text = f"{'; '.join(dict.fromkeys(missing))} ({', '.join(uploads)})."
        raise InputError(text[0].upper() + text[1:])


def keyframe_names(paths: list[str]) -> dict[str, str]:
    """``{name: path}``: each upload's file name (numbered ``K_name`` when two share one), the name the table
    uses."""
    names = [os.path.basename(p) for p in paths]
    out = {}
    for k, (name, path) in enumerate(zip(names, paths)):
        out[name if names.count(name) == 1 else f"{k + 1}_{name}"] = path
    return out


def table_rows(table: object) -> list[list]:
    """The rows of a Dataframe payload (``{"headers", "data"}``), a list of rows, or a pandas DataFrame."""
    if table is None:
        raise InputError("Plan the timeline first (or fill in the table).")
    if isinstance(table, dict):
        table = table.get("data")
    elif hasattr(table, "values") and hasattr(table, "columns"):
        table = table.values.tolist()
    if not isinstance(table, list) or not table:
        raise InputError("Plan the timeline first (or fill in the table).")
    return [list(row) for row in table]


def whole_number(value: object, label: str) -> int:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value) or value != int(value):
        raise InputError(f"The {label} must be a whole number, got {value!r}.")
    return int(value)


def format_alignment(result, num_frames: int, fps: Fraction) -> str:
    """The beat-alignment scores as a Markdown table, or why there is none."""
    head = f"{num_frames} frames at {fps} fps."
    if not result.scored:
        return f"{head} **No beat-alignment score:** {result.reason}."
    return "\n".join(
        [
            head,
            "",
            "| | |",
            "| --- | --- |",
            f"| Beat Align Score (over visual peaks, sigma {result.sigma_s * 1000:g} ms) | {result.beat_align_score:.3f} |",
            f"| Beat Align Score (over music beats) | {result.beat_align_score_music:.3f} |",
            f"| hit rate (beats with a visual peak within 1 frame) | {result.hit_rate:.3f} |",
            f"| chance (peaks placed at random) | {result.chance:.3f} |",
        ]
    )


__all__ = ["MusicTab", "format_alignment", "keyframe_names", "plan_keys", "prompt_lines", "table_rows"]
