"""A CPU-bound target with a knob, for the instruction measure: a known per-token slowdown.

``render`` does ``steps`` steps of arithmetic a token; ``checksum`` a fixed number. The
factories differ only in render's steps, so the instructions a token added by each step of
20 are the same, and a third size's factor is known from the first two.
"""

from __future__ import annotations

import asyncio

from stress.target import Params, Stats

CHECK_STEPS = 20


def render(token: str, steps: int) -> int:
    total = len(token)
    for i in range(steps):
        total += i * i
    return total


def checksum(token: str, steps: int) -> int:
    total = 0
    for i in range(steps):
        total ^= i + len(token)
    return total


class Counted:
    def __init__(self, steps: int, check_steps: int = CHECK_STEPS) -> None:
        self.steps = steps
        self.check_steps = check_steps

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=params.channel_buffer)

        async def produce() -> None:
            for i in range(params.messages * params.conversations):
                if quit.is_set():
                    break
                await queue.put(f"t{i}".ljust(params.message_size, "x"))
                stats.messages_sent += 1
            await queue.put(None)

        async def consume() -> None:
            while (token := await queue.get()) is not None:
                render(token, self.steps)
                checksum(token, self.check_steps)
                stats.tokens_received += 1
            stats.streams_completed += 1

        await asyncio.gather(produce(), consume())


def work20() -> Counted:
    return Counted(20)


def work40() -> Counted:
    return Counted(40)


def work60() -> Counted:
    return Counted(60)


def slow_checksum() -> Counted:
    """render as in work20, checksum with three times its steps: the function that slowed."""
    return Counted(20, 3 * CHECK_STEPS)
