"""Small user-written targets, plugged in through --target the way a user would."""

from __future__ import annotations

import asyncio
import os

from stress.target import Params, Stats


class EchoPipeline:
    """A minimal but honest target: producers -> asyncio.Queue -> consumer."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        body = asyncio.ensure_future(self._stream(params, stats))
        quitting = asyncio.ensure_future(quit.wait())
        try:
            await asyncio.wait({body, quitting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (body, quitting):
                task.cancel()
            await asyncio.gather(body, quitting, return_exceptions=True)

    async def _stream(self, params: Params, stats: Stats) -> None:
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=params.channel_buffer)

        async def produce(conversation: int) -> None:
            for i in range(params.messages):
                await queue.put(f"{conversation}:{i}".ljust(params.message_size, "x"))
                stats.messages_sent += 1
            await queue.put(None)

        async def consume() -> None:
            ended = 0
            while ended < params.conversations:
                token = await queue.get()
                if token is None:
                    ended += 1
                    stats.streams_completed += 1
                else:
                    stats.tokens_received += 1

        async with asyncio.TaskGroup() as group:
            for conversation in range(params.conversations):
                group.create_task(produce(conversation))
            group.create_task(consume())


def echo() -> EchoPipeline:
    return EchoPipeline()


class Crashing:
    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        stats.messages_sent += 1
        raise RuntimeError("the backend connection was reset")


def crashing() -> Crashing:
    return Crashing()


class SegfaultLike:
    """Dies the way a native crash or an OOM kill does: no Python cleanup at all."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        stats.messages_sent += 1
        os.abort()


def aborting() -> SegfaultLike:
    return SegfaultLike()


class Stuck:
    """A consumer that waits for a message no one sends: a deadlock in the channel."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        channel: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        await channel.put("first")
        stats.messages_sent += 1
        await channel.put("second")  # nobody reads: waits forever


def stuck() -> Stuck:
    return Stuck()


class Picky(EchoPipeline):
    """Works, except on scenarios with 13-character messages, where the backend fails."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        if params.message_size == 13:
            raise ValueError("13-character tokens are not supported")
        await super().run(params, stats, quit)


def picky() -> Picky:
    return Picky()
