"""The backend: token texts, stream shape, injected errors, and pacing on a schedule."""

from __future__ import annotations

import asyncio
import time

import pytest

from stress.pipeline.backend import Backend, TokenTexts, token_text
from stress.pipeline.events import Event, StreamEnd, StreamError, StreamStart, TokenRun


def collect(backend: Backend) -> list[Event]:
    async def scenario() -> list[Event]:
        return [event async for event in backend.stream()]

    return asyncio.run(scenario())


def tokens_of(events: list[Event]) -> list[str]:
    return [t for e in events if isinstance(e, TokenRun) for t in e.texts]


def test_every_token_is_its_own_string_of_the_right_size() -> None:
    texts = TokenTexts(10, max_run=100).make(0, 100)
    assert len(texts) == 100
    assert all(len(t) == 10 for t in texts)
    assert len({id(t) for t in texts}) == 100  # no object reused
    assert texts == [token_text(i, 10) for i in range(100)]
    assert len(set(texts)) > 1  # consecutive tokens differ in content too


def test_runs_continue_the_sequence_where_they_left_off() -> None:
    maker = TokenTexts(7, max_run=50)
    assert maker.make(130, 50) == [token_text(i, 7) for i in range(130, 180)]


def test_token_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="message_size"):
        TokenTexts(0, max_run=1)


def test_stream_shape_and_run_lengths() -> None:
    events = collect(Backend(3, messages=250, message_size=5, max_run=100))
    assert events[0] == StreamStart(3)
    assert events[-1] == StreamEnd(3)
    runs = [e for e in events if isinstance(e, TokenRun)]
    assert [len(r.texts) for r in runs] == [100, 100, 50]
    assert all(r.conversation == 3 for r in runs)
    assert tokens_of(events) == [token_text(i, 5) for i in range(250)]


def test_injected_failure_sends_the_tokens_before_it_then_an_error() -> None:
    events = collect(Backend(0, messages=100, message_size=4, max_run=30, fail_at=42))
    assert len(tokens_of(events)) == 42
    last = events[-1]
    assert isinstance(last, StreamError)
    assert "after 42 tokens" in last.message
    assert not any(isinstance(e, StreamEnd) for e in events)


def test_failure_position_past_the_end_is_a_normal_end() -> None:
    events = collect(Backend(0, messages=10, message_size=4, fail_at=10))
    assert len(tokens_of(events)) == 10
    assert events[-1] == StreamEnd(0)


def test_pacing_keeps_a_schedule_not_a_sleep_per_token() -> None:
    """2,000 tokens at 50 us are due over 0.1 s. Sleeping per token would take at least
    2 s (the loop's timers resolve to about a millisecond); the schedule cannot finish
    early, because token k is not produced before k * 50 us."""
    backend = Backend(0, messages=2000, message_size=10, token_delay_us=50, max_run=100)
    started = time.perf_counter()
    events = collect(backend)
    elapsed = time.perf_counter() - started
    assert len(tokens_of(events)) == 2000
    assert elapsed >= 1999 * 50e-6
    assert elapsed < 1.0


def test_paced_runs_follow_the_clock() -> None:
    """With 1 ms pacing over 0.2 s, each burst holds only the tokens already due."""
    backend = Backend(0, messages=200, message_size=3, token_delay_us=1000, max_run=100)

    async def scenario() -> list[tuple[float, int]]:
        start = time.perf_counter()
        marks: list[tuple[float, int]] = []
        produced = 0
        async for event in backend.stream():
            if isinstance(event, TokenRun):
                produced += len(event.texts)
                marks.append((time.perf_counter() - start, produced))
        return marks

    marks = asyncio.run(scenario())
    assert marks[-1][1] == 200
    for elapsed, produced in marks:
        # Never ahead of the schedule: token k is due at k ms (0-based).
        assert produced <= int(elapsed / 1e-3) + 1
    assert len(marks) > 20  # many small bursts, not one big one
