"""A correct SSE target on the counter API: uvicorn + sse-starlette serve, httpx reads.

Server and client start in ``setup`` and stop in ``teardown``. sse-starlette starts one
``_shutdown_watcher`` task per event loop and never stops it: the kit names it as the library's
task, and ``ignore_tasks: ["sse_starlette.*"]`` accepts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from stress.target import Params, Stats
from tests.targets.loopback import Served, serve


class RealSse:
    def __init__(self) -> None:
        self.served: Served | None = None
        self.client: httpx.AsyncClient | None = None

    async def setup(self, params: Params) -> None:
        app = Starlette(routes=[Route("/stream/{messages:int}", self._stream)])
        self.served = served = await serve(app)
        self.client = httpx.AsyncClient(base_url=served.url, timeout=5.0)

    async def teardown(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        if self.served is not None:
            await self.served.stop()

    async def _stream(self, request: Request) -> EventSourceResponse:
        messages = int(request.path_params["messages"])

        async def events() -> AsyncIterator[dict[str, str]]:
            for index in range(messages):
                yield {"data": str(index)}

        return EventSourceResponse(events(), ping=3600)

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        assert self.client is not None, "setup() was not called"
        client = self.client

        async def read() -> None:
            async with client.stream("GET", f"/stream/{params.messages}") as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        stats.messages_sent += 1
                        stats.tokens_received += 1
            stats.streams_completed += 1

        reader = asyncio.create_task(read())
        stop = asyncio.create_task(quit.wait())
        await asyncio.wait({reader, stop}, return_when=asyncio.FIRST_COMPLETED)
        for task in (reader, stop):
            task.cancel()
        await asyncio.gather(reader, stop, return_exceptions=True)
