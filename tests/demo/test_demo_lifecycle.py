"""The demo's request files without a server: a queued job's uploads are let go when its push fails."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from avdiff.demo.lifecycle import RequestFiles


def test_uploads_are_let_go_when_queueing_the_job_fails(tmp_path):
    upload = tmp_path / "abc" / "photo.png"
    upload.parent.mkdir()
    upload.write_bytes(b"png")

    async def push(body, request, username):
        raise RuntimeError("the queue broke")

    def handler():
        pass

    handler.avdiff_in_worker = True
    blocks = SimpleNamespace(_queue=SimpleNamespace(push=push), fns={0: SimpleNamespace(fn=handler)})
    holder = SimpleNamespace(keep_in_cache=set())
    files = RequestFiles(tmp_path)
    files.own_inputs_when_queued(blocks, holder)
    body = SimpleNamespace(fn_index=0, data=[{"path": str(upload)}])
    with pytest.raises(RuntimeError):
        asyncio.run(blocks._queue.push(body, None, None))
    assert holder.keep_in_cache == set()  # Gradio's schedule may delete them again
