"""A missing install extra is one sentence naming it: the demo (gradio), the identity measure (dlib), avdiff bench
rhythm (mir_eval) and the LAION-CLAP backend (laion_clap), each with its package made unimportable here."""

from __future__ import annotations

import importlib
import json
import sys

import pytest

from avdiff._extras import MissingExtraError, missing_extra_sentence, require
from avdiff.cli import main
from avdiff.encoders.clap_checkpoint import _build_clap
from avdiff.metrics.identity import FaceRecognizer, IdentityModelError

IDENTITY_SENTENCE = r"^The identity measure needs the eval extra: pip install 'avdiff\[eval\]'$"


def _forget(monkeypatch, package: str) -> None:
    """Drop ``package`` and its submodules from sys.modules for this test (restored after), so they import anew."""
    for name in list(sys.modules):
        if name == package or name.startswith(package + "."):
            monkeypatch.delitem(sys.modules, name)


def test_require_gives_the_module_or_one_sentence(monkeypatch):
    assert require("json", "demo", "The demo") is json
    monkeypatch.setitem(sys.modules, "gradio", None)
    with pytest.raises(MissingExtraError) as e:
        require("gradio", "demo", "The demo")
    assert str(e.value) == "The demo needs the demo extra: pip install 'avdiff[demo]'"
    assert isinstance(e.value, ImportError)


def test_avdiff_demo_without_gradio_says_which_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)
    _forget(monkeypatch, "avdiff.demo")
    assert main(["demo", "--port", "7861"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "avdiff: error: The demo needs the demo extra: pip install 'avdiff[demo]'", err


def test_the_identity_measure_without_dlib_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)
    with pytest.raises(IdentityModelError, match=IDENTITY_SENTENCE):
        FaceRecognizer()


def test_bench_rhythm_without_mir_eval_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mir_eval", None)
    _forget(monkeypatch, "avdiff.bench.rhythm")
    with pytest.raises(MissingExtraError, match=r"^avdiff bench rhythm needs the eval extra"):
        importlib.import_module("avdiff.bench.rhythm")


def test_the_laion_clap_backend_without_laion_clap_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "laion_clap", None)
    with pytest.raises(MissingExtraError) as e:
        _build_clap("HTSAT-tiny", "roberta", False, None, "cpu")
    assert str(e.value) == missing_extra_sentence("The LAION-CLAP backend", "clap")
