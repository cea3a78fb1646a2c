"""The mouth painter: a latent video UNet that paints only the inside of the mouth of rendered talking-head frames.

Where the lips part, a warp of the photo has nothing true to show (the teeth and tongue were never in it). The
:class:`MouthPainter` inpaints that hole, and nothing else, the way diffusion inpainting does (SD-inpainting's
masked-image channels; Wav2Lip and LatentSync generate a masked lower face): a square crop around the mouth, at its
native size (:meth:`MouthPainter.paint_size`: rounded to a size the UNet takes, within ``pixel_size`` ..
``max_pixel_size``), is folded into latents by a :class:`~avdiff.models.codec.SpaceToDepthCodec`,
and an :class:`~avdiff.models.unet.AudioVideoUNet` (spatial layers, AnimateDiff motion layers over the window's
frames, gated audio cross-attention) denoises a window of such crops given, on its input channels,

* the **known** pixels: the rendered crop with the hole blanked (the lips, teeth edge and skin around it),
* the **mask** of the hole (1 = paint),
* the **reference**: the photo's own mouth crop (its lips and, if it shows them, its teeth),

and the **audio** tokens of each frame (a :class:`~avdiff.models.speech.SpeechEncoder` over log-mel windows): what
the tongue does is heard, not seen. The UNet predicts the clean crop (x0-prediction, as the pixel-space talking-head
preset does; or v, by its scheduler's ``prediction_type``); the sampling loop and the crops' geometry are in
:mod:`avdiff.pipelines.talking_head.mouth_painting`, the training in :mod:`avdiff.training.mouth_painter`.

Everything is one diffusers ``ModelMixin`` (one ``config.json``, one safetensors file), so it is an optional
component of :class:`~avdiff.pipelines.talking_head.MotionTalkingHeadPipeline`.
"""

from __future__ import annotations

import logging
import math

import torch
from diffusers import ConfigMixin, DDIMScheduler, ModelMixin
from diffusers.configuration_utils import register_to_config

from avdiff.audio.clock import FpsLike, FrameClock
from avdiff.models.cfg import replace_by_null
from avdiff.models.codec import SpaceToDepthCodec
from avdiff.models.speech import SpeechEncoder
from avdiff.models.unet import AudioVideoUNet

logger = logging.getLogger(__name__)


class MouthPainter(ModelMixin, ConfigMixin):
    """Paints the inside of the mouth of a window of mouth crops (see the module doc).

    Args:
        unet_config: :class:`~avdiff.models.unet.AudioVideoUNet` keyword arguments; its latent, reference and
            motion ("known") channels are the codec's, with one mask channel.
        speech_config: :class:`~avdiff.models.speech.SpeechEncoder` keyword arguments.
        pixel_size: the smallest side of the square crop the UNet paints, px (a multiple of :attr:`size_multiple`:
            the fold times the UNet's downsampling); a mouth whose crop is smaller is enlarged to it.
        max_pixel_size: the largest (a multiple of :attr:`size_multiple` too; a larger crop is shrunk to it); between
            the two a crop is painted at its native size, rounded to :attr:`size_multiple`. None: ``pixel_size`` (one
            size for every mouth, as painters trained at one scale are).
        codec_factor: the space-to-depth fold (a crop of ``S`` px has latents ``S / codec_factor`` wide).
        crop_scale: the crop's native side, in widths of the photo's mouth (corner to corner of the inner lips).
        chunk_frames: frames painted together (the motion layers' window).
        context_frames: of those, how many are the frames made just before, given whole (known, not painted again),
            so the paint carries on from chunk to chunk; < ``chunk_frames``.
        scheduler: ``DDIMScheduler`` keyword arguments (the noise schedule it was trained with); its
            ``prediction_type`` is ``"sample"`` (the default) or ``"v_prediction"``.
    """

    @register_to_config
    def __init__(
        self,
        unet_config: dict,
        speech_config: dict,
        pixel_size: int = 48,
        max_pixel_size: int | None = None,
        codec_factor: int = 4,
        crop_scale: float = 1.6,
        chunk_frames: int = 16,
        context_frames: int = 4,
        scheduler: dict | None = None,
    ):
        super().__init__()
        if pixel_size % codec_factor or pixel_size < codec_factor:
            raise ValueError(f"pixel_size ({pixel_size}) must be a positive multiple of codec_factor ({codec_factor})")
        if max_pixel_size is not None and max_pixel_size < pixel_size:
            raise ValueError(f"max_pixel_size ({max_pixel_size}) must be >= pixel_size ({pixel_size})")
        if not crop_scale > 1:
            raise ValueError(f"crop_scale must be > 1 (the crop holds the whole mouth), got {crop_scale}")
        if chunk_frames < 1 or not 0 <= context_frames < chunk_frames:
            raise ValueError(f"need chunk_frames >= 1 and 0 <= context_frames < chunk_frames, got {chunk_frames} and "
                             f"{context_frames}")  # fmt: skip
        schedule = self.make_scheduler()  # the config is registered before __init__ runs
        kind = schedule.config.prediction_type
        if kind not in ("sample", "v_prediction"):  # the loss is on the clean crop: from a predicted noise it would be
            # the noise's error times sqrt(1 - a) / sqrt(a), about 1e3 at the schedule's last steps
            raise ValueError(f"scheduler prediction_type must be 'sample' or 'v_prediction', got {kind!r}")
        self._prediction_type = kind
        self._alphas = schedule.alphas_cumprod  # [num_train_timesteps], what clean_latents reads v by
        self.unet = AudioVideoUNet(**unet_config)
        self.speech_encoder = SpeechEncoder(**speech_config)
        self.codec = SpaceToDepthCodec(factor=codec_factor)
        c = self.codec.latent_channels
        unet_channels = (
            self.unet.latent_channels,
            self.unet.config.reference_channels,
            self.unet.config.motion_channels,
        )
        for name, size in (("pixel_size", pixel_size), ("max_pixel_size", max_pixel_size)):
            if size is not None:
                self.check_size(size, name)
        if unet_channels != (c, c, c):
            raise ValueError(f"the unet's latent, reference and motion channels must all be the codec's ({c})")
        if self.unet.config.audio_dim != self.speech_encoder.audio_dim:
            raise ValueError(
                f"the unet's audio_dim ({self.unet.config.audio_dim}) must be the speech encoder's "
                f"({self.speech_encoder.audio_dim})"
            )

    @property
    def size_multiple(self) -> int:
        """The crops' sides are multiples of this: the fold times the UNet's downsampling (its latents halve once per
        level below the first), so every level sees whole cells."""
        levels = len(self.unet.unet.config.block_out_channels)
        return self.config.codec_factor * 2 ** (levels - 1)

    def paint_size(self, native_side: float) -> int:
        """The side (px) the painter paints a crop of ``native_side`` frame pixels at: the native side rounded to
        :attr:`size_multiple` (halves up), clamped to ``pixel_size .. max_pixel_size`` (a painter with one size always
        gives it).

        Raises:
            ValueError: a side that is not a positive finite number.
        """
        if not (math.isfinite(native_side) and native_side > 0):
            raise ValueError(f"native_side must be a positive number of px, got {native_side}")
        low = self.config.pixel_size
        high = self.config.max_pixel_size or low
        m = self.size_multiple
        size = math.floor(native_side / m + 0.5) * m
        return int(min(max(size, low), high))

    def check_size(self, size: int, what: str = "the crop's side") -> None:
        """Raise ValueError (naming ``what``) unless the painter paints crops of ``size`` px: a positive multiple of
        :attr:`size_multiple`."""
        m = self.size_multiple
        if size < 1 or size % m:
            raise ValueError(f"{what} ({size}) must be a positive multiple of {m} px (the fold times the UNet's "
                             "downsampling)")  # fmt: skip

    def frame_clock(self, fps: FpsLike) -> FrameClock:
        """The clock of video at ``fps`` against the speech encoder's sample rate."""
        return self.speech_encoder.frame_clock(fps)

    @staticmethod
    def _scheduler_config(scheduler: dict | None) -> dict:
        """The ``scheduler`` keyword arguments with the painter's default ``prediction_type``, ``"sample"``."""
        return {"prediction_type": "sample", **(scheduler or {})}

    def make_scheduler(self) -> DDIMScheduler:
        """A fresh DDIM scheduler with the noise schedule the painter was trained with (predicting the clean crops
        unless its ``scheduler`` says otherwise)."""
        return DDIMScheduler.from_config(self._scheduler_config(self.config.scheduler))

    @property
    def prediction_type(self) -> str:
        """What the UNet predicts, as its scheduler says: ``"sample"`` (the clean crops; the shipped painter) or
        ``"v_prediction"`` (Salimans and Ho, "Progressive distillation for fast sampling of diffusion models", 2022)."""
        return self._prediction_type

    def clean_latents(self, output: torch.Tensor, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """The clean latents the UNet's ``output`` stands for, by :attr:`prediction_type` (as ``DDIMScheduler.step``
        reads it, without clipping): the output itself, or ``sqrt(a) x_t - sqrt(1 - a) v`` with ``a`` the schedule's
        cumulative alpha at ``timestep``.

        Args:
            output: the UNet's output [B, C, F, h, w].
            sample: the noisy latents it was given, the same shape.
            timestep: int [B], the training timesteps.
        """
        kind = self.prediction_type
        if kind == "sample":
            return output
        a = self._alphas.to(sample.device)[timestep.long().to(sample.device)].to(sample.dtype)
        a = a.view(-1, *([1] * (sample.ndim - 1)))
        return a.sqrt() * sample - (1 - a).sqrt() * output

    def encode(self, crops: torch.Tensor) -> torch.Tensor:
        """Pixels in [-1, 1], [B, 3, F, S, S] -> latents [B, C, F, S/f, S/f] (the fold has no weights)."""
        B, _, F, S, _ = crops.shape
        flat = crops.transpose(1, 2).reshape(B * F, 3, S, S)
        z = self.codec.encode(flat)
        return z.reshape(B, F, *z.shape[1:]).transpose(1, 2)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [B, C, F, h, w] -> pixels [B, 3, F, S, S]."""
        B, C, F, h, w = latents.shape
        x = self.codec.decode(latents.transpose(1, 2).reshape(B * F, C, h, w))
        return x.reshape(B, F, *x.shape[1:]).transpose(1, 2)

    def latent_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """A pixel mask [B, 1, F, S, S] in [0, 1] -> [B, 1, F, h, w]: a latent cell is painted (1) if any of its
        pixels is."""
        B, _, F, S, _ = mask.shape
        f = self.config.codec_factor
        cells = torch.nn.functional.max_pool2d(mask.transpose(1, 2).reshape(B * F, 1, S, S), f)
        return cells.reshape(B, F, 1, S // f, S // f).transpose(1, 2)

    def pixel_mask(self, holes: torch.Tensor) -> torch.Tensor:
        """The pixels to paint, float {0, 1} [B, 1, F, S, S], from the holes' coverage [B, 1, F, S, S] in [0, 1]: every
        pixel the hole touches at all, grown by one pixel (the renderer's soft edge is painted over too)."""
        B, _, F, S, _ = holes.shape
        touched = (holes > 0.02).to(holes.dtype).transpose(1, 2).reshape(B * F, 1, S, S)
        grown = torch.nn.functional.max_pool2d(touched, 3, stride=1, padding=1)
        return grown.reshape(B, F, 1, S, S).transpose(1, 2)

    def conditions(
        self, crops: torch.Tensor, holes: torch.Tensor, reference: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the UNet is given besides the noisy sample, from pixels in [-1, 1]: crops [B, 3, F, S, S], holes
        [B, 1, F, S, S] in [0, 1] and the reference [B, 3, S, S] -> (known latents [B, C, F, h, w], the latent mask
        [B, 1, F, h, w], the reference latent [B, C, h, w]). The known crops have the hole blanked to 0 (mid grey)."""
        paint = self.pixel_mask(holes)
        known = self.encode(crops * (1 - paint))
        return known, self.latent_mask(paint), self.codec.encode(reference)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        audio_windows: torch.Tensor,
        reference: torch.Tensor,
        known: torch.Tensor,
        mask: torch.Tensor,
        drop_audio: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the clean crops' latents.

        Args:
            sample: noisy latents [B, C, F, h, w].
            timestep: [B] or a scalar.
            audio_windows: per-frame log-mel windows [B, F, n_mels, W] (``speech_encoder.frame_windows``).
            reference: the photo's mouth latent [B, C, h, w].
            known: the crops' latents with the hole blanked [B, C, F, h, w].
            mask: latent mask [B, 1, F, h, w] (1 = paint).
            drop_audio: bool [B]: these items hear silence's null (zero tokens: classifier-free guidance).

        Returns:
            the UNet's prediction [B, C, F, h, w], of what :attr:`prediction_type` names (:meth:`clean_latents` turns
            it into the clean latents).
        """
        tokens = self.speech_encoder(audio_windows)  # [B, F, T_a, D_a]
        if drop_audio is not None:
            tokens = replace_by_null(tokens, drop_audio)
        return self.unet(
            sample,
            timestep,
            audio_tokens=tokens,
            reference_latents=reference,
            motion_latents=known,
            mask=mask,
            return_dict=False,
        )[0]


__all__ = ["MouthPainter"]
