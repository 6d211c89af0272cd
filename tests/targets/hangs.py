"""Targets that hang in the ways real systems do, for the hang dump's tests.

``sse_stall``         a Starlette server (served by uvicorn on loopback, in the same process)
                      sends a few SSE events and then stops sending; the client reads with
                      ``async for line in response.aiter_lines()`` (httpx) and waits forever
                      inside httpx/httpcore.
``ws_stall``          the same with websockets: the server sends a few messages and goes
                      quiet; the client waits in ``async for message in ws``.
``sleep_in_loop``     a coroutine calls ``time.sleep(100)``: the loop is blocked in a
                      synchronous call.
``lock_reacquired``   the loop thread acquires a ``threading.Lock`` it already holds (on POSIX
                      that wait is interrupted for signal handlers, so the Python dump runs).
``native_deadlock``   the loop thread locks a pthread mutex it already holds (through ctypes,
                      which releases the GIL): blocked in C, so no Python signal handler runs.
``replaced_stderr``   sets ``sys.stderr`` to an ``io.StringIO`` (as Textual does), then hangs.
``many_tasks``        20,000 tasks pending on an event that is never set.
"""

from __future__ import annotations

import asyncio
import ctypes
import io
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import websockets
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from tests.targets.loopback import serve

SENT_BEFORE_STALL = 5
MANY_TASKS = 20_000


async def _hang_until(quit: asyncio.Event) -> None:
    await quit.wait()


class SseStall:
    async def run(self, params: Any, stats: Any, quit: asyncio.Event) -> None:
        stalled = asyncio.Event()  # never set: the server stops sending for good

        async def events(_request: Request) -> AsyncIterator[dict[str, str]]:
            for index in range(SENT_BEFORE_STALL):
                stats.messages_sent += 1
                yield {"id": str(index), "data": f"token {index}"}
            await stalled.wait()

        async def stream(request: Request) -> EventSourceResponse:
            return EventSourceResponse(events(request), ping=3600)

        app = Starlette(routes=[Route("/stream", stream)])
        served = await serve(app)
        server, serving = served.server, served.serving
        async with httpx.AsyncClient(base_url=served.url, timeout=None) as client:
            reader = asyncio.create_task(self._read(client, stats), name="sse-reader")
            await asyncio.wait([reader, asyncio.create_task(_hang_until(quit))],
                               return_when=asyncio.FIRST_COMPLETED)
            reader.cancel()
        server.should_exit = True
        await serving

    async def _read(self, client: httpx.AsyncClient, stats: Any) -> None:
        async with client.stream("GET", "/stream") as response:
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    stats.tokens_received += 1


class WsStall:
    async def run(self, params: Any, stats: Any, quit: asyncio.Event) -> None:
        stalled = asyncio.Event()

        async def handler(ws: Any) -> None:
            for index in range(SENT_BEFORE_STALL):
                stats.messages_sent += 1
                await ws.send(f"token {index}")
            await stalled.wait()

        async with websockets.serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with websockets.connect(f"ws://127.0.0.1:{port}") as ws:
                reader = asyncio.create_task(self._read(ws, stats), name="ws-reader")
                await asyncio.wait([reader, asyncio.create_task(_hang_until(quit))],
                                   return_when=asyncio.FIRST_COMPLETED)
                reader.cancel()

    async def _read(self, ws: Any, stats: Any) -> None:
        async for _message in ws:
            stats.tokens_received += 1


class SleepInLoop:
    async def run(self, params: Any, stats: Any, quit: asyncio.Event) -> None:
        stats.messages_sent = stats.tokens_received = 1
        await asyncio.sleep(0)
        time.sleep(100)  # noqa: ASYNC251 - the bug: a synchronous call in async code


class NativeDeadlock:
    async def run(self, params: Any, stats: Any, quit: asyncio.Event) -> None:
        libc = ctypes.CDLL(None)
        mutex = ctypes.create_string_buffer(64)  # a pthread_mutex_t, zeroed: default kind
        libc.pthread_mutex_init(mutex, None)
        libc.pthread_mutex_lock(mutex)
        await asyncio.sleep(0)
        libc.pthread_mutex_lock(mutex)  # the bug: a lock the thread already holds


class ReplacedStderr:
    async def run(self, params: Any, stats: Any, quit: asyncio.Event) -> None:
        sys.stderr = io.StringIO()  # what a full-screen UI does with the terminal
        await _hang_until(quit)


class ManyTasks:
    async def run(self, params: Any, stats: Any, quit: asyncio.Event) -> None:
        never = asyncio.Event()
        tasks = [asyncio.create_task(never.wait()) for _ in range(MANY_TASKS)]
        await _hang_until(quit)
        for task in tasks:
            task.cancel()


sse_stall = SseStall
ws_stall = WsStall
sleep_in_loop = SleepInLoop
native_deadlock = NativeDeadlock
replaced_stderr = ReplacedStderr
many_tasks = ManyTasks


class LockReacquired:
    async def run(self, params: Any, stats: Any, quit: asyncio.Event) -> None:
        lock = threading.Lock()
        lock.acquire()
        await asyncio.sleep(0)
        lock.acquire()  # the bug: a lock the loop thread already holds


lock_reacquired = LockReacquired
