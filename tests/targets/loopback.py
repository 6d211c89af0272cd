"""Serving an ASGI app on loopback for a target, the way the real-library targets all start:
uvicorn on 127.0.0.1, an ephemeral port, inside the target's own event loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import uvicorn


@dataclass(frozen=True)
class Served:
    server: uvicorn.Server
    serving: asyncio.Task[None]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Let uvicorn finish its open responses and return."""
        self.server.should_exit = True
        await self.serving


async def serve(app: Any) -> Served:
    """Start uvicorn serving ``app`` and return once it listens (or raise why it could not)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off"))
    serving = asyncio.create_task(server.serve(), name="uvicorn")
    while not server.started:
        if serving.done():
            await serving  # raises the reason it could not start
        await asyncio.sleep(0.01)
    return Served(server, serving, server.servers[0].sockets[0].getsockname()[1])
