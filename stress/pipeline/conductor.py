"""The conductor: runs the conversations' backends, forwards their events through the
bounded channel to the one consumer, and stops everything when quit is requested.

Task tree (every task owned by a TaskGroup, so nothing outlives ``run``)::

    run ── pipeline ─┬─ consumer
          │          └─ backends ── backend-0 .. backend-N (each: stream -> channel)
          └─ quit-watch

``run`` returns when the pipeline finishes (every stream ended, the consumer drained the
channel) or as soon as ``quit`` is set: it then cancels the pipeline task, whose groups
cancel and await every backend and the consumer, and returns without raising.
"""

from __future__ import annotations

import asyncio
import contextlib

from stress.pipeline.backend import Backend
from stress.pipeline.channel import Channel, Overflow
from stress.pipeline.consumer import Consumer
from stress.pipeline.events import TokenRun
from stress.pipeline.transcript import Transcript
from stress.target import Params, Stats

# Caps on one burst (one token run): a huge channel_buffer or huge tokens must not turn
# into a burst that holds the event loop (and delays quit) for long. The character cap
# also keeps a burst's worth of freed token memory under glibc's 128 KiB trim threshold,
# so it is reused instead of returned to the OS and faulted in again (10,000-character
# tokens stream about 25% faster with it).
MAX_RUN = 1000
MAX_RUN_CHARS = 100_000
SOAK_SCROLLBACK_CHARS = 1_000_000  # per conversation, in a soak run


class ReferencePipeline:
    """The reference system under test: backend -> bounded channel -> UI consumer.

    ``run`` may be called again on the same object; each call starts from fresh state.
    The last run's transcript and channel stay on the object (a chat UI keeps its
    transcript), so memory growth includes the text that was rendered.
    """

    def __init__(self, *, policy: Overflow = Overflow.BACKPRESSURE) -> None:
        self.policy = policy
        self.transcript: Transcript | None = None
        self.channel: Channel | None = None

    # Hooks the fault knobs override.

    def channel_capacity(self, params: Params) -> int:
        return int(params.channel_buffer)

    def make_consumer(self, transcript: Transcript, stats: Stats, params: Params) -> Consumer:
        return Consumer(transcript, stats, consumer_delay_us=float(params.consumer_delay_us))

    def make_backend(self, conversation: int, params: Params, max_run: int) -> Backend:
        return Backend(conversation, messages=int(params.messages),
                       message_size=int(params.message_size),
                       token_delay_us=float(params.token_delay_us), max_run=max_run,
                       fail_at=params.fail_at(conversation), tokens=params.tokens,
                       duration_s=params.duration_s)

    # The target interface.

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        channel = Channel(self.channel_capacity(params), self.policy)
        # A soak streams for as long as it lasts: the UI keeps a scrollback, not everything.
        transcript = Transcript(scrollback_chars=SOAK_SCROLLBACK_CHARS
                                if params.duration_s is not None else None)
        self.channel, self.transcript = channel, transcript
        consumer = self.make_consumer(transcript, stats, params)
        async with asyncio.TaskGroup() as group:
            pipeline = group.create_task(self._conduct(params, stats, channel, consumer),
                                         name="pipeline")
            quitting = group.create_task(quit.wait(), name="quit-watch")
            await asyncio.wait({pipeline, quitting}, return_when=asyncio.FIRST_COMPLETED)
            # A cancelled child is not an error to its TaskGroup: a requested quit returns.
            pipeline.cancel()
            quitting.cancel()

    async def _conduct(self, params: Params, stats: Stats, channel: Channel,
                       consumer: Consumer) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(consumer.run(channel), name="consumer")
            group.create_task(self._run_backends(params, stats, channel), name="backends")

    async def _run_backends(self, params: Params, stats: Stats, channel: Channel) -> None:
        max_run = max(1, min(int(params.channel_buffer), MAX_RUN,
                             MAX_RUN_CHARS // int(params.message_size)))
        try:
            async with asyncio.TaskGroup() as group:
                for conversation in range(int(params.conversations)):
                    backend = self.make_backend(conversation, params, max_run)
                    group.create_task(forward(backend, channel, stats),
                                      name=f"backend-{conversation}")
        finally:
            channel.close()  # the consumer drains what is left, then stops


async def forward(backend: Backend, channel: Channel, stats: Stats) -> None:
    """Forward one backend's events into the channel, counting every token handed over."""
    async with contextlib.aclosing(backend.stream()) as events:
        async for event in events:
            if not isinstance(event, TokenRun):
                channel.offer(event)
                continue
            run, waited = event, False
            while True:
                handed = channel.offer(run)
                stats.messages_sent += handed
                if handed == len(run.texts):
                    break
                run = TokenRun(run.conversation, run.texts[handed:])
                await channel.wait_writable()
                waited = True
            if not waited:
                # Never run burst after burst without a suspension point: the consumer and
                # a quit request get their turn even when the channel never fills.
                await asyncio.sleep(0)
