"""The Gradio demo: one app with one tab per job; ``avdiff demo`` serves it.

See :func:`avdiff.demo.app.build_app`. Importing this package imports Gradio.
"""

from avdiff._extras import require

require("gradio", "demo", "The demo")  # without it: one sentence naming the extra, before any tab imports Gradio

from avdiff.demo.app import build_app, launch, shutdown  # noqa: E402

__all__ = ["build_app", "launch", "shutdown"]
