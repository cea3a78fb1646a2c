"""The demo's tabs, one module per job.

A tab is a class with a ``title`` and a ``build(ctx)`` method that creates its components and events inside the
``gr.Tab`` the app opens for it. ``ctx`` (:class:`~avdiff.demo.context.TabContext`) carries the model registry, the
input limits, the per-request folder helper and the shared concurrency group of generation events. To add a job,
write ``avdiff/demo/tabs/<job>.py`` and append its class to :data:`TABS`; no other tab changes. A tab may also have
a ``warm()`` method, which a worker process started with nothing to do runs once before its first job
(:mod:`avdiff.demo.worker`): it loads and runs once what the tab's first request would, so that request is nearly as
quick as the next. It writes only into a temporary folder of its own (not ``ctx.request_dir``: the app hears of no
folder before the worker is ready) and may raise: the failure is logged and the worker serves anyway.
"""

from __future__ import annotations

from typing import Protocol

from avdiff.demo.context import TabContext
from avdiff.demo.tabs.music import MusicTab
from avdiff.demo.tabs.scene import SceneTab
from avdiff.demo.tabs.talking_head import TalkingHeadTab


class Tab(Protocol):
    """One job's tab."""

    title: str

    def build(self, ctx: TabContext) -> None:
        """Create the tab's components and events (called inside ``with gr.Tab(self.title)``). Named API endpoints
        (``api_name=``) make its jobs callable with ``gradio_client``."""


TABS: list[type[Tab]] = [TalkingHeadTab, MusicTab, SceneTab]

__all__ = ["TABS", "MusicTab", "SceneTab", "Tab", "TalkingHeadTab"]
