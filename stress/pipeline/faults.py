"""Broken variants of the reference pipeline, one per failure in the seed's "Failure
Scenarios". They exist for the kit's own tests and demos: each must make the kit report
exactly that failure. Plug one in with ``--target stress.pipeline.faults:NAME``.

``deadlock``
    The consumer stops reading after ``min(expected_tokens // 2, 1000)`` tokens: it awaits
    a render acknowledgement that never comes. The producers fill the channel and wait on
    it forever, so ``run`` never returns unless ``quit`` is set (the runner's timeout fires
    and its stack dump shows the consumer parked in ``_wait_for_ack`` and the backends in
    ``Channel.wait_writable``). Seed diagnosis: deadlock in the message channel.

``blocking``
    The consumer calls ``time.sleep(0.001)`` once per token it renders: a synchronous call
    in async code that blocks the event loop. Each call is bounded (1 ms), so signals and
    the runner's stack dumps still get through, but N tokens cost at least N ms (measured:
    5,000 tokens take 5.7 s; about 53,000 reach the seed's 60 s timeout), and a batch of
    100 tokens holds the loop for 100 ms, which quit latency shows too.
    Seed diagnosis: blocking call in async context.

``leak``
    Every token event is kept forever in a module-level history, with the bookkeeping a
    careless UI might attach to it: a dict per token holding the event, the text, a
    timestamp and a 1 KiB render buffer. About 1.3 KiB stays alive per token on top of
    the transcript (measured RSS growth: 1M x 100 chars 1.5 GB against the seed's 500 MB
    limit, where the reference grows 95 MB; 100K x 10 chars 132 MB), and it grows again on
    every run. Seed diagnosis: messages not freed after processing.

``lossy``
    The channel drops the newest tokens when full (instead of making the producer wait)
    and is a tenth of the scenario's ``channel_buffer``. With the backpressure scenario's
    slow consumer nearly every token is dropped (measured: 100,000 sent, 180 received,
    99.8% loss); even the unpaced 1M short scenario loses 90%. Every drop is counted in
    the channel's statistics and shows up as ``messages_sent - tokens_received``.
    Seed diagnosis: incorrect channel buffer policy.

``duplicate``
    Every ``FAULT_EVERY``-th run of tokens reaches the UI with its last token twice, as when
    a client resumes a dropped stream from a stale event id. The harness names the
    duplicates and the first one (conversation, index, expected, got).

``reorder``
    Every ``FAULT_EVERY``-th run of two or more tokens reaches the UI with its first two
    tokens swapped, as when two tasks handle one conversation's tokens. Reordered tokens.

``short``
    Each backend ends its stream normally after half its tokens: the end event arrives, but
    early (a read timeout taken for the end of the stream). Streams ended short, tokens lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from stress.pipeline.backend import Backend
from stress.pipeline.channel import Channel, Overflow
from stress.pipeline.conductor import ReferencePipeline
from stress.pipeline.consumer import Consumer
from stress.pipeline.events import Event, TokenRun
from stress.pipeline.transcript import Transcript
from stress.target import Params, Stats

DEADLOCK_AFTER_MAX = 1000
FAULT_EVERY = 10  # the duplicate and reorder knobs damage one run of tokens in this many
BLOCKING_SLEEP_S = 0.001
LEAK_BUFFER_BYTES = 1024

# The leak's history: module-level, so it outlives every run (that is the bug).
LEAKED_EVENTS: list[dict[str, Any]] = []


class StallingConsumer(Consumer):
    """Stops reading after ``stall_after`` tokens and waits for an ack nobody sends."""

    def __init__(self, transcript: Transcript, stats: Stats, *, stall_after: int,
                 consumer_delay_us: float = 0.0) -> None:
        super().__init__(transcript, stats, consumer_delay_us=consumer_delay_us)
        self.stall_after = stall_after
        self._ack = asyncio.Event()  # never set

    async def run(self, channel: Channel) -> None:
        rendered = 0
        while rendered < self.stall_after:
            events = await channel.receive()
            if not events:
                break
            rendered += self.render(events)
        await self._wait_for_ack()

    async def _wait_for_ack(self) -> None:
        await self._ack.wait()


class BlockingConsumer(Consumer):
    def render(self, events: Iterable[Event]) -> int:
        events = list(events)
        for event in events:
            if isinstance(event, TokenRun):
                for _ in event.texts:
                    time.sleep(BLOCKING_SLEEP_S)  # the deliberate fault: blocks the loop
        return super().render(events)


class LeakingConsumer(Consumer):
    def render(self, events: Iterable[Event]) -> int:
        events = list(events)
        now = time.time()
        for event in events:
            if isinstance(event, TokenRun):
                for text in event.texts:
                    LEAKED_EVENTS.append({
                        "event": event, "text": text, "at": now,
                        "render_buffer": bytearray(LEAK_BUFFER_BYTES),
                    })
        return super().render(events)


class DuplicatingConsumer(Consumer):
    def __init__(self, transcript: Transcript, stats: Stats, *,
                 consumer_delay_us: float = 0.0) -> None:
        super().__init__(transcript, stats, consumer_delay_us=consumer_delay_us)
        self.runs = 0

    def render(self, events: Iterable[Event]) -> int:
        damaged: list[Event] = []
        for event in events:
            if isinstance(event, TokenRun):
                self.runs += 1
                if self.runs % FAULT_EVERY == 0:
                    damaged.append(TokenRun(event.conversation,
                                            [*event.texts, event.texts[-1]]))
                    continue
            damaged.append(event)
        return super().render(damaged)


class ReorderingConsumer(DuplicatingConsumer):
    def render(self, events: Iterable[Event]) -> int:
        damaged: list[Event] = []
        for event in events:
            if isinstance(event, TokenRun) and len(event.texts) >= 2:
                self.runs += 1
                if self.runs % FAULT_EVERY == 0:
                    first, second, *rest = event.texts
                    damaged.append(TokenRun(event.conversation, [second, first, *rest]))
                    continue
            damaged.append(event)
        return Consumer.render(self, damaged)


class DuplicatePipeline(ReferencePipeline):
    def make_consumer(self, transcript: Transcript, stats: Stats, params: Params) -> Consumer:
        return DuplicatingConsumer(transcript, stats,
                                   consumer_delay_us=float(params.consumer_delay_us))


class ReorderPipeline(ReferencePipeline):
    def make_consumer(self, transcript: Transcript, stats: Stats, params: Params) -> Consumer:
        return ReorderingConsumer(transcript, stats,
                                  consumer_delay_us=float(params.consumer_delay_us))


class ShortPipeline(ReferencePipeline):
    def make_backend(self, conversation: int, params: Params, max_run: int) -> Backend:
        backend = super().make_backend(conversation, params, max_run)
        backend.messages = max(1, backend.messages // 2)  # ends normally, half-way
        return backend


class DeadlockPipeline(ReferencePipeline):
    def make_consumer(self, transcript: Transcript, stats: Stats, params: Params) -> Consumer:
        expected = int(params.messages) * int(params.conversations)
        return StallingConsumer(transcript, stats,
                                stall_after=min(expected // 2, DEADLOCK_AFTER_MAX),
                                consumer_delay_us=float(params.consumer_delay_us))


class BlockingPipeline(ReferencePipeline):
    def make_consumer(self, transcript: Transcript, stats: Stats, params: Params) -> Consumer:
        return BlockingConsumer(transcript, stats,
                                consumer_delay_us=float(params.consumer_delay_us))


class LeakingPipeline(ReferencePipeline):
    def make_consumer(self, transcript: Transcript, stats: Stats, params: Params) -> Consumer:
        return LeakingConsumer(transcript, stats,
                               consumer_delay_us=float(params.consumer_delay_us))


class LossyPipeline(ReferencePipeline):
    def __init__(self) -> None:
        super().__init__(policy=Overflow.DROP_NEWEST)

    def channel_capacity(self, params: Params) -> int:
        return max(1, int(params.channel_buffer) // 10)


def deadlock() -> DeadlockPipeline:
    return DeadlockPipeline()


def blocking() -> BlockingPipeline:
    return BlockingPipeline()


def leak() -> LeakingPipeline:
    return LeakingPipeline()


def lossy() -> LossyPipeline:
    return LossyPipeline()


def duplicate() -> DuplicatePipeline:
    return DuplicatePipeline()


def reorder() -> ReorderPipeline:
    return ReorderPipeline()


def short() -> ShortPipeline:
    return ShortPipeline()
