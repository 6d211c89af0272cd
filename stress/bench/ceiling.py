"""The ceiling: the bare ``asyncio.Queue`` pipeline as an ordinary target.

Named on the command line as ``stress.bench.ceiling:bare_queue``.

A bounded queue of the scenario's capacity, one producer per conversation doing ``await
queue.put(token)`` per token of the scenario's size and one consumer doing ``await
queue.get()`` per token: no batching, no pacing, no per-token quit check (quit cancels the
tasks instead), so it is what asyncio itself allows on this machine.
"""

from __future__ import annotations

import asyncio

from stress.target import Params, Stats


class BareQueue:
    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=params.channel_buffer)
        size = params.message_size
        pattern = ("bare queue ceiling " * (size // 19 + 5))[: size + 64]

        async def produce() -> None:
            for index in range(params.messages):
                offset = index % 64
                await queue.put(pattern[offset : offset + size])  # a new str per token
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
            workers = [group.create_task(produce()) for _ in range(params.conversations)]
            consumer = group.create_task(consume())
            quitting = group.create_task(quit.wait())
            await asyncio.wait({consumer, quitting}, return_when=asyncio.FIRST_COMPLETED)
            # The stream ended or quit was requested: nothing of this run may outlive it.
            for task in (*workers, consumer, quitting):
                task.cancel()


def bare_queue() -> BareQueue:
    return BareQueue()
