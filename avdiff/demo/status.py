"""A tab's status line: the sentence of a failed request stays on the page after its toast fades.

A tab's event raises :class:`gradio.Error` (the toast, and the error a ``gradio_client`` caller gets); Gradio then
leaves only a bare "Error" on the outputs. :class:`StatusLine` keeps the sentence for the browser session that sent
the request and writes it into a Markdown line of the tab when the event fails (``.failure``); a request of the tab
that succeeds clears it. The sentence is the one :func:`avdiff.demo.inputs.page_sentence` made for the toast.

Example (inside a tab's ``build``)::

    status = StatusLine("th-status")
    event = button.click(self.talk, inputs, outputs, api_name="talk")
    status.follow(event)
    ...
    raise status.error(page_sentence(e, self.ctx.limits, "talking-head"), request)   # in self.talk
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

import gradio as gr

logger = logging.getLogger(__name__)

MAX_SESSIONS = 1024  # sentences kept for sessions that never ask for theirs (API callers), oldest dropped first


class StatusLine:
    """One tab's status line (a ``gr.Markdown`` with ``elem_id``), created where this is constructed."""

    def __init__(self, elem_id: str):
        self.markdown = gr.Markdown(elem_id=elem_id)
        self._sentences: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def error(self, sentence: str, request: gr.Request | None) -> gr.Error:
        """The ``gr.Error`` to raise for ``sentence``, kept for the request's session so the page can show it after
        the toast fades (``request`` None, as in a direct call: only the error)."""
        session = getattr(request, "session_hash", None)
        if session:
            with self._lock:
                self._sentences[session] = sentence
                self._sentences.move_to_end(session)
                while len(self._sentences) > MAX_SESSIONS:
                    self._sentences.popitem(last=False)
        return gr.Error(sentence, print_exception=False)

    def follow(self, event) -> None:
        """Show the sentence when ``event`` (a tab's request) fails; clear the line when it succeeds."""
        event.success(self.clear, None, self.markdown, queue=False, api_visibility="private")
        event.failure(self.show, None, self.markdown, queue=False, api_visibility="private")

    def clear(self) -> str:
        return ""

    def show(self, request: gr.Request) -> str:
        """The session's last error sentence, in bold ("" when there is none)."""
        sentence = self._take(request)
        return f"**{sentence}**" if sentence else ""

    def _take(self, request: gr.Request | None) -> str | None:
        session = getattr(request, "session_hash", None)
        with self._lock:
            return self._sentences.pop(session, None) if session else None
