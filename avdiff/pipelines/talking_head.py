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

Output. ``pipe(...)`` returns the frames (``output_type`` ``"np"``, ``"pt"``, ``"pil"`` or ``"crops"``), written into
an array allocated once. ``pipe(..., output_path="out.mp4")`` streams them instead: each frame goes to the H.264
encoder as soon as it is pasted back, nothing is collected, and the output holds the path, not the frames
(``VideoPipelineOutput.frames is None``). That is what ``avdiff talk`` does. Either way the video carries the user's
audio as given (its own rate and channels; the model reads a 16 kHz mono copy).

Memory is bounded whatever the audio's length when streaming: the pipeline holds the speech features (one vector
per 10 ms), one chunk's latents and frames, and the photo. The photo is the working size: one larger than
:data:`avdiff.pipelines.output.MAX_OUTPUT_SIDE` (1920 px on its longer side) is downscaled to it first, with a log
line, so a 12 MP phone photo costs what a 1080p frame does.

The untrained ``tiny`` preset (:meth:`TalkingHeadPipeline.from_preset`) opens the audio gates (``tanh(gate) = 0.5``)
and draws the extra input channels' weights at random: zero gates and zero new channels are for inflating a
pretrained UNet, which must behave as before until trained; a model trained from scratch has nothing to preserve,
and an untrained one with open gates already lets different speech make different frames.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from PIL import Image

from avdiff.audio.clock import FpsLike, parse_fps
from avdiff.audio.io import AudioSource, Waveform, describe_source, load_audio
from avdiff.audio.silence import speech_warnings
from avdiff.models.codec import LatentCodec, pixels_from_uint8, pixels_to_uint8
from avdiff.models.speech import BaseSpeechEncoder
from avdiff.models.unet import AudioVideoUNet
from avdiff.pipelines.builders import (  # noqa: F401  (re-exported: the builders' public home used to be here)
    build_codec,
    build_pipeline,
    build_scheduler,
    build_speech_encoder,
    build_unet,
    check_components,
    load_pipeline_preset,
    open_audio_gates,
    randomize_new_channels,
)
from avdiff.pipelines.chunking import (  # noqa: F401  (Chunk ... plan_chunks are re-exported)
    Chunk,
    ChunkedDenoisingMixin,
    composed_guidance,
    guidance_terms,
    plan_chunks,
)
from avdiff.pipelines.output import VideoPipelineOutput, bound_output_size
from avdiff.pipelines.sizes import LatentSizesMixin
from avdiff.pipelines.talking_head_checks import OUTPUT_TYPES, TalkingHeadChecks  # noqa: F401  (OUTPUT_TYPES re-exported)
from avdiff.pipelines.utils import is_int
from avdiff.video.align import AlignedFace, align_face, get_framing
from avdiff.video.masks import lower_face_mask
from avdiff.video.face import detect_face
from avdiff.video.image import ImageLike, load_image
from avdiff.video.writer import VideoWriter

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_FRAMES, DEFAULT_MOTION_FRAMES = 16, 2  # a pipeline's chunk layout unless it was trained with another
HUGE_OUTPUT_BYTES = 4 * 2**30  # warn above this much uint8 output


class TalkingHeadPipeline(ChunkedDenoisingMixin, TalkingHeadChecks, LatentSizesMixin, DiffusionPipeline):
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
            raise ValueError(f"need integers 0 <= motion_frames < chunk_frames, got {motion_frames!r} and "
                             f"{chunk_frames!r}")  # fmt: skip
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

    # latent_multiple, pixel_multiple, default_size: inherited from LatentSizesMixin (avdiff/pipelines/sizes.py)

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

    # --- checks: check_inputs, inherited from TalkingHeadChecks (avdiff/pipelines/talking_head_checks.py) ------

    # --- steps --------------------------------------------------------------------------------------------------

    def prepare_face(self, image: ImageLike, size: int) -> tuple[np.ndarray, AlignedFace]:
        """Step 1: the photo as uint8 [H, W, 3] (at most :data:`~avdiff.pipelines.output.MAX_OUTPUT_SIDE` px on its
        longer side) and its largest face aligned into a ``size`` crop (NoFaceError if none)."""
        rgb = bound_output_size(load_image(image))
        face = detect_face(rgb)
        return rgb, align_face(rgb, face, size=size, framing=self.framing)

    def encode_reference(self, crop: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Step 2: uint8 crop [s, s, 3] -> reference latent [1, C, s / f, s / f]."""
        pixels = pixels_from_uint8(torch.from_numpy(crop)[None]).to(device=self.codec.device, dtype=self.codec.dtype)
        return self.codec.encode(pixels).to(device=device, dtype=dtype)

    def speech_features(self, audio: AudioSource, max_duration_s: float | None,
                        device: torch.device) -> tuple[Waveform, torch.Tensor]:  # fmt: skip
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
        out = [pixels_to_uint8(self.codec.decode(frames[i : i + self.decode_batch_size]))
               for i in range(0, len(frames), self.decode_batch_size)]  # fmt: skip
        return torch.cat(out).numpy()

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
        self.check_inputs(image, audio, fps, num_inference_steps, audio_guidance_scale, reference_guidance_scale,
                          chunk_frames, motion_frames, height, width, output_type, generator,
                          callback_on_step_end_tensor_inputs, max_duration_s, eta, output_path)  # fmt: skip
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
        frames = self.generate_frames(photo, aligned, reference, features, clock, num_frames, size, chunk_frames,
                                      motion_frames, generator, eta, crops_only, feather_px, callback_on_step_end,
                                      callback_on_step_end_tensor_inputs)  # fmt: skip

        if output_path is not None:  # stream every frame to the encoder as it is made
            with VideoWriter(output_path, fps, original) as out:
                out.write_frames(frames)
            self.maybe_free_model_hooks()
            if not return_dict:
                return None, fps, original
            return VideoPipelineOutput(frames=None, fps=Fraction(fps), audio=original, path=out.path,
                                       num_frames=out.num_frames, warnings=warnings)  # fmt: skip

        array = self.allocate_frames(num_frames, photo.shape[:2] if not crops_only else (size, size))
        for i, frame in enumerate(frames):
            array[i] = frame
        self.maybe_free_model_hooks()
        result: np.ndarray | torch.Tensor | list[Image.Image] = array
        if output_type == "pt":
            result = torch.from_numpy(array)
        elif output_type == "pil":
            result = [Image.fromarray(f) for f in array]
        if not return_dict:
            return result, fps, original
        return VideoPipelineOutput(frames=result, fps=Fraction(fps), audio=original, warnings=warnings)

    def allocate_frames(self, num_frames: int, shape: tuple[int, int]) -> np.ndarray:
        """The uint8 output [F, H, W, 3], allocated once and filled chunk by chunk (no stacking copy)."""
        nbytes = num_frames * shape[0] * shape[1] * 3
        if nbytes > HUGE_OUTPUT_BYTES:
            logger.warning("the output frames take %.1f GiB (%d frames of %dx%d); output_path='out.mp4' streams them "
                           "to a file instead of holding them", nbytes / 2**30, num_frames, shape[1], shape[0])  # fmt: skip
        return np.empty((num_frames, *shape, 3), dtype=np.uint8)

    # --- builders -----------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> TalkingHeadPipeline:
        """``DiffusionPipeline.from_pretrained`` that first resolves a bundled model's name
        (``"avdiff/talking-head-tiny"``, see :mod:`avdiff.bundled`) to its folder inside the package; a local folder
        or a hub id is loaded as diffusers loads it."""
        from avdiff.bundled import resolve

        return super().from_pretrained(resolve(pretrained_model_name_or_path), **kwargs)

    @classmethod
    def from_preset(cls, name_or_path: str | os.PathLike = "tiny", seed: int = 0) -> TalkingHeadPipeline:
        """A pipeline with seeded random weights from a preset: ``"tiny"`` (the shipped
        ``avdiff/presets/talking_head_tiny.yaml``)
        or a YAML path. The global RNG is left as it was. See the module docstring for why the gates are open."""
        return build_pipeline(load_pipeline_preset(name_or_path), seed=seed)

