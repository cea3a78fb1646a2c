"""TalkingHeadPipeline: a face photo plus speech gives a lip-synced video, by latent video diffusion.

A diffusers ``DiffusionPipeline`` with four components, saved and loaded with ``save_pretrained`` /
``from_pretrained`` (one subfolder each, plus ``model_index.json``):

* ``unet``: an :class:`~avdiff.models.AudioVideoUNet` that reads [noisy latents, reference latent, motion latents,
  mask] on channels and per-frame audio tokens through gated cross-attention;
* ``codec``: a :class:`~avdiff.models.codec.LatentCodec` between pixels and latents;
* ``speech_encoder``: a :class:`~avdiff.models.speech.BaseSpeechEncoder`, speech -> tokens [B, F, T_a, D_a];
* ``scheduler``: DDIM by default (any diffusers scheduler with ``set_timesteps`` / ``step`` works).

Generation, in the numbered steps of ``__call__``:

1. detect and align the face (a square crop of the model's pixel size);
2. encode the crop to the reference latent;
3. speech features of the whole clip, and ``F = clock.num_frames(num_samples)`` video frames at ``fps``;
4. chunked, autoregressive denoising: a chunk holds ``chunk_frames`` frames; after the first, its first
   ``motion_frames`` are the last frames of the previous chunk, given to the UNet as motion latents (mask 0 there)
   and not generated again, so each chunk adds ``chunk_frames - motion_frames`` frames. Classifier-free guidance is
   composed over reference and audio, ``eps = eps_uncond + s_ref (eps_ref - eps_uncond) + s_audio (eps_full -
   eps_ref)``, the three predictions from one batched UNet call;
5. each chunk is decoded as soon as it is done and pasted back into the photo with the inverse alignment through a
   feathered lower-face mask.

Output, through the one way out of every pipeline (:class:`avdiff.pipelines.output.FrameSink`). ``pipe(...)``
returns the frames (``output_type`` ``"np"``, ``"pt"``, ``"pil"`` or ``"crops"``), written into an array allocated
once. ``pipe(..., output_path="out.mp4")`` streams them instead: each frame goes to the H.264 encoder as soon as it is
pasted back, nothing is collected, and the output holds the path, not the frames
(``VideoPipelineOutput.frames is None``). That is what ``avdiff talk`` does. Either way the video carries the user's
audio as given (its own rate and channels; the model reads a 16 kHz mono copy).

Memory is bounded whatever the audio's length when streaming: the pipeline holds the speech features (one vector
per 10 ms), one chunk's latents and frames, and the photo. The photo is the working size: one larger than
:data:`avdiff.pipelines.output.MAX_OUTPUT_SIDE` (1920 px on its longer side) is downscaled to it first, with a log
line (:func:`avdiff.video.image.load_image` with ``max_side``), so a 12 MP phone photo costs what a 1080p frame
does.

Long audio is generated in chunks of ``chunk_frames`` frames (:func:`plan_chunks`); every chunk after the first
starts with the last ``motion_frames`` frames of the one before, given to the UNet as known motion latents (Hallo's
and LatentSync's way of keeping long videos continuous).

The untrained ``tiny`` preset (:meth:`TalkingHeadPipeline.from_preset`, built by
:func:`avdiff.models.builders.build_talking_head_components`) opens the audio gates (``tanh(gate) = 0.5``)
and draws the extra input channels' weights at random: zero gates and zero new channels are for inflating a
pretrained UNet, which must behave as before until trained; a model trained from scratch has nothing to preserve,
and an untrained one with open gates already lets different speech make different frames.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils.torch_utils import randn_tensor

from avdiff import bundled
from avdiff.audio.clock import FpsLike, FrameClock, parse_fps
from avdiff.audio.io import AudioSource, Waveform, describe_source, load_audio
from avdiff.audio.silence import speech_warnings
from avdiff.models.builders import build_talking_head_components, load_preset
from avdiff.models.codec import LatentCodec, pixels_from_uint8, pixels_to_uint8
from avdiff.models.conditions import Conditions
from avdiff.models.speech import BaseSpeechEncoder
from avdiff.models.unet import AudioVideoUNet
from avdiff.pipelines.output import MAX_OUTPUT_SIDE, FrameSink, VideoPipelineOutput, check_output_type
from avdiff.pipelines.output import OUTPUT_TYPES as SHARED_OUTPUT_TYPES
from avdiff.pipelines.utils import (
    check_callback_tensor_inputs,
    check_face_and_speech,
    check_generator,
    check_num_inference_steps,
    check_talking_head_output,
    default_size,
    is_int,
    latent_multiple,
    pixel_multiple,
)
from avdiff.video.align import AlignedFace, align_face, get_framing, lower_face_mask
from avdiff.video.align import paste_back as paste_crop
from avdiff.video.face import detect_face
from avdiff.video.image import ImageLike, load_image

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_FRAMES, DEFAULT_MOTION_FRAMES = 16, 2  # a pipeline's chunk layout unless it was trained with another
OUTPUT_TYPES = (*SHARED_OUTPUT_TYPES, "crops")  # "crops": the aligned crops, not pasted back


@dataclass(frozen=True)
class Chunk:
    """Frames ``[start, stop)`` of the video, denoised together; the first ``num_motion`` are known already (the
    previous chunk's last frames) and only ``[start + num_motion, stop)`` is new."""

    start: int
    stop: int
    num_motion: int

    @property
    def num_frames(self) -> int:
        return self.stop - self.start

    @property
    def new_start(self) -> int:
        return self.start + self.num_motion


def plan_chunks(num_frames: int, chunk_frames: int, motion_frames: int) -> list[Chunk]:
    """Split ``num_frames`` frames into chunks of at most ``chunk_frames``; every chunk after the first starts with
    ``motion_frames`` frames of the previous one. The new frames of the chunks tile ``[0, num_frames)`` exactly."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if chunk_frames < 2 or not 0 <= motion_frames < chunk_frames:
        raise ValueError(
            f"need chunk_frames >= 2 and 0 <= motion_frames < chunk_frames, got {chunk_frames} and {motion_frames}"
        )
    chunks = [Chunk(0, min(chunk_frames, num_frames), 0)]
    while chunks[-1].stop < num_frames:
        start = chunks[-1].stop - motion_frames
        chunks.append(Chunk(start, min(start + chunk_frames, num_frames), motion_frames))
    return chunks


def composed_guidance(
    prediction: torch.Tensor, terms: tuple[str, ...], reference_scale: float, audio_scale: float
) -> torch.Tensor:
    """Combine a batch of predictions stacked in ``terms`` order (some of ``uncond``, ``ref``, ``full``):
    ``uncond + s_ref (ref - uncond) + s_audio (full - ref)``, with the terms a scale of 1 does not need left out."""
    parts = dict(zip(terms, prediction.chunk(len(terms))))
    full = parts["full"]
    if len(terms) == 1:
        return full
    ref = parts["ref"]
    base = ref if "uncond" not in parts else parts["uncond"] + reference_scale * (ref - parts["uncond"])
    return base + audio_scale * (full - ref)


def guidance_terms(reference_scale: float, audio_scale: float) -> tuple[str, ...]:
    """The UNet passes a pair of scales needs: ``full`` always, ``ref`` (audio nulled) unless both scales are 1,
    ``uncond`` (audio and reference nulled) unless the reference scale is 1."""
    terms = []
    if reference_scale != 1:
        terms.append("uncond")
    if reference_scale != 1 or audio_scale != 1:
        terms.append("ref")
    return (*terms, "full")


def check_components(unet: AudioVideoUNet, codec: LatentCodec, speech_encoder: BaseSpeechEncoder) -> None:
    """Raise a ValueError unless the components fit together."""
    c = codec.latent_channels
    if unet.latent_channels != c:
        raise ValueError(f"unet.latent_channels ({unet.latent_channels}) must equal codec.latent_channels ({c})")
    for name in ("reference_channels", "motion_channels"):
        value = unet.config[name]
        if value not in (0, c):
            raise ValueError(f"unet.config.{name} ({value}) must be 0 or the codec's latent channels ({c})")
    if unet.config.mask_channels not in (0, 1):
        raise ValueError(f"unet.config.mask_channels must be 0 or 1, got {unet.config.mask_channels}")
    if unet.config.audio_dim != speech_encoder.audio_dim:
        raise ValueError(
            f"unet.config.audio_dim ({unet.config.audio_dim}) must equal speech_encoder.audio_dim "
            f"({speech_encoder.audio_dim})"
        )


class TalkingHeadPipeline(DiffusionPipeline):
    """Audio-driven talking-head generation from one face photo.

    Example::

        pipe = TalkingHeadPipeline.from_pretrained("runs/talking_head/final")   # or .from_preset("tiny", seed=0)
        out = pipe("face.jpg", "speech.wav", num_inference_steps=20, generator=torch.Generator().manual_seed(0))
        out.save("talking.mp4")        # frames at the photo's size, the speech muxed in

    Args:
        unet: the denoiser; its latent channels must be the codec's, its reference and motion channels 0 or the
            codec's, its ``audio_dim`` the speech encoder's.
        codec: pixels <-> latents.
        speech_encoder: speech -> per-frame audio tokens.
        scheduler: DDIM by default; swap with ``pipe.scheduler = DPMSolverMultistepScheduler.from_config(...)``.
        framing: the crop the model generates (:data:`avdiff.video.align.FRAMINGS`): ``"face"``, the whole face, or
            ``"lower_face"``, a square around the mouth and jaw (1.67x the mouth's pixels at the same size) pasted
            over the photo's own upper face, as Wav2Lip, MuseTalk and LatentSync do. Saved in ``model_index.json``.
        chunk_frames, motion_frames: the chunk layout the model was trained with, the defaults of ``__call__``
            (a motion module trained on 8-frame chunks is out of its depth on 16). Saved in ``model_index.json``.
    """

    model_cpu_offload_seq = "speech_encoder->unet->codec"
    _callback_tensor_inputs = ["latents", "audio_tokens", "motion_latents"]  # all per chunk

    def __init__(
        self,
        unet: AudioVideoUNet,
        codec: LatentCodec,
        speech_encoder: BaseSpeechEncoder,
        scheduler: DDIMScheduler | DPMSolverMultistepScheduler,
        framing: str = "face",
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
        motion_frames: int = DEFAULT_MOTION_FRAMES,
    ):
        super().__init__()
        check_components(unet, codec, speech_encoder)
        get_framing(framing)  # a ValueError for an unknown one
        if not (is_int(chunk_frames) and is_int(motion_frames) and 0 <= motion_frames < chunk_frames):
            raise ValueError(
                f"need integers 0 <= motion_frames < chunk_frames, got {motion_frames!r} and {chunk_frames!r}"
            )
        self.register_modules(unet=unet, codec=codec, speech_encoder=speech_encoder, scheduler=scheduler)
        self.register_to_config(framing=framing, chunk_frames=chunk_frames, motion_frames=motion_frames)
        self.decode_batch_size = 8  # frames per codec.decode call

    # --- sizes --------------------------------------------------------------------------------------------------

    @property
    def framing(self) -> str:
        """The crop the model generates: ``"face"`` or ``"lower_face"``."""
        return getattr(self.config, "framing", "face")

    @property
    def chunk_frames(self) -> int:
        """Frames denoised together by default: the chunk the model was trained on."""
        return int(getattr(self.config, "chunk_frames", DEFAULT_CHUNK_FRAMES))

    @property
    def motion_frames(self) -> int:
        """Frames of the previous chunk each later chunk starts from, by default."""
        return int(getattr(self.config, "motion_frames", DEFAULT_MOTION_FRAMES))

    @property
    def latent_multiple(self) -> int:
        """Latent sides must be multiples of this (the UNet halves them once per down block but the last)."""
        return latent_multiple(self.unet)

    @property
    def pixel_multiple(self) -> int:
        """Crop sides must be multiples of this many pixels: ``latent_multiple`` times the codec's downscale."""
        return pixel_multiple(self.unet, self.codec)

    @property
    def default_size(self) -> int:
        """The crop side the UNet was built for: its ``sample_size`` times the codec's downscale, px."""
        return default_size(self.unet, self.codec)

    # --- state read by callbacks ----------------------------------------------------------------------------

    @property
    def audio_guidance_scale(self) -> float:
        return self._audio_guidance_scale

    @property
    def reference_guidance_scale(self) -> float:
        return self._reference_guidance_scale

    @property
    def num_timesteps(self) -> int:
        """Denoising steps per chunk."""
        return self._num_timesteps

    @property
    def chunk_index(self) -> int:
        """The chunk being denoised (0-based)."""
        return self._chunk_index

    @property
    def num_chunks(self) -> int:
        return self._num_chunks

    # --- checks -------------------------------------------------------------------------------------------------

    def check_inputs(
        self,
        image: ImageLike | None,
        audio: AudioSource | None,
        fps: FpsLike,
        num_inference_steps: int,
        audio_guidance_scale: float,
        reference_guidance_scale: float,
        chunk_frames: int,
        motion_frames: int,
        height: int | None,
        width: int | None,
        output_type: str,
        generator: torch.Generator | list[torch.Generator] | None,
        callback_on_step_end_tensor_inputs: list[str] | None,
        max_duration_s: float | None,
        eta: float = 0.0,
        output_path: str | os.PathLike | None = None,
    ) -> None:
        """Raise a ValueError naming the argument and its value for anything that cannot work. A photo without a
        face raises ``NoFaceError`` later, in step 1; audio longer than ``max_duration_s`` raises
        ``AudioLoadError`` (a ValueError) when it is loaded, before any generation."""
        check_face_and_speech(image, audio)
        parse_fps(fps)  # a frame rate in [1, 120], or a ValueError naming the value given
        check_num_inference_steps(num_inference_steps)
        for name, scale in [
            ("audio_guidance_scale", audio_guidance_scale),
            ("reference_guidance_scale", reference_guidance_scale),
        ]:
            if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale >= 1):
                raise ValueError(f"{name} must be >= 1 (exactly 1 turns that guidance off), got {scale!r}")
        max_frames = self.unet.unet.config.motion_max_seq_length
        if not is_int(chunk_frames) or not 2 <= chunk_frames <= max_frames:
            raise ValueError(
                f"chunk_frames must be an integer in [2, {max_frames}] (the UNet's motion_max_seq_length),"
                f" got {chunk_frames!r}"
            )
        if not is_int(motion_frames) or not 0 <= motion_frames < chunk_frames:
            raise ValueError(
                f"motion_frames must be an integer in [0, chunk_frames={chunk_frames}), got {motion_frames!r}"
            )
        if motion_frames and not self.unet.config.motion_channels:
            raise ValueError(
                f"motion_frames={motion_frames}, but this UNet takes no motion latents "
                "(motion_channels=0); use motion_frames=0"
            )
        for name, side in [("height", height), ("width", width)]:
            if side is None:
                continue
            if not is_int(side) or side < 16 or side % self.pixel_multiple:
                raise ValueError(
                    f"{name} must be a multiple of {self.pixel_multiple} px (the codec's downscale "
                    f"{self.codec.downscale} x the UNet's {self.latent_multiple}) and >= 16, got {side!r}"
                )
        if height is not None and width is not None and height != width:
            raise ValueError(
                f"height and width must be equal (the aligned face crop is square), got {height} and {width}"
            )
        check_output_type(output_type, OUTPUT_TYPES)
        if isinstance(generator, list) and len(generator) != 1:
            raise ValueError(f"generator must be one torch.Generator (one video), got a list of {len(generator)}")
        check_generator(generator, allow_list=True)
        check_callback_tensor_inputs(callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)
        if max_duration_s is not None and not max_duration_s > 0:
            raise ValueError(f"max_duration_s must be positive (or None), got {max_duration_s!r}")
        if not 0 <= eta <= 1:
            raise ValueError(f"eta must be in [0, 1], got {eta!r}")
        check_talking_head_output(output_path, image, audio)

    # --- steps --------------------------------------------------------------------------------------------------

    def prepare_face(self, image: ImageLike, size: int) -> tuple[np.ndarray, AlignedFace]:
        """Step 1: the photo as uint8 [H, W, 3] (at most :data:`~avdiff.pipelines.output.MAX_OUTPUT_SIDE` px on its
        longer side) and its largest face aligned into a ``size`` crop (NoFaceError if none)."""
        rgb = load_image(image, max_side=MAX_OUTPUT_SIDE)
        face = detect_face(rgb)
        return rgb, align_face(rgb, face, size=size, framing=self.framing)

    def encode_reference(self, crop: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Step 2: uint8 crop [s, s, 3] -> reference latent [1, C, s / f, s / f]."""
        pixels = pixels_from_uint8(torch.from_numpy(crop)[None]).to(device=self.codec.device, dtype=self.codec.dtype)
        return self.codec.encode(pixels).to(device=device, dtype=dtype)

    def speech_features(
        self, audio: AudioSource, max_duration_s: float | None, device: torch.device
    ) -> tuple[Waveform, torch.Tensor]:
        """Step 3: the speech (mono, at the encoder's rate) and its feature sequence [1, D, T]."""
        wav = load_audio(audio, sample_rate=self.speech_encoder.sample_rate, mono=True, max_duration_s=max_duration_s)
        return wav, self.speech_encoder.features(wav.samples.to(device))

    def latent_mask(self, size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The lower-face mask (1 = generate) at latent resolution: [1, 1, 1, h, w]."""
        h = size // self.codec.downscale
        mask = torch.from_numpy(lower_face_mask(size, framing=self.framing))[None, None]  # (1, 1, s, s)
        return F.interpolate(mask, size=(h, h), mode="area")[:, :, None].to(device=device, dtype=dtype)

    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """Latents [1, C, n, h, w] -> uint8 crops [n, s, s, 3], ``decode_batch_size`` frames per codec call."""
        frames = latents[0].transpose(0, 1).to(device=self.codec.device, dtype=self.codec.dtype)  # (n, C, h, w)
        out = [
            pixels_to_uint8(self.codec.decode(frames[i : i + self.decode_batch_size]))
            for i in range(0, len(frames), self.decode_batch_size)
        ]
        return torch.cat(out).numpy()

    def prepare_extra_step_kwargs(self, generator: torch.Generator | None, eta: float) -> dict:
        """``eta`` and ``generator`` for ``scheduler.step`` where its signature takes them."""
        params = set(inspect.signature(self.scheduler.step).parameters)
        kwargs = {}
        if "eta" in params:
            kwargs["eta"] = eta
        if "generator" in params:
            kwargs["generator"] = generator
        return kwargs

    def guided_prediction(
        self,
        latents: torch.Tensor,
        t: torch.Tensor,
        state: dict[str, torch.Tensor],
        mask: torch.Tensor,
        terms: tuple[str, ...],
    ) -> torch.Tensor:
        """One batched UNet call over ``terms`` and the composed guidance: [1, C, n, h, w]."""
        cond = Conditions(
            audio=state["audio_tokens"],
            reference=state["reference_latents"],
            motion=state["motion_latents"],
            mask=mask,
        )
        variants = {"uncond": cond.with_null("audio", "reference"), "ref": cond.with_null("audio"), "full": cond}
        batch = variants[terms[0]]
        for term in terms[1:]:
            batch = batch.cat(variants[term])
        model_input = self.scheduler.scale_model_input(latents, t).expand(len(terms), -1, -1, -1, -1)
        pred = self.unet(model_input, t, **batch.as_kwargs(), return_dict=False)[0]
        return composed_guidance(pred, terms, self._reference_guidance_scale, self._audio_guidance_scale)

    def generate_frames(
        self,
        photo: np.ndarray,
        aligned: AlignedFace,
        reference: torch.Tensor,
        features: torch.Tensor,
        clock: FrameClock,
        num_frames: int,
        size: int,
        chunk_frames: int,
        motion_frames: int,
        generator: torch.Generator | None,
        eta: float,
        crops_only: bool,
        feather_px: float | None,
        callback: Callable | None,
        callback_inputs: list[str],
    ) -> Iterator[np.ndarray]:
        """Steps 4 and 5 as a generator: chunked, autoregressive denoising, each chunk decoded (and pasted back into
        the photo) as soon as it is done. Yields the ``num_frames`` frames in order, uint8 [H, W, 3] (the crop
        [s, s, 3] with ``crops_only``); only one chunk is held at a time."""
        device, dtype = reference.device, reference.dtype
        chunks = plan_chunks(num_frames, chunk_frames, motion_frames)
        self._num_chunks = len(chunks)
        mask = self.latent_mask(size, device, dtype)  # (1, 1, 1, h, w)
        paste_mask = lower_face_mask(size, framing=self.framing)
        feather = size / 32 if feather_px is None else feather_px
        terms = guidance_terms(self._reference_guidance_scale, self._audio_guidance_scale)
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)
        previous: torch.Tensor | None = None  # the last chunk's final latents (1, C, n, h, w)
        logger.info(
            "%d frames in %d chunks of <= %d (%d motion frames), %d steps, %d UNet passes per step",
            num_frames,
            len(chunks),
            chunk_frames,
            motion_frames,
            self._num_timesteps,
            len(terms),
        )
        with torch.no_grad(), self.progress_bar(total=len(chunks) * self._num_timesteps) as progress:
            for k, chunk in enumerate(chunks):
                self._chunk_index = k
                latents = self.denoise_chunk(
                    chunk,
                    previous,
                    reference,
                    features,
                    clock,
                    mask,
                    terms,
                    generator,
                    extra_step_kwargs,
                    callback,
                    callback_inputs,
                    progress,
                )
                previous = latents
                crops = self.decode_latents(latents[:, :, chunk.num_motion :])  # (n_new, s, s, 3)
                for crop in crops:
                    yield crop if crops_only else paste_crop(photo, crop, aligned.matrix, feather, paste_mask)

    def denoise_chunk(
        self,
        chunk: Chunk,
        previous: torch.Tensor | None,
        reference: torch.Tensor,
        features: torch.Tensor,
        clock: FrameClock,
        mask: torch.Tensor,
        terms: tuple[str, ...],
        generator: torch.Generator | None,
        extra_step_kwargs: dict,
        callback: Callable | None,
        callback_inputs: list[str],
        progress,
    ) -> torch.Tensor:
        """The whole denoising loop of one chunk. Returns its latents [1, C, n, h, w], the motion frames (known)
        in their first ``chunk.num_motion`` slots."""
        device, dtype = reference.device, reference.dtype
        n, m = chunk.num_frames, chunk.num_motion
        _, c, h, w = reference.shape
        windows = self.speech_encoder.frame_windows(features, clock, chunk.start, n)  # (1, n, D, W)
        audio_tokens = self.speech_encoder(windows).to(device=device, dtype=dtype)  # (1, n, T_a, D_a)
        config = self.unet.config
        motion = torch.zeros(1, config.motion_channels, n, h, w, device=device, dtype=dtype)
        chunk_mask = mask.expand(1, 1, n, h, w).clone()
        if m:
            motion[:, :, :m] = previous[:, :, -m:]
            chunk_mask[:, :, :m] = 0  # known frames: nothing to generate
        latents = randn_tensor((1, c, n, h, w), generator=generator, device=device, dtype=dtype)
        state = {
            "latents": latents * self.scheduler.init_noise_sigma,  # (1, C, n, h, w)
            "audio_tokens": audio_tokens,
            "motion_latents": motion if config.motion_channels else None,
            "reference_latents": reference if config.reference_channels else None,
        }
        chunk_mask = chunk_mask if config.mask_channels else None
        self.scheduler.set_timesteps(self._num_timesteps, device=device)
        for i, t in enumerate(self.scheduler.timesteps):
            pred = self.guided_prediction(state["latents"], t, state, chunk_mask, terms)
            state["latents"] = self.scheduler.step(pred, t, state["latents"], **extra_step_kwargs, return_dict=False)[
                0
            ]
            if callback is not None:
                returned = callback(self, i, t, {k: state[k] for k in callback_inputs})
                state.update({k: v for k, v in returned.items() if k in self._callback_tensor_inputs})
            progress.update()
        latents = state["latents"]
        if m:
            latents = torch.cat([previous[:, :, -m:], latents[:, :, m:]], dim=2)
        return latents

    # --- call ---------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        image: ImageLike,
        audio: AudioSource,
        *,
        fps: FpsLike = 25,
        num_inference_steps: int = 20,
        audio_guidance_scale: float = 2.0,
        reference_guidance_scale: float = 1.5,
        chunk_frames: int | None = None,
        motion_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        paste_back: bool = True,
        feather_px: float | None = None,
        max_duration_s: float | None = 600.0,
        output_path: str | os.PathLike | None = None,
    ) -> VideoPipelineOutput | tuple:
        """Animate the face in ``image`` with the speech in ``audio``.

        Args:
            image: a face photo (path, PIL image or uint8/float array); the largest face is used.
            audio: speech (a path to any audio or video file, bytes, an array with a rate, or a ``Waveform``).
            fps: output frame rate; ``F = ceil(duration_s * fps)`` frames.
            num_inference_steps: denoising steps per chunk.
            audio_guidance_scale: ``s_audio`` of the composed guidance (1 = off).
            reference_guidance_scale: ``s_ref`` (1 = off).
            chunk_frames: frames denoised together (at most the UNet's ``motion_max_seq_length``); default: the
                pipeline's ``config.chunk_frames``, the chunk it was trained on (16 for an untrained preset).
            motion_frames: frames of the previous chunk each later chunk starts from; default: the pipeline's
                ``config.motion_frames``.
            height, width: side of the aligned face crop in px (equal); default: the model's size.
            eta: DDIM's eta (0: deterministic given the initial noise).
            generator: draws every random number (the initial noise of each chunk, in order); None uses torch's
                global generator.
            output_type: ``"np"`` uint8 [F, H, W, 3]; ``"pt"`` the same as a torch uint8 tensor; ``"pil"`` a list of
                PIL images; ``"crops"`` the aligned crops, uint8 [F, s, s, 3], not pasted back.
            return_dict: return a :class:`VideoPipelineOutput`, else ``(frames, fps, audio)``.
            callback_on_step_end: ``f(pipe, step, timestep, tensors) -> tensors`` after every denoising step;
                ``step`` counts within the chunk (``pipe.chunk_index`` says which chunk). Returned ``latents``,
                ``audio_tokens`` and ``motion_latents`` replace the chunk's.
            callback_on_step_end_tensor_inputs: the tensors passed to it (default ``["latents"]``).
            paste_back: put the generated crops back into the photo (frames at the photo's size) through a feathered
                lower-face mask; False returns the crops.
            feather_px: width of the soft edge at the crop's border, crop px (default: size / 32).
            max_duration_s: refuse longer audio (``AudioLoadError``).
            output_path: stream the video to this mp4 as it is made (H.264 + AAC, written atomically) instead of
                returning the frames; memory then stays flat in the audio's length. It must not be a folder or one
                of the inputs (``ValueError`` before any work).

        Returns:
            ``VideoPipelineOutput(frames, fps, audio, path)``: the frames (None with ``output_path``), the exact fps,
            the audio as given (its own rate and channels), the mp4 written (with ``output_path``), and
            ``warnings``: silent or near-empty speech (:mod:`avdiff.audio.silence`), each also logged;
            ``.save(path)`` writes an mp4 with the audio.
        """
        if callback_on_step_end_tensor_inputs is None:
            callback_on_step_end_tensor_inputs = ["latents"]
        chunk_frames = self.chunk_frames if chunk_frames is None else chunk_frames
        motion_frames = self.motion_frames if motion_frames is None else motion_frames
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        self.check_inputs(
            image,
            audio,
            fps,
            num_inference_steps,
            audio_guidance_scale,
            reference_guidance_scale,
            chunk_frames,
            motion_frames,
            height,
            width,
            output_type,
            generator,
            callback_on_step_end_tensor_inputs,
            max_duration_s,
            eta,
            output_path,
        )
        size = height or width or self.default_size
        fps = parse_fps(fps)
        if isinstance(generator, list):
            generator = generator[0]
        self._audio_guidance_scale = float(audio_guidance_scale)
        self._reference_guidance_scale = float(reference_guidance_scale)
        self._num_timesteps = num_inference_steps
        device = self._execution_device

        # 0. The audio as given (muxed into the video), before any work on the face.
        original = load_audio(audio, mono=False, max_duration_s=max_duration_s)
        warnings = speech_warnings(original, describe_source(audio))  # silent or near-empty speech: logged, returned

        # 1. Detect and align the reference face.
        photo, aligned = self.prepare_face(image, size)

        # 2. The reference latent.
        reference = self.encode_reference(aligned.image, device, self.unet.dtype)  # (1, C, h, w)

        # 3. Speech features, and the video frames they span through the one clock.
        wav, features = self.speech_features(original, max_duration_s, device)  # features (1, D, T)
        clock = self.speech_encoder.frame_clock(fps)
        num_frames = clock.num_frames(wav.num_samples)
        crops_only = output_type == "crops" or not paste_back

        # 4. and 5. Chunked denoising, each chunk decoded and pasted back as it is done; 6. every frame pushed to the
        #    encoder as it is made, or collected in the output type asked for (the crops are uint8 frames too).
        with FrameSink(fps, original, output_path=output_path, num_frames=num_frames) as sink:
            for frame in self.generate_frames(
                photo,
                aligned,
                reference,
                features,
                clock,
                num_frames,
                size,
                chunk_frames,
                motion_frames,
                generator,
                eta,
                crops_only,
                feather_px,
                callback_on_step_end,
                callback_on_step_end_tensor_inputs,
            ):
                sink.write(frame)
            result = sink.finish(
                output_type="np" if output_type == "crops" else output_type, return_dict=return_dict, warnings=warnings
            )
        self.maybe_free_model_hooks()
        return result

    # --- builders -----------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> TalkingHeadPipeline:
        """``DiffusionPipeline.from_pretrained`` that first resolves a bundled model's name
        (``"avdiff/talking-head-tiny"``, see :mod:`avdiff.bundled`) to its folder inside the package; a local folder
        or a hub id is loaded as diffusers loads it."""
        return super().from_pretrained(bundled.resolve(pretrained_model_name_or_path), **kwargs)

    @classmethod
    def from_preset(cls, name_or_path: str | os.PathLike | dict = "tiny", seed: int = 0) -> TalkingHeadPipeline:
        """A pipeline with seeded random weights from a preset: ``"tiny"`` (the shipped
        ``avdiff/presets/talking_head/tiny.yaml``), a YAML path, or a preset dict already read
        (:func:`avdiff.models.builders.load_preset`). The global RNG is left as it was. See the module docstring for
        why the gates are open."""
        spec = name_or_path if isinstance(name_or_path, dict) else load_preset("talking_head", name_or_path)
        return cls(**build_talking_head_components(spec, seed=seed))
