"""The reference pipeline through the target interface: exact counts, concurrent
conversations, error injection, overflow policies, quit under load, cancellation."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from stress.config.scenario import Scenario
from stress.engine.harness import harness_for
from stress.pipeline import Overflow, ReferencePipeline, failure_plan, reference
from stress.pipeline.transcript import StreamState
from stress.target import Stats, load_target


@dataclasses.dataclass(frozen=True)
class UserParams:
    """A params object a user might write: only the seven documented fields."""

    messages: int
    message_size: int = 10
    token_delay_us: float = 0.0
    channel_buffer: int = 100
    consumer_delay_us: float = 0.0
    conversations: int = 1
    error_rate: float = 0.0


def run_target(target: ReferencePipeline, params: Any, loop: str = "asyncio") -> Stats:
    harness_params, stats = harness_for(params)  # the pipeline streams the harness's tokens

    async def scenario() -> None:
        await target.run(harness_params, stats, asyncio.Event())
        assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(scenario())
    return stats


def test_the_default_target_is_the_reference_pipeline() -> None:
    target = load_target("stress.pipeline:reference")()
    assert isinstance(target, ReferencePipeline)
    assert target.policy is Overflow.BACKPRESSURE


def test_exact_counts_and_the_text_rendered() -> None:
    target = reference()
    stats = run_target(target, UserParams(messages=20_000, message_size=7))
    assert stats == Stats(messages_sent=20_000, tokens_received=20_000,
                          streams_completed=1, errors=0)
    assert target.transcript is not None
    assert target.transcript[0].text() == "".join(
        harness_for(UserParams(messages=20_000, message_size=7))[0].tokens(0, 0, 20_000))
    assert target.channel is not None
    channel = target.channel.statistics()
    assert channel.max_buffered <= 100
    assert (channel.handed, channel.delivered, channel.dropped) == (20_000, 20_000, 0)


def test_a_scenario_object_is_accepted_as_params() -> None:
    scenario = Scenario(name="s", title="S", messages=3000, message_size=12, channel_buffer=7)
    stats = run_target(reference(), scenario)
    assert stats.tokens_received == stats.messages_sent == 3000


def test_capacity_bounds_the_channel_and_the_producer_waits() -> None:
    target = reference()
    stats = run_target(target, UserParams(messages=2000, channel_buffer=10,
                                          consumer_delay_us=20))
    assert stats.tokens_received == 2000
    assert target.channel is not None
    channel = target.channel.statistics()
    assert channel.max_buffered == 10
    assert channel.producer_waits > 0


def test_concurrent_conversations_share_the_consumer() -> None:
    target = reference()
    stats = run_target(target, UserParams(messages=5000, conversations=10, channel_buffer=50))
    assert stats == Stats(messages_sent=50_000, tokens_received=50_000,
                          streams_completed=10, errors=0)
    assert target.transcript is not None
    assert len(target.transcript) == 10
    made = harness_for(UserParams(messages=5000, conversations=10))[0]
    for conversation in range(10):
        expected = "".join(made.tokens(conversation, 0, 5000))
        assert target.transcript[conversation].text() == expected
        assert target.transcript[conversation].state is StreamState.COMPLETED


def test_run_twice_on_one_object_starts_fresh() -> None:
    target = reference()
    first = run_target(target, UserParams(messages=1000))
    first_transcript = target.transcript
    second = run_target(target, UserParams(messages=500, conversations=2))
    assert first.tokens_received == 1000
    assert second == Stats(messages_sent=1000, tokens_received=1000,
                           streams_completed=2, errors=0)
    assert target.transcript is not first_transcript
    assert target.transcript is not None
    assert target.transcript.tokens == 1000


def test_runs_on_uvloop() -> None:
    stats = run_target(reference(), UserParams(messages=10_000, conversations=3), loop="uvloop")
    assert stats.tokens_received == stats.messages_sent == 30_000


# -- error injection ---------------------------------------------------------------


def test_failure_plan_is_a_deterministic_fraction_of_conversations() -> None:
    params = UserParams(messages=10_000, conversations=100, error_rate=0.1)
    plan = failure_plan(params)
    assert len(plan) == 10
    assert all(1 <= position < 10_000 for position in plan.values())
    assert failure_plan(params) == plan
    assert failure_plan(params, seed=2) != plan
    assert failure_plan(dataclasses.replace(params, error_rate=0.0)) == {}
    assert len(failure_plan(dataclasses.replace(params, error_rate=1.0))) == 100
    assert len(failure_plan(UserParams(messages=5, conversations=3, error_rate=0.5))) == 2


def test_injected_errors_end_streams_cleanly_without_loss() -> None:
    params = UserParams(messages=2000, conversations=20, error_rate=0.25)
    plan = failure_plan(params)
    target = reference()
    stats = run_target(target, params)
    assert stats.errors == 5
    assert stats.streams_completed == 15
    sent_expected = 2000 * 15 + sum(plan.values())
    assert stats.messages_sent == stats.tokens_received == sent_expected
    assert target.transcript is not None
    for conversation in range(20):
        entry = target.transcript[conversation]
        if conversation in plan:
            assert entry.state is StreamState.FAILED
            assert entry.tokens == plan[conversation]
            assert entry.error is not None
        else:
            assert entry.state is StreamState.COMPLETED
            assert entry.tokens == 2000


def test_a_single_conversation_at_full_error_rate_fails_mid_stream() -> None:
    stats = run_target(reference(), UserParams(messages=100, error_rate=1.0))
    assert (stats.errors, stats.streams_completed) == (1, 0)
    assert 1 <= stats.tokens_received < 100
    assert stats.tokens_received == stats.messages_sent


# -- overflow policies ---------------------------------------------------------------


@pytest.mark.parametrize("policy", [Overflow.DROP_NEWEST, Overflow.DROP_OLDEST])
def test_lossy_policies_account_for_every_token(policy: Overflow) -> None:
    target = ReferencePipeline(policy=policy)
    stats = run_target(target, UserParams(messages=5000, channel_buffer=20,
                                          consumer_delay_us=50))
    assert target.channel is not None
    channel = target.channel.statistics()
    assert stats.messages_sent == 5000  # every token handed over counts as sent
    assert channel.dropped > 0
    assert stats.messages_sent - stats.tokens_received == channel.dropped
    assert stats.streams_completed == 1  # stream events are never dropped


# -- quit and cancellation -----------------------------------------------------------


async def start_and_quit(params: Any, after_tokens: int) -> tuple[float, Stats, list[str]]:
    """Start a run, set quit once ``after_tokens`` flowed, return the quit latency."""
    (harness_params, stats), quit_event = harness_for(params), asyncio.Event()
    target = reference()
    task = asyncio.create_task(target.run(harness_params, stats, quit_event))
    while stats.tokens_received < after_tokens:
        assert not task.done(), "the run finished before quit could be requested"
        await asyncio.sleep(0.001)
    requested = time.perf_counter()
    quit_event.set()
    await task  # a requested quit does not raise
    latency = time.perf_counter() - requested
    pending = [repr(t) for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    return latency, stats, pending


@pytest.mark.parametrize("params", [
    UserParams(messages=1_000_000, token_delay_us=10),  # rapid: would take 10 s
    UserParams(messages=100_000, consumer_delay_us=100),  # backpressure: 10 s
    UserParams(messages=200_000, conversations=5, error_rate=0.2),  # busy, unpaced
], ids=["rapid", "backpressure", "concurrent"])
def test_quit_under_load_returns_promptly_and_leaves_no_task(params: UserParams) -> None:
    latency, stats, pending = asyncio.run(start_and_quit(params, after_tokens=2000))
    assert pending == []
    assert latency < 1.0  # the seed's quit threshold; typically well under a millisecond
    assert 2000 <= stats.tokens_received < params.messages * params.conversations
    assert stats.streams_completed < params.conversations


def test_quit_set_before_the_run_returns_at_once() -> None:
    async def scenario() -> Stats:
        (params, stats), quit_event = harness_for(UserParams(messages=10_000_000)), \
            asyncio.Event()
        quit_event.set()
        await asyncio.wait_for(reference().run(params, stats, quit_event), 5)
        return stats

    assert asyncio.run(scenario()).tokens_received < 10_000_000


def test_cancelling_run_cancels_every_task() -> None:
    async def scenario() -> list[str]:
        params, stats = harness_for(UserParams(messages=1_000_000, token_delay_us=10))
        task = asyncio.create_task(reference().run(params, stats, asyncio.Event()))
        while stats.tokens_received < 1000:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return [repr(t) for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    assert asyncio.run(scenario()) == []


# -- pacing end to end (small N) -----------------------------------------------------


def timed(coro_factory: Callable[[], Awaitable[None]]) -> float:
    async def scenario() -> float:
        started = time.perf_counter()
        await coro_factory()
        return time.perf_counter() - started

    return asyncio.run(scenario())


def test_rapid_pacing_holds_the_schedule_end_to_end() -> None:
    """20,000 tokens at 10 us: 0.2 s on schedule (a sleep per token would take 20 s+)."""
    params, stats = harness_for(UserParams(messages=20_000, token_delay_us=10))
    elapsed = timed(lambda: reference().run(params, stats, asyncio.Event()))
    assert stats.tokens_received == 20_000
    assert elapsed >= 19_999 * 10e-6
    assert elapsed < 2.0


def test_backpressure_is_lossless_and_paced_by_the_consumer() -> None:
    """2,000 messages at 100 us each through a 100-token buffer: 0.2 s, zero loss."""
    target = reference()
    params, stats = harness_for(UserParams(messages=2000, channel_buffer=100,
                                           consumer_delay_us=100))
    elapsed = timed(lambda: target.run(params, stats, asyncio.Event()))
    assert stats.tokens_received == stats.messages_sent == 2000
    assert target.channel is not None
    assert target.channel.statistics().producer_waits > 0
    assert elapsed >= 0.2 - 0.01
    assert elapsed < 1.0  # a timer per message would take 2 s or more
