"""Each fault knob produces its failure from the seed's "Failure Scenarios"."""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import Iterator

import pytest

from stress.config.scenario import Scenario
from stress.engine.harness import harness_for
from stress.engine.stacks import await_chain
from stress.pipeline import faults, reference
from stress.target import Stats, load_target


@pytest.fixture(autouse=True)
def forget_leaked_events() -> Iterator[None]:
    yield
    faults.LEAKED_EVENTS.clear()
    gc.collect()


def test_factories_load_by_their_documented_names() -> None:
    for name in ("deadlock", "blocking", "leak", "lossy"):
        target = load_target(f"stress.pipeline.faults:{name}")()
        assert hasattr(target, "run"), name


def test_deadlock_hangs_until_quit_with_the_channel_full() -> None:
    params = Scenario(name="d", title="D", messages=10_000)

    async def scenario() -> None:
        (given, stats), quit_event = harness_for(params), asyncio.Event()
        target = faults.deadlock()
        task = asyncio.create_task(target.run(given, stats, quit_event))
        done, _ = await asyncio.wait({task}, timeout=0.5)
        assert not done, "the deadlock fault finished"
        assert stats.tokens_received == faults.DEADLOCK_AFTER_MAX
        assert target.channel is not None
        channel = target.channel.statistics()
        assert channel.buffered == channel.capacity
        assert channel.senders_waiting == 1
        # What the runner's stack dump shows: who waits where.
        chains = {t.get_name(): "\n".join(await_chain(t)) for t in asyncio.all_tasks()}
        assert "_wait_for_ack" in chains["consumer"]
        assert "wait_writable" in chains["backend-0"]
        before = stats.tokens_received
        await asyncio.sleep(0.1)
        assert stats.tokens_received == before  # nothing moves
        quit_event.set()
        await asyncio.wait_for(task, 2)
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    asyncio.run(scenario())


def test_blocking_fault_blocks_the_event_loop() -> None:
    params = Scenario(name="b", title="B", messages=300)

    async def scenario() -> tuple[float, float]:
        gaps: list[float] = []

        async def heartbeat() -> None:
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        beating = asyncio.create_task(heartbeat())
        started = time.perf_counter()
        await faults.blocking().run(*harness_for(params), asyncio.Event())
        elapsed = time.perf_counter() - started
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)
        return elapsed, max(gaps, default=0.0)

    elapsed, worst_gap = asyncio.run(scenario())
    assert elapsed >= 300 * faults.BLOCKING_SLEEP_S  # at least 1 ms per token
    assert worst_gap >= 0.05  # a 1 ms timer starved for a whole batch of tokens


def test_blocking_fault_still_quits() -> None:
    params = Scenario(name="b", title="B", messages=100_000)

    async def scenario() -> None:
        (given, stats), quit_event = harness_for(params), asyncio.Event()
        task = asyncio.create_task(faults.blocking().run(given, stats, quit_event))
        while stats.tokens_received == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        quit_event.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())


def retained_mb(target_name: str, params: Scenario) -> float:
    """Memory still allocated after a run (tracemalloc: not fooled by pages earlier tests
    freed but the allocator kept, as RSS would be inside one pytest process)."""

    async def scenario() -> float:
        target = load_target(target_name)()
        given, stats = harness_for(params)  # the harness's own memory: before the start
        gc.collect()
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            await target.run(given, stats, asyncio.Event())
            gc.collect()
            end = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert stats.tokens_received == params.expected_tokens
        return (end - start) / 2**20

    return asyncio.run(scenario())


def test_leak_retains_every_event_far_beyond_the_payload() -> None:
    params = Scenario(name="l", title="L", messages=50_000, message_size=10)  # 0.5 MB of text
    before = len(faults.LEAKED_EVENTS)
    leaked_mb = retained_mb("stress.pipeline.faults:leak", params)
    assert len(faults.LEAKED_EVENTS) - before == 50_000
    reference_mb = retained_mb("stress.pipeline:reference", params)
    assert reference_mb < 1.0  # the transcript: the text itself
    assert leaked_mb >= 50  # over 1 KiB per token
    assert leaked_mb > 50 * reference_mb


def test_lossy_fault_loses_a_clear_share_under_backpressure() -> None:
    params = Scenario(name="p", title="P", messages=5000, channel_buffer=100,
                      consumer_delay_us=100)

    async def scenario() -> tuple[Stats, int]:
        target, (given, stats) = faults.lossy(), harness_for(params)
        await target.run(given, stats, asyncio.Event())
        assert target.channel is not None
        return stats, target.channel.statistics().dropped

    stats, dropped = asyncio.run(scenario())
    assert stats.messages_sent == 5000
    loss_pct = 100 * (stats.messages_sent - stats.tokens_received) / stats.messages_sent
    assert loss_pct > 10
    assert stats.messages_sent - stats.tokens_received == dropped
    assert stats.streams_completed == 1  # lossy, but it does not hang


def test_the_reference_loses_nothing_on_the_same_workload() -> None:
    params = Scenario(name="p", title="P", messages=5000, channel_buffer=100,
                      consumer_delay_us=100)
    given, stats = harness_for(params)
    asyncio.run(reference().run(given, stats, asyncio.Event()))
    assert stats.tokens_received == stats.messages_sent == 5000
