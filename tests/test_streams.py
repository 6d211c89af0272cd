"""The stream verifier: every wrong stream a target can produce is named, and right ones pass."""

from __future__ import annotations

import gc
import sys

import pytest

from stress.histogram import Histogram, bucket_of, bucket_upper
from stress.stream_tokens import stream_period
from stress.streams import REORDER_WINDOW, VerifiedStreams


def streams(messages: int = 100, size: int = 10, conversations: int = 2,
            fail_at: dict[int, int] | None = None) -> VerifiedStreams:
    return VerifiedStreams(messages=messages, message_size=size, conversations=conversations,
                           fail_at=fail_at)


def send_all(s: VerifiedStreams, conversation: int, run: int = 7) -> None:
    for start in range(0, s.messages, run):
        count = min(run, s.messages - start)
        s.receive(conversation, "".join(s.tokens(conversation, start, count)))
    s.end(conversation)


def test_tokens_have_the_size_and_say_who_they_are() -> None:
    s = streams(messages=50_000, size=12, conversations=40)
    token = s.token(37, 45_000)
    assert len(token) == 12
    assert token.startswith("11:348|")  # 37 and 45,000 % 4,096 in base 36
    assert len({s.token(3, i) for i in range(s.period)}) == s.period  # distinct in a period


def test_a_correct_stream_passes_in_runs_and_one_by_one() -> None:
    s = streams()
    send_all(s, 0, run=7)
    for i in range(100):
        s.receive(1, s.token(1, i))
    s.end(1)
    report = s.report()
    assert report.verified
    assert (report.tokens_made, report.tokens_received) == (200, 200)
    assert (report.lost, report.duplicated, report.reordered, report.corrupted) == (0, 0, 0, 0)
    assert report.streams_completed == 2
    assert report.ended_short == 0
    assert report.first_divergence is None
    assert report.latency.count == 200
    assert report.ttft.count == 2


def test_runs_longer_than_the_period_wrap_and_still_verify() -> None:
    s = VerifiedStreams(messages=10_000, message_size=1000, conversations=1)
    assert s.period < 10_000
    tokens = s.tokens(0, 0, 10_000)
    s.receive(0, "".join(tokens))
    s.end(0)
    assert s.report().lost == 0
    assert s.report().tokens_received == 10_000


def test_a_duplicate_on_reconnect_is_named() -> None:
    s = streams(messages=100, conversations=1)
    s.receive(0, "".join(s.tokens(0, 0, 50)))
    s.receive(0, "".join(s.tokens(0, 40, 60)))  # resumed from the wrong event id
    s.end(0)
    report = s.report()
    assert report.duplicated == 10
    assert report.lost == 0
    assert report.tokens_received == 100
    assert report.first_divergence is not None
    assert report.first_divergence.kind == "duplicated"
    assert report.first_divergence.index == 50
    assert report.first_divergence.got == s.token(0, 40)


def test_a_gap_is_lost_and_a_late_token_is_reordered() -> None:
    s = streams(messages=10, conversations=1)
    for i in (0, 1, 3, 2, 4, 6, 7, 8, 9):  # 2 arrives late, 5 never
        s.receive(0, s.token(0, i))
    s.end(0)
    report = s.report()
    assert report.reordered == 1
    assert report.lost == 1
    assert report.duplicated == 0
    assert report.tokens_received == 9
    assert report.ended_short == 1
    assert report.first_divergence is not None
    assert report.first_divergence.kind == "lost"
    assert report.first_divergence.index == 2


def test_a_gap_beyond_the_window_counts_every_missing_token() -> None:
    s = streams(messages=5000, conversations=1)
    s.receive(0, "".join(s.tokens(0, 0, 10)))
    s.receive(0, "".join(s.tokens(0, 10 + 2 * REORDER_WINDOW, 10)))
    report = s.report()
    assert report.lost == 5000 - 20


def test_corruption_and_a_partial_token_are_named() -> None:
    s = streams(messages=3, conversations=1)
    s.receive(0, s.token(0, 0))
    bad = s.token(0, 1)
    s.receive(0, bad[:-1] + ("x" if bad[-1] != "x" else "y"))
    s.receive(0, s.token(0, 2)[:4])
    report = s.report()
    assert report.corrupted == 2
    assert report.first_divergence is not None
    assert report.first_divergence.kind == "corrupted"
    assert report.first_divergence.index == 1


def test_a_token_of_another_conversation_is_corruption() -> None:
    s = streams(messages=3, conversations=2)
    s.receive(0, s.token(1, 0))
    assert s.report().corrupted == 1


def test_a_stream_that_stops_early_is_short_and_lost() -> None:
    s = streams(messages=100, conversations=1)
    s.receive(0, "".join(s.tokens(0, 0, 50)))
    s.fail(0, TimeoutError("read timed out"))
    report = s.report()
    assert report.lost == 50
    assert report.failed == 1
    assert report.unexpected_failures == 1  # no failure was injected


def test_failures_are_judged_against_the_injection() -> None:
    s = streams(messages=100, conversations=3, fail_at={0: 40, 2: 10})
    s.receive(0, "".join(s.tokens(0, 0, 40)))
    s.fail(0, "injected backend failure after 40 tokens")
    send_all(s, 1)
    s.receive(2, "".join(s.tokens(2, 0, 10)))
    s.end(2)  # the target hid the failure
    report = s.report()
    assert report.failed == 1
    assert report.unexpected_failures == 0
    assert report.unreported_failures == 1
    assert report.lost == 0


def test_nothing_moved_is_not_verified_and_all_lost() -> None:
    report = streams(messages=10, conversations=2).report()
    assert not report.verified
    assert report.lost == 20


def test_an_unknown_conversation_is_an_error_that_names_it() -> None:
    with pytest.raises(ValueError, match="conversation 5"):
        streams(conversations=2).token(5, 0)


def test_the_verifier_memory_is_flat_over_ten_million_tokens_and_1000_conversations() -> None:
    s = VerifiedStreams(messages=10_000, message_size=10, conversations=1000)
    run = 500

    def stream_some(first: int, last: int) -> None:
        for conversation in range(first, last):
            for start in range(0, 10_000, run):
                s.receive(conversation, "".join(s.tokens(conversation, start, run)))
            s.end(conversation)

    stream_some(0, 100)  # 1M tokens: warm every structure up
    gc.collect()
    before = sys.getallocatedblocks()
    stream_some(100, 1000)  # 9M more tokens
    gc.collect()
    growth = sys.getallocatedblocks() - before
    report = s.report()
    assert report.tokens_received == 10_000_000
    assert report.lost == 0
    # Each of the 900 conversations keeps a few floats of its own; a per-token leak would
    # be millions of blocks.
    assert growth < 10_000, f"verifier kept {growth} more memory blocks over 9M tokens"


def test_stream_period_fits_the_budget() -> None:
    assert stream_period(messages=1000, message_size=10_000, conversations=1) == 800
    assert stream_period(messages=5, message_size=10, conversations=1) == 5


def test_histogram_buckets_are_tight_and_percentiles_never_underestimate() -> None:
    for value in (0, 1, 31, 32, 33, 1000, 123_456, 10**9):
        index = bucket_of(value)
        assert bucket_upper(index) >= value
        assert bucket_upper(index) <= value * 1.04 + 1
    h = Histogram()
    for ms in range(1, 101):
        h.record(ms / 1000)
    summary = h.summary()
    assert summary.count == 100
    assert 50 <= summary.p50_ms <= 52  # type: ignore[operator]
    assert 99 <= summary.p99_ms <= 100  # type: ignore[operator]
    assert summary.max_ms == 100
    h.record(5.0, weight=1000)
    assert h.summary().p50_ms == 5000


def test_recording_many_values_at_once_is_recording_them_one_by_one() -> None:
    values = [-0.001, 0.0, 0.0000005, 0.000031, 0.000032, 0.000033, 0.0015, 0.0015, 0.25,
              3.999999, 4.0, 86_400.0] * 7
    weights = [(i * 7) % 13 + 1 for i in range(len(values))]
    one_by_one, at_once = Histogram(), Histogram()
    for value, weight in zip(values, weights, strict=True):
        one_by_one.record(value, weight)
    at_once.record_many(values[:40], weights[:40])
    at_once.record_many(values[40:], weights[40:])
    assert at_once.summary() == one_by_one.summary()
    at_once.record_many([], [])
    assert at_once.summary() == one_by_one.summary()


def test_recording_many_values_of_one_weight_is_recording_them_one_by_one() -> None:
    # Runs of one length, the verifier's usual batch: the seconds are sorted as they are.
    values = [0.25, -0.001, 0.000031, 0.0, 0.000032, 0.0000005, 0.0015, 0.000033, 4.0,
              0.0015, 3.999999, 86_400.0, 0.0000319999] * 5
    one_by_one, at_once = Histogram(), Histogram()
    for value in values:
        one_by_one.record(value, 100)
    at_once.record_many(values, [100] * len(values))
    assert at_once.summary() == one_by_one.summary()
    assert at_once.count == 100 * len(values)


def test_latencies_recorded_in_batches_all_reach_the_histogram() -> None:
    s = streams(messages=30_000, size=10, conversations=1)
    for start in range(0, 30_000, 3):  # 10,000 runs: more than one batch, and a remainder
        s.receive(0, "".join(s.tokens(0, start, 3)))
    s.end(0)
    assert s.report().latency.count == 30_000


def test_an_empty_histogram_says_nothing_was_measured() -> None:
    summary = Histogram().summary()
    assert summary.count == 0
    assert summary.p99_ms is None
    assert summary.max_ms is None
