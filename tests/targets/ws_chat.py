"""A token streamer over WebSockets: the websockets library's server and client on loopback.

The server sends each conversation's tokens as text frames, ``<index> <token>``, then an
``end`` or ``error`` frame; the client reads them with ``async for message in websocket``.
Both run in the scenario's child; ``setup`` starts the server outside the measured window.

``WsChat``       correct.
``WsSlowClose``  on quit the client says goodbye and waits up to 5 s for an acknowledgement
                 the server never sends: a slow quit that only a quit under load shows.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

BATCH = 50
SLOW_CLOSE_TIMEOUT_S = 5.0


class WsChat:
    goodbye_timeout_s = 0.0  # how long the client waits for an ack of its goodbye on quit

    def __init__(self) -> None:
        self.params: Any = None
        self.server: Server | None = None
        self.url = ""

    async def setup(self, params: Any) -> None:
        self.params = params
        self.server = await serve(self._handler, "127.0.0.1", 0)
        port = next(iter(self.server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"

    async def teardown(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handler(self, websocket: ServerConnection) -> None:
        conversation = int(websocket.request.path.rsplit("/", 1)[1])  # type: ignore[union-attr]
        params = self.params
        fail_at = params.fail_at(conversation)
        stop = params.messages if fail_at is None else min(fail_at, params.messages)
        delay = params.token_delay_us / 1e6
        try:
            for start in range(0, stop, BATCH):
                count = min(BATCH, stop - start)
                for offset, text in enumerate(params.tokens(conversation, start, count)):
                    await websocket.send(f"{start + offset} {text}")
                await asyncio.sleep(delay * count)
            failed = fail_at is not None and fail_at < params.messages
            await websocket.send("error model failed" if failed else "end")
        except ConnectionClosed:
            return

    async def run(self, params: Any, stats: Any, quit: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            readers = [group.create_task(self._read(c, stats, quit), name=f"ws-reader-{c}")
                       for c in range(params.conversations)]
            await asyncio.wait(readers)

    async def _read(self, conversation: int, stats: Any, quit: asyncio.Event) -> None:
        async with connect(f"{self.url}/chat/{conversation}") as websocket:
            quitting = asyncio.create_task(quit.wait())
            try:
                async for message in websocket:
                    assert isinstance(message, str)
                    head, _, text = message.partition(" ")
                    # After the last frame the loop goes on until the server closes: the
                    # server's close handshake is the normal end, the client's is the quit.
                    if head == "end":
                        stats.end(conversation)
                    elif head == "error":
                        stats.fail(conversation, text)
                    else:
                        stats.receive(conversation, text)
                    if quitting.done():
                        await self._goodbye(websocket)
                        # A closing handshake would wait behind the frames the server is still
                        # sending: on quit the client drops the connection instead.
                        websocket.transport.abort()
                        return
            finally:
                quitting.cancel()


    async def _goodbye(self, websocket: Any) -> None:
        if self.goodbye_timeout_s:
            with contextlib.suppress(ConnectionClosed):
                await websocket.send("bye")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ack(websocket), self.goodbye_timeout_s)

    @staticmethod
    async def _ack(websocket: Any) -> None:
        try:
            while await websocket.recv() != "ack":
                pass
        except ConnectionClosed:
            await asyncio.Event().wait()  # the bug: it waits for the ack all the same


class WsSlowClose(WsChat):
    goodbye_timeout_s = SLOW_CLOSE_TIMEOUT_S


def ws_chat() -> WsChat:
    return WsChat()


def slow_close() -> WsChat:
    return WsSlowClose()
