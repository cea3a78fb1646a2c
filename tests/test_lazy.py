"""The lazy package ``__init__``s (``avdiff/_lazy.py``): a name is imported at its first use, listed by ``dir()``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> (an exported name, the module that defines it)
LAZY = {
    "avdiff.audio": ("Rhythm", "avdiff.audio.rhythm"),
    "avdiff.video": ("paste_back", "avdiff.video.align"),
    "avdiff.encoders": ("AlignedEncoder", "avdiff.encoders.alignment"),
    "avdiff.models": ("CFGDropout", "avdiff.models.cfg"),
    "avdiff.metrics": ("BeatAlignment", "avdiff.metrics.beats"),
    "avdiff.pipelines": ("BeatVisualizerPipeline", "avdiff.pipelines.beat_visualizer.pipeline_beat_visualizer"),
}


@pytest.mark.parametrize("package", sorted(LAZY))
def test_a_lazy_package_imports_a_name_at_its_first_use(package):
    name, module = LAZY[package]
    code = (
        f"import importlib, sys; p = importlib.import_module({package!r}); "
        f"assert {module!r} not in sys.modules, 'imported before use'; "
        f"assert {name!r} in dir(p) and {name!r} not in vars(p); "
        f"value = getattr(p, {name!r}); "
        f"assert {module!r} in sys.modules and vars(p)[{name!r}] is value is getattr(sys.modules[{module!r}], {name!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_an_unknown_name_is_an_attribute_error_naming_the_package():
    import avdiff.audio

    with pytest.raises(AttributeError, match="module 'avdiff.audio' has no attribute 'nope'"):
        avdiff.audio.nope  # noqa: B018
