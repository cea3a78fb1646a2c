"""The talking-head tab: a face photo and speech in, a lip-synced mp4 and its lip-sync score out.

It calls the same pipelines as the Python API and ``avdiff talk`` (:class:`~avdiff.pipelines.TalkingHeadPipeline`,
:class:`~avdiff.pipelines.MotionTalkingHeadPipeline`, :class:`~avdiff.pipelines.WarpBaselinePipeline`) and scores the
written file exactly as ``avdiff eval lipsync --syncnet avdiff/syncnet-motion`` does
(:func:`avdiff.metrics.lipsync.score_video` of :func:`avdiff.video.read_video`, and the bundled SyncNet's offset, LSE-C
and LSE-D by :func:`avdiff.evaluation.syncnet.syncnet_scores_or_reason`).

Named endpoints: ``detect_face(image) -> (preview, info)`` and ``talk(image, audio, model, steps, audio_guidance,
reference_guidance, seed, fps, chunk_frames, motion_frames, blink_rate=15, head_motion=1, still_head=False,
paint_mouth=False) -> (video, score, scores)``; a motion model's motion is also kept in the page's state and plotted
under the video.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from fractions import Fraction

import gradio as gr
import numpy as np

from avdiff.audio.io import load_audio
from avdiff.demo.context import TabContext, remove_quietly
from avdiff.demo.examples import example_files
from avdiff.demo.inputs import (
    FPS_CHOICES,
    NO_FACE_MESSAGE,
    InputError,
    frame_rate,
    load_photo,
    load_speech,
    page_sentence,
    upload_limit,
)
from avdiff.demo.models import ModelEntry
from avdiff.demo.preview import describe_faces, draw_faces
from avdiff.demo.scores import format_lipsync
from avdiff.demo.status import StatusLine

logger = logging.getLogger(__name__)

KIND = "talking-head"
OUTPUT_NAME = "talking_head.mp4"
SYNCNET = "avdiff/syncnet-motion"  # the bundled sync expert the page scores every video with
WARM_S = 1.0  # seconds of the example a worker makes and scores before its first job (TalkingHeadTab.warm)


def pipeline_defaults(entry: ModelEntry | None = None) -> dict:
    """The defaults of the pipeline's ``__call__`` that the controls start from: ``TalkingHeadPipeline``'s, with the
    chunk layout the model's own (the one it was trained with), else the pipeline's default; a motion model's steps
    and audio guidance from ``MotionTalkingHeadPipeline``."""
    from avdiff.pipelines.talking_head.pipeline_talking_head import (
        DEFAULT_CHUNK_FRAMES,
        DEFAULT_MOTION_FRAMES,
        TalkingHeadPipeline,
    )

    params = inspect.signature(TalkingHeadPipeline.__call__).parameters
    names = ["fps", "num_inference_steps", "audio_guidance_scale", "reference_guidance_scale"]
    out = {name: params[name].default for name in names}
    layout = entry.chunk_layout() if entry is not None else None
    out["chunk_frames"], out["motion_frames"] = layout or (DEFAULT_CHUNK_FRAMES, DEFAULT_MOTION_FRAMES)
    if entry is not None and entry.is_motion:
        from avdiff.pipelines.talking_head.pipeline_motion_talking_head import MotionTalkingHeadPipeline

        motion = inspect.signature(MotionTalkingHeadPipeline.__call__).parameters
        out["num_inference_steps"] = motion["num_inference_steps"].default
        out["audio_guidance_scale"] = motion["guidance_scale"].default
    return out


class TalkingHeadTab:
    """Animate a face photo with speech, by a saved pipeline, a bundled one or the warp baseline."""

    title = "Talking head"

    def build(self, ctx: TabContext) -> None:
        self.ctx = ctx
        entries = ctx.models.choices(KIND)
        default = entries[0]
        d = pipeline_defaults(default)
        gr.Markdown(
            "Upload a face photo (or take one with the webcam) and speech (or record it). The detected face "
            "appears at once; **Generate** makes the video, with the speech, and scores its lip "
            "sync."
        )
        with gr.Row():
            with gr.Column():
                with gr.Row(equal_height=True):
                    image = gr.Image(
                        label=f"Face photo ({upload_limit(ctx.limits, image=True)})",
                        sources=["upload", "webcam", "clipboard"],
                        type="filepath",
                        elem_id="th-image",
                        height=220,
                    )
                    audio = gr.Audio(
                        label=f"Speech ({upload_limit(ctx.limits, audio=True)})",
                        type="filepath",
                        sources=["upload", "microphone"],
                        elem_id="th-audio",
                    )
                model = gr.Dropdown(
                    [(e.label, e.key) for e in entries],
                    value=default.key,
                    label="Model",
                    info="Your saved pipelines first, then bundled ones, then the warp baseline.",
                    elem_id="th-model",
                )
                button = gr.Button("Generate", variant="primary", elem_id="th-generate")
                status = StatusLine("th-status")
                gr.Examples(
                    [list(map(str, example_files()))],
                    inputs=[image, audio],
                    elem_id="th-examples",
                    label="Example: scikit-image's astronaut with espeak-ng speech",
                )
                model_info = gr.Markdown(describe_entry(default), elem_id="th-model-info")
                with gr.Accordion("Settings", open=False, elem_id="th-settings"):
                    with gr.Column(visible=default.is_diffusion, elem_id="th-diffusion-settings") as diffusion_box:
                        with gr.Row():
                            steps = gr.Slider(
                                1,
                                100,
                                d["num_inference_steps"],
                                step=1,
                                label="Steps",
                                info="Denoising steps per chunk (per motion window for a motion model): more is slower.",
                            )
                            seed = gr.Number(
                                0,
                                precision=0,
                                minimum=0,
                                maximum=2**32 - 1,
                                label="Seed",
                                info="Draws all the noise: the same seed gives the same video.",
                            )
                        audio_guidance = gr.Slider(
                            1,
                            10,
                            d["audio_guidance_scale"],
                            step=0.1,
                            label="Audio guidance",
                            info="How strongly the mouth follows the speech (classifier-free guidance; 1 = plain; a "
                            "motion model's expressiveness).",
                        )
                        with gr.Column(visible=default.is_motion, elem_id="th-motion-settings") as motion_box:
                            with gr.Row():
                                blink_rate = gr.Slider(  # the range the shipped motion model was trained on
                                    7,
                                    30,
                                    15,
                                    step=1,
                                    label="Blinks per minute",
                                    info="How often the eyes blink (people: 10-20 a minute).",
                                )
                                head_motion = gr.Slider(
                                    0,
                                    2,
                                    1,
                                    step=0.1,
                                    label="Head motion",
                                    info="Sway and nods: 0 still, 1 natural.",
                                )
                            with gr.Row():
                                still_head = gr.Checkbox(False, label="Still head (keep the photo's pose)")
                                paint_mouth = gr.Checkbox(
                                    False,
                                    label="Paint teeth and tongue",
                                    info="The mouth painter fills the open lips (slower; off: a dark cavity).",
                                )
                        with gr.Column(visible=not default.is_motion, elem_id="th-pixel-settings") as pixel_box:
                            reference_guidance = gr.Slider(
                                1,
                                10,
                                d["reference_guidance_scale"],
                                step=0.1,
                                label="Reference guidance",
                                info="How strongly the face keeps the photo's look (1 = off).",
                            )
                            with gr.Row():
                                chunk_frames = gr.Slider(
                                    2,
                                    32,
                                    d["chunk_frames"],
                                    step=1,
                                    label="Chunk frames",
                                    info="Frames denoised together; use the model's training chunk_frames.",
                                )
                                motion_frames = gr.Slider(
                                    0,
                                    8,
                                    d["motion_frames"],
                                    step=1,
                                    label="Motion frames",
                                    info="Frames of the previous chunk each chunk continues from.",
                                )
                    fps = gr.Dropdown(
                        FPS_CHOICES,
                        value=str(d["fps"]),
                        allow_custom_value=True,
                        label="Frame rate",
                        info="Frames per second of the video (25, 30000/1001, ...).",
                        elem_id="th-fps",
                    )
            with gr.Column():
                preview = gr.Image(label="Detected face", interactive=False, elem_id="th-preview", height=220)
                face_info = gr.Markdown(elem_id="th-face-info")
                video = gr.Video(label="Talking head (with the speech)", interactive=False, elem_id="th-video")
                motion_plot = gr.Image(  # no label drawn: it would lie over the plot's top left (its axes say it)
                    label="What the face did: mouth opening, eyelids, head pose",
                    show_label=False,
                    interactive=False,
                    visible=False,
                    elem_id="th-motion-plot",
                )
                motion_state = gr.State(None)
                score = gr.Markdown(elem_id="th-score")
                with gr.Accordion("All scores (JSON)", open=False):
                    scores = gr.JSON(label="Lip-sync scores", elem_id="th-scores")

        model.change(
            self.select_model,
            [model],
            [diffusion_box, pixel_box, motion_box, steps, audio_guidance, model_info, chunk_frames, motion_frames],
            queue=False,
            api_visibility="private",
        )
        image.change(
            self.detect_face,
            [image],
            [preview, face_info],
            api_name="detect_face",
            preprocess=False,
            concurrency_limit=4,
            concurrency_id="detect_face",
            show_progress="minimal",
        )
        inputs = [
            image,
            audio,
            model,
            steps,
            audio_guidance,
            reference_guidance,
            seed,
            fps,
            chunk_frames,
            motion_frames,
            blink_rate,
            head_motion,
            still_head,
            paint_mouth,
        ]
        talked = button.click(
            ctx.in_worker(self.talk),
            inputs,
            [video, score, scores, motion_state],
            api_name="talk",
            preprocess=False,
            **ctx.generation_event(),
        )
        # after a success only: a failed request leaves the state of the one before
        talked.success(self.show_motion, [motion_state], [motion_plot], queue=False, api_visibility="private")
        self.status = status
        status.follow(talked)

    # --- events -------------------------------------------------------------------------------------------------

    def select_model(self, key: str):
        """Show the denoising controls for a diffusion model (a pixel model's also set to the chunk layout it was
        trained with; a motion model takes steps, audio guidance and seed); the warp baseline only takes the frame
        rate."""
        entry = self.ctx.models.get(key)
        d = pipeline_defaults(entry)
        return (
            gr.update(visible=entry.is_diffusion),
            gr.update(visible=not entry.is_motion),
            gr.update(visible=entry.is_motion),
            gr.update(value=d["num_inference_steps"]),
            gr.update(value=d["audio_guidance_scale"]),
            describe_entry(entry),
            gr.update(value=d["chunk_frames"]),
            gr.update(value=d["motion_frames"]),
        )

    def detect_face(self, image: object) -> tuple[np.ndarray | None, str]:
        """The photo with its faces drawn, and a line saying how many and which one is animated."""
        from avdiff.video.face import detect_faces

        if image is None:
            return None, ""
        try:
            photo = load_photo(image, self.ctx.limits)
            faces = detect_faces(photo.rgb)
        except Exception as e:
            return None, f"**{page_sentence(e, self.ctx.limits, 'talking-head')}**"
        info = describe_faces(faces)
        if not faces:
            info = f"**{NO_FACE_MESSAGE}**"
        if photo.scaled:
            w, h = photo.original_size
            h2, w2 = photo.rgb.shape[:2]
            info += f" The photo is {w}×{h} px; it is scaled to {w2}×{h2} px for the video."
        return (draw_faces(photo.rgb, faces) if faces else photo.rgb), info

    def talk(
        self,
        image,
        audio,
        model,
        steps,
        audio_guidance,
        reference_guidance,
        seed,
        fps,
        chunk_frames,
        motion_frames,
        blink_rate=15.0,
        head_motion=1.0,
        still_head=False,
        paint_mouth=False,
        progress=gr.Progress(),
        request: gr.Request = None,
    ):
        """Generate the video; returns its path, the lip-sync score (Markdown, led by any warning about the speech:
        silent or near-empty, see :mod:`avdiff.audio.silence`), every score (a dict, with ``warnings`` and the
        SyncNet's ``syncnet`` as ``avdiff eval lipsync --json`` gives it, or ``syncnet_reason``) and, for a
        motion model, ``(motion, fps)`` of what the face did (None for the others), which :meth:`show_motion`
        plots.

        Raises:
            gr.Error: one sentence for any bad input; a generic sentence (and a logged traceback) for anything else.
        """
        folder = None
        try:
            entry = self._entry(model)
            progress((0, 4), desc="checking the photo and the speech", unit="stages")
            photo = load_photo(image, self.ctx.limits)
            speech = load_speech(audio, self.ctx.limits)
            rate = frame_rate(fps, self.ctx.limits)
            if entry.is_motion:  # steps, the audio guidance (its expressiveness) and the seed apply
                settings = diffusion_settings(steps, audio_guidance, 1.0, seed, 2, 0)
                settings = {"num_inference_steps": settings["num_inference_steps"], "seed": settings["seed"],
                            "guidance_scale": settings["audio_guidance_scale"]}  # fmt: skip
                settings |= motion_settings(blink_rate, head_motion, still_head, paint_mouth)
            elif entry.is_diffusion:
                settings = diffusion_settings(
                    steps, audio_guidance, reference_guidance, seed, chunk_frames, motion_frames
                )
            folder = self.ctx.request_dir(KIND)
            if entry.is_diffusion:
                out = self._diffuse(entry, photo.rgb, speech, rate, settings, progress)
            else:
                progress(
                    (1, 4),
                    desc="warping the mouth with the speech's loudness (the warp baseline has no denoising steps)",
                    unit="stages",
                )
                out = self._warp(photo.rgb, speech, rate)
            progress((2, 4), desc="writing the mp4 with the speech", unit="stages")
            path = out.save(folder / OUTPUT_NAME)
            progress((3, 4), desc=f"scoring lip sync (as avdiff eval lipsync --syncnet {SYNCNET} does)", unit="stages")
            result, sync, sync_reason = score_file(path)
            sync_fps = float(sync_expert().config.fps) if sync is not None else None
        except Exception as e:
            if folder is not None:
                remove_quietly(folder)
            raise self.status.error(page_sentence(e, self.ctx.limits, "talking-head"), request) from None
        summary = format_lipsync(
            result, out.fps, f"{entry.label}; {out.num_frames} frames at {out.fps} fps", syncnet=SYNCNET, sync=sync,
            sync_fps=sync_fps, sync_reason=sync_reason,
        )  # fmt: skip
        scores = {"model": entry.key, "fps": str(out.fps), "warnings": out.warnings, **result.to_dict()}
        if sync is not None:
            scores["syncnet"] = {"checkpoint": SYNCNET, **sync.to_dict()}
        elif sync_reason:
            scores["syncnet_reason"] = sync_reason
        if out.warnings:  # silent or near-empty speech (avdiff.audio.silence): shown above the score
            summary = "".join(f"**Warning:** {w}\n\n" for w in out.warnings) + summary
        motion = (out.motion, str(out.fps)) if getattr(out, "motion", None) is not None else None
        return str(path), summary, scores, motion

    def show_motion(self, state):
        """The plot of ``(motion, fps)`` under the video, shown; hidden when there is none (another kind of model)."""
        if state is None:
            return gr.update(visible=False, value=None)
        from avdiff.audio.clock import parse_fps
        from avdiff.video.motion import plot_motion

        motion, fps = state
        return gr.update(visible=True, value=plot_motion(motion, float(parse_fps(fps))))

    # --- generation ---------------------------------------------------------------------------------------------

    def warm(self) -> None:
        """Make and score the first :data:`WARM_S` seconds of the example with the default model, into a request
        folder removed after (one left by a worker killed meanwhile goes with the app's cache; a pixel model is only
        loaded: its denoising is too slow to spend at start, and the warp makes the clip). The worker the server
        prestarts runs this before its first job (:mod:`avdiff.demo.worker`), so the first request finds the model,
        mediapipe's face graphs, librosa's kernels, the encoder and the SyncNet loaded and run once.
        """
        entry = self.ctx.models.default(KIND)
        photo_path, speech_path = example_files()
        photo = load_photo(str(photo_path), self.ctx.limits)
        speech = load_audio(speech_path, mono=True).slice_s(0.0, WARM_S)  # whatever the app's audio limit
        rate = Fraction(25)
        if entry.is_diffusion:
            self.ctx.models.acquire(entry.key)
        folder = self.ctx.request_dir("warm")
        try:
            if entry.is_motion:
                settings = {"seed": 0, **motion_settings(15.0, 1.0, False)}
                out = self._diffuse(entry, photo.rgb, speech, rate, settings, progress=lambda *a, **k: None)
            else:
                out = self._warp(photo.rgb, speech, rate)
            score_file(out.save(folder / OUTPUT_NAME))
        finally:
            remove_quietly(folder)

    def _entry(self, key: object) -> ModelEntry:
        try:
            entry = self.ctx.models.get(str(key))
        except KeyError:
            entry = None
        if entry is None or entry.kind != KIND:
            names = ", ".join(e.key for e in self.ctx.models.choices(KIND))
            raise InputError(f"There is no talking-head model {key!r} here; choose one of {names}.")
        return entry

    def _warp(self, rgb: np.ndarray, speech, rate: Fraction):
        from avdiff.pipelines import WarpBaselinePipeline

        pipe = WarpBaselinePipeline(fps=rate)
        pipe.set_progress_bar_config(disable=True)
        return pipe(rgb, speech, max_duration_s=self.ctx.limits.max_audio_s)

    def _diffuse(self, entry: ModelEntry, rgb: np.ndarray, speech, rate: Fraction, settings: dict, progress):
        import torch

        if not self.ctx.models.is_loaded(entry.key):
            progress((1, 4), desc=f"loading {entry.name}", unit="stages")
        pipe, lock = self.ctx.models.acquire(entry.key)

        def on_step_end(p, i: int, t, tensors: dict) -> dict:
            if entry.is_motion:  # once per frame rendered
                progress(
                    (i + 1, None), desc=f"frame {i + 1}: motion sampled window by window, rendered", unit="frames"
                )
                return {}
            k, n, m = p.chunk_index, p.num_chunks, p.num_timesteps
            progress((k * m + i + 1, n * m), desc=f"chunk {k + 1} of {n}, step {i + 1} of {m}", unit="steps")
            return tensors

        if lock.locked():
            progress((1, 4), desc=f"waiting for {entry.name}: another request is using it", unit="stages")
        seed = settings.pop("seed")
        with lock:
            return pipe(
                rgb,
                speech,
                fps=rate,
                **settings,
                generator=torch.Generator().manual_seed(seed),
                callback_on_step_end=on_step_end,
                max_duration_s=self.ctx.limits.max_audio_s,
            )


@functools.cache
def sync_expert():
    """The page's SyncNet (:data:`SYNCNET`), loaded once per process as ``avdiff eval lipsync --syncnet`` loads it."""
    from avdiff.metrics.syncnet_scores import load_syncnet

    return load_syncnet(SYNCNET)


def score_file(path: str | os.PathLike):
    """The lip-sync scores of a written video, computed exactly as ``avdiff eval lipsync PATH --syncnet SYNCNET``
    computes them: ``(LipSyncResult, SyncScores or None, why there are no SyncNet scores or None)``. As the command,
    a video without a loudness score gets no SyncNet score either. Where the command stops with an error (the SyncNet
    finds no face it can track, or fewer frames than its window), the page keeps the video and gives the reason."""
    from avdiff.evaluation.syncnet import syncnet_scores_or_reason
    from avdiff.metrics.lipsync import score_video
    from avdiff.video import read_video

    clip = read_video(path)
    result = score_video(clip)
    if not result.scored:
        return result, None, "the video has no lip-sync score above, so the SyncNet is not run (as the command)"
    return result, *syncnet_scores_or_reason(sync_expert(), clip)


def diffusion_settings(steps, audio_guidance, reference_guidance, seed, chunk_frames, motion_frames) -> dict:
    """The controls as ``TalkingHeadPipeline.__call__`` arguments (plus ``seed``); InputError for a missing or
    non-integral count. The pipeline's ``check_inputs`` checks the ranges."""
    ints = {
        "num_inference_steps": ("steps", steps),
        "chunk_frames": ("chunk frames", chunk_frames),
        "motion_frames": ("motion frames", motion_frames),
        "seed": ("seed", seed),
    }
    out: dict = {}
    for key, (label, value) in ints.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != int(value):
            raise InputError(f"The {label} must be a whole number, got {value!r}.")
        out[key] = int(value)
    if not 0 <= out["seed"] < 2**63:
        raise InputError(f"The seed must be a whole number from 0 to 2^63 - 1, got {out['seed']}.")
    for key, label, value in [
        ("audio_guidance_scale", "audio guidance", audio_guidance),
        ("reference_guidance_scale", "reference guidance", reference_guidance),
    ]:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
            raise InputError(f"The {label} must be a number, got {value!r}.")
        out[key] = float(value)
    return out


def motion_settings(blink_rate, head_motion, still_head, paint_mouth=False) -> dict:
    """The motion controls as ``MotionTalkingHeadPipeline.__call__`` arguments; InputError for a value that is not a
    number (the pipeline's ``check_inputs`` checks the ranges)."""
    out = {}
    for key, label, value in [("blink_rate_per_min", "blink rate", blink_rate), ("head_amount", "head motion",
                                                                                 head_motion)]:  # fmt: skip
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
            raise InputError(f"The {label} must be a number, got {value!r}.")
        out[key] = float(value)
    out["still_head"] = bool(still_head)
    if paint_mouth:  # the pipeline refuses it for a model without a painter, with a sentence the page shows
        out["paint_mouth"] = True
    return out


def describe_entry(entry: ModelEntry) -> str:
    note = "" if entry.is_diffusion else " Only the frame rate applies to it."
    if entry.is_motion:
        note = (
            " It moves the photo itself, at its own resolution, by motion sampled from the speech; steps, audio "
            "guidance and the seed apply."
        )
    return f"**{entry.label}**: {entry.source}.{note}"


__all__ = ["TalkingHeadTab", "pipeline_defaults", "score_file"]
