"""Verdicts on the stream itself: what the harness's verifier saw, the errors against the
injection, the counts of a target that only keeps counters, and token latency.

The judge (:mod:`stress.engine.judge`) calls :func:`stream_metrics` to fill the Metrics and
:func:`stream_failures` for the failures, worded as the seed words its failures: a
``FAILURE: ...`` headline, a message saying what was measured against what was expected, and
likely causes.
"""

from __future__ import annotations

import dataclasses

from stress.config.scenario import Scenario
from stress.engine.harness import failure_plan
from stress.engine.protocol import RunFigures, Sample
from stress.results import Check, Failure, Metrics
from stress.stats import least_squares_slope
from stress.stream_report import Divergence, StreamReport

NOT_VERIFIED_NOTE = "counts reported by the target; the stream was not verified"

DUPLICATE_DIAGNOSIS = (
    "A reconnect that resumes from the wrong position (e.g. a stale Last-Event-ID)",
    "A retry that re-sends what was already delivered",
)
REORDER_DIAGNOSIS = (
    "Tokens of one conversation handled by concurrent tasks",
    "A buffer that re-queues a token behind later ones",
)
CORRUPTION_DIAGNOSIS = (
    "Framing that splits or joins tokens (an SSE or WebSocket parser)",
    "Text altered on the way (encoding, trimming whitespace)",
)
SHORT_DIAGNOSIS = (
    "A read timeout or dropped connection treated as the end of the stream",
    "The end event sent before every token was flushed",
)
ERRORS_DIAGNOSIS = (
    "A timeout or connection error where the backend did not fail",
    "An error reported twice for one conversation",
)
UNREPORTED_DIAGNOSIS = (
    "The error path swallows the backend's failure",
    "A failed stream reported as completed",
)
COUNTERS_DIAGNOSIS = (
    "A counter incremented in the wrong place (per chunk, per retry, per character)",
    "A counter assigned instead of incremented",
    "Use params.tokens and stats.receive: the harness then counts and checks every token",
)
LATENCY_DIAGNOSIS = (
    "Tokens batched or buffered before they are flushed to the consumer",
    "A slow consumer behind a large channel (tokens wait in the queue)",
    "Blocking call in async context",
)
SOAK_DIAGNOSIS = (
    "Messages not freed after processing",
    "A cache or history that grows with every token",
)


def describe_divergence(divergence: Divergence | None) -> str | None:
    """e.g. "conversation 3, token 1200: duplicated (expected '3:xo|Stre', got '3:xe|Stre')"."""
    if divergence is None:
        return None
    return (f"conversation {divergence.conversation}, token {divergence.index}: "
            f"{divergence.kind} (expected {divergence.expected!r}, got {divergence.got!r})")


def stream_metrics(metrics: Metrics, streams: StreamReport | None, run: RunFigures | None,
                   *, elapsed_s: float = 0.0) -> Metrics:
    """The Metrics with the verifier's counts in place of the target's, when it used it."""
    tokens = metrics.tokens_received
    if streams is not None and streams.verified:
        made = streams.tokens_made
        metrics = dataclasses.replace(
            metrics, verified=True, messages_sent=made,
            tokens_received=streams.tokens_received,
            streams_completed=streams.streams_completed, errors=streams.failed,
            throughput=streams.tokens_received / metrics.duration_s
            if metrics.duration_s > 0 else 0.0,
            loss_pct=_loss_pct(streams),
            lost=streams.lost, duplicated=streams.duplicated, reordered=streams.reordered,
            corrupted=streams.corrupted, ended_short=streams.ended_short,
            unexpected_failures=streams.unexpected_failures,
            unreported_failures=streams.unreported_failures,
            first_divergence=describe_divergence(streams.first_divergence),
            latency_p50_ms=streams.latency.p50_ms, latency_p95_ms=streams.latency.p95_ms,
            latency_p99_ms=streams.latency.p99_ms, latency_max_ms=streams.latency.max_ms,
            ttft_p50_ms=streams.ttft.p50_ms, ttft_max_ms=streams.ttft.max_ms,
            max_gap_ms=streams.max_gap_ms,
        )
        tokens = streams.tokens_received
    if run is not None and tokens > 0:
        metrics = dataclasses.replace(
            metrics, memory_growth_per_1k_tokens_mb=metrics.memory_growth_mb / tokens * 1000)
    return metrics


def _loss_pct(streams: StreamReport) -> float:
    """Lost over the tokens the stream should have carried: those made, or more when a
    stream ended before its last token was even made (then lost ones were never made)."""
    carried = max(streams.tokens_made, streams.tokens_received + streams.lost)
    return streams.lost / carried * 100 if carried > 0 else 0.0


def _with_divergence(message: str, metrics: Metrics) -> str:
    if metrics.first_divergence is None:
        return message
    return f"{message}; first divergence: {metrics.first_divergence}"


def stream_failures(scenario: Scenario, metrics: Metrics, run: RunFigures | None,
                    streams: StreamReport | None = None) -> list[Failure]:
    """Failures of the stream itself: the verifier's findings, or impossible counters.

    Lost tokens are one failure (the loss threshold's, or "Tokens lost" where the scenario
    sets none); a stream is "ended short" on its own account only when what arrived was a
    gap-free beginning of it (cut off, not thinned out by a lossy channel).
    """
    if not metrics.verified:
        return counter_failures(scenario, metrics, run)
    early = streams.ended_early if streams is not None else metrics.ended_short
    failures: list[Failure] = []
    if metrics.lost and scenario.thresholds.max_loss_pct is None:
        # With max_loss_pct set, that threshold judges the loss (judge._loss).
        failures.append(Failure(
            kind="loss",
            message=_with_divergence(
                f"Tokens lost: {metrics.lost} ({metrics.loss_pct:.2f}%, expected none; "
                f"made: {metrics.messages_sent}, received: {metrics.tokens_received})",
                metrics),
            headline=loss_headline(scenario),
            diagnosis=("Incorrect channel buffer policy", "Consumer task panicked",
                       "Race condition in message counting"),
        ))
    for count, what, headline, diagnosis in (
        (metrics.duplicated, "Duplicated tokens", "FAILURE: Tokens delivered more than once",
         DUPLICATE_DIAGNOSIS),
        (metrics.reordered, "Reordered tokens", "FAILURE: Tokens delivered out of order",
         REORDER_DIAGNOSIS),
        (metrics.corrupted, "Corrupted tokens", "FAILURE: Tokens corrupted in transit",
         CORRUPTION_DIAGNOSIS),
    ):
        if count:
            failures.append(Failure(
                kind="verification",
                message=_with_divergence(f"{what}: {count} (expected 0)", metrics),
                headline=headline, diagnosis=diagnosis))
    if early:
        failures.append(Failure(
            kind="verification",
            message=_with_divergence(
                f"Streams ended short: {early} of {scenario.conversations} "
                "conversations ended before their last token", metrics),
            headline="FAILURE: Streams ended short", diagnosis=SHORT_DIAGNOSIS))
    injected = len(failure_plan(scenario))
    if metrics.unexpected_failures:
        failures.append(_unexpected(metrics.errors, injected, scenario))
    if metrics.unreported_failures:
        failures.append(Failure(
            kind="errors",
            message=f"Unreported failures: {metrics.unreported_failures} of {injected} "
                    "injected failures were never reported (stats.fail)",
            headline="FAILURE: Injected failures not reported", diagnosis=UNREPORTED_DIAGNOSIS))
    return failures


def _unexpected(errors: int, injected: int, scenario: Scenario) -> Failure:
    if injected == 0:
        message = (f"Unexpected errors: {errors} conversations failed, but the scenario "
                   "injects no failure (error_rate 0)")
    else:
        message = (f"Unexpected errors: {errors} conversations failed, {injected} failures "
                   f"were injected (error_rate {scenario.error_rate:g} of "
                   f"{scenario.conversations})")
    return Failure(kind="errors", message=message,
                   headline="FAILURE: More errors than injected", diagnosis=ERRORS_DIAGNOSIS)


def loss_headline(scenario: Scenario) -> str:
    """The seed's loss headline names the condition of its scenario (backpressure); another
    scenario's names its own, in the words of its passing line (report.text.pass_suffix)."""
    return f"FAILURE: Significant message loss{scenario.loss_condition}"


def counter_failures(scenario: Scenario, metrics: Metrics,
                     run: RunFigures | None) -> list[Failure]:
    """Counts no stream can produce, each naming its counter; errors against the injection."""
    problems: list[str] = []
    odd = run.odd_counters if run is not None else ()
    problems.extend(f"counter {item.partition('=')[0]} is not a whole number: "
                    f"{item.partition('=')[2]}" for item in odd)
    odd_names = {item.partition("=")[0] for item in odd}
    counters = {"messages_sent": metrics.messages_sent,
                "tokens_received": metrics.tokens_received,
                "streams_completed": metrics.streams_completed, "errors": metrics.errors}
    for name, value in counters.items():
        if value < 0 and name not in odd_names:
            problems.append(f"counter {name} is negative: {value}")
    if metrics.tokens_received > metrics.messages_sent >= 0:
        problems.append(f"counter tokens_received ({metrics.tokens_received}) is more than "
                        f"messages_sent ({metrics.messages_sent}): received more than sent")
    if metrics.messages_sent == 0 and "messages_sent" not in odd_names:
        problems.append("counter messages_sent is 0: nothing was sent at all")
    failures = [Failure(kind="counters", message="Impossible counts: " + "; ".join(problems),
                        headline="FAILURE: Impossible counts reported by the target",
                        diagnosis=COUNTERS_DIAGNOSIS)] if problems else []
    injected = len(failure_plan(scenario))
    if metrics.errors > injected:
        failures.append(_unexpected(metrics.errors, injected, scenario))
    return failures


def latency_failure(metrics: Metrics, check: Check) -> Failure:
    """A missed token latency threshold (p99, time to first token, longest gap)."""
    if check.value is None:
        return Failure(
            kind="latency",
            message=f"{check.label} not measured: the stream was not verified (the target "
                    "must make its tokens with params.tokens and hand them to stats.receive)",
            headline="FAILURE: Token latency too high", diagnosis=COUNTERS_DIAGNOSIS[2:])
    return Failure(
        kind="latency",
        message=f"{check.label} too high: {check.value:.1f}ms (expected < {check.limit:g}ms)",
        headline="FAILURE: Token latency too high", diagnosis=LATENCY_DIAGNOSIS)


def slope_failure(metrics: Metrics, check: Check) -> Failure:
    """A soak run whose memory kept growing after the warm-up."""
    if check.value is None:
        return Failure(
            kind="memory",
            message="Memory slope not measured: too few samples after the warm-up "
                    "(raise duration_s or lower warmup_s)",
            headline="FAILURE: Unbounded memory growth detected", diagnosis=SOAK_DIAGNOSIS)
    return Failure(
        kind="memory",
        message=f"Memory keeps growing: {check.value:.2f} MB/min after the warm-up "
                f"(expected < {check.limit:g} MB/min)",
        headline="FAILURE: Unbounded memory growth detected", diagnosis=SOAK_DIAGNOSIS)


MIN_SLOPE_SAMPLES = 5  # fewer points after the warm-up than this fit no honest line


def memory_slope(scenario: Scenario, samples: tuple[Sample, ...]) -> float | None:
    """A soak's RSS growth after its warm-up, MB per minute, fitted over the run's samples."""
    if scenario.duration_s is None:
        return None
    points = [s for s in samples if s.phase == "run" and s.t >= scenario.warmup_s]
    if len(points) < MIN_SLOPE_SAMPLES:
        return None
    slope = least_squares_slope([p.t for p in points], [p.rss_mb for p in points])
    return None if slope is None else slope * 60
