"""Turn what a scenario child measured into metrics and verdicts, worded as the seed words them.

Verdicts are computed here once: :func:`checks` gives every threshold of a scenario with its
verdict (``Result.checks``), and the threshold failures are derived from those checks.
Reporters render both; they never judge again.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from stress.config.scenario import Scenario
from stress.engine import verdicts
from stress.engine.protocol import QuitFigures, RunFigures, Sample
from stress.results import Check, Failure, Metrics, meets, threshold_checks
from stress.stats import throughput
from stress.stream_report import StreamReport

DEADLOCK_DIAGNOSIS = (
    "Deadlock in message channel",
    "Blocking call in async context",
    "Channel buffer exhaustion without backpressure",
)
LOSS_DIAGNOSIS = (
    "Incorrect channel buffer policy",
    "Consumer task panicked",
    "Race condition in message counting",
)
MEMORY_DIAGNOSIS = (
    "Messages not freed after processing",
    "Accumulating buffer without clearing",
    "Circular reference preventing cleanup",
)
THROUGHPUT_DIAGNOSIS = (
    "Per-message overhead in the channel or consumer (see the CPU flamegraph)",
    "Blocking call in async context",
    "Other load on the machine (compare against a reference from the same run)",
)
QUIT_DIAGNOSIS = (
    "Blocking call in async context",
    "A task that suppresses cancellation",
    "Quit request not checked while waiting on a full channel",
)
STREAMS_DIAGNOSIS = (
    "A stream ended without its end event",
    "The error path skipped the stream accounting",
)


def metrics_from(run: RunFigures | None, quit: QuitFigures | None = None,
                 last_sample: Sample | None = None, elapsed_s: float = 0.0,
                 streams: StreamReport | None = None) -> Metrics:
    """Metrics from the child's figures, or from its last sample when it was killed; the
    verifier's counts and latency replace the target's counters when it used the verifier."""
    return verdicts.stream_metrics(_counted(run, quit, last_sample, elapsed_s), streams, run)


def _counted(run: RunFigures | None, quit: QuitFigures | None,
             last_sample: Sample | None, elapsed_s: float) -> Metrics:
    growth = 0.0
    verified = False
    if run is None and last_sample is not None:
        verified = last_sample.verified  # checked as far as it went, whatever it lacks now
        # The child never finished its measured run: use what the sampler last saw.
        run = RunFigures(
            messages_sent=last_sample.messages_sent,
            tokens_received=last_sample.tokens_received,
            streams_completed=last_sample.streams_completed, errors=last_sample.errors,
            duration_s=elapsed_s, peak_rss_mb=last_sample.rss_mb,
        )
    elif run is not None:
        growth = run.rss_end_mb - run.rss_start_mb
    if run is None:
        return Metrics()
    sent, received = run.messages_sent, run.tokens_received
    return Metrics(
        messages_sent=sent,
        tokens_received=received,
        streams_completed=run.streams_completed,
        errors=run.errors,
        duration_s=run.duration_s,
        throughput=throughput(received, run.duration_s),
        memory_growth_mb=growth,
        peak_rss_mb=run.peak_rss_mb,
        quit_latency_ms=None if quit is None else quit.latency_ms,
        loss_pct=(sent - received) / sent * 100 if sent > 0 else 0.0,
        verified=verified,
    )


def timeout_failure(scenario: Scenario, took_s: float, phase: str,
                    blocked_loop: str | None = None) -> Failure:
    """A hang; ``blocked_loop`` is the stack dump's finding that the event loop was not
    waiting in its selector ("event loop blocked in a synchronous call at FILE:LINE
    (function)"), named first since it is no guess."""
    first = (blocked_loop,) if blocked_loop else ()
    if phase == "quit":
        return Failure(
            kind="timeout",
            message=f"Quit was requested under load but run() had not returned "
                    f"after {took_s:.3f}s",
            headline="FAILURE: Possible deadlock detected",
            diagnosis=(*first, *QUIT_DIAGNOSIS),
        )
    return Failure(
        kind="timeout",
        message=f"Test should complete within timeout ({scenario.timeout_s:g}s), "
                f"took {took_s:.3f}s",
        headline="FAILURE: Possible deadlock detected",
        diagnosis=(*first, *DEADLOCK_DIAGNOSIS),
    )


def crash_failure(returncode: int, error: str | None) -> Failure:
    if error:
        how = f"the target raised {error}"
    elif returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        how = f"the scenario process was killed by {name} ({-returncode})"
    else:
        how = f"the scenario process exited with code {returncode}"
    return Failure(
        kind="crash",
        message=f"Scenario crashed: {how}",
        headline="FAILURE: Scenario crashed",
        diagnosis=(
            "An exception in the target (its traceback is in the log)",
            "An out-of-memory kill (SIGKILL from the kernel or the container limit)",
            "A crash in a native extension (SIGSEGV or SIGABRT)",
        ),
    )


def interrupted_failure(took_s: float) -> Failure:
    return Failure(
        kind="interrupted",
        message=f"Run interrupted after {took_s:.3f}s (SIGINT or SIGTERM); "
                "the figures are what was measured until then",
        headline="FAILURE: Scenario interrupted",
    )


def _loss(scenario: Scenario, metrics: Metrics) -> Failure:
    return Failure(
        kind="loss",
        message=f"Message loss too high: {metrics.loss_pct:.2f}% "
                f"(sent: {metrics.messages_sent}, received: {metrics.tokens_received})",
        headline=verdicts.loss_headline(scenario),
        diagnosis=LOSS_DIAGNOSIS,
    )


def _memory(metrics: Metrics, check: Check, _quit: QuitFigures | None) -> Failure:
    return Failure(
        kind="memory",
        message=f"Memory growth too high: {metrics.memory_growth_mb:.2f} MB "
                f"(expected < {check.limit:g}MB)",
        headline="FAILURE: Unbounded memory growth detected",
        diagnosis=MEMORY_DIAGNOSIS,
    )


def _throughput(metrics: Metrics, check: Check, _quit: QuitFigures | None) -> Failure:
    return Failure(
        kind="throughput",
        message=f"Throughput too low: {metrics.throughput:.0f} tokens/sec "
                f"(expected > {check.limit:g})",
        headline="FAILURE: Throughput below baseline",
        diagnosis=THROUGHPUT_DIAGNOSIS,
    )


def _quit_latency(_metrics: Metrics, check: Check, quit: QuitFigures | None) -> Failure:
    if check.value is None:
        note = quit.note if quit is not None and quit.note else "no quit was requested under load"
        return Failure(
            kind="quit_latency",
            message="Quit latency not measured: " + note,
            headline="FAILURE: Quit not responsive under load",
            diagnosis=("The stream must still be running when quit is requested; "
                       "raise 'messages'",),
        )
    return Failure(
        kind="quit_latency",
        message=f"Quit latency too high: {check.value:.0f}ms "
                f"(expected < {check.limit:g}ms)",
        headline="FAILURE: Quit not responsive under load",
        diagnosis=QUIT_DIAGNOSIS,
    )


def _latency(metrics: Metrics, check: Check, _quit: QuitFigures | None) -> Failure:
    return verdicts.latency_failure(metrics, check)


def _slope(metrics: Metrics, check: Check, _quit: QuitFigures | None) -> Failure:
    return verdicts.slope_failure(metrics, check)


_FAILURES: dict[str, Callable[[Metrics, Check, QuitFigures | None], Failure]] = {
    "memory_growth_mb": _memory, "throughput": _throughput,
    "quit_latency_ms": _quit_latency, "latency_p99_ms": _latency, "ttft_max_ms": _latency,
    "max_gap_ms": _latency, "memory_slope_mb_per_min": _slope,
}
# Thresholds that fail when their figure was not measured: the threshold asked for it.
_REQUIRED = frozenset({"quit_latency_ms", "latency_p99_ms", "ttft_max_ms", "max_gap_ms",
                       "memory_slope_mb_per_min"})


def threshold_failures(scenario: Scenario, metrics: Metrics,
                       quit: QuitFigures | None = None, run: RunFigures | None = None,
                       streams: StreamReport | None = None) -> list[Failure]:
    """Every threshold the completed run missed, in the seed's order of importance, then
    what the verifier found in the stream (or the impossible counts of a counter-only target).

    The leak threshold is judged on the memray run (:func:`leak_failure`).
    """
    failures: list[Failure] = []
    for check in threshold_checks(scenario, metrics, "passed"):
        missed = check.met is False or (check.metric in _REQUIRED and check.met is None)
        if missed and check.metric == "loss_pct":  # worded for the scenario's condition
            failures.append(_loss(scenario, metrics))
        elif missed and check.metric in _FAILURES:
            failures.append(_FAILURES[check.metric](metrics, check, quit))
    failures.extend(verdicts.stream_failures(scenario, metrics, run, streams))
    pending = quit.pending if quit is not None else ()
    if pending:
        failures.append(Failure(
            kind="leftover",
            message=f"Tasks left pending after quit: {len(pending)} ({'; '.join(pending[:3])})",
            headline="FAILURE: Quit left tasks running",
            diagnosis=("A task created outside a TaskGroup or without an owner that cancels it",),
        ))
    ended = metrics.streams_completed + metrics.errors
    if ended != scenario.conversations:
        failures.append(Failure(
            kind="streams",
            message=f"Streams unaccounted: {ended} of {scenario.conversations} conversations "
                    f"ended (completed {metrics.streams_completed}, errors {metrics.errors})",
            headline="FAILURE: Streams did not finish",
            diagnosis=STREAMS_DIAGNOSIS,
        ))
    return failures


def leak_failure(leaked_mb: float, limit_mb: float, leak_report: str | None) -> Failure | None:
    if meets(leaked_mb, limit_mb, "lower"):
        return None
    report_lines = tuple(line for line in (leak_report or "").splitlines() if line.strip())
    return Failure(
        kind="leak",
        message=f"Leaked memory too high: {leaked_mb:.2f} MB still allocated at exit "
                f"(expected < {limit_mb:g}MB)",
        headline="FAILURE: Memory leak detected",
        diagnosis=report_lines[:25] or MEMORY_DIAGNOSIS,
        evidence=leak_report or None,
    )


memory_slope = verdicts.memory_slope


def run_notes(scenario: Scenario, metrics: Metrics) -> list[str]:
    """What every report of this scenario says beside its verdict."""
    notes = [] if metrics.verified else [verdicts.NOT_VERIFIED_NOTE]
    scaling = scenario.scaling_note()
    if scaling is not None:
        notes.append(scaling)
    return notes
