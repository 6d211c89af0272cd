"""The bounded channel: capacity, backpressure, each overflow policy's loss accounting,
close, and waiter state under cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

from stress.pipeline.channel import Channel, ChannelClosed, Overflow
from stress.pipeline.events import Event, StreamEnd, StreamStart, TokenRun


def run(conversation: int, first: int, count: int) -> TokenRun:
    return TokenRun(conversation, [f"t{i}" for i in range(first, first + count)])


def texts(events: Iterable[Event]) -> list[str]:
    return [t for e in events if isinstance(e, TokenRun) for t in e.texts]


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1 token"):
        Channel(0)


def test_backpressure_takes_only_what_fits() -> None:
    channel = Channel(5)
    assert channel.offer(run(0, 0, 3)) == 3
    assert channel.offer(run(0, 3, 4)) == 2  # two fit, two must wait
    assert channel.offer(run(0, 5, 2)) == 0
    stats = channel.statistics()
    assert (stats.buffered, stats.handed, stats.dropped) == (5, 5, 0)
    assert texts(channel.receive_nowait()) == ["t0", "t1", "t2", "t3", "t4"]
    assert channel.statistics().delivered == 5


def test_control_events_take_no_capacity_and_are_never_dropped() -> None:
    for policy in Overflow:
        channel = Channel(2, policy)
        assert channel.offer(StreamStart(0)) == 0
        channel.offer(run(0, 0, 2))
        channel.offer(run(0, 2, 3))
        channel.offer(StreamEnd(0))
        events = list(channel.receive_nowait())
        assert events[0] == StreamStart(0), policy
        assert events[-1] == StreamEnd(0), policy


def test_drop_newest_counts_what_it_drops() -> None:
    channel = Channel(4, Overflow.DROP_NEWEST)
    assert channel.offer(run(0, 0, 3)) == 3
    assert channel.offer(run(0, 3, 3)) == 3  # handed over whole: one kept, two dropped
    assert channel.offer(run(0, 6, 2)) == 2  # full: both dropped
    stats = channel.statistics()
    assert (stats.handed, stats.buffered, stats.dropped) == (8, 4, 4)
    assert texts(channel.receive_nowait()) == ["t0", "t1", "t2", "t3"]
    stats = channel.statistics()
    assert stats.handed - stats.delivered == stats.dropped


def test_drop_oldest_evicts_the_oldest_and_counts_them() -> None:
    channel = Channel(4, Overflow.DROP_OLDEST)
    channel.offer(StreamStart(0))
    channel.offer(run(0, 0, 3))
    channel.offer(run(0, 3, 3))  # evicts t0, t1
    channel.offer(run(0, 6, 6))  # longer than the channel: keeps t8..t11 only
    stats = channel.statistics()
    assert (stats.handed, stats.buffered, stats.dropped) == (12, 4, 8)
    events = list(channel.receive_nowait())
    assert events[0] == StreamStart(0)
    assert texts(events) == ["t8", "t9", "t10", "t11"]


def test_receive_takes_everything_and_wakes_a_waiting_sender() -> None:
    async def scenario() -> None:
        channel = Channel(2)
        channel.offer(run(0, 0, 2))
        waiting = asyncio.create_task(channel.wait_writable())
        await asyncio.sleep(0)
        assert not waiting.done()
        assert channel.statistics().senders_waiting == 1
        assert texts(await channel.receive()) == ["t0", "t1"]
        await asyncio.wait_for(waiting, 1)
        assert channel.statistics().producer_waits == 1

    asyncio.run(scenario())


def test_receive_waits_for_data_and_ends_empty_after_close() -> None:
    async def scenario() -> None:
        channel = Channel(3)
        receiving = asyncio.create_task(channel.receive())
        await asyncio.sleep(0)
        assert not receiving.done()
        channel.offer(run(0, 0, 1))
        assert texts(await receiving) == ["t0"]
        channel.offer(run(0, 1, 1))
        channel.close()
        assert texts(await channel.receive()) == ["t1"]  # buffered data survives close
        assert list(await channel.receive()) == []
        with pytest.raises(ChannelClosed):
            channel.offer(run(0, 2, 1))

    asyncio.run(scenario())


def test_close_releases_waiting_senders_with_channel_closed() -> None:
    async def scenario() -> None:
        channel = Channel(1)
        channel.offer(run(0, 0, 1))
        waiting = asyncio.create_task(channel.wait_writable())
        await asyncio.sleep(0)
        channel.close()
        with pytest.raises(ChannelClosed):
            await waiting
        assert channel.statistics().senders_waiting == 0

    asyncio.run(scenario())


def test_one_receiver_at_a_time() -> None:
    async def scenario() -> None:
        channel = Channel(1)
        first = asyncio.create_task(channel.receive())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="one receiver"):
            await channel.receive()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        # The cancelled receiver restored the waiter state: a new one works.
        channel.offer(run(0, 0, 1))
        assert texts(await channel.receive()) == ["t0"]

    asyncio.run(scenario())


def test_cancelled_sender_leaves_no_waiter_behind() -> None:
    async def scenario() -> None:
        channel = Channel(1)
        channel.offer(run(0, 0, 1))
        waiting = asyncio.create_task(channel.wait_writable())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert channel.statistics().senders_waiting == 0
        assert not channel._putters

    asyncio.run(scenario())


def test_wakeup_of_a_sender_cancelled_in_the_same_step_passes_to_the_next() -> None:
    """The race janus and asyncio.Queue guard against: room freed, the woken sender is
    cancelled before it runs; the room must not be lost for the other sender."""

    async def scenario() -> None:
        channel = Channel(1)
        channel.offer(run(0, 0, 1))
        first = asyncio.create_task(channel.wait_writable())
        second = asyncio.create_task(channel.wait_writable())
        await asyncio.sleep(0)
        channel.receive_nowait()  # wakes `first` ...
        first.cancel()  # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, 1)  # the wakeup went on to `second`

    asyncio.run(scenario())


def test_senders_are_woken_in_order_while_room_lasts() -> None:
    async def scenario() -> None:
        channel = Channel(4)
        channel.offer(run(0, 0, 4))
        order: list[int] = []

        async def sender(conversation: int) -> None:
            await channel.wait_writable()
            order.append(conversation)
            channel.offer(run(conversation, 0, 1))

        tasks = [asyncio.create_task(sender(c)) for c in (1, 2, 3)]
        await asyncio.sleep(0)
        channel.receive_nowait()
        await asyncio.wait_for(asyncio.gather(*tasks), 1)
        assert order == [1, 2, 3]
        assert channel.statistics().buffered == 3

    asyncio.run(scenario())
