"""laion-clap's ``CLAP_Module`` behind :class:`~avdiff.encoders.base.AudioTextEncoder`: :class:`LaionClapEncoder`.

CLAP's two backends, this one and transformers' ``ClapModel`` (:class:`~avdiff.encoders.clap_hf.HFClapEncoder`),
take 48 kHz mono audio and embed it by exact 10 s windows (480000 samples, see
:func:`avdiff.encoders.base.split_windows`): a clip of any length is cut into windows that tile it (the last one
aligned to the clip's end; a clip shorter than 10 s is repeat-padded as CLAP was trained), each window is embedded, and
the clip's embedding is the renormalised mean of its window embeddings. Neither library's random crop of long audio
is ever reached, so embeddings are deterministic: the same clip gives the same vector on every call. Here audio is
quantized to int16 levels first, as laion-clap does (:func:`quantize_int16`).

laion-clap is imported only when a :class:`LaionClapEncoder` is built: importing it loads three tokenizers from the
Hugging Face hub at module level (set ``HF_HUB_OFFLINE=1`` on a machine without internet).

Weights: :meth:`LaionClapEncoder.from_pretrained` takes a local ``.pt`` checkpoint or a published name such as
``"630k-audioset-best"`` (downloaded from https://huggingface.co/lukewys/laion_clap into the hub cache). Its roberta
text branch is built from the config and tokenizer of ``roberta-base``: from the hub, or offline from
``text_model_dir``, a local folder holding them (its weights are not read; they come from the checkpoint). Building
the model and reading checkpoints (:data:`~avdiff.encoders.clap_checkpoint.PUBLISHED_CHECKPOINTS`) is in
:mod:`avdiff.encoders.clap_checkpoint`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from avdiff.encoders.base import AudioTextEncoder, embed_windowed
from avdiff.encoders.clap_checkpoint import (
    _LEGACY_BUFFERS,
    PUBLISHED_CHECKPOINTS,
    _build_clap,
    _download_published,
    _read_state_dict,
)

logger = logging.getLogger(__name__)

CLAP_SAMPLE_RATE = 48_000
CLAP_WINDOW = 480_000  # 10 s at 48 kHz
TEXT_CONTEXT = 77  # tokens per text, as laion-clap pads and truncates


def quantize_int16(samples: torch.Tensor) -> torch.Tensor:
    """Round-trip float samples through int16 as laion-clap's embedding functions do: clip to [-1, 1], scale by
    32767, truncate toward zero, scale back."""
    return (samples.clamp(-1.0, 1.0) * 32767.0).to(torch.int16).to(torch.float32) / 32767.0


class LaionClapEncoder(AudioTextEncoder):
    """laion-clap (``laion_clap.CLAP_Module``) with deterministic windowed audio embeddings.

    Build it with :meth:`from_pretrained`, :meth:`from_checkpoint` or :meth:`random` rather than directly.

    Args:
        clap: a built ``laion_clap.CLAP_Module``. For a roberta/bert/bart text branch its ``tokenize`` attribute must
            be a working tokenizer; for the ``"transformer"`` text branch laion-clap's CLIP tokenizer is used.
        amodel, tmodel, enable_fusion: how ``clap`` was built (for error messages and :meth:`load_checkpoint`).
        text_template: see :class:`~avdiff.encoders.base.AudioTextEncoder`.
        batch_size: 10 s windows per forward pass of the audio branch.

    Audio is quantized to int16 levels before embedding (:func:`quantize_int16`), as laion-clap does.
    """

    def __init__(
        self,
        clap: Any,
        *,
        amodel: str = "HTSAT-tiny",
        tmodel: str = "roberta",
        enable_fusion: bool = False,
        text_template: str = "{word}",
        batch_size: int = 8,
    ):
        audio_cfg = clap.model_cfg["audio_cfg"]
        super().__init__(audio_cfg["sample_rate"], text_template)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self.clap = clap.eval()
        self.amodel, self.tmodel, self.enable_fusion = amodel, tmodel, bool(enable_fusion)
        self.window = int(audio_cfg["clip_samples"])
        self.batch_size = int(batch_size)

    # --- construction ---------------------------------------------------------------------------------------------

    @classmethod
    def random(
        cls,
        tmodel: str = "transformer",
        seed: int = 0,
        *,
        amodel: str = "HTSAT-tiny",
        enable_fusion: bool = False,
        text_model_dir: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> LaionClapEncoder:
        """A CLAP with random weights, built offline (for tests and smoke runs; its embeddings mean nothing).

        The default ``tmodel="transformer"`` text branch needs no download; ``"roberta"`` needs ``text_model_dir``
        offline. The global torch RNG is left as it was.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            clap = _build_clap(amodel, tmodel, enable_fusion, text_model_dir, device)
        return cls(clap, amodel=amodel, tmodel=tmodel, enable_fusion=enable_fusion, **kwargs)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        amodel: str = "HTSAT-tiny",
        tmodel: str = "roberta",
        enable_fusion: bool = False,
        text_model_dir: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        trust_checkpoint: bool = False,
        **kwargs: Any,
    ) -> LaionClapEncoder:
        """Build the model and load a laion-clap checkpoint (``.pt``) from ``path``.

        Args:
            path: the checkpoint file. It is unpickled with ``torch.load(weights_only=True)``: tensors, plain Python
                data (an optimizer state, an epoch) and numeric numpy scalars and arrays load; any other Python object
                is refused, because unpickling it could run code from the file.
            amodel: audio branch, ``"HTSAT-tiny"`` for the 630k checkpoints, ``"HTSAT-base"`` for the music ones.
            tmodel: text branch; the published checkpoints all use ``"roberta"``.
            enable_fusion: ``True`` for the ``*-fusion-*`` checkpoints.
            text_model_dir: local folder with the text model's config and tokenizer (offline use); ``None`` fetches
                them from the hub (``roberta-base``).
            device: where the model runs (default cpu).
            trust_checkpoint: unpickle the file fully (``weights_only=False``), objects and all. Only for a file from
                a source you trust: a malicious checkpoint runs its code on this machine.
            **kwargs: ``text_template``, ``batch_size``.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the checkpoint's weights do not fit ``amodel``/``tmodel``/``enable_fusion``, or it holds
                Python objects beyond the allowed data (without ``trust_checkpoint``).
            OSError: the text model's config/tokenizer cannot be loaded (offline without ``text_model_dir``).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no laion-clap checkpoint at path={str(path)!r}")
        clap = _build_clap(amodel, tmodel, enable_fusion, text_model_dir, device)
        encoder = cls(clap, amodel=amodel, tmodel=tmodel, enable_fusion=enable_fusion, **kwargs)
        encoder.load_checkpoint(path, trust_checkpoint=trust_checkpoint)
        return encoder

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        amodel: str | None = None,
        tmodel: str = "roberta",
        enable_fusion: bool | None = None,
        text_model_dir: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        cache_dir: str | os.PathLike | None = None,
        trust_checkpoint: bool = False,
        **kwargs: Any,
    ) -> LaionClapEncoder:
        """A local checkpoint file, or a published checkpoint by name (see
        :data:`~avdiff.encoders.clap_checkpoint.PUBLISHED_CHECKPOINTS`).

        A published name (with or without ``.pt``) is fetched with ``huggingface_hub`` from ``lukewys/laion_clap``
        into the hub cache (or ``cache_dir``); offline it must already be there. ``amodel`` and ``enable_fusion``
        default to what the published checkpoint (or a local file named like one) needs, else HTSAT-tiny unfused.

        Raises:
            FileNotFoundError: a published checkpoint is not in the cache and cannot be downloaded (the message says
                where to get it and where to put it), or an unknown name that is not a file.
        """
        key = str(name_or_path)
        stem = key[:-3] if key.endswith(".pt") else key
        if Path(key).is_file():
            path = Path(key)
            spec = PUBLISHED_CHECKPOINTS.get(path.stem)
        elif stem in PUBLISHED_CHECKPOINTS:
            path = _download_published(stem, cache_dir)
            spec = PUBLISHED_CHECKPOINTS[stem]
        else:
            raise FileNotFoundError(
                f"name_or_path={key!r} is neither a checkpoint file nor a published laion-clap checkpoint "
                f"(one of {sorted(PUBLISHED_CHECKPOINTS)})"
            )
        default_amodel, default_fusion = spec or ("HTSAT-tiny", False)
        return cls.from_checkpoint(
            path,
            amodel=amodel or default_amodel,
            tmodel=tmodel,
            enable_fusion=default_fusion if enable_fusion is None else enable_fusion,
            text_model_dir=text_model_dir,
            device=device,
            trust_checkpoint=trust_checkpoint,
            **kwargs,
        )

    def load_checkpoint(self, path: str | os.PathLike, trust_checkpoint: bool = False) -> None:
        """Load a laion-clap checkpoint into this model.

        Accepts a raw state dict or ``{"state_dict": ...}``, with or without DistributedDataParallel's ``module.``
        prefix, and drops buffers that older transformers saved (``position_ids``). Keys and shapes are checked
        before anything is copied, so a checkpoint that does not fit leaves the model as it was. The file is read
        with ``torch.load(weights_only=True)`` unless ``trust_checkpoint`` (see :meth:`from_checkpoint`).

        Raises:
            ValueError: missing or unexpected keys, or a shape mismatch (wrong amodel/tmodel/enable_fusion); or
                Python objects in the file beyond the allowed data, without ``trust_checkpoint``.
        """
        state = _read_state_dict(path, trust_checkpoint)
        expected = self.clap.model.state_dict()
        for key in _LEGACY_BUFFERS:
            if key in state and key not in expected:
                state.pop(key)
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong_shape = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
        if missing or unexpected or wrong_shape:
            raise ValueError(
                f"the checkpoint path={str(path)!r} does not fit a CLAP built with amodel={self.amodel!r}, "
                f"tmodel={self.tmodel!r}, enable_fusion={self.enable_fusion}: {len(missing)} missing keys "
                f"{missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}, {len(wrong_shape)} shape "
                f"mismatches {wrong_shape[:3]}. The music checkpoints need amodel='HTSAT-base', the *-fusion-* "
                f"ones enable_fusion=True, all published ones tmodel='roberta'."
            )
        self.clap.model.load_state_dict(state, strict=True)
        logger.info("loaded laion-clap checkpoint %s (%d tensors)", path, len(state))

    # --- embeddings -----------------------------------------------------------------------------------------------

    @property
    def embedding_dim(self) -> int:
        return int(self.clap.model.joint_embed_shape)

    @property
    def device(self) -> torch.device:
        return next(self.clap.model.parameters()).device

    def embed_clips(self, clips: list[torch.Tensor]) -> torch.Tensor:
        """Unit-norm audio embeddings [B, D] (cpu float32), by 10 s windows at 48 kHz (see the module docstring)."""
        with torch.no_grad():
            return embed_windowed(clips, self.window, self._embed_windows, self.batch_size).cpu()

    def _embed_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """Exact windows [w, 480000] -> embeddings [w, D] through laion-clap's own feature and model functions."""
        from laion_clap.training.data import get_audio_features

        audio_cfg = self.clap.model_cfg["audio_cfg"]
        # Exact windows never reach the random crop. "fusion" also builds the 4-channel mel a fused branch reads.
        truncating = "fusion" if self.enable_fusion else "rand_trunc"
        inputs = [
            get_audio_features({}, window, self.window, truncating, "repeatpad", audio_cfg)
            for window in quantize_int16(windows)
        ]
        return self.clap.model.get_audio_embedding(inputs)

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Unit-norm text embeddings [B, D] (cpu float32). Texts are padded/truncated to 77 tokens."""
        model = self.clap.model
        if model.text_branch_type == "transformer":
            from clap_module.tokenizer import tokenize

            tokens: Any = tokenize(texts, context_length=TEXT_CONTEXT)
        else:
            tokens = dict(self.clap.tokenizer(texts))  # CLAP_Module.tokenizer: max_length padding to 77
        with torch.no_grad():
            return F.normalize(model.encode_text(tokens, device=self.device).float(), dim=-1).cpu()
