"""The Gradio app: one tab per job (:data:`avdiff.demo.tabs.TABS`), built by :func:`build_app`.

``avdiff demo`` serves it; ``demos/app.py`` builds it for people who run Gradio apps directly; tests start it
with ``launch(app, prevent_thread_lock=True, ...)`` and close it.

The jobs run in worker processes (:mod:`avdiff.demo.worker`), so a crash costs one request and a cancelled job
stops at once; a job's uploads are kept from the moment it is queued until it has finished, and every request
folder is removed by age and when the server stops (:mod:`avdiff.demo.lifecycle`, through :func:`launch`).

Example::

    from avdiff.demo import build_app, launch
    app = build_app(models={"mine": "runs/talking_head_tiny/final"})
    launch(app, server_name="127.0.0.1", server_port=7860)
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import gradio as gr

from avdiff import __version__
from avdiff.demo.context import Limits, TabContext
from avdiff.demo.lifecycle import RequestFiles
from avdiff.demo.models import ModelRegistry
from avdiff.demo.tabs import TABS, Tab
from avdiff.demo.worker import WorkerPool, WorkerSpec

logger = logging.getLogger(__name__)

DELETE_CACHE = (900, 3600)  # every 15 min, delete outputs older than an hour (and all of them on shutdown)


def build_app(
    models: dict[str, str] | None = None,
    max_audio_s: float = 60.0,
    *,
    limits: Limits | None = None,
    concurrency_limit: int = 2,
    queue_size: int = 32,
    delete_cache: tuple[int, int] = DELETE_CACHE,
    bundled: bool = True,
    device: str | None = None,
    tabs: Sequence[type[Tab]] | None = None,
    workers: bool = True,
) -> gr.Blocks:
    """The demo app, ready to ``launch``.

    Args:
        models: ``{name: folder}`` of saved pipelines to offer (``avdiff train talking-head`` output); checked now,
            loaded on first use. Names become safe labels.
        max_audio_s: longest audio accepted, seconds (overrides ``limits.max_audio_s``).
        limits: the input limits (:class:`~avdiff.demo.context.Limits`).
        concurrency_limit: generation events running at once, over all tabs; more wait in the queue.
        queue_size: requests that may wait in the queue.
        delete_cache: Gradio's ``(frequency_s, age_s)``: generated files and request folders older than ``age_s``
            are deleted every ``frequency_s``, and all of them when the server stops.
        bundled: offer the models bundled with the package.
        device: torch device of the loaded pipelines (default: cuda when available, else cpu).
        tabs: the tab classes (default :data:`~avdiff.demo.tabs.TABS`).
        workers: run the jobs in worker processes (False: in the server's process, as before).

    Raises:
        avdiff.demo.models.ModelSpecError: a model that is not a saved pipeline folder, or a bad name.
        ValueError: bad limits.
    """
    limits = replace(limits or Limits(), max_audio_s=float(max_audio_s))
    if concurrency_limit < 1:
        raise ValueError(f"concurrency_limit must be >= 1, got {concurrency_limit}")
    registry = ModelRegistry(models, bundled=bundled, device=device)
    with gr.Blocks(title="avdiff demo", analytics_enabled=False, delete_cache=delete_cache) as demo:
        cache_dir = Path(demo.GRADIO_CACHE)
        pool = None
        if workers:
            user_models = {e.name: str(e.path) for e in registry.entries.values() if e.origin == "user"}
            spec = WorkerSpec(
                user_models,
                bundled,
                device,
                limits,
                str(cache_dir),
                concurrency_limit,
                logging.getLogger().getEffectiveLevel(),
                tuple(f"{cls.__module__}:{cls.__qualname__}" for cls in tabs or TABS if hasattr(cls, "warm")),
            )
            pool = WorkerPool(spec, max_idle=concurrency_limit)
        ctx = TabContext(registry, limits, cache_dir, concurrency_limit, workers=pool)
        title = gr.Markdown(f"# avdiff {__version__}: sound in, video out", elem_id="avdiff-title")
        with gr.Accordion(f"Models ({len(registry.entries)}): where each comes from", open=False):
            gr.Markdown(registry.describe(), elem_id="avdiff-models")
        built = []
        with gr.Tabs():
            for cls in tabs or TABS:
                tab = cls()
                with gr.Tab(tab.title):
                    tab.build(ctx)
                built.append(tab)
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency_limit)
    files = RequestFiles(cache_dir, pool, delete_cache)
    files.own_inputs_when_queued(demo, title)
    ctx.on_request_dir = files.add_folder
    if pool is not None:
        pool.blocks, pool.on_folder = demo, files.add_folder
    atexit.register(files.shutdown)
    demo.avdiff_context = ctx  # read by launch() and the tests
    demo.avdiff_tabs = built
    demo.avdiff_files = files
    return demo


def launch(demo: gr.Blocks, **kwargs):
    """``demo.launch(**kwargs)`` with the app's upload limit (``max_file_size``, a launch setting in Gradio) and
    its request files' lifespan (a warm worker, the age schedule of request folders, all removed at shutdown)."""
    kwargs.setdefault("max_file_size", demo.avdiff_context.limits.max_file_size)
    app_kwargs = dict(kwargs.pop("app_kwargs", None) or {})
    app_kwargs.setdefault("lifespan", demo.avdiff_files.lifespan)
    return demo.launch(app_kwargs=app_kwargs, **kwargs)


def shutdown(demo: gr.Blocks) -> None:
    """Stop the app: its workers first (their jobs end), then the server, then remove every request folder."""
    if demo.avdiff_files.workers is not None:
        demo.avdiff_files.workers.close()
    demo.close()
    demo.avdiff_files.shutdown()
