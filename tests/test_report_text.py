"""The text block against the seed document's examples, line for line."""

from __future__ import annotations

import dataclasses

import pytest

from stress.config.scenario import Scenario, Thresholds
from stress.config.scenarios import load_scenarios
from stress.engine import judge
from stress.report.text import format_block, format_failure_lines, verdict_lines
from stress.results import Failure, Result
from tests.test_report_fixtures import (
    BACKPRESSURE,
    SHORT,
    loss_result,
    memory_result,
    result,
    seed_results,
    timeout_result,
)

# The seed's expected outputs, copied verbatim. Test 1's "Total messages received: 1000245"
# counts stream events the kit does not measure; it is the one seed line left out (below).
SEED_BLOCKS = {
    "short": """\
=== Stress Test Results: 1M Short Messages ===
Configuration:
  Messages: 1000000
  Message size: 10 chars

Results:
  Total messages received: 1000245
  Total tokens received: 1000000
  Streams completed: 1
  Errors: 0
  Duration: 45.234s
  Throughput: 22124 tokens/sec
  Memory growth: 45.32 MB

✅ Test passed!""",
    "medium": """\
=== Stress Test Results: 1M Medium Messages ===
Configuration:
  Messages: 1000000
  Message size: 100 chars

Results:
  Total tokens received: 1000000
  Streams completed: 1
  Errors: 0
  Duration: 98.567s
  Throughput: 10142 tokens/sec
  Memory growth: 234.56 MB

✅ Test passed!""",
    "long": """\
=== Stress Test Results: 1K Long Messages ===
Configuration:
  Messages: 1000
  Message size: 10000 chars

Results:
  Total tokens received: 1000
  Streams completed: 1
  Errors: 0
  Duration: 3.456s
  Throughput: 289 tokens/sec
  Memory growth: 12.34 MB

✅ Test passed!""",
    "rapid": """\
=== Stress Test Results: Rapid Token Streaming ===
Configuration:
  Messages: 1000000
  Token delay: 10 μs

Results:
  Total tokens received: 1000000
  Streams completed: 1
  Errors: 0
  Duration: 15.678s
  Throughput: 63786 tokens/sec
  Quit latency: 234ms

✅ Test passed!""",
    "backpressure": """\
=== Stress Test Results: Backpressure Handling ===
Configuration:
  Messages: 100000
  Channel buffer: 100
  Consumer delay: 100 μs/message

Results:
  Messages sent by backend: 100000
  Tokens received by consumer: 100000
  Streams completed: 1
  Errors: 0
  Duration: 12.345s
  Message loss: 0.00%

✅ Test passed! No significant message loss under backpressure.""",
}
NOT_MEASURED = "  Total messages received: 1000245"

# The seed's failure examples: its code block minus the Rust panic lines ("thread ...
# panicked at", "assertion failed:"), then its **Diagnosis** paragraph as plain text.
SEED_TIMEOUT = """\
Test should complete within timeout (60s), took 62.345s

FAILURE: Possible deadlock detected
Diagnosis: System blocked, likely due to:
- Deadlock in message channel
- Blocking call in async context
- Channel buffer exhaustion without backpressure"""
SEED_LOSS = """\
Message loss too high: 15.43% (sent: 100000, received: 84570)

FAILURE: Significant message loss under backpressure
Diagnosis: Messages dropped, likely due to:
- Incorrect channel buffer policy
- Consumer task panicked
- Race condition in message counting"""
SEED_MEMORY = """\
  Memory growth: 1234.56 MB

Memory growth too high: 1234.56 MB (expected < 500MB)

FAILURE: Unbounded memory growth detected
Diagnosis: Memory leak, likely due to:
- Messages not freed after processing
- Accumulating buffer without clearing
- Circular reference preventing cleanup"""


@pytest.mark.parametrize("passed", seed_results(), ids=lambda r: r.scenario.name)
def test_passing_blocks_match_the_seed_line_for_line(passed: Result) -> None:
    expected = [line for line in SEED_BLOCKS[passed.scenario.name].splitlines()
                if line != NOT_MEASURED]
    assert format_block(passed).splitlines() == expected


def test_the_timeout_failure_matches_the_seed() -> None:
    block = format_block(timeout_result())
    assert block.endswith("\n\n" + SEED_TIMEOUT)
    assert block.startswith("=== Stress Test Results: 1M Short Messages ===\nConfiguration:\n")


def test_the_loss_failure_matches_the_seed() -> None:
    block = format_block(loss_result())
    assert "  Tokens received by consumer: 84570\n" in block
    assert block.endswith("  Message loss: 15.43%\n\n" + SEED_LOSS)


def test_the_memory_failure_matches_the_seed() -> None:
    block = format_block(memory_result())
    assert block.startswith("=== Stress Test Results: 1M Medium Messages ===\n")
    assert block.endswith(SEED_MEMORY)


def test_notes_and_artifacts_follow_the_verdict() -> None:
    passed = dataclasses.replace(
        seed_results()[0], notes=("py-spy could not attach: permission denied",),
        artifacts={"log": "stress-test-short.log", "cpu_flamegraph": "short-cpu.svg"})
    lines = format_block(passed).splitlines()
    assert lines[-4:] == ["✅ Test passed!", "",
                          "Note: py-spy could not attach: permission denied",
                          "Artifacts: stress-test-short.log, short-cpu.svg"]


def test_every_failure_is_listed_in_order() -> None:
    both = result(BACKPRESSURE, status="failed", duration_s=12.0, throughput=7000,
                  failures=(*loss_result().failures,
                            judge.timeout_failure(BACKPRESSURE, 61.0, "quit")))
    text = format_block(both)
    assert text.index("FAILURE: Significant message loss") < text.index("FAILURE: Possible")
    assert "\n\nQuit was requested under load but run() had not returned after 61.000s\n" in text
    assert "- Quit request not checked while waiting on a full channel" in text


def test_configuration_shows_the_knobs_a_scenario_sets() -> None:
    scenario = Scenario(name="errors", title="Error Injection", messages=10_000,
                        conversations=100, error_rate=0.1,
                        thresholds=Thresholds(min_throughput=10_000, max_loss_pct=1.0,
                                              max_leaked_mb=5))
    block = format_block(result(scenario, duration_s=2.0, throughput=500_000, leaked_mb=0.25,
                                memory_growth_mb=3.5))
    assert block.splitlines()[:7] == [
        "=== Stress Test Results: Error Injection ===", "Configuration:", "  Messages: 10000",
        "  Message size: 10 chars", "  Channel buffer: 100", "  Conversations: 100",
        "  Error rate: 10% of conversations"]
    for line in ("  Messages sent by backend: 1000000", "  Throughput: 500000 tokens/sec",
                 "  Memory growth: 3.50 MB", "  Message loss: 0.00%",
                 "  Leaked at exit: 0.25 MB"):
        assert f"\n{line}\n" in block


def test_a_judged_quit_latency_that_was_not_measured_says_so() -> None:
    rapid = seed_results()[3]
    unmeasured = dataclasses.replace(rapid, metrics=dataclasses.replace(rapid.metrics,
                                                                        quit_latency_ms=None))
    assert "\n  Quit latency: not measured\n" in format_block(unmeasured)


def test_a_leak_report_is_listed_as_found() -> None:
    report = ("  1. 12.0 MB in 3 allocations at make_buffer (pipeline.py:40)\n"
              "       make_buffer  pipeline.py:40\n"
              "       run          pipeline.py:12\n"
              "\n"
              "  2. 0.5 MB in 1 allocations at <module> (app.py:3)\n")
    # The judge hands memray's report over as evidence, beside the generic causes.
    failure = Failure(kind="leak", message="Leaked memory too high: 12.50 MB still allocated "
                      "at exit (expected < 5MB)", headline="FAILURE: Memory leak detected",
                      diagnosis=judge.MEMORY_DIAGNOSIS, evidence=report)
    # The sites and their stacks keep memray's indentation, so each stack reads under its site.
    assert format_failure_lines(failure)[-5:] == [
        "Diagnosis: Memory leak, still allocated at exit (largest first):",
        "  1. 12.0 MB in 3 allocations at make_buffer (pipeline.py:40)",
        "       make_buffer  pipeline.py:40",
        "       run          pipeline.py:12",
        "  2. 0.5 MB in 1 allocations at <module> (app.py:3)"]
    generic = judge.leak_failure(12.5, 5.0, None)
    assert generic is not None
    assert format_failure_lines(generic)[3] == "Diagnosis: Memory leak, likely due to:"


def test_a_crash_and_an_interruption_are_worded_with_their_cause() -> None:
    crash = format_failure_lines(judge.crash_failure(-9, None))
    assert crash[:4] == ["Scenario crashed: the scenario process was killed by SIGKILL (9)", "",
                         "FAILURE: Scenario crashed", "Diagnosis: Scenario crashed, likely due to:"]
    interrupted = format_failure_lines(judge.interrupted_failure(3.2))
    assert interrupted[1:] == ["", "FAILURE: Scenario interrupted"]  # no diagnosis to give


def test_a_failed_status_without_failures_still_says_it_failed() -> None:
    bare = result(SHORT, status="crashed", duration_s=0.0)
    assert format_block(bare).splitlines()[-3:] == [
        "Scenario ended as crashed", "", "FAILURE: Scenario did not pass"]


def test_unknown_kinds_get_a_generic_intro() -> None:
    failure = Failure(kind="streams", message="Streams unaccounted: 0 of 1", headline="FAILURE: x",
                      diagnosis=("- already bulleted", "  ", "plain"))
    assert format_failure_lines(failure)[3:] == [
        "Diagnosis: Streams unaccounted, likely due to:", "- already bulleted", "- plain"]


def test_a_hung_run_does_not_call_tokens_in_flight_lost() -> None:
    hung = dataclasses.replace(loss_result(), status="timeout")
    block = format_block(hung)
    assert "  Message loss: not measured (the run did not finish; 15430 sent but not yet " \
           "received)\n" in block
    assert "  Message loss: 15.43%\n" in format_block(loss_result())


@pytest.mark.parametrize(("name", "line"), [
    ("backpressure", "✅ Test passed! No significant message loss under backpressure."),
    ("concurrent", "✅ Test passed! No significant message loss across concurrent conversations."),
    ("errors", "✅ Test passed! No significant message loss under error injection."),
    ("short", "✅ Test passed!"),
])
def test_each_scenario_passes_with_a_line_that_fits_it(name: str, line: str) -> None:
    scenario = load_scenarios(None)[name]
    assert verdict_lines(result(scenario, duration_s=1.0, throughput=1e6)) == [line]
