"""Stands for a library (sse-starlette) that starts a task per event loop and never stops it.

It lives outside the ``tests`` package so that its tasks are attributed to a library of its
own (``fake_sse``), as sse_starlette's ``_shutdown_watcher`` is.
"""

from __future__ import annotations

import asyncio

_watchers: dict[int, asyncio.Task[None]] = {}


async def _shutdown_watcher() -> None:
    await asyncio.Event().wait()  # until the process ends, by design


def ensure_watcher() -> None:
    """What sse-starlette does on its first response in a loop."""
    loop = asyncio.get_running_loop()
    if id(loop) not in _watchers:
        _watchers[id(loop)] = loop.create_task(_shutdown_watcher())
