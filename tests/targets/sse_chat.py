"""A token streamer over Server-Sent Events, as LLM chat front ends build them.

Starlette + sse-starlette serve each conversation's tokens as SSE events (``id:`` is the token
index, so a client can resume with ``Last-Event-ID``); uvicorn serves it on loopback; httpx
reads it with ``async for line in response.aiter_lines()``. Server and client both run inside
the scenario's child, started in ``setup`` and stopped in ``teardown``, outside the measured
window.

Variants (each a target of its own):

``SseChat``               correct: every token once, in order; injected failures reported.
``SseResumeWrongId``      drops the connection every ``RECONNECT_EVERY`` tokens and resumes
                          from the wrong event id (10 back): duplicates.
``SseReadTimeout``        the server stalls half-way through conversation 0 for longer than the
                          client's read timeout: the stream dies of ``httpx.ReadTimeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from tests.targets.loopback import Served, serve

RECONNECT_EVERY = 500
RESUME_BACK = 10
READ_TIMEOUT_S = 0.5
BATCH = 50


class SseChat:
    resume_back = 0  # how far before the last received id a reconnect resumes (0: correct)
    stall_s = 0.0  # how long the server stalls half-way through conversation 0

    def __init__(self) -> None:
        self.params: Any = None
        self.served: Served | None = None
        self.client: httpx.AsyncClient | None = None

    # Lifecycle: outside the measured window.

    async def setup(self, params: Any) -> None:
        self.params = params
        app = Starlette(routes=[Route("/stream/{conversation:int}", self._stream)])
        self.served = served = await serve(app)
        self.client = httpx.AsyncClient(base_url=served.url,
                                        timeout=httpx.Timeout(5.0, read=READ_TIMEOUT_S))

    async def teardown(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        if self.served is not None:
            await self.served.stop()

    # The server side: the model backend.

    async def _stream(self, request: Request) -> EventSourceResponse:
        conversation = int(request.path_params["conversation"])
        start = int(request.headers.get("last-event-id", "-1")) + 1
        return EventSourceResponse(self._events(request, conversation, start), ping=3600)

    async def _events(self, request: Request, conversation: int,
                      start: int) -> AsyncIterator[dict[str, str]]:
        params = self.params
        fail_at = params.fail_at(conversation)
        stop = params.messages if fail_at is None else min(fail_at, params.messages)
        delay = params.token_delay_us / 1e6
        index = start
        while index < stop:
            count = min(BATCH, stop - index)
            for offset, text in enumerate(params.tokens(conversation, index, count)):
                yield {"id": str(index + offset), "data": text}
            index += count
            if self.stall_s and conversation == 0 and index >= stop // 2 > index - count:
                await asyncio.sleep(self.stall_s)
                if await request.is_disconnected():
                    return  # the client gave up waiting: stop making tokens for nobody
            await asyncio.sleep(delay * count)
        if fail_at is not None and fail_at < params.messages:
            yield {"event": "error", "data": f"model failed after {fail_at} tokens"}
        else:
            yield {"event": "end", "data": ""}

    # The client side: the UI.

    async def run(self, params: Any, stats: Any, quit: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            readers = [group.create_task(self._read(c, stats), name=f"reader-{c}")
                       for c in range(params.conversations)]
            waiting = group.create_task(quit.wait(), name="quit-watch")
            await asyncio.wait([waiting, *readers], return_when=asyncio.FIRST_COMPLETED)
            if not quit.is_set():
                await asyncio.wait(readers)
            for task in (waiting, *readers):
                task.cancel()

    async def _read(self, conversation: int, stats: Any) -> None:
        assert self.client is not None
        last_id = -1
        while True:
            headers = {"last-event-id": str(last_id)} if last_id >= 0 else {}
            try:
                reconnect = await self._read_once(conversation, stats, headers)
            except httpx.HTTPError as exc:
                stats.fail(conversation, exc)
                return
            if reconnect is None:
                return
            last_id = reconnect - self.resume_back

    async def _read_once(self, conversation: int, stats: Any,
                         headers: dict[str, str]) -> int | None:
        """Read until the stream ends (None) or until it is time to reconnect (the last id)."""
        assert self.client is not None
        event, last_id, seen = "message", -1, 0
        async with self.client.stream("GET", f"/stream/{conversation}", headers=headers) as r:
            async for line in r.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("id:"):
                    last_id = int(line[3:])
                elif line.startswith("data:"):
                    data = line[6:] if line.startswith("data: ") else line[5:]
                    if event == "end":
                        stats.end(conversation)
                        return None
                    if event == "error":
                        stats.fail(conversation, data)
                        return None
                    stats.receive(conversation, data)
                    seen += 1
                    if self.resume_back and seen % RECONNECT_EVERY == 0:
                        return last_id
                elif not line:
                    event = "message"
        return None


class SseResumeWrongId(SseChat):
    resume_back = RESUME_BACK


class SseReadTimeout(SseChat):
    stall_s = READ_TIMEOUT_S * 4


def sse_chat() -> SseChat:
    return SseChat()


def resume_wrong_id() -> SseChat:
    return SseResumeWrongId()


def read_timeout() -> SseChat:
    return SseReadTimeout()
