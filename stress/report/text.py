"""The seed document's text block for one scenario: what stdout and stress-test-<name>.log show.

The block follows the seed's examples line for line. Which metric lines appear depends on what
the scenario is about, as in the seed: payload scenarios (no pacing) show throughput and memory
growth; a token-paced scenario shows throughput and its quit latency; a consumer-paced
(backpressure) scenario shows sent/received counts and message loss, because its throughput is
set by the deliberate consumer delay. A metric that has a threshold is always shown. Every
metric is in results.json and report.html whatever the block shows.
"""

from __future__ import annotations

from stress.engine.judge import MEMORY_DIAGNOSIS
from stress.results import Failure, Result
from stress.scenario import Scenario

DEFAULT_MESSAGE_SIZE = 10

# The words before a failure's bullet list, per kind, in the seed's "Diagnosis:" style.
DIAGNOSIS_INTRO: dict[str, str] = {
    "timeout": "System blocked, likely due to:",
    "loss": "Messages dropped, likely due to:",
    "memory": "Memory leak, likely due to:",
    "leak": "Memory leak, likely due to:",
    "throughput": "Throughput below baseline, likely due to:",
    "quit_latency": "Quit not responsive, likely due to:",
    "crash": "Scenario crashed, likely due to:",
    "streams": "Streams unaccounted, likely due to:",
    "interrupted": "Run interrupted, likely due to:",
}
LEAK_REPORT_INTRO = "Memory leak, still allocated at exit (largest first):"


def is_paced(scenario: Scenario) -> bool:
    return scenario.token_delay_us > 0 or scenario.consumer_delay_us > 0


def shows_message_size(scenario: Scenario) -> bool:
    """Paced scenarios show their pacing instead, unless the size is not the default."""
    return not is_paced(scenario) or scenario.message_size != DEFAULT_MESSAGE_SIZE


def shows_loss(scenario: Scenario) -> bool:
    return scenario.thresholds.max_loss_pct is not None


def shows_throughput(scenario: Scenario) -> bool:
    """A consumer-paced run's throughput is the pacing, not the system: shown only if judged."""
    return scenario.thresholds.min_throughput is not None or scenario.consumer_delay_us <= 0


def shows_memory(scenario: Scenario) -> bool:
    """Payload scenarios report memory growth; paced ones only when it is judged."""
    return scenario.thresholds.max_memory_growth_mb is not None or not is_paced(scenario)


def shows_quit_latency(result: Result) -> bool:
    """Shown when judged; the seed's payload scenarios measure it too but do not show it."""
    return result.scenario.thresholds.max_quit_latency_ms is not None


def number(value: float) -> str:
    """10.0 -> "10", 2.5 -> "2.5": configuration figures as a person would write them."""
    return f"{value:g}"


def configuration_lines(scenario: Scenario) -> list[str]:
    lines = [f"  Messages: {scenario.messages}"]
    if shows_message_size(scenario):
        lines.append(f"  Message size: {scenario.message_size} chars")
    if scenario.token_delay_us > 0:
        lines.append(f"  Token delay: {number(scenario.token_delay_us)} μs")
    if shows_loss(scenario):
        lines.append(f"  Channel buffer: {scenario.channel_buffer}")
    if scenario.consumer_delay_us > 0:
        lines.append(f"  Consumer delay: {number(scenario.consumer_delay_us)} μs/message")
    if scenario.conversations > 1:
        lines.append(f"  Conversations: {scenario.conversations}")
    if scenario.error_rate > 0:
        lines.append(f"  Error rate: {number(scenario.error_rate * 100)}% of conversations")
    return lines


def results_lines(result: Result) -> list[str]:
    scenario, m = result.scenario, result.metrics
    if shows_loss(scenario):
        lines = [f"  Messages sent by backend: {m.messages_sent}",
                 f"  Tokens received by consumer: {m.tokens_received}"]
    else:
        lines = [f"  Total tokens received: {m.tokens_received}"]
    lines += [
        f"  Streams completed: {m.streams_completed}",
        f"  Errors: {m.errors}",
        f"  Duration: {m.duration_s:.3f}s",
    ]
    if shows_throughput(scenario):
        lines.append(f"  Throughput: {m.throughput:.0f} tokens/sec")
    if shows_memory(scenario):
        lines.append(f"  Memory growth: {m.memory_growth_mb:.2f} MB")
    if shows_quit_latency(result):
        latency = "not measured" if m.quit_latency_ms is None else f"{m.quit_latency_ms:.0f}ms"
        lines.append(f"  Quit latency: {latency}")
    if shows_loss(scenario):
        if result.status in ("timeout", "crashed", "interrupted"):
            # Tokens still in the channel when the run stopped are not lost: say what it was.
            in_flight = m.messages_sent - m.tokens_received
            lines.append(f"  Message loss: not measured (the run did not finish; {in_flight} "
                         "sent but not yet received)")
        else:
            lines.append(f"  Message loss: {m.loss_pct:.2f}%")
    if m.leaked_mb is not None:
        lines.append(f"  Leaked at exit: {m.leaked_mb:.2f} MB")
    return lines


def diagnosis_intro(failure: Failure) -> str:
    if failure.kind == "leak" and failure.diagnosis != MEMORY_DIAGNOSIS:
        return LEAK_REPORT_INTRO  # the bullets are memray's largest live allocations
    return DIAGNOSIS_INTRO.get(failure.kind, "Likely due to:")


def format_failure_lines(failure: Failure) -> list[str]:
    """One failure as the seed shows it: message, blank line, headline, diagnosis bullets."""
    lines = [failure.message, "", failure.headline]
    if failure.kind == "leak" and failure.diagnosis != MEMORY_DIAGNOSIS:
        # memray's report: a site per line with its stack indented below; keep the indents.
        lines.append(f"Diagnosis: {diagnosis_intro(failure)}")
        return lines + [text.rstrip() for text in failure.diagnosis if text.strip()]
    bullets = [text.strip().lstrip("-*").strip() for text in failure.diagnosis]
    bullets = [text for text in bullets if text]
    if bullets:
        lines.append(f"Diagnosis: {diagnosis_intro(failure)}")
        lines += [f"- {text}" for text in bullets]
    return lines


def verdict_lines(result: Result) -> list[str]:
    if result.passed:
        suffix = " No significant message loss under backpressure." \
            if shows_loss(result.scenario) else ""
        return [f"✅ Test passed!{suffix}"]
    if not result.failures:  # a status without its failure: say so rather than print nothing
        return [f"Scenario ended as {result.status}", "", "FAILURE: Scenario did not pass"]
    lines: list[str] = []
    for failure in result.failures:
        if lines:
            lines.append("")
        lines += format_failure_lines(failure)
    return lines


def extra_lines(result: Result) -> list[str]:
    """Notes (profilers, repeats) and the files this scenario left, after the verdict."""
    lines = [f"Note: {note}" for note in result.notes]
    if result.artifacts:
        lines.append("Artifacts: " + ", ".join(result.artifacts.values()))
    return lines


def format_block(result: Result) -> str:
    lines = [f"=== Stress Test Results: {result.scenario.title} ===", "Configuration:"]
    lines += configuration_lines(result.scenario)
    lines += ["", "Results:"]
    lines += results_lines(result)
    lines += [""]
    lines += verdict_lines(result)
    extra = extra_lines(result)
    if extra:
        lines += ["", *extra]
    return "\n".join(lines)
