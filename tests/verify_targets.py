"""Small targets a user might write, each wrong in one way the kit once passed (issue: verified
streams). Plugged in through --target as a user would."""

from __future__ import annotations

import asyncio
from typing import Any

from stress.target import Params, Stats


class Idle:
    """Moves nothing and only marks its streams done (counters only)."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        stats.streams_completed += params.conversations


class IdleVerified:
    """Moves nothing and only ends its streams, through the harness."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        for conversation in range(params.conversations):
            stats.end(conversation)


class Inflated:
    """Counts every token ten times on the receiving side."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        stats.messages_sent = params.messages * params.conversations
        stats.tokens_received = 10 * stats.messages_sent
        stats.streams_completed = params.conversations


class Negative:
    """Counters that went below zero (a decrement in the wrong place)."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        stats.messages_sent = params.messages
        stats.tokens_received = -params.messages
        stats.streams_completed = params.conversations


class Floats:
    """Counters kept as floats (averaged, or divided by a chunk size)."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        stats.messages_sent = params.messages
        stats.tokens_received = params.messages - 0.5  # type: ignore[assignment]
        stats.streams_completed = params.conversations


class Verified:
    """A correct verified target: one producer per conversation, one consumer, a queue."""

    resend = 0  # tokens a "reconnect" resends every RECONNECT_EVERY tokens
    cut_at: float | None = None  # the stream dies (read timeout) after this share of it
    hide_failures = False  # ignore params.fail_at: stream to the end
    consumer_delay_s = 0.0

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue(maxsize=params.channel_buffer)

        async def produce(conversation: int) -> None:
            fail_at = None if self.hide_failures else params.fail_at(conversation)
            stop = params.messages if fail_at is None else fail_at
            if self.cut_at is not None:
                stop = int(params.messages * self.cut_at)
            index = 0
            while index < stop:
                count = min(50, stop - index)
                await queue.put((conversation, "".join(params.tokens(conversation, index,
                                                                     count))))
                index += count
                if self.resend and index % 500 == 0:  # resume from a stale event id
                    await queue.put((conversation, "".join(
                        params.tokens(conversation, index - self.resend, self.resend))))
            if self.cut_at is not None:
                await queue.put((conversation, TimeoutError("read timed out")))
            elif fail_at is not None:
                await queue.put((conversation, ConnectionError("backend failed")))
            else:
                await queue.put((conversation, None))

        async def consume() -> None:
            ended = 0
            while ended < params.conversations:
                conversation, item = await queue.get()
                if item is None:
                    stats.end(conversation)
                    ended += 1
                elif isinstance(item, Exception):
                    stats.fail(conversation, item)
                    ended += 1
                else:
                    if self.consumer_delay_s:
                        await asyncio.sleep(self.consumer_delay_s)
                    stats.receive(conversation, item)

        async with asyncio.TaskGroup() as group:
            for conversation in range(params.conversations):
                group.create_task(produce(conversation))
            group.create_task(consume())


class ResumeWrongId(Verified):
    resend = 10  # 5,050 tokens arrive for 5,000 made


class ReadTimeout(Verified):
    cut_at = 0.5  # half the tokens, then an httpx.ReadTimeout-like error


class HiddenFailures(Verified):
    hide_failures = True


class SlowConsumer(Verified):
    consumer_delay_s = 0.02


def idle() -> Idle:
    return Idle()


def idle_verified() -> IdleVerified:
    return IdleVerified()


def inflated() -> Inflated:
    return Inflated()


def negative() -> Negative:
    return Negative()


def floats() -> Floats:
    return Floats()


def verified() -> Verified:
    return Verified()


def resume_wrong_id() -> ResumeWrongId:
    return ResumeWrongId()


def read_timeout() -> ReadTimeout:
    return ReadTimeout()


def hidden_failures() -> HiddenFailures:
    return HiddenFailures()


def slow_consumer() -> SlowConsumer:
    return SlowConsumer()
