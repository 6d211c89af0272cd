"""A chat client on the openai library's ``AsyncStream``, against a local OpenAI-compatible
endpoint.

The endpoint is a Starlette app served by uvicorn on loopback (an ephemeral port):
``POST /v1/chat/completions`` with ``stream: true`` answers ``text/event-stream`` in the
OpenAI format, a ``data: {"object": "chat.completion.chunk", "choices": [{"index": 0,
"delta": {"content": TOKEN}}], ...}`` event per chunk and a final ``data: [DONE]``; an
injected failure is an ``{"error": {...}}`` event, which the client raises as
``openai.APIError``. The user's message names the conversation (``conversation N``).

The client is ``openai.AsyncOpenAI(base_url=..., api_key="test")``: each conversation is a
``client.chat.completions.create(..., stream=True)`` read with ``async for chunk in stream``,
each chunk's ``delta.content`` handed to ``stats.receive``. Server and client both run in
the scenario's child, started in ``setup`` and stopped in ``teardown``.

A chunk carries the tokens the model made since the last one (up to ``CHUNK`` at a time):
one when it is paced slower than the client reads, several when it runs ahead.

Variants (each a target of its own):

``OpenAIChat``       correct.
``OpenAIDuplicate``  the server sends every ``FAULT_EVERY``-th chunk twice (a write retried
                     after it went out): duplicated tokens.
``OpenAILost``       the server skips every ``FAULT_EVERY``-th chunk (a write dropped when
                     the buffer it went to was swapped): lost tokens.
``OpenAIStall``      half-way through conversation 0 the server stops sending and never
                     ends the stream; the client has no read timeout, so it waits in
                     ``async for chunk in stream`` for good.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import openai
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from tests.targets.loopback import Served, serve

CHUNK = 50  # tokens per chunk at most
FAULT_EVERY = 7  # the faulty servers' chunk period
MODEL = "local-chat"
WARM_UP = "are you there?"  # setup's request: answered without the harness's tokens


def _event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class OpenAIChat:
    repeat_every = 0  # the server sends every N-th chunk twice (0: never)
    skip_every = 0  # the server drops every N-th chunk (0: never)
    stalls = False  # the server stops sending half-way through conversation 0
    read_timeout_s: float | None = 30.0  # the stalling client has none

    def __init__(self) -> None:
        self.params: Any = None
        self.served: Served | None = None
        self.client: openai.AsyncOpenAI | None = None
        self.stalled = asyncio.Event()  # never set: what the stalling server waits on

    # Lifecycle: outside the measured window.

    async def setup(self, params: Any) -> None:
        self.params = params
        # The HTTP client logs every request at INFO, the scenario log's level.
        logging.getLogger("httpx2").setLevel(logging.WARNING)
        app = Starlette(routes=[Route("/v1/chat/completions", self._completions,
                                      methods=["POST"])])
        self.served = served = await serve(app)
        self.client = openai.AsyncOpenAI(base_url=f"{served.url}/v1",
                                         api_key="test", max_retries=0,
                                         timeout=self.read_timeout_s)
        # One exchange before the measured window: the client's first request imports and
        # builds what it needs, and leaves a connection in the pool.
        stream = await self.client.chat.completions.create(
            model=MODEL, stream=True, messages=[{"role": "user", "content": WARM_UP}])
        async with stream:
            async for _chunk in stream:
                pass

    async def teardown(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.served is not None:
            await self.served.stop()

    # The server side: an OpenAI-compatible model.

    async def _completions(self, request: Request) -> StreamingResponse:
        body = await request.json()
        content = body["messages"][-1]["content"]
        chunks = self._warm_up(body["model"]) if content == WARM_UP \
            else self._chunks(int(content.rsplit(" ", 1)[1]), body["model"])
        return StreamingResponse(chunks, media_type="text/event-stream")

    @staticmethod
    async def _warm_up(model: str) -> AsyncIterator[bytes]:
        yield _event({"id": "chatcmpl-warm-up", "object": "chat.completion.chunk",
                      "created": int(time.time()), "model": model,
                      "choices": [{"index": 0, "delta": {"content": "ready"},
                                   "finish_reason": "stop"}]})
        yield b"data: [DONE]\n\n"

    async def _chunks(self, conversation: int, model: str) -> AsyncIterator[bytes]:
        params = self.params
        fail_at = params.fail_at(conversation)
        stop = params.messages if fail_at is None else fail_at
        ends_at = None if params.duration_s is None else time.monotonic() + params.duration_s
        delay = params.token_delay_us / 1e6
        made = time.perf_counter()
        chunk = {"id": f"chatcmpl-{conversation}", "object": "chat.completion.chunk",
                 "created": int(time.time()), "model": model,
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                              "finish_reason": None}]}
        yield _event(chunk)
        index = sent = 0
        while index < stop if ends_at is None else time.monotonic() < ends_at:
            # The tokens made since the last chunk, one at a time when paced slower than
            # the client reads.
            due = CHUNK if not delay else int((time.perf_counter() - made) / delay) - index
            count = max(1, min(CHUNK, due) if ends_at is not None
                        else min(CHUNK, due, stop - index))
            chunk["choices"] = [{"index": 0, "finish_reason": None, "delta": {
                "content": "".join(params.tokens(conversation, index, count))}}]
            event = _event(chunk)
            index += count
            sent += 1
            if not (self.skip_every and sent % self.skip_every == 0):
                yield event
            if self.repeat_every and sent % self.repeat_every == 0:
                yield event
            if self.stalls and conversation == 0 and index >= stop // 2:
                await self.stalled.wait()  # the bug: the model never answers again
            # Pacing: sleep until the next token is due (a turn for the loop either way).
            await asyncio.sleep(max(0.0, made + index * delay - time.perf_counter()))
        if fail_at is not None:
            yield _event({"error": {"message": f"model failed after {fail_at} tokens",
                                    "type": "server_error", "code": None}})
            return
        chunk["choices"] = [{"index": 0, "delta": {}, "finish_reason": "stop"}]
        yield _event(chunk)
        yield b"data: [DONE]\n\n"

    # The client side: the chat UI's backend.

    async def run(self, params: Any, stats: Any, quit: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            readers = [group.create_task(self._read(c, params, stats),
                                         name=f"openai-reader-{c}")
                       for c in range(params.conversations)]
            waiting = group.create_task(quit.wait(), name="quit-watch")
            pending: set[asyncio.Task[Any]] = set(readers)
            while pending and not quit.is_set():
                _, pending = await asyncio.wait({waiting, *pending},
                                                return_when=asyncio.FIRST_COMPLETED)
                pending.discard(waiting)
            for task in (waiting, *readers):
                task.cancel()

    async def _read(self, conversation: int, params: Any, stats: Any) -> None:
        assert self.client is not None
        size = params.message_size
        delay = params.consumer_delay_us / 1e6
        try:
            stream = await self.client.chat.completions.create(
                model=MODEL, stream=True,
                messages=[{"role": "user", "content": f"conversation {conversation}"}])
            async with stream:
                async for chunk in stream:
                    content = chunk.choices[0].delta.content if chunk.choices else None
                    if content:
                        if delay:
                            await asyncio.sleep(delay * (len(content) // size))  # rendering
                        stats.receive(conversation, content)
        except openai.APIError as exc:
            stats.fail(conversation, exc)
            return
        stats.end(conversation)


class OpenAIDuplicate(OpenAIChat):
    repeat_every = FAULT_EVERY


class OpenAILost(OpenAIChat):
    skip_every = FAULT_EVERY


class OpenAIStall(OpenAIChat):
    stalls = True
    read_timeout_s = None


def openai_chat() -> OpenAIChat:
    return OpenAIChat()


def duplicate() -> OpenAIChat:
    return OpenAIDuplicate()


def lost() -> OpenAIChat:
    return OpenAILost()


def stall() -> OpenAIChat:
    return OpenAIStall()
