"""Results built by hand with the seed document's figures, shared by the report tests.

The scenarios are the seed's five (its sizes and baselines); failures come from stress.judge,
which words them as the seed does.
"""

from __future__ import annotations

import dataclasses
import math

from stress.config.scenario import Scenario, Thresholds
from stress.engine import judge
from stress.engine.protocol import RunFigures
from stress.results import Environment, Failure, Metrics, Result, Sample, Status

ENVIRONMENT = Environment(python="3.11.7", implementation="CPython",
                          platform="Linux-6.1-x86_64-with-glibc2.36", cpu_count=2,
                          git_sha="0123456789abcdef0123456789abcdef01234567", in_container=True,
                          target="stress.pipeline:reference", loop="asyncio")

SHORT = Scenario(name="short", title="1M Short Messages", messages=1_000_000, message_size=10,
                 thresholds=Thresholds(min_throughput=10_000, max_memory_growth_mb=100))
MEDIUM = Scenario(name="medium", title="1M Medium Messages", messages=1_000_000,
                  message_size=100, timeout_s=180,
                  thresholds=Thresholds(min_throughput=5_000, max_memory_growth_mb=500))
LONG = Scenario(name="long", title="1K Long Messages", messages=1_000, message_size=10_000,
                thresholds=Thresholds(min_throughput=100))
RAPID = Scenario(name="rapid", title="Rapid Token Streaming", messages=1_000_000,
                 token_delay_us=10, thresholds=Thresholds(max_quit_latency_ms=1000))
BACKPRESSURE = Scenario(name="backpressure", title="Backpressure Handling", messages=100_000,
                        channel_buffer=100, consumer_delay_us=100,
                        thresholds=Thresholds(max_loss_pct=1.0))


def samples(duration_s: float, tokens: int, rss_start: float, rss_growth: float,
            count: int = 60) -> tuple[Sample, ...]:
    """A plausible series: tokens at a wobbling rate, RSS rising then flattening."""
    weights = [1 + 0.3 * math.sin(i / 3) for i in range(count)]
    points, received = [Sample(t_s=0.0, rss_mb=rss_start, tokens=0)], 0.0
    for i in range(1, count + 1):
        received += tokens * weights[i - 1] / sum(weights)
        points.append(Sample(t_s=round(duration_s * i / count, 3),
                             rss_mb=rss_start + rss_growth * math.sqrt(i / count),
                             tokens=min(tokens, round(received))))
    return tuple(points)


def result(scenario: Scenario, *, status: Status = "passed", failures: tuple[Failure, ...] = (),
           artifacts: dict[str, str] | None = None, notes: tuple[str, ...] = (),
           **figures: float | int | None) -> Result:
    base: dict[str, float | int | None] = {
        "messages_sent": scenario.expected_tokens, "tokens_received": scenario.expected_tokens,
        "streams_completed": scenario.conversations, "errors": 0, "peak_rss_mb": 80.0,
    }
    metrics = Metrics(**{**base, **figures})  # type: ignore[arg-type]
    return Result(scenario=scenario, status=status, metrics=metrics, failures=failures,
                  samples=samples(metrics.duration_s, metrics.tokens_received, 30.0,
                                  metrics.memory_growth_mb),
                  environment=ENVIRONMENT, artifacts=artifacts or {}, notes=notes)


def seed_results() -> list[Result]:
    """The seed's five passing runs, with its figures."""
    return [
        result(SHORT, duration_s=45.234, throughput=22124, memory_growth_mb=45.32,
               quit_latency_ms=41),
        result(MEDIUM, duration_s=98.567, throughput=10142, memory_growth_mb=234.56,
               quit_latency_ms=52),
        result(LONG, duration_s=3.456, throughput=289, memory_growth_mb=12.34, quit_latency_ms=8),
        result(RAPID, duration_s=15.678, throughput=63786, memory_growth_mb=3.1,
               quit_latency_ms=234),
        result(BACKPRESSURE, duration_s=12.345, throughput=8101, memory_growth_mb=1.2,
               quit_latency_ms=5, loss_pct=0.0),
    ]


def timeout_result() -> Result:
    return result(SHORT, status="timeout", duration_s=62.345, throughput=9000,
                  failures=(judge.timeout_failure(SHORT, 62.345, "run"),))


def loss_result() -> Result:
    metrics = judge.metrics_from(RunFigures(messages_sent=100_000, tokens_received=84_570,
                                            streams_completed=1, errors=0, duration_s=12.345))
    return result(BACKPRESSURE, status="failed",
                  failures=tuple(judge.threshold_failures(BACKPRESSURE, metrics)),
                  **{f.name: getattr(metrics, f.name) for f in dataclasses.fields(metrics)})


def memory_result() -> Result:
    metrics = judge.metrics_from(RunFigures(messages_sent=1_000_000, tokens_received=1_000_000,
                                            streams_completed=1, errors=0, duration_s=98.567,
                                            rss_start_mb=30.0, rss_end_mb=30.0 + 1234.56))
    return result(MEDIUM, status="failed",
                  failures=tuple(judge.threshold_failures(MEDIUM, metrics)),
                  **{f.name: getattr(metrics, f.name) for f in dataclasses.fields(metrics)})


def test_the_fixtures_follow_the_seed() -> None:
    assert [r.scenario.name for r in seed_results()] == [
        "short", "medium", "long", "rapid", "backpressure"]
    (loss,) = loss_result().failures
    assert loss.message == "Message loss too high: 15.43% (sent: 100000, received: 84570)"
    (memory,) = memory_result().failures
    assert memory.message == "Memory growth too high: 1234.56 MB (expected < 500MB)"
    assert timeout_result().failures[0].message == \
        "Test should complete within timeout (60s), took 62.345s"
    series = seed_results()[0].samples
    assert series[0].t_s == 0
    assert series[-1].t_s == 45.234
    assert series[-1].tokens == 1_000_000
