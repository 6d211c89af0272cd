"""The seed document's text block for one scenario: what stdout and stress-test-<name>.log show.

The block follows the seed's examples line for line. Which metric lines appear depends on what
the scenario is about, as in the seed: payload scenarios (no pacing) show throughput and memory
growth; a token-paced scenario shows throughput and its quit latency; a consumer-paced
(backpressure) scenario shows sent/received counts and message loss, because its throughput is
set by the deliberate consumer delay. A metric that has a threshold is always shown. Every
metric is in results.json and report.html whatever the block shows.
"""

from __future__ import annotations

from stress.config.scenario import Scenario
from stress.report import labels
from stress.report.labels import field_line
from stress.results import UNFINISHED_STATUSES, Failure, Result

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
# The words before a failure's evidence, per kind.
EVIDENCE_INTRO: dict[str, str] = {
    "leak": "Memory leak, still allocated at exit (largest first):",
}


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
    lines = [field_line(labels.MESSAGES, str(scenario.messages))]
    if shows_message_size(scenario):
        lines.append(field_line(labels.MESSAGE_SIZE, f"{scenario.message_size} chars"))
    if scenario.token_delay_us > 0:
        lines.append(field_line(labels.TOKEN_DELAY, f"{number(scenario.token_delay_us)} μs"))
    if shows_loss(scenario):
        lines.append(field_line(labels.CHANNEL_BUFFER, str(scenario.channel_buffer)))
    if scenario.consumer_delay_us > 0:
        lines.append(field_line(labels.CONSUMER_DELAY,
                                f"{number(scenario.consumer_delay_us)} μs/message"))
    if scenario.conversations > 1:
        lines.append(field_line(labels.CONVERSATIONS, str(scenario.conversations)))
    if scenario.error_rate > 0:
        lines.append(field_line(labels.ERROR_RATE,
                                f"{number(scenario.error_rate * 100)}% of conversations"))
    return lines


def loss_text(result: Result) -> str:
    """The run's message loss, or why it is not one: "15.43%", "not measured (...)"."""
    m = result.metrics
    if result.status in UNFINISHED_STATUSES:
        # Tokens still in the channel when the run stopped are not lost: say what it was.
        in_flight = m.messages_sent - m.tokens_received
        return (f"{labels.NOT_MEASURED} (the run did not finish; {in_flight} sent but not yet "
                "received)")
    return f"{m.loss_pct:.2f}%"


def results_lines(result: Result) -> list[str]:
    scenario, m = result.scenario, result.metrics
    if shows_loss(scenario):
        lines = [field_line(labels.MESSAGES_SENT, str(m.messages_sent)),
                 field_line(labels.TOKENS_BY_CONSUMER, str(m.tokens_received))]
    else:
        lines = [field_line(labels.TOTAL_TOKENS, str(m.tokens_received))]
    lines += [
        field_line(labels.STREAMS_COMPLETED, str(m.streams_completed)),
        field_line(labels.ERRORS, str(m.errors)),
        field_line(labels.DURATION, f"{m.duration_s:.3f}s"),
    ]
    if shows_throughput(scenario):
        lines.append(field_line(labels.THROUGHPUT, f"{m.throughput:.0f} tokens/sec"))
    if shows_memory(scenario):
        lines.append(field_line(labels.MEMORY_GROWTH, f"{m.memory_growth_mb:.2f} MB"))
    if shows_quit_latency(result):
        latency = (labels.NOT_MEASURED if m.quit_latency_ms is None
                   else f"{m.quit_latency_ms:.0f}ms")
        lines.append(field_line(labels.QUIT_LATENCY, latency))
    if shows_loss(scenario):
        lines.append(field_line(labels.MESSAGE_LOSS, loss_text(result)))
    if m.leaked_mb is not None:
        lines.append(field_line(labels.LEAKED_AT_EXIT, f"{m.leaked_mb:.2f} MB"))
    if m.instructions_per_token is not None:
        lines.append(field_line(labels.INSTRUCTIONS_PER_TOKEN,
                                f"{m.instructions_per_token:.1f} (valgrind)"))
    return lines


def diagnosis_intro(failure: Failure) -> str:
    if failure.evidence is not None:
        return EVIDENCE_INTRO.get(failure.kind, "Found, verbatim:")
    return DIAGNOSIS_INTRO.get(failure.kind, "Likely due to:")


def diagnosis_bullets(failure: Failure) -> list[str]:
    """The generic causes, without any bullet marks they came with."""
    bullets = [text.strip().lstrip("-*").strip() for text in failure.diagnosis]
    return [text for text in bullets if text]


def evidence_lines(failure: Failure) -> list[str]:
    """What a profiler found, line by line, its indents kept (memray: a stack under its site)."""
    return [text.rstrip() for text in (failure.evidence or "").splitlines() if text.strip()]


def format_failure_lines(failure: Failure) -> list[str]:
    """One failure as the seed shows it: message, blank line, headline, diagnosis bullets."""
    lines = [failure.message, "", failure.headline]
    if failure.evidence is not None:  # the evidence is the diagnosis, in place of the guesses
        return [*lines, f"{labels.DIAGNOSIS_PREFIX} {diagnosis_intro(failure)}",
                *evidence_lines(failure)]
    bullets = diagnosis_bullets(failure)
    if bullets:
        lines.append(f"{labels.DIAGNOSIS_PREFIX} {diagnosis_intro(failure)}")
        lines += [f"- {text}" for text in bullets]
    return lines


def pass_suffix(scenario: Scenario) -> str:
    """What a passing run showed about loss, in words that fit what the scenario does.

    The seed's line is for the consumer-paced (backpressure) scenario; a scenario judged on
    loss for another reason says which (error injection, several conversations)."""
    if not shows_loss(scenario):
        return ""
    return f" No significant message loss{scenario.loss_condition}."


def verdict_lines(result: Result) -> list[str]:
    if result.passed:
        return [f"{labels.PASSED}{pass_suffix(result.scenario)}"]
    if not result.failures:  # a status without its failure: say so rather than print nothing
        return [f"Scenario ended as {result.status}", "",
                f"{labels.FAILURE_PREFIX} Scenario did not pass"]
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
    lines = [labels.header(result.scenario.title), labels.CONFIGURATION]
    lines += configuration_lines(result.scenario)
    lines += ["", labels.RESULTS]
    lines += results_lines(result)
    lines += [""]
    lines += verdict_lines(result)
    extra = extra_lines(result)
    if extra:
        lines += ["", *extra]
    return "\n".join(lines)
