"""The UI consumer: takes everything the channel holds, renders it into the transcript.

Rendering a run of tokens is one ``str.join``; the counters move once per batch. The
per-message delay (``consumer_delay_us``) models render cost on a schedule: after taking
``k`` tokens the consumer is busy until ``busy_until + k * delay`` and sleeps only while
that lies ahead, so the loop's millisecond timer granularity does not add up per message.
The schedule restarts when the consumer had to wait for input (an idle UI banks no time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from stress.pipeline.channel import Channel
from stress.pipeline.events import Event, StreamEnd, StreamError, StreamStart, TokenRun
from stress.pipeline.transcript import Transcript
from stress.target import Stats


class Consumer:
    def __init__(self, transcript: Transcript, stats: Stats, *,
                 consumer_delay_us: float = 0.0) -> None:
        self.transcript = transcript
        self.stats = stats
        self.delay_s = consumer_delay_us / 1e6

    async def run(self, channel: Channel) -> None:
        """Render until the channel is closed and drained."""
        delay = self.delay_s
        busy_until = time.perf_counter()
        while True:
            idle = channel.pending_events == 0
            events = await channel.receive()
            if not events:
                return
            if idle:
                busy_until = time.perf_counter()
            tokens = self.render(events)
            if delay > 0 and tokens:
                busy_until += tokens * delay
                ahead = busy_until - time.perf_counter()
                if ahead > 0:
                    await asyncio.sleep(ahead)

    def render(self, events: Iterable[Event]) -> int:
        """Apply events to the transcript and the counters; return the tokens rendered."""
        transcript = self.transcript
        stats = self.stats
        tokens = 0
        for event in events:
            if isinstance(event, TokenRun):
                texts = event.texts
                text = "".join(texts)
                transcript.write(event.conversation, text, len(texts))
                stats.receive(event.conversation, text)  # the harness checks the run
                tokens += len(texts)
            elif isinstance(event, StreamStart):
                transcript.open(event.conversation)
            elif isinstance(event, StreamEnd):
                transcript.complete(event.conversation)
                stats.end(event.conversation)
            elif isinstance(event, StreamError):
                transcript.fail(event.conversation, event.message)
                stats.fail(event.conversation, event.message)
        return tokens
