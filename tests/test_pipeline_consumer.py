"""The UI consumer and its transcript: counts, stream states, compactness, pacing."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from stress.config.scenario import Scenario
from stress.engine.harness import harness_for
from stress.pipeline.backend import token_text
from stress.pipeline.channel import Channel
from stress.pipeline.consumer import Consumer
from stress.pipeline.events import StreamEnd, StreamError, StreamStart, TokenRun
from stress.pipeline.transcript import BLOCK_PARTS, StreamState, Transcript
from stress.target import Stats


def harness_stats(messages: int, size: int, conversations: int = 1) -> Stats:
    """The consumer hands what it renders to the harness's stats, which need the scenario."""
    return harness_for(Scenario(name="c", title="C", messages=messages, message_size=size,
                                conversations=conversations))[1]


def test_render_counts_tokens_and_stream_outcomes() -> None:
    transcript, stats = Transcript(), harness_stats(3, 2, conversations=2)
    consumer = Consumer(transcript, stats)
    rendered = consumer.render([
        StreamStart(0), StreamStart(1),
        TokenRun(0, ["ab", "cd"]), TokenRun(1, ["xy"]), TokenRun(0, ["ef"]),
        StreamEnd(0), StreamError(1, "backend failed"),
    ])
    assert rendered == 4
    assert stats == Stats(messages_sent=0, tokens_received=4, streams_completed=1, errors=1)
    assert transcript[0].text() == "abcdef"
    assert transcript[0].tokens == 3
    assert transcript[0].state is StreamState.COMPLETED
    assert transcript[1].text() == "xy"
    assert transcript[1].state is StreamState.FAILED
    assert transcript[1].error == "backend failed"


def test_tokens_before_their_stream_started_are_a_bug() -> None:
    consumer = Consumer(Transcript(), harness_stats(1, 4, conversations=6))
    with pytest.raises(KeyError):
        consumer.render([TokenRun(5, ["lost"])])


def test_transcript_keeps_the_text_without_an_object_per_token() -> None:
    transcript = Transcript()
    transcript.open(0)
    tokens = [token_text(i, 10) for i in range(100_000)]
    for first in range(0, len(tokens), 10):
        chunk = tokens[first : first + 10]
        transcript.write(0, "".join(chunk), len(chunk))
    assert transcript.tokens == 100_000
    assert transcript.chars == 1_000_000
    assert transcript[0].text() == "".join(tokens)
    # 10,000 writes are folded into blocks: a few dozen strings, not 100,000.
    assert transcript.objects <= 10_000 // BLOCK_PARTS + BLOCK_PARTS
    held = sum(sys.getsizeof(s) for s in transcript[0]._blocks + transcript[0]._parts)
    assert held < 1_000_000 * 1.01  # the text plus a few dozen string headers


def test_consumer_drains_the_channel_until_closed() -> None:
    async def scenario() -> tuple[Stats, Transcript]:
        channel = Channel(10)
        transcript, stats = Transcript(), harness_stats(50, 4)
        consuming = asyncio.create_task(Consumer(transcript, stats).run(channel))
        channel.offer(StreamStart(0))
        for first in range(0, 50, 10):
            channel.offer(TokenRun(0, [token_text(i, 4) for i in range(first, first + 10)]))
            await asyncio.sleep(0)
        channel.offer(StreamEnd(0))
        channel.close()
        await asyncio.wait_for(consuming, 1)
        return stats, transcript

    stats, transcript = asyncio.run(scenario())
    assert (stats.tokens_received, stats.streams_completed) == (50, 1)
    assert transcript[0].text() == "".join(token_text(i, 4) for i in range(50))


def test_consumer_pacing_is_per_message_on_a_schedule() -> None:
    """1,000 tokens at 200 us each: 0.2 s of render time, whatever the batch sizes,
    and not the 1 s or more that a timer per message would take."""

    async def scenario() -> float:
        channel = Channel(100)
        consumer = Consumer(Transcript(), harness_stats(1000, 3), consumer_delay_us=200)
        consuming = asyncio.create_task(consumer.run(channel))
        channel.offer(StreamStart(0))
        started = time.perf_counter()
        sent = 0
        while sent < 1000:
            count = min(50, 1000 - sent)
            texts = [token_text(i, 3) for i in range(sent, sent + count)]
            taken = channel.offer(TokenRun(0, texts))
            sent += taken
            if taken < count:
                await channel.wait_writable()
        channel.offer(StreamEnd(0))
        channel.close()
        await consuming
        assert consumer.stats.tokens_received == 1000
        return time.perf_counter() - started

    elapsed = asyncio.run(scenario())
    assert elapsed >= 0.2 - 0.01  # the first batch starts the clock as it arrives
    assert elapsed < 0.9
