"""Turn what a scenario child measured into metrics and verdicts, worded as the seed words them."""

from __future__ import annotations

import signal
from typing import Any

from stress.results import Failure, Metrics
from stress.scenario import Scenario

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


def metrics_from(figures: dict[str, Any], last_sample: dict[str, Any] | None,
                 elapsed_s: float) -> Metrics:
    """Metrics from the child's result file, or from its last sample when it was killed."""
    if "duration_s" not in figures and last_sample is not None:
        # The child never finished its measured run: use what the sampler last saw.
        figures = {
            "messages_sent": last_sample["sent"],
            "tokens_received": last_sample["received"],
            "streams_completed": last_sample["streams"],
            "errors": last_sample["errors"],
            "duration_s": elapsed_s,
            "peak_rss_mb": last_sample["rss_mb"],
            **{k: v for k, v in figures.items() if k == "rss_start_mb"},
        }
    sent = int(figures.get("messages_sent", 0))
    received = int(figures.get("tokens_received", 0))
    duration = float(figures.get("duration_s", 0.0))
    rss_start = figures.get("rss_start_mb")
    rss_end = figures.get("rss_end_mb")
    growth = float(rss_end - rss_start) if rss_start is not None and rss_end is not None else 0.0
    return Metrics(
        messages_sent=sent,
        tokens_received=received,
        streams_completed=int(figures.get("streams_completed", 0)),
        errors=int(figures.get("errors", 0)),
        duration_s=duration,
        throughput=received / duration if duration > 0 else 0.0,
        memory_growth_mb=growth,
        peak_rss_mb=float(figures.get("peak_rss_mb", 0.0)),
        quit_latency_ms=figures.get("quit_latency_ms"),
        loss_pct=(sent - received) / sent * 100 if sent > 0 else 0.0,
    )


def timeout_failure(scenario: Scenario, took_s: float, phase: str) -> Failure:
    if phase == "quit":
        return Failure(
            kind="timeout",
            message=f"Quit was requested under load but run() had not returned "
                    f"after {took_s:.3f}s",
            headline="FAILURE: Possible deadlock detected",
            diagnosis=QUIT_DIAGNOSIS,
        )
    return Failure(
        kind="timeout",
        message=f"Test should complete within timeout ({scenario.timeout_s:g}s), "
                f"took {took_s:.3f}s",
        headline="FAILURE: Possible deadlock detected",
        diagnosis=DEADLOCK_DIAGNOSIS,
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


def threshold_failures(scenario: Scenario, metrics: Metrics,
                       figures: dict[str, Any]) -> list[Failure]:
    """Every threshold the completed run missed, in the seed's order of importance."""
    limits = scenario.thresholds
    failures: list[Failure] = []
    if limits.max_loss_pct is not None and metrics.loss_pct >= limits.max_loss_pct:
        failures.append(Failure(
            kind="loss",
            message=f"Message loss too high: {metrics.loss_pct:.2f}% "
                    f"(sent: {metrics.messages_sent}, received: {metrics.tokens_received})",
            headline="FAILURE: Significant message loss under backpressure",
            diagnosis=LOSS_DIAGNOSIS,
        ))
    if (limits.max_memory_growth_mb is not None
            and metrics.memory_growth_mb >= limits.max_memory_growth_mb):
        failures.append(Failure(
            kind="memory",
            message=f"Memory growth too high: {metrics.memory_growth_mb:.2f} MB "
                    f"(expected < {limits.max_memory_growth_mb:g}MB)",
            headline="FAILURE: Unbounded memory growth detected",
            diagnosis=MEMORY_DIAGNOSIS,
        ))
    if limits.min_throughput is not None and metrics.throughput <= limits.min_throughput:
        failures.append(Failure(
            kind="throughput",
            message=f"Throughput too low: {metrics.throughput:.0f} tokens/sec "
                    f"(expected > {limits.min_throughput:g})",
            headline="FAILURE: Throughput below baseline",
            diagnosis=THROUGHPUT_DIAGNOSIS,
        ))
    if limits.max_quit_latency_ms is not None:
        latency = metrics.quit_latency_ms
        if latency is None:
            failures.append(Failure(
                kind="quit_latency",
                message="Quit latency not measured: "
                        + str(figures.get("quit_note", "no quit was requested under load")),
                headline="FAILURE: Quit not responsive under load",
                diagnosis=("The stream must still be running when quit is requested; "
                           "raise 'messages'",),
            ))
        elif latency >= limits.max_quit_latency_ms:
            failures.append(Failure(
                kind="quit_latency",
                message=f"Quit latency too high: {latency:.0f}ms "
                        f"(expected < {limits.max_quit_latency_ms:g}ms)",
                headline="FAILURE: Quit not responsive under load",
                diagnosis=QUIT_DIAGNOSIS,
            ))
    pending = figures.get("pending_after_quit") or []
    if pending:
        failures.append(Failure(
            kind="quit_latency",
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
    if leaked_mb < limit_mb:
        return None
    report_lines = tuple(line for line in (leak_report or "").splitlines() if line.strip())
    return Failure(
        kind="leak",
        message=f"Leaked memory too high: {leaked_mb:.2f} MB still allocated at exit "
                f"(expected < {limit_mb:g}MB)",
        headline="FAILURE: Memory leak detected",
        diagnosis=report_lines[:25] or MEMORY_DIAGNOSIS,
    )
