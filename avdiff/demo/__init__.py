"""The Gradio demo: one app with one tab per job; ``avdiff demo`` serves it.

See :func:`avdiff.demo.app.build_app`. Importing this package imports Gradio.
"""

from avdiff.demo.app import build_app, launch, shutdown

__all__ = ["build_app", "launch", "shutdown"]
