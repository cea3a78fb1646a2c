"""CLAP audio-text encoders: laion-clap's ``CLAP_Module`` and transformers' ``ClapModel``, behind one interface.

Both take 48 kHz mono audio and embed it by exact 10 s windows (480000 samples, see
:func:`avdiff.encoders.base.split_windows`): a clip of any length is cut into windows that tile it (the last one
aligned to the clip's end; a clip shorter than 10 s is repeat-padded as CLAP was trained), each window is embedded, and
the clip's embedding is the renormalised mean of its window embeddings. Neither library's random crop of long audio
is ever reached, so embeddings are deterministic: the same clip gives the same vector on every call.

laion-clap is imported only when a :class:`LaionClapEncoder` is built: importing it loads three tokenizers from the
Hugging Face hub at module level (set ``HF_HUB_OFFLINE=1`` on a machine without internet).

Weights:
    * :meth:`LaionClapEncoder.from_pretrained` takes a local ``.pt`` checkpoint or a published name such as
      ``"630k-audioset-best"`` (downloaded from https://huggingface.co/lukewys/laion_clap into the hub cache).
      Its roberta text branch is built from the config and tokenizer of ``roberta-base``: from the hub, or offline from
      ``text_model_dir``, a local folder holding them (its weights are not read; they come from the checkpoint).
    * :meth:`HFClapEncoder.from_pretrained` takes a hub id (``"laion/clap-htsat-unfused"``) or a local folder.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from avdiff.encoders.base import AudioBatch, AudioTextEncoder, as_text_list, embed_windowed

logger = logging.getLogger(__name__)

CLAP_SAMPLE_RATE = 48_000
CLAP_WINDOW = 480_000  # 10 s at 48 kHz
TEXT_CONTEXT = 77  # tokens per text, as laion-clap pads and truncates

LAION_REPO = "lukewys/laion_clap"
LAION_URL = f"https://huggingface.co/{LAION_REPO}/resolve/main/"

# Published laion-clap checkpoints: name -> (audio model, feature fusion). All use the roberta text branch.
PUBLISHED_CHECKPOINTS: dict[str, tuple[str, bool]] = {
    "630k-best": ("HTSAT-tiny", False),
    "630k-audioset-best": ("HTSAT-tiny", False),
    "630k-fusion-best": ("HTSAT-tiny", True),
    "630k-audioset-fusion-best": ("HTSAT-tiny", True),
    "music_audioset_epoch_15_esc_90.14": ("HTSAT-base", False),
    "music_speech_epoch_15_esc_89.25": ("HTSAT-base", False),
    "music_speech_audioset_epoch_15_esc_89.98": ("HTSAT-base", False),
}

# laion-clap text branches built from a transformers model: tmodel -> (class name in clap_module.model, hub id).
_HF_TEXT_BRANCHES = {
    "roberta": ("RobertaModel", "roberta-base"),
    "bert": ("BertModel", "bert-base-uncased"),
    "bart": ("BartModel", "facebook/bart-base"),
}
_TEXT_WIDTH = 768  # laion-clap's text projection takes 768-d pooled text features

# Buffers older transformers saved in checkpoints and newer ones no longer keep in the state dict.
_LEGACY_BUFFERS = ("text_branch.embeddings.position_ids",)

_PATCH_LOCK = threading.Lock()


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
    ) -> "LaionClapEncoder":
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
    ) -> "LaionClapEncoder":
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
    ) -> "LaionClapEncoder":
        """A local checkpoint file, or a published checkpoint by name (see :data:`PUBLISHED_CHECKPOINTS`).

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

    def embed_audio(self, audio: AudioBatch) -> torch.Tensor:
        """Unit-norm audio embeddings [B, D] (cpu float32), by 10 s windows at 48 kHz (see the module docstring)."""
        clips = self.mono_clips(audio)
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

    def embed_text(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Unit-norm text embeddings [B, D] (cpu float32). Texts are padded/truncated to 77 tokens."""
        items = as_text_list(texts)
        model = self.clap.model
        if model.text_branch_type == "transformer":
            from clap_module.tokenizer import tokenize

            tokens: Any = tokenize(items, context_length=TEXT_CONTEXT)
        else:
            tokens = dict(self.clap.tokenizer(items))  # CLAP_Module.tokenizer: max_length padding to 77
        with torch.no_grad():
            return F.normalize(model.encode_text(tokens, device=self.device).float(), dim=-1).cpu()


def _build_clap(
    amodel: str,
    tmodel: str,
    enable_fusion: bool,
    text_model_dir: str | os.PathLike | None,
    device: str | torch.device | None,
) -> Any:
    """A ``laion_clap.CLAP_Module`` whose text branch and tokenizer come from ``text_model_dir`` (or the hub)."""
    import laion_clap
    from clap_module import list_models

    if amodel not in list_models():
        raise ValueError(f"amodel={amodel!r} is not a laion-clap audio model; use one of {list_models()}")
    tokenizer, text_model = _load_text_parts(tmodel, text_model_dir)
    with _injected_text_branch(tmodel, tokenizer, text_model):
        clap = laion_clap.CLAP_Module(enable_fusion=enable_fusion, device=str(device or "cpu"), amodel=amodel, tmodel=tmodel)
    clap.tokenize = tokenizer
    return clap


def _load_text_parts(tmodel: str, text_model_dir: str | os.PathLike | None) -> tuple[Any, Any]:
    """(tokenizer, randomly initialised text model) for a roberta/bert/bart text branch; (None, None) for
    ``"transformer"``, which laion-clap builds itself with its bundled CLIP tokenizer."""
    if tmodel == "transformer":
        if text_model_dir is not None:
            raise ValueError(f"text_model_dir is only for tmodel in {sorted(_HF_TEXT_BRANCHES)}, got tmodel='transformer'")
        return None, None
    if tmodel not in _HF_TEXT_BRANCHES:
        raise ValueError(f"tmodel must be 'transformer' or one of {sorted(_HF_TEXT_BRANCHES)}, got {tmodel!r}")
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    source = str(text_model_dir) if text_model_dir is not None else _HF_TEXT_BRANCHES[tmodel][1]
    try:
        config = AutoConfig.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as e:
        raise OSError(
            f"cannot load the {tmodel} text model's config and tokenizer from {source!r}. laion-clap's {tmodel} text "
            f"branch needs them; offline, download them once (huggingface-cli download {_HF_TEXT_BRANCHES[tmodel][1]} "
            f"--local-dir DIR; config.json and the tokenizer files suffice, the weights come from the CLAP checkpoint) "
            f"and pass text_model_dir=DIR. ({e})"
        ) from e
    width = getattr(config, "hidden_size", None)
    if width != _TEXT_WIDTH:
        raise ValueError(
            f"the text model in text_model_dir={source!r} has hidden_size={width}; laion-clap's text projection "
            f"takes {_TEXT_WIDTH}-d features"
        )
    return tokenizer, AutoModel.from_config(config)


@contextlib.contextmanager
def _injected_text_branch(tmodel: str, tokenizer: Any, text_model: Any):
    """While building a ``CLAP_Module``, make laion-clap's hard-coded hub loads return our objects.

    laion-clap calls ``RobertaModel.from_pretrained('roberta-base')`` (or Bert/Bart) inside ``CLAP.__init__`` and
    ``RobertaTokenizer.from_pretrained('roberta-base')`` inside ``CLAP_Module.__init__``, whatever the text model.
    Those two names are swapped, in laion-clap's own modules only, for the duration of the build.
    """
    hook = importlib.import_module("laion_clap.hook")
    model_module = importlib.import_module("clap_module.model")  # laion-clap puts its folder on sys.path
    patches = [(hook, "RobertaTokenizer", _Preloaded(tokenizer))]
    if tmodel in _HF_TEXT_BRANCHES:
        patches.append((model_module, _HF_TEXT_BRANCHES[tmodel][0], _Preloaded(text_model)))
    with _PATCH_LOCK:
        saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
        try:
            for module, name, value in patches:
                setattr(module, name, value)
            yield
        finally:
            for module, name, value in saved:
                setattr(module, name, value)


class _Preloaded:
    """Stands in for a transformers class: ``from_pretrained(anything)`` returns the object given."""

    def __init__(self, value: Any):
        self.value = value

    def from_pretrained(self, *args: Any, **kwargs: Any) -> Any:
        return self.value


def _numpy_data_globals() -> list:
    """What numeric numpy scalars and arrays need in a ``weights_only`` load (training scripts often store an epoch
    or a metric as a numpy value): the scalar and array reconstructors and the numeric dtypes. None of them runs
    code; an object array is still refused (its dtype is not listed)."""
    if int(np.__version__.split(".")[0]) >= 2:  # numpy 2 renamed numpy.core to numpy._core
        from numpy._core import multiarray
    else:
        from numpy.core import multiarray
    numeric = (np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
               np.float16, np.float32, np.float64)  # fmt: skip
    return [multiarray.scalar, multiarray._reconstruct, np.ndarray, np.dtype, *(type(np.dtype(t)) for t in numeric)]


def _read_state_dict(path: str | os.PathLike, trust_checkpoint: bool = False) -> dict[str, torch.Tensor]:
    """The state dict in a laion-clap ``.pt`` file, unpickled with ``weights_only=True`` (plus numeric numpy data)
    unless ``trust_checkpoint``. Raises ValueError for a file that needs more, naming what it holds."""
    import pickle

    if trust_checkpoint:
        logger.warning("unpickling %s with weights_only=False (trust_checkpoint=True): it may run code", path)
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=False)
    else:
        try:
            with torch.serialization.safe_globals(_numpy_data_globals()):
                checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            try:
                found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
            except Exception:  # not a zip checkpoint: the message of the load says why
                found = []
            allowed = {f"{g.__module__}.{g.__qualname__}" for g in _numpy_data_globals()}
            why = [line.strip() for line in str(e).splitlines() if "WeightsUnpickler error" in line][:1]
            what = [g for g in found if g not in allowed] or why or [type(e).__name__]
            raise ValueError(
                f"path={str(path)!r}: the checkpoint holds Python objects beyond tensors and plain data ({what}); "
                "unpickling them could run code from the file. If you trust its source, pass "
                "trust_checkpoint=True."
            ) from None
    state = checkpoint["state_dict"] if isinstance(checkpoint, dict) and "state_dict" in checkpoint else checkpoint
    if not isinstance(state, dict) or not state:
        raise ValueError(f"path={str(path)!r} holds no state dict")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _download_published(name: str, cache_dir: str | os.PathLike | None) -> Path:
    """The local path of a published checkpoint, downloading it into the hub cache when online."""
    from huggingface_hub import hf_hub_download

    filename = f"{name}.pt"
    try:
        return Path(hf_hub_download(LAION_REPO, filename, cache_dir=None if cache_dir is None else str(cache_dir)))
    except Exception as e:  # offline, no network, or a hub error: all mean the weights are not here
        raise FileNotFoundError(
            f"the laion-clap checkpoint {name!r} is not on this machine and cannot be downloaded "
            f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE')!r}; {type(e).__name__}). Download {LAION_URL}{filename} "
            f"and pass its path (LaionClapEncoder.from_pretrained('/path/to/{filename}')), or put it in the hub cache "
            f"with `huggingface-cli download {LAION_REPO} {filename}`"
            + (f" --cache-dir {cache_dir}" if cache_dir is not None else "")
            + ". The roberta text branch also needs roberta-base's config and tokenizer: pass text_model_dir offline."
        ) from e


class HFClapEncoder(AudioTextEncoder):
    """transformers' ``ClapModel`` with deterministic windowed audio embeddings.

    Args:
        model: a ``ClapModel``.
        processor: its ``ClapProcessor`` (feature extractor + tokenizer); its sampling rate and ``nb_max_samples``
            set :attr:`sample_rate` and the window (48 kHz, 10 s for the published models).
        text_template: see :class:`~avdiff.encoders.base.AudioTextEncoder`.
        batch_size: windows per forward pass of the audio model.

    Every window is exactly ``nb_max_samples`` long, so the feature extractor never crops at random, and ``is_longer``
    is passed as all False: the extractor's random choice of a "longer" clip when none is (its fusion mode) is
    overridden, and the global numpy RNG it draws from is restored.
    """

    def __init__(self, model: Any, processor: Any, *, text_template: str = "{word}", batch_size: int = 8):
        extractor = processor.feature_extractor
        super().__init__(extractor.sampling_rate, text_template)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self.model = model.eval()
        self.processor = processor
        self.window = int(extractor.nb_max_samples)
        self.batch_size = int(batch_size)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike, device: str | torch.device | None = None, **kwargs: Any
    ) -> "HFClapEncoder":
        """Load ``ClapModel`` and ``ClapProcessor`` from a hub id (e.g. ``"laion/clap-htsat-unfused"``) or a folder.

        Raises:
            OSError: not a folder and not in the hub cache, and it cannot be downloaded (e.g. offline).
        """
        from transformers import ClapModel, ClapProcessor

        source = str(name_or_path)
        try:
            processor = ClapProcessor.from_pretrained(source)
            model = ClapModel.from_pretrained(source)
        except OSError as e:
            raise OSError(
                f"cannot load a CLAP model from name_or_path={source!r}: give a local folder saved with "
                f"save_pretrained, or download the hub id first (HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE')!r}). ({e})"
            ) from e
        return cls(model, processor, **kwargs).to(device or "cpu")

    @property
    def embedding_dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def embed_audio(self, audio: AudioBatch) -> torch.Tensor:
        """Unit-norm audio embeddings [B, D] (cpu float32), by windows of ``nb_max_samples`` (10 s at 48 kHz)."""
        clips = self.mono_clips(audio)
        with torch.no_grad():
            return embed_windowed(clips, self.window, self._embed_windows, self.batch_size).cpu()

    def _embed_windows(self, windows: torch.Tensor) -> torch.Tensor:
        rng_state = np.random.get_state()
        try:
            features = self.processor.feature_extractor(
                [w.numpy() for w in windows], sampling_rate=self.sample_rate, return_tensors="pt"
            )
        finally:
            np.random.set_state(rng_state)
        is_longer = torch.zeros(windows.shape[0], 1, dtype=torch.bool, device=self.device)
        out = self.model.get_audio_features(input_features=features["input_features"].to(self.device), is_longer=is_longer)
        return _pooled(out)

    def embed_text(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Unit-norm text embeddings [B, D] (cpu float32). Texts are padded/truncated to 77 tokens."""
        items = as_text_list(texts)
        tokens = self.processor.tokenizer(
            items, padding="max_length", truncation=True, max_length=TEXT_CONTEXT, return_tensors="pt"
        )
        with torch.no_grad():
            out = self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device), attention_mask=tokens["attention_mask"].to(self.device)
            )
            return F.normalize(_pooled(out).float(), dim=-1).cpu()


def _pooled(out: Any) -> torch.Tensor:
    """transformers 5 returns an output object whose ``pooler_output`` is the projected embedding; 4.x a tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output
