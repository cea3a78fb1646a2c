"""AudioScenePipeline: a prompt and sounds give a scene whose sounding element follows the sound (AADiff).

AADiff (Lee et al., "AADiff: Audio-Aligned Video Synthesis with Text-to-Image Diffusion", arXiv 2305.04001; no public
code): a sound chooses the prompt word it belongs to through a shared audio-text space, and while the frames are
generated that word's cross-attention is rescaled frame by frame by the sound's magnitude, as Prompt-to-Prompt
(arXiv 2208.01626) reweights attention. The sounding element changes with the sound while the rest of the scene holds.

Generation, in the numbered steps of ``__call__``:

1. check the arguments (the text-to-video ones through :meth:`TextToVideoPipeline.check_inputs`), load the sounds;
2. the target word of each sound: the user's (``target_words``), else :meth:`AudioTextEncoder.select_token` in the
   shared space (the bundled ``scene_aligner`` by default), mapped to every token position of the word
   (:meth:`TextToVideoPipeline.word_token_positions`: ``campfire`` is ``camp ##fire`` for MiniLM);
3. the control curves ``m_k(f)`` in [0, 1], one value per video frame from the one frame clock, and their levels
   (:func:`avdiff.audio.curves.control_curve`, :func:`avdiff.audio.curves.quantize`);
   ``F = FrameClock(fps, sr).num_frames(N)`` of the mixed sound; the units to render (:func:`plan_units`);
4. encode the prompt and the negative prompt; the one initial latent ``x_T`` [1, C, 1, h, w] every frame starts from
   (drawn with ``generator``, or the DDIM inversion of ``image``: :mod:`avdiff.pipelines.audio_scene.inversion`);
5. render: the frames are cut into units of ``chunk_frames`` (1 by default), each denoised as one video (every
   frame from ``x_t``) with :class:`~avdiff.models.attention.TokenReweightAttnProcessor` on the
   spatial attention layers scaling the cond half's attention probabilities of sound ``k``'s tokens in frame ``f`` by
   ``1 + strength * q_k(f) / (levels - 1)`` (the quantized ``1 + strength * m_k(f)``; not renormalised: the other
   tokens keep the base pass's maps); equal units are denoised once, the base frame (all levels 0) first;
6. map the rendered units back to the frames, in order: returned as ``output_type`` asks, or streamed to
   ``output_path`` with the mixed sound (:class:`avdiff.pipelines.output.FrameSink`).

Cost grows with what changes: with ``chunk_frames=1`` a frame depends only on its own level vector, so a sound that
swings between a few levels costs a few renders whatever its length (``share_levels=False`` renders every frame: the
naive path, the same frames), and ``strength=0`` gives the base frame bit for bit. Temporal coherence then comes from
the shared initial latent and DDIM's deterministic path, as in AADiff, which used an image model. With
``chunk_frames=n > 1`` the n frames of a chunk are denoised together, so the motion layers keep them coherent, each
frame with its own scales; only equal chunks (silence, a held level) share their render, so the cost is about one
render per frame of a changing sound. With ``output_path`` memory holds the distinct units, not the video.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from avdiff.audio.clock import FpsLike, FrameClock, parse_fps
from avdiff.audio.curves import DEFAULT_LEVELS, control_curve, control_signal, quantize
from avdiff.audio.io import Waveform, load_audio
from avdiff.audio.scene_sounds import mix
from avdiff.bundled import resolve
from avdiff.encoders.alignment import AlignedEncoder
from avdiff.models.attention import reweighting
from avdiff.pipelines.audio_scene.inversion import ddim_invert, reconstruction_psnr
from avdiff.pipelines.output import FrameSink, VideoPipelineOutput, check_output_type
from avdiff.pipelines.text_to_video.pipeline_text_to_video import TextToVideoPipeline
from avdiff.pipelines.utils import is_int
from avdiff.video.image import load_image
from avdiff.video.writer import check_output_path

logger = logging.getLogger(__name__)

DEFAULT_ENCODER = "scene_aligner"
# The bundled scene_aligner's cosine score below which a sound matches no word of the prompt. Measured on the scene
# sounds (2 s, seed 3) against three prompts: a sound with its object in the prompt scored 0.49 to 0.55 (crackle and
# campfire, waves and lake, rain, engine and car); every other sound, speech, a tone, noise and clicks at most 0.24
# (speech and "left"), and at most 0.15 on the words a sound may choose.
MIN_WORD_SCORE = 0.3


# --- step 1: the sounds: the sources a user gives, loaded and checked (load_sounds), their mix (the output's audio,
# mix_sounds), and the prompt word each one drives (SceneTarget). A bad sound is a ValueError naming it. ---

MAX_SOUNDS = 8


@dataclass
class SceneTarget:
    """The prompt word one sound drives.

    Attributes:
        word: the word (as in the prompt, or as :meth:`AudioTextEncoder.select_token` stripped it).
        positions: its token positions among the cross-attention keys (every occurrence, every WordPiece/BPE piece).
        chosen_by: ``"user"`` (``target_words``) or ``"encoder"`` (``select_token`` in the shared audio-text space).
        score: the chosen word's cosine similarity with the sound (None when the user chose).
        candidates: every content word's cosine similarity with the sound, in prompt order (empty when the user
            chose).
        matched: False when the encoder chose and even the best word scored below the pipeline's ``min_word_score``:
            the sound matches no object of the prompt, and drives its best word anyway.
    """

    word: str
    positions: list[int]
    chosen_by: str
    score: float | None = None
    candidates: dict[str, float] = field(default_factory=dict)
    matched: bool = True


def as_sound_list(audio) -> list:
    """``audio`` as a list of sources: one source (a path, bytes, a Waveform, a tensor) or a list/tuple of them."""
    if isinstance(audio, (list, tuple)):
        sounds = list(audio)
        if not sounds:
            raise ValueError("audio must be a sound or a non-empty list of sounds, got an empty list")
        if len(sounds) > MAX_SOUNDS:
            raise ValueError(f"audio holds {len(sounds)} sounds; at most {MAX_SOUNDS} can drive words at once")
        return sounds
    if audio is None:
        raise ValueError("audio is required (a file, bytes, a Waveform, or a list of them)")
    return [audio]


def load_sounds(sounds: list, max_duration_s: float | None = None) -> list[Waveform]:
    """Each source as a mono Waveform at its own rate (``load_audio``'s errors name the source)."""
    out = []
    for i, source in enumerate(sounds):
        wav = load_audio(source, mono=True, max_duration_s=max_duration_s)
        if wav.num_samples == 0:
            raise ValueError(f"audio[{i}] has no samples")
        if not torch.isfinite(wav.samples).all():
            raise ValueError(f"audio[{i}] has NaN or infinite samples")
        out.append(wav)
    return out


def mix_sounds(waves: list[Waveform]) -> Waveform:
    """The sounds summed at the first one's rate, each zero-padded to the longest, scaled down (never up) to peak at
    0.95 when the sum would clip (:func:`avdiff.audio.scene_sounds.mix`). One sound is returned as it is."""
    if len(waves) == 1:
        return waves[0]
    rate = waves[0].sample_rate
    tracks = [w.resample(rate).samples[0].numpy() for w in waves]
    length = max(len(t) for t in tracks)
    mixed, _ = mix([np.pad(t, (0, length - len(t))) for t in tracks])
    return Waveform(torch.from_numpy(mixed)[None], rate)


@dataclass
class AudioSceneOutput(VideoPipelineOutput):
    """:class:`~avdiff.pipelines.output.VideoPipelineOutput` (frames uint8 [F, H, W, 3], fps, the mixed sound) plus
    what the scene was made from.

    Attributes:
        targets: one :class:`SceneTarget` per sound (the word, its token
            positions, who chose it, every candidate's score).
        control: the control curves ``m_k(f)``, float32 [K, F] in [0, 1].
        levels: their quantized levels, int64 [K, F] in ``0 .. num_levels - 1``.
        num_levels: the number of levels.
        base_frame: the frame with no control (all levels 0), uint8 [H, W, 3].
        num_rendered: how many frames were denoised (the distinct units' frames, or 1 + F on the naive path).
        image_psnr: with ``image``: PSNR (dB) of the base frame against the image (the DDIM reconstruction; equal to
            the strength-0 output).
    """

    targets: list[SceneTarget] | None = None
    control: np.ndarray | None = None
    levels: np.ndarray | None = None
    num_levels: int | None = None
    base_frame: np.ndarray | None = None
    num_rendered: int | None = None
    image_psnr: float | None = None


class AudioScenePipeline:
    """Audio-aligned scenes (AADiff) on a :class:`~avdiff.pipelines.TextToVideoPipeline`.

    Example::

        pipe = AudioScenePipeline.from_pretrained("scene-tiny")          # or AudioScenePipeline(t2v)
        out = pipe("a campfire beside a lake at night", "crackle.wav", strength=2.0, smoothing_s=0.25,
                   generator=torch.Generator().manual_seed(0))
        out.targets[0].word, out.targets[0].candidates                   # "campfire", {"campfire": 0.61, ...}
        out.save("scene.mp4")                                            # with the sound

    Args:
        t2v: the text-to-video pipeline (its UNet, codec, text encoder and DDIM scheduler).
        audio_text_encoder: an :class:`~avdiff.encoders.base.AudioTextEncoder` for the token choice; None loads the
            bundled ``scene_aligner`` the first time a sound has no target word.
        render_batch_size: frames per UNet batch (at least one unit of ``chunk_frames``; CFG doubles the rows).
        min_word_score: a sound whose best word scores below this (cosine) matches no object of the prompt: its
            target says so (``matched=False``) and a warning is logged. None: :data:`MIN_WORD_SCORE` with the bundled
            encoder (measured for it), no threshold with an encoder you give (its scores have their own scale).
    """

    def __init__(
        self,
        t2v: TextToVideoPipeline,
        audio_text_encoder=None,
        render_batch_size: int = 8,
        min_word_score: float | None = None,
    ):
        if not isinstance(t2v, TextToVideoPipeline):
            raise ValueError(f"t2v must be a TextToVideoPipeline, got {type(t2v).__name__}")
        if not isinstance(render_batch_size, int) or render_batch_size < 1:
            raise ValueError(f"render_batch_size must be an integer >= 1, got {render_batch_size!r}")
        if min_word_score is not None and not -1 <= min_word_score <= 1:
            raise ValueError(f"min_word_score must be a cosine score in [-1, 1] or None, got {min_word_score!r}")
        self.t2v = t2v
        self._encoder = audio_text_encoder
        if min_word_score is None and audio_text_encoder is None:
            min_word_score = MIN_WORD_SCORE
        self.min_word_score = min_word_score
        self.render_batch_size = render_batch_size
        self._progress_bar_config: dict = {}
        self._num_timesteps = self._batch_index = self._num_batches = 0

    @property
    def num_timesteps(self) -> int:
        """Denoising steps per render batch."""
        return self._num_timesteps

    @property
    def batch_index(self) -> int:
        """The render batch being denoised (0-based; one batch is up to ``render_batch_size`` frames)."""
        return self._batch_index

    @property
    def num_batches(self) -> int:
        """Render batches of this call: the whole denoising is ``num_batches * num_timesteps`` steps."""
        return self._num_batches

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        audio_text_encoder=None,
        render_batch_size: int = 8,
        **kwargs,
    ) -> AudioScenePipeline:
        """A bundled model's name (``"scene-tiny"``), a saved folder, or a Stable Diffusion 1.5 id or folder (with
        ``motion_adapter=...``), through :meth:`TextToVideoPipeline.from_pretrained`."""
        t2v = TextToVideoPipeline.from_pretrained(resolve(pretrained_model_name_or_path), **kwargs)
        return cls(t2v, audio_text_encoder, render_batch_size)

    def to(self, *args, **kwargs) -> AudioScenePipeline:
        self.t2v.to(*args, **kwargs)
        return self

    def set_progress_bar_config(self, **kwargs) -> None:
        """tqdm options of the render progress bar (``disable=True`` turns it off)."""
        self._progress_bar_config = dict(kwargs)
        self.t2v.set_progress_bar_config(**kwargs)

    @property
    def audio_text_encoder(self):
        """The encoder that chooses words (the bundled ``scene_aligner`` unless one was given), loaded on first use."""
        if self._encoder is None:
            logger.info("loading the bundled audio-text encoder %r for the token choice", DEFAULT_ENCODER)
            self._encoder = AlignedEncoder.from_pretrained(DEFAULT_ENCODER)
        return self._encoder

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """Save the text-to-video pipeline (``from_pretrained`` loads it back). The word-choosing encoder is not
        saved: pass it again, or the bundled one loads."""
        self.t2v.save_pretrained(save_directory, **kwargs)

    def check_inputs(
        self,
        prompt,
        sounds: list,
        target_words,
        strength,
        smoothing_s,
        signal,
        levels,
        fps,
        chunk_frames,
        negative_prompt,
        height,
        width,
        num_inference_steps,
        guidance_scale,
        latents,
        generator,
        output_type: str = "np",
        output_path: str | os.PathLike | None = None,
        callback_on_step_end: Callable | None = None,
    ) -> list | None:
        """Raise a ValueError naming the argument and its value for anything that cannot work, before any work: the
        scene's own arguments, then the text-to-video ones (:meth:`TextToVideoPipeline.check_inputs`, for single
        frames). ``sounds`` is the list of sources (:func:`as_sound_list`).
        Returns ``target_words`` as a list (one word or None per sound), or None when none were given."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
        for name, value in (("strength", strength), ("smoothing_s", smoothing_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        control_signal(signal)
        if not is_int(levels) or levels < 2:
            raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
        if fps is None:
            raise ValueError("fps must be given (a number such as 8, or '30000/1001')")
        if not is_int(chunk_frames) or not 1 <= chunk_frames <= self.t2v.max_frames:
            raise ValueError(
                f"chunk_frames must be an integer from 1 to {self.t2v.max_frames} (the model's "
                f"motion_max_seq_length), got {chunk_frames!r}"
            )
        check_output_type(output_type)
        if output_path is not None:
            check_output_path(
                output_path, {f"audio[{i}]": s for i, s in enumerate(sounds) if isinstance(s, (str, os.PathLike))}
            )
        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise ValueError(f"callback_on_step_end must be callable, got {callback_on_step_end!r}")
        self.t2v.check_inputs(
            prompt,
            negative_prompt,
            None,
            None,
            1,
            height,
            width,
            num_inference_steps,
            guidance_scale,
            1,
            latents,
            generator,
            "np",
            ["latents"],
            fps,
            0.0,
        )
        if target_words is None:
            return None
        words = [target_words] if isinstance(target_words, str) else list(target_words)
        if len(words) != len(sounds):
            raise ValueError(
                f"target_words must give one word (or None) per sound: {len(sounds)} sound(s), got "
                f"{len(words)} word(s) {words!r}"
            )
        for word in words:
            if word is not None and (not isinstance(word, str) or not word.strip()):
                raise ValueError(f"target_words must hold non-empty strings or None, got {word!r}")
        return words

    # --- steps ----------------------------------------------------------------------------------------------------

    def choose_targets(self, prompt: str, sounds: list, target_words: list | None = None) -> list[SceneTarget]:
        """Step 2: the word (and its token positions) of each sound (Waveforms); a user's word overrides the choice.
        The encoder chooses among the prompt's objects (:func:`~avdiff.encoders.base.content_words`); a best score
        below ``min_word_score`` marks the target unmatched.

        Raises:
            ValueError: a target word that is not a word of the prompt (or lies past the encoder's tokens)."""
        tokens = self.t2v.tokenize(prompt)
        targets = []
        for i, wav in enumerate(sounds):
            word = None if target_words is None else target_words[i]
            if word is not None:
                try:
                    positions = tokens.positions(word)
                except ValueError as e:
                    raise ValueError(f"target_words[{i}]: {e}") from None
                targets.append(SceneTarget(word=word, positions=positions, chosen_by="user"))
                continue
            choice = self.audio_text_encoder.select_token(prompt, wav)
            matched = self.min_word_score is None or choice.score >= self.min_word_score
            targets.append(
                SceneTarget(
                    word=choice.word,
                    positions=tokens.positions(choice.word),
                    chosen_by="encoder",
                    score=choice.score,
                    candidates=dict(choice.candidates),
                    matched=matched,
                )
            )
            logger.info("audio[%d] chose %r (%.3f) among %s", i, choice.word, choice.score, choice.candidates)
            if not matched:
                logger.warning(
                    "audio[%d] matches no object of the prompt: its best word %r scores %.3f, below %.2f; it "
                    "drives %r anyway (give target_words to choose)",
                    i,
                    choice.word,
                    choice.score,
                    self.min_word_score,
                    choice.word,
                )
        return targets

    def token_scales(
        self, keys: np.ndarray, targets: list[SceneTarget], strength: float, num_levels: int, cfg: bool
    ) -> torch.Tensor:
        """``cross_attention_kwargs["token_scales"]`` for the level vectors ``keys`` int [b * n, K] of b videos of n
        frames (b-major): float32 [(2 if cfg else 1) * b * n, T], 1 on the uncond half and on every token no sound
        drives; ``1 + strength * q_k / (num_levels - 1)`` on sound ``k``'s positions (a word two sounds drive
        multiplies)."""
        rows = len(keys)
        scales = torch.ones(rows, self.t2v.config.max_text_length)
        for k, target in enumerate(targets):
            s = 1.0 + strength * torch.as_tensor(keys[:, k], dtype=torch.float64) / (num_levels - 1)  # (b * n,)
            scales[:, target.positions] *= s[:, None].float()
        return torch.cat([torch.ones_like(scales), scales]) if cfg else scales  # (N, T)

    def render(
        self,
        units: list[np.ndarray],
        x_t: torch.Tensor,
        prompt_embeds: torch.Tensor,
        negative_prompt_embeds: torch.Tensor | None,
        targets: list[SceneTarget],
        strength: float,
        num_levels: int,
        num_inference_steps: int,
        guidance_scale: float,
        callback_on_step_end: Callable | None = None,
    ):
        """Step 5: denoise each unit (level vectors int [n, K]: a video of n frames, every frame from ``x_t``
        [1, C, 1, h, w], each frame with its own token scales); yields uint8 frames [n, H, W, 3] per unit, in order.
        Consecutive units of one length go through the UNet together, up to ``render_batch_size`` frames a batch.
        ``callback_on_step_end(pipe, step, t, {"latents": ...}) -> dict`` runs after every denoising step of a batch
        (``pipe.batch_index`` of ``pipe.num_batches``); returned ``latents`` replace the batch's."""
        t2v, cfg = self.t2v, guidance_scale != 1
        batches = list(_batches(units, self.render_batch_size))
        self._num_batches, self._num_timesteps = len(batches), num_inference_steps
        with reweighting(t2v.unet.unet), t2v.progress_bar(total=sum(len(u) for u in units)) as progress:
            for self._batch_index, batch in enumerate(batches):
                b, n = len(batch), len(batch[0])
                keys = np.concatenate(batch)  # (b * n, K), b-major over frames
                kwargs = {"token_scales": self.token_scales(keys, targets, strength, num_levels, cfg).to(x_t.device)}
                latents = x_t.expand(b, -1, n, -1, -1).clone()  # (b, C, n, h, w)
                cond = prompt_embeds.expand(b, -1, -1)
                uncond = None if negative_prompt_embeds is None else negative_prompt_embeds.expand(b, -1, -1)
                t2v.scheduler.set_timesteps(num_inference_steps, device=x_t.device)  # fresh state per batch
                for i, t in enumerate(t2v.scheduler.timesteps):
                    pred = t2v.guided_prediction(latents, t, cond, uncond, guidance_scale, kwargs)
                    latents = t2v.scheduler.step(pred, t, latents, return_dict=False)[0]
                    if callback_on_step_end is not None:
                        latents = callback_on_step_end(self, i, t, {"latents": latents}).get("latents", latents)
                yield from t2v.decode_latents(latents).numpy()  # (b, n, H, W, 3)
                progress.update(b * n)

    # --- call -------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        audio,
        *,
        target_words: str | list[str | None] | None = None,
        fps: FpsLike | None = None,
        strength: float = 1.0,
        smoothing_s: float = 0.0,
        signal: str = "rms",
        levels: int = DEFAULT_LEVELS,
        num_inference_steps: int = 25,
        guidance_scale: float = 3.0,
        negative_prompt: str | None = None,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        image=None,
        height: int | None = None,
        width: int | None = None,
        share_levels: bool = True,
        chunk_frames: int = 1,
        output_type: str = "np",
        output_path: str | os.PathLike | None = None,
        max_duration_s: float | None = None,
        callback_on_step_end: Callable | None = None,
        return_dict: bool = True,
    ) -> AudioSceneOutput | tuple:
        """Make an audio-aligned scene.

        Args:
            prompt: the scene's prompt.
            audio: one sound or a list of them (paths, bytes, Waveforms); each drives one word. The video is as long
                as the longest; the output's audio is their mix.
            target_words: one word of the prompt per sound (or None for the encoder's choice); a str for one sound.
            fps: frame rate (default: the model's, ``t2v.fps``).
            strength: how far the sound scales its word's attention: ``1 + strength * m``, ``m`` in [0, 1] (>= 0).
            smoothing_s: the control curve's moving-average span, seconds (>= 0).
            signal: ``"rms"``, ``"onsets"`` or ``"percussive"`` (:func:`avdiff.audio.curves.control_curve`;
                ``"onset"`` is the deprecated spelling of ``"onsets"``).
            levels: quantization levels of the control (>= 2): frames with equal level vectors share one render.
            num_inference_steps, guidance_scale, negative_prompt: as :class:`TextToVideoPipeline` (DDIM, CFG).
            generator: draws the one initial latent all frames share.
            latents: that initial latent [1, C, 1, h, w] instead of drawing it.
            image: a still image to animate (path, PIL, uint8 [H, W, 3]): its DDIM inversion under ``prompt`` is the
                initial latent.
            height, width: output size in px (default: the model's).
            share_levels: render each distinct unit once (False: every frame, the naive cost).
            chunk_frames: frames denoised together as one video through the motion layers, each with its own token
                scales (1 .. ``t2v.max_frames``). 1 (default): every frame alone, so equal level vectors share one
                render; n > 1: chunks of n frames, and equal chunks (the same levels in the same order: silence, a
                held level) share one.
            output_type: ``"np"`` uint8 [F, H, W, 3], ``"pt"`` the same as a torch tensor, ``"pil"`` a list of F
                images.
            output_path: stream the frames to this mp4 with the mixed sound instead of holding them (``frames`` is
                then None and ``path`` the file).
            max_duration_s: refuse longer sounds.
            callback_on_step_end: ``f(pipe, step, timestep, {"latents": latents}) -> dict`` after every denoising
                step; ``step`` counts within a render batch, ``pipe.batch_index`` of ``pipe.num_batches`` says which
                (the whole render is ``num_batches * num_timesteps`` steps). Returned ``latents`` replace the batch's.
            return_dict: return an :class:`AudioSceneOutput`, else ``(frames, fps, audio)`` (the mixed sound).
        """
        # 1. Check inputs, load the sounds.
        t2v = self.t2v
        fps = t2v.fps if fps is None else parse_fps(fps)
        height = t2v.default_size if height is None else height
        width = t2v.default_size if width is None else width
        sounds = as_sound_list(audio)
        words = self.check_inputs(
            prompt,
            sounds,
            target_words,
            strength,
            smoothing_s,
            signal,
            levels,
            fps,
            chunk_frames,
            negative_prompt,
            height,
            width,
            num_inference_steps,
            guidance_scale,
            latents,
            generator,
            output_type,
            output_path,
            callback_on_step_end,
        )
        signal = control_signal(signal)
        picture = None if image is None else image_source(image)
        waves = load_sounds(sounds, max_duration_s)
        mixed = mix_sounds(waves)

        # 2. The target word of each sound.
        targets = self.choose_targets(prompt, waves, words)

        # 3. Control curves and levels, by the one clock.
        num_frames = FrameClock(fps, mixed.sample_rate).num_frames(mixed.num_samples)
        control = np.stack([control_curve(w, fps, signal, smoothing_s, num_frames) for w in waves])  # (K, F)
        for k in np.flatnonzero(control.max(axis=1) == 0):
            logger.warning("audio[%d] is silent (no %s signal): it does not move %r", k, signal, targets[k].word)
        level = quantize(control, levels)
        drive = level if strength > 0 else np.zeros_like(level)  # strength 0: every scale is 1, the base frame
        units, chunk_unit = plan_units(drive, chunk_frames, share_levels)  # unit 0: the base frame
        num_rendered = sum(len(u) for u in units)
        logger.info("%d frames, %d rendered (%s)", num_frames, num_rendered, "shared" if share_levels else "naive")

        # 4. Text and the initial latent.
        device, dtype = t2v._execution_device, t2v.unet.dtype
        prompt_embeds = t2v.encode_prompt(prompt, device)  # (1, T, D)
        negative = None
        if guidance_scale != 1:
            negative = t2v.encode_prompt(negative_prompt if negative_prompt is not None else "", device)
        if picture is not None and latents is None:
            latents = ddim_invert(t2v, picture, prompt, num_inference_steps, height, width)
        x_t = t2v.prepare_latents(1, 1, height, width, dtype, device, generator, latents, shared_frame_noise=True)

        # 5. Render the distinct level vectors; 6. map them back to the frames.
        rendered = self.render(
            units,
            x_t,
            prompt_embeds,
            negative,
            targets,
            float(strength),
            levels,
            num_inference_steps,
            guidance_scale,
            callback_on_step_end,
        )
        frames, base = self._in_order(rendered, chunk_unit, share_levels)
        psnr = None if picture is None else reconstruction_psnr(picture, base)
        with FrameSink(fps, mixed, output_path=output_path, num_frames=num_frames) as sink:
            for frame in frames:
                sink.write(frame)
            result = sink.finish(
                output_type=output_type,
                return_dict=return_dict,
                output_class=AudioSceneOutput,
                targets=targets,
                control=control,
                levels=level,
                num_levels=levels,
                base_frame=base,
                num_rendered=num_rendered,
                image_psnr=psnr,
            )
        t2v.maybe_free_model_hooks()
        return result

    def _in_order(self, rendered, chunk_unit: np.ndarray, share_levels: bool):
        """(The frames uint8 [H, W, 3] in order, as a generator over the rendered units; the base frame)."""
        if share_levels:
            cache = list(rendered)  # the distinct units: bounded by the levels, not by the length
            return (frame for u in chunk_unit for frame in cache[u]), cache[0][0]
        base = next(rendered)[0]
        return (frame for unit in rendered for frame in unit), base  # already in frame order


def image_source(image) -> np.ndarray:
    """``image`` (a path, a PIL image or an array, read by :func:`avdiff.video.image.load_image`, EXIF orientation
    applied) -> uint8 RGB [H, W, 3]; a ValueError naming ``image`` when it cannot be read."""
    try:
        return load_image(image)
    except (OSError, TypeError, ValueError) as e:
        raise ValueError(f"image: {e}") from e


def plan_units(levels: np.ndarray, chunk_frames: int = 1, share: bool = True) -> tuple[list[np.ndarray], np.ndarray]:
    """Step 3, what to denoise: the frames cut into chunks of ``chunk_frames`` (the last may be shorter), each a *unit*
    of level vectors int64 [n, K]; unit 0 is always the base frame (one all-zero vector).

    With ``share``, equal units (the same level vectors in the same order) are denoised once: with ``chunk_frames=1``
    a unit is one frame's level vector, so the cost is the number of distinct level vectors, whatever the length.

    Args:
        levels: int [K, F].

    Returns:
        (the units, in order of first appearance; each chunk's unit index, int64 [ceil(F / chunk_frames)]).
    """
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames!r}")
    k, f = levels.shape
    units = [np.zeros((1, k), np.int64)]
    seen = {(units[0].shape, units[0].tobytes()): 0}
    chunk_unit = []
    for start in range(0, f, chunk_frames):
        unit = np.ascontiguousarray(levels[:, start : start + chunk_frames].T, dtype=np.int64)  # (n, K)
        key = (unit.shape, unit.tobytes())
        if not share or key not in seen:
            seen[key] = len(units)
            units.append(unit)
        chunk_unit.append(seen[key])
    return units, np.asarray(chunk_unit, dtype=np.int64)


def _batches(units: list[np.ndarray], max_frames: int):
    """Consecutive units of one length, grouped so that a group holds at most ``max_frames`` frames (at least one
    unit)."""
    group: list[np.ndarray] = []
    for unit in units:
        if group and (len(unit) != len(group[0]) or (len(group) + 1) * len(unit) > max_frames):
            yield group
            group = []
        group.append(unit)
    if group:
        yield group
