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

The code lives in three modules, all re-exported here:

* :mod:`avdiff.encoders.clap_laion`: :class:`LaionClapEncoder`, :func:`quantize_int16` and the window constants;
* :mod:`avdiff.encoders.clap_checkpoint`: building laion-clap's model and reading its checkpoints
  (:data:`PUBLISHED_CHECKPOINTS`);
* :mod:`avdiff.encoders.clap_hf`: :class:`HFClapEncoder`.
"""

from avdiff.encoders.clap_checkpoint import LAION_REPO, LAION_URL, PUBLISHED_CHECKPOINTS
from avdiff.encoders.clap_hf import HFClapEncoder
from avdiff.encoders.clap_laion import CLAP_SAMPLE_RATE, CLAP_WINDOW, TEXT_CONTEXT, LaionClapEncoder, quantize_int16

__all__ = [
    "CLAP_SAMPLE_RATE",
    "CLAP_WINDOW",
    "LAION_REPO",
    "LAION_URL",
    "PUBLISHED_CHECKPOINTS",
    "TEXT_CONTEXT",
    "HFClapEncoder",
    "LaionClapEncoder",
    "quantize_int16",
]
