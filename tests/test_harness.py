"""The harness's params and stats, the verifier's report across the child boundary, the
verdicts' wording, and the soak and scaling fields of a scenario."""

from __future__ import annotations

import dataclasses
import json

import pytest

from stress.config.scenario import Scenario, ScenarioError, Thresholds, build_scenario
from stress.engine.harness import failure_plan, harness_for
from stress.engine.judge import metrics_from, run_notes, threshold_failures
from stress.engine.protocol import ChildFigures, ProtocolError, RunFigures, Sample
from stress.engine.verdicts import NOT_VERIFIED_NOTE, memory_slope
from stress.results import Metrics
from stress.stats import least_squares_slope
from stress.target import Stats


def scenario(**fields: object) -> Scenario:
    return build_scenario({"name": "s", "title": "S", "messages": 100, **fields}, where="test")


def test_params_carry_the_fields_the_tokens_and_the_failure_plan() -> None:
    s = scenario(messages=1000, message_size=12, conversations=20, error_rate=0.25)
    params, stats = harness_for(s)
    assert (params.messages, params.message_size, params.conversations) == (1000, 12, 20)
    assert params.duration_s is None
    plan = failure_plan(s)
    assert len(plan) == 5
    assert all(params.fail_at(c) == plan.get(c) for c in range(20))
    token = params.token(3, 7)
    assert len(token) == 12
    assert token.startswith("3:7|")
    stats.receive(3, "".join(params.tokens(3, 0, 10)))
    assert stats.tokens_received == 10
    assert stats.counts() == (10, 10, 0, 0)  # the verifier's: made, accepted
    stats.receive(3, params.token(3, 4))  # handed back again: counted, not accepted
    assert stats.tokens_received == 11
    assert stats.counts() == (10, 10, 0, 0)
    assert stats.receive == stats.streams.receive  # type: ignore[union-attr]  # one call a run


def test_the_plan_is_the_one_the_pipeline_used() -> None:
    # The same seed and rule as before it moved into the harness: the same conversations fail.
    s = scenario(messages=10_000, conversations=100, error_rate=0.1)
    assert sorted(failure_plan(s)) == sorted(failure_plan(s, seed=1729))
    assert failure_plan(s) != failure_plan(s, seed=2)


def test_hand_built_stats_keep_counting_but_cannot_verify() -> None:
    stats = Stats()
    stats.messages_sent += 3
    assert stats.counts() == (3, 0, 0, 0)
    with pytest.raises(RuntimeError, match="harness_for builds them"):
        stats.receive(0, "x")
    assert stats == Stats(messages_sent=3)
    assert stats != Stats(messages_sent=3, errors=1)
    assert repr(stats) == "Stats(messages_sent=3, tokens_received=0, streams_completed=0, errors=0)"


def test_the_stream_report_crosses_the_child_boundary() -> None:
    params, stats = harness_for(scenario(messages=50, conversations=2))
    stats.receive(0, "".join(params.tokens(0, 0, 50)))
    stats.receive(0, params.token(0, 10))  # a duplicate
    stats.end(0)
    report = stats.streams.report() if stats.streams else None
    figures = ChildFigures(run=RunFigures(duration_s=1.0, messages_sent=0, tokens_received=0,
                                          streams_completed=0, errors=0,
                                          odd_counters=("errors=0.5",)), streams=report)
    back = ChildFigures.from_json(figures.to_json())
    assert back == figures
    data = json.loads(figures.to_json())
    data["streams"]["lost"] = "many"
    with pytest.raises(ProtocolError, match=r"figures\.streams: 'lost' is 'many'"):
        ChildFigures.from_json(json.dumps(data))


def test_verified_metrics_come_from_the_verifier() -> None:
    s = scenario(messages=50, conversations=2)
    params, stats = harness_for(s)
    stats.messages_sent = 10**6  # the target's word is not taken
    stats.receive(0, "".join(params.tokens(0, 0, 50)))
    stats.receive(0, params.token(0, 10))
    stats.end(0)
    stats.fail(1, TimeoutError("read timed out"))
    assert stats.streams is not None
    report = stats.streams.report()
    run = RunFigures(duration_s=0.5, messages_sent=10**6, tokens_received=51,
                     streams_completed=1, errors=1)
    metrics = metrics_from(run, streams=report)
    assert (metrics.verified, metrics.messages_sent, metrics.tokens_received) == (True, 50, 50)
    assert (metrics.duplicated, metrics.lost, metrics.loss_pct) == (1, 50, 50.0)
    assert metrics.first_divergence is not None
    assert metrics.first_divergence.startswith("conversation 0, token 50: duplicated")
    assert metrics.latency_p99_ms is not None
    messages = [f.message for f in threshold_failures(s, metrics, None, run, report)]
    assert messages[0].startswith("Tokens lost: 50 (50.00%, expected none; made: 50, "
                                  "received: 50); first divergence: conversation 0, token 50")
    assert messages[1].startswith("Duplicated tokens: 1 (expected 0); first divergence: ")
    assert messages[2] == ("Unexpected errors: 1 conversations failed, but the scenario "
                           "injects no failure (error_rate 0)")
    assert run_notes(s, metrics) == []


def test_counter_only_metrics_carry_the_note_and_impossible_counts_fail() -> None:
    s = scenario()
    run = RunFigures(duration_s=1.0, messages_sent=-1, tokens_received=3, streams_completed=1,
                     errors=0, odd_counters=("errors=0.5",))
    metrics = metrics_from(run)
    assert not metrics.verified
    assert run_notes(s, metrics) == [NOT_VERIFIED_NOTE]
    (failure,) = threshold_failures(s, metrics, None, run)
    assert failure.headline == "FAILURE: Impossible counts reported by the target"
    assert failure.message == ("Impossible counts: counter errors is not a whole number: 0.5; "
                               "counter messages_sent is negative: -1")


def test_latency_thresholds_fail_when_missed_or_not_measured() -> None:
    s = dataclasses.replace(scenario(), thresholds=Thresholds(max_p99_latency_ms=5,
                                                              max_ttft_ms=1, max_gap_ms=100))
    measured = Metrics(verified=True, messages_sent=1, tokens_received=1, streams_completed=1,
                       latency_p99_ms=7.25, ttft_max_ms=0.5, max_gap_ms=150.0)
    assert [f.message for f in threshold_failures(s, measured)] == [
        "Token latency p99 too high: 7.2ms (expected < 5ms)",
        "Longest gap between tokens too high: 150.0ms (expected < 100ms)",
    ]
    counted = Metrics(messages_sent=1, tokens_received=1, streams_completed=1)
    messages = [f.message for f in threshold_failures(s, counted)]
    assert messages[0].startswith("Token latency p99 not measured: the stream was not "
                                  "verified")
    assert len(messages) == 3


def test_soak_fields_are_validated_and_the_slope_is_fitted_after_the_warm_up() -> None:
    with pytest.raises(ScenarioError, match="key 'duration_s' is 'x'; expected a number"):
        scenario(duration_s="x")
    with pytest.raises(ScenarioError, match="a soak needs longer than its duration_s"):
        scenario(duration_s=60)
    with pytest.raises(ScenarioError, match="key 'warmup_s' needs 'duration_s'"):
        scenario(warmup_s=1)
    soak = scenario(duration_s=10, warmup_s=2, timeout_s=30)
    assert Scenario.from_dict(soak.to_dict()) == soak
    params, _ = harness_for(soak)
    assert params.duration_s == 10.0
    # A warm-up jump, then 0.5 MB/s: the fit after the warm-up says 30 MB/min.
    samples = tuple(Sample(phase="run", t=t / 10, rss_mb=(50.0 if t < 20 else 100.0)
                           + 0.05 * t, messages_sent=0, tokens_received=0,
                           streams_completed=0, errors=0) for t in range(100))
    assert memory_slope(soak, samples) == pytest.approx(30.0)
    assert memory_slope(scenario(), samples) is None
    assert least_squares_slope([1.0], [2.0]) is None


def test_scaled_memory_limits_have_a_floor() -> None:
    s = scenario(thresholds={"max_memory_growth_mb": 100, "max_leaked_mb": 5,
                             "min_throughput": 1000})
    scaled = s.scaled(0.01)
    assert scaled.thresholds.max_memory_growth_mb == 20.0  # 20% of 100
    assert scaled.thresholds.max_leaked_mb == 5.0  # under 10 MB: kept
    assert scaled.thresholds.min_throughput == 1000
    assert s.scaled(2.0).thresholds.max_memory_growth_mb == 200.0
    assert scaled.scaling_note() is not None
