"""The scene tab: a prompt and one or more sounds in, an audio-aligned scene out (AADiff).

Each sound picks the prompt word it belongs to in the shared audio–text space (or the user names one per sound),
and that word's cross-attention follows the sound's loudness while the frames are denoised
(:class:`~avdiff.pipelines.audio_scene.pipeline_audio_scene.AudioScenePipeline`). The tab shows the chosen word of each sound with every
candidate's score, the control curves as a plot, and the video with the mixed sound.

Named endpoint: ``scene(prompt, sounds, microphone, words, model, strength, smoothing_s, signal, steps, seed) ->
(video, choice, plot)``. ``sounds`` is a list of uploaded files and ``microphone`` an optional recording (one more
sound); ``words`` is one word per sound, comma-separated, empty ones chosen by the sound.
"""

from __future__ import annotations

import logging
import math

import gradio as gr

from avdiff.audio.curves import CONTROL_SIGNALS, DEPRECATED_SIGNALS, plot_control
from avdiff.demo.context import TabContext, remove_quietly
from avdiff.demo.inputs import InputError, file_path, page_sentence, upload_limit
from avdiff.demo.status import StatusLine

logger = logging.getLogger(__name__)

KIND = "scene"
T2V_KIND = "text-to-video"
OUTPUT_NAME = "scene.mp4"
MAX_SOUNDS = 4
MAX_PROMPT_CHARS = 300
SIGNALS = CONTROL_SIGNALS
EXAMPLE_PROMPT = "a campfire on the left beside a lake at night"


class SceneTab:
    """A prompt whose sounding words move with the sounds."""

    title = "Audio-aligned scene"

    def build(self, ctx: TabContext) -> None:
        self.ctx = ctx
        self._pipelines: dict[str, object] = {}  # text-to-video model key -> its AudioScenePipeline
        models = ctx.models.choices(T2V_KIND)
        gr.Markdown(
            "Write a scene and give one or more sounds. Each sound picks the word it belongs to (or name one "
            "per sound), and that word's attention follows the sound's loudness: the sounding thing moves "
            "with the sound while the rest of the scene holds."
        )
        with gr.Row():
            with gr.Column():
                prompt = gr.Textbox(EXAMPLE_PROMPT, label="Prompt", elem_id="sc-prompt")
                sounds = gr.File(
                    label=f"Sounds (up to {MAX_SOUNDS}; {upload_limit(ctx.limits, audio=True)} each)",
                    file_count="multiple",
                    file_types=["audio"],
                    elem_id="sc-sounds",
                )
                microphone = gr.Audio(
                    label=f"... or record one ({upload_limit(ctx.limits, audio=True)})",
                    sources=["microphone"],
                    type="filepath",
                    elem_id="sc-mic",
                )
                words = gr.Textbox(
                    label="Words (optional)",
                    placeholder="campfire, lake",
                    elem_id="sc-words",
                    info="One prompt word per sound, comma-separated, in the sounds' order; leave a "
                    "place empty to let the sound choose.",
                )
                with gr.Accordion("Settings", open=False):
                    model = gr.Dropdown(
                        [(e.label, e.key) for e in models],
                        value=models[0].key if models else None,
                        label="Text-to-video model",
                        elem_id="sc-model",
                    )
                    strength = gr.Slider(
                        0,
                        4,
                        1.5,
                        step=0.1,
                        label="Strength",
                        elem_id="sc-strength",
                        info="The word's attention is scaled by 1 + strength x loudness.",
                    )
                    smoothing = gr.Slider(
                        0,
                        1,
                        0.1,
                        step=0.05,
                        label="Smoothing (s)",
                        elem_id="sc-smoothing",
                        info="Wider: steadier pictures, slower response.",
                    )
                    signal = gr.Dropdown(list(SIGNALS), value="rms", label="Control signal", elem_id="sc-signal")
                    steps = gr.Slider(4, 50, 20, step=1, label="Denoising steps (DDIM)", elem_id="sc-steps")
                    seed = gr.Number(0, precision=0, label="Seed", elem_id="sc-seed")
                button = gr.Button("Generate", variant="primary", elem_id="sc-generate")
                status = StatusLine("sc-status")
            with gr.Column():
                video = gr.Video(label="Scene (with the sound)", interactive=False, elem_id="sc-video")
                choice = gr.Markdown(elem_id="sc-choice")
                plot = gr.Image(
                    label="Control curves (one per sound) and their levels", interactive=False, elem_id="sc-plot"
                )
        inputs = [prompt, sounds, microphone, words, model, strength, smoothing, signal, steps, seed]
        event = button.click(
            ctx.in_worker(self.generate),
            inputs,
            [video, choice, plot],
            api_name="scene",
            preprocess=False,
            **ctx.generation_event(),
        )
        self.status = status
        status.follow(event)

    def generate(
        self,
        prompt,
        sounds,
        microphone,
        words,
        model,
        strength,
        smoothing_s,
        signal,
        steps,
        seed,
        progress=gr.Progress(),
        request: gr.Request = None,
    ):
        """The scene's mp4 path, the word choice (Markdown) and the control plot (uint8 [H, W, 3]).

        Raises:
            gr.Error: one sentence for any bad input; a generic sentence (and a logged traceback) for anything else.
        """
        import torch

        folder = None
        try:
            text = scene_prompt(prompt)
            paths = sound_paths(sounds, microphone)
            targets = word_list(words, len(paths))
            checked = {
                "strength": number(strength, "strength", 0, 10),
                "smoothing": number(smoothing_s, "smoothing", 0, 10),
                "steps": int(number(steps, "steps", 1, 200)),
                "seed": int(number(seed, "seed", 0, 2**63 - 1)),
            }
            if signal not in SIGNALS and signal not in DEPRECATED_SIGNALS:  # the old spelling still works, warned
                raise InputError(f"Choose a control signal among {', '.join(SIGNALS)}.")
            lock, pipe = self.scene_pipeline(model)
            folder = self.ctx.request_dir(KIND)

            def on_step_end(p, i: int, t, tensors: dict) -> dict:
                b, n, m = p.batch_index, p.num_batches, p.num_timesteps
                progress((b * m + i + 1, n * m), desc=f"batch {b + 1} of {n}, step {i + 1} of {m}", unit="steps")
                return tensors

            progress((0, 1), desc="choosing each sound's word and reading its loudness", unit="stages")
            with lock:
                out = pipe(
                    text,
                    paths,
                    target_words=targets,
                    strength=checked["strength"],
                    smoothing_s=checked["smoothing"],
                    signal=signal,
                    num_inference_steps=checked["steps"],
                    generator=torch.Generator().manual_seed(checked["seed"]),
                    max_duration_s=self.ctx.limits.max_audio_s,
                    output_path=folder / OUTPUT_NAME,
                    callback_on_step_end=on_step_end,
                )
            labels = [t.word for t in out.targets]
            picture = plot_control(out.control, out.fps, labels, out.levels, out.num_levels)
        except Exception as e:
            if folder is not None:
                remove_quietly(folder)
            raise self.status.error(page_sentence(e, self.ctx.limits, "scene"), request) from None
        for k, target in enumerate(out.targets):
            if not target.matched:
                gr.Warning(unmatched_sentence(k, target) + ".")
        return str(out.path), format_choice(out), picture

    def scene_pipeline(self, model: object):
        """``(lock, AudioScenePipeline)`` over the registry's text-to-video model ``model`` (one per model, kept across
        requests, used only under the lock); InputError when there is none."""
        from avdiff.pipelines.audio_scene import AudioScenePipeline

        keys = [e.key for e in self.ctx.models.choices(T2V_KIND)]
        if not keys:
            raise InputError(
                "This app has no text-to-video model; start it with --model NAME=FOLDER of a saved "
                "text-to-video pipeline."
            )
        if model not in keys:
            raise InputError(f"Choose a text-to-video model (one of {', '.join(keys)}).")
        t2v, lock = self.ctx.models.acquire(model)
        with lock:
            if model not in self._pipelines:
                self._pipelines[model] = AudioScenePipeline(t2v)
                self._pipelines[model].set_progress_bar_config(disable=True)
        return lock, self._pipelines[model]


def scene_prompt(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InputError("Write a prompt first, e.g. " + repr(EXAMPLE_PROMPT) + ".")
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(f"The prompt is {len(text)} characters long; at most {MAX_PROMPT_CHARS}.")
    return text.strip()


def sound_paths(sounds: object, microphone: object) -> list[str]:
    """The uploaded sounds' paths, then the recording's; InputError for none or too many."""
    items = sounds if isinstance(sounds, (list, tuple)) else ([] if sounds is None else [sounds])
    paths = [p for p in (file_path(item) for item in items) if p]
    recorded = file_path(microphone)
    if recorded:
        paths.append(recorded)
    if not paths:
        raise InputError("Give a sound first: upload one or more audio files, or record one.")
    if len(paths) > MAX_SOUNDS:
        raise InputError(f"{len(paths)} sounds were given; this app takes at most {MAX_SOUNDS}.")
    return paths


def word_list(text: object, count: int) -> list[str | None] | None:
    """``"campfire, , lake"`` -> ``["campfire", None, "lake"]`` (one per sound; None: the sound chooses); None when
    empty. InputError when more words than sounds are given."""
    if text is None or not str(text).strip():
        return None
    words = [w.strip() or None for w in str(text).split(",")]
    if len(words) > count:
        raise InputError(f"{len(words)} words were given for {count} sound(s); give at most one word per sound.")
    return words + [None] * (count - len(words))


def number(value: object, label: str, low: float, high: float) -> float:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise InputError(f"The {label} must be a number from {low:g} to {high:g}, got {value!r}.")
    return float(value)


def format_choice(out) -> str:
    """Each sound's word, who chose it and every candidate's score, as Markdown."""
    lines = []
    for k, t in enumerate(out.targets):
        if t.chosen_by == "user":
            lines.append(f"Sound {k + 1} drives **{t.word}** (your choice).")
            continue
        ranked = sorted(t.candidates.items(), key=lambda kv: -kv[1])
        scores = ", ".join(f"{w} {s:+.3f}" for w, s in ranked)
        if not t.matched:
            lines.append(f"**{unmatched_sentence(k, t)}** (candidates: {scores}).")
            continue
        lines.append(f"Sound {k + 1} chose **{t.word}** (score {t.score:+.3f}; candidates: {scores}).")
    lines.append(
        f"{out.num_rendered} frames denoised for {len(out.control[0])} frames at {out.fps} fps "
        f"({out.num_levels} levels)."
    )
    return "\n\n".join(lines)


def unmatched_sentence(k: int, target) -> str:
    """What the page says of sound ``k`` (0-based) when it matches no object of the prompt."""
    return (
        f"Sound {k + 1} matches no object of the prompt: its best word, {target.word}, scores {target.score:+.3f}, "
        f"too low to be its source; it drives {target.word} anyway, or name its word under Words"
    )


__all__ = ["SceneTab", "format_choice", "sound_paths", "word_list"]
