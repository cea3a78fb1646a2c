"""Building laion-clap's ``CLAP_Module`` and reading its checkpoints, for
:class:`~avdiff.encoders.clap_laion.LaionClapEncoder`.

* :func:`_build_clap` builds a ``CLAP_Module`` whose roberta/bert/bart text branch and tokenizer come from a local
  folder (or the hub) instead of laion-clap's hard-coded hub loads (:func:`_injected_text_branch`);
* :func:`_read_state_dict` reads the state dict of a ``.pt`` checkpoint, with ``torch.load(weights_only=True)``
  (plus numeric numpy data) unless the checkpoint is trusted;
* :func:`_download_published` fetches a published checkpoint (:data:`PUBLISHED_CHECKPOINTS`) into the hub cache.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avdiff._extras import require
from avdiff.audio.numba_cache import ensure_numba_cache

logger = logging.getLogger(__name__)

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


def _build_clap(
    amodel: str,
    tmodel: str,
    enable_fusion: bool,
    text_model_dir: str | os.PathLike | None,
    device: str | torch.device | None,
) -> Any:
    """A ``laion_clap.CLAP_Module`` whose text branch and tokenizer come from ``text_model_dir`` (or the hub)."""
    ensure_numba_cache()  # its spectrogram layers call librosa, whose kernels compile on first use
    laion_clap = require("laion_clap", "clap", "The LAION-CLAP backend")
    from clap_module import list_models  # laion-clap puts its folder on sys.path

    if amodel not in list_models():
        raise ValueError(f"amodel={amodel!r} is not a laion-clap audio model; use one of {list_models()}")
    tokenizer, text_model = _load_text_parts(tmodel, text_model_dir)
    with _injected_text_branch(tmodel, tokenizer, text_model):
        clap = laion_clap.CLAP_Module(
            enable_fusion=enable_fusion, device=str(device or "cpu"), amodel=amodel, tmodel=tmodel
        )
    clap.tokenize = tokenizer
    return clap


def _load_text_parts(tmodel: str, text_model_dir: str | os.PathLike | None) -> tuple[Any, Any]:
    """(tokenizer, randomly initialised text model) for a roberta/bert/bart text branch; (None, None) for
    ``"transformer"``, which laion-clap builds itself with its bundled CLIP tokenizer."""
    if tmodel == "transformer":
        if text_model_dir is not None:
            raise ValueError(
                f"text_model_dir is only for tmodel in {sorted(_HF_TEXT_BRANCHES)}, got tmodel='transformer'"
            )
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
    numeric = (
        np.bool_,
        np.int8,
        np.uint8,
        np.int16,
        np.uint16,
        np.int32,
        np.uint32,
        np.int64,
        np.uint64,
        np.float16,
        np.float32,
        np.float64,
    )
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
        state = {k[len("module.") :]: v for k, v in state.items()}
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
