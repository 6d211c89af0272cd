"""Regression detection on both input kinds: results.json and the seed's text logs."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stress.commands.compare import run_comparison
from stress.compare import compare, format_comparison
from stress.errors import ConfigError, ExitCode
from stress.report import write_reports
from stress.report.read import parse_blocks, read_results
from stress.report.text import format_block
from stress.results import Result
from tests.test_report_fixtures import loss_result, seed_results, timeout_result

REPO = Path(__file__).resolve().parents[1]

# A log as the seed's workflow captures it (`cargo test ... | tee baseline.log`): noise
# around the blocks, the Rust panic lines, a block without a throughput line.
SEED_STYLE_LOG = """\
running 2 tests
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

✅ Test passed!
test stress_test_1m_short_messages ... ok
=== Stress Test Results: Backpressure Handling ===
Configuration:
  Messages: 100000
  Channel buffer: 100
  Consumer delay: 100 μs/message

Results:
  Messages sent by backend: 100000
  Tokens received by consumer: 84570
  Streams completed: 1
  Errors: 0
  Duration: 12.345s
  Message loss: 15.43%
thread 'stress_test_backpressure_handling' panicked at tui/tests/stress_test.rs:785:9:
assertion failed: loss_percentage < 1.0
Message loss too high: 15.43% (sent: 100000, received: 84570)

FAILURE: Significant message loss under backpressure
test result: FAILED. 1 passed; 1 failed
"""


def with_throughput(results: list[Result], **throughputs: float) -> list[Result]:
    return [dataclasses.replace(r, metrics=dataclasses.replace(
        r.metrics, throughput=throughputs[r.scenario.name])) if r.scenario.name in throughputs
        else r for r in results]


def write_log(path: Path, results: list[Result]) -> Path:
    """What a run prints on stdout: each scenario's block, with other output between."""
    path.write_text("--- scenario\n" + "\n--- scenario\n".join(map(format_block, results))
                    + "\n5 scenario(s): 5 passed\n", encoding="utf-8")
    return path


def test_the_seed_style_log_is_read_block_by_block() -> None:
    short, backpressure = parse_blocks(SEED_STYLE_LOG)
    assert (short.scenario.title, short.scenario.messages, short.scenario.message_size) == \
        ("1M Short Messages", 1_000_000, 10)
    assert short.passed
    assert short.metrics.throughput == 22124
    assert short.metrics.memory_growth_mb == 45.32
    assert short.metrics.duration_s == 45.234
    assert backpressure.status == "failed"
    assert backpressure.scenario.consumer_delay_us == 100
    assert backpressure.metrics.messages_sent == 100_000
    assert backpressure.metrics.loss_pct == 15.43
    # No throughput line in a backpressure block: tokens over duration instead.
    assert backpressure.metrics.throughput == pytest.approx(84_570 / 12.345)


def test_a_block_read_back_keeps_its_figures() -> None:
    for original in [*seed_results(), loss_result(), timeout_result()]:
        (parsed,) = parse_blocks(format_block(original))
        assert parsed.scenario.title == original.scenario.title
        assert parsed.scenario.messages == original.scenario.messages
        assert parsed.status == original.status
        assert parsed.metrics.tokens_received == original.metrics.tokens_received
        assert parsed.metrics.duration_s == pytest.approx(original.metrics.duration_s)
        assert parsed.metrics.throughput == pytest.approx(original.metrics.throughput, rel=1e-3)


def test_the_runners_log_header_names_the_scenario() -> None:
    text = "# scenario short (1M Short Messages), target x, started now\n" + \
        format_block(seed_results()[0])
    (parsed,) = parse_blocks(text)
    assert parsed.scenario.name == "short"
    (unnamed,) = parse_blocks(format_block(seed_results()[0]))
    assert unnamed.scenario.name == "1m-short-messages"


def test_a_drop_past_the_limit_is_a_regression() -> None:
    base = seed_results()
    current = with_throughput(base, short=22124 * 0.79, medium=10142 * 0.81, long=289 * 1.5)
    comparison = compare(base, current, 20)
    verdicts = {row.scenario: row.verdict for row in comparison.rows}
    assert verdicts == {"1M Short Messages": "REGRESSION", "1M Medium Messages": "ok",
                        "1K Long Messages": "ok", "Rapid Token Streaming": "ok",
                        "Backpressure Handling": "ok"}
    assert comparison.exit_code == ExitCode.REGRESSION
    assert int(comparison.exit_code) == 3
    assert comparison.regressions[0].ratio == pytest.approx(0.79)
    assert compare(base, current, 25).exit_code == ExitCode.PASSED


def test_the_table_states_the_rule_as_a_ratio() -> None:
    base = seed_results()
    text = format_comparison(compare(base, with_throughput(base, short=11062), 20), "a", "b")
    lines = text.splitlines()
    assert lines[1] == "Rule: regression when current/baseline < 0.80 (a drop of more than 20%)"
    assert lines[3].split() == ["Scenario", "Baseline", "Current", "Ratio", "Change", "Verdict"]
    assert lines[4].split()[-5:] == ["22124", "11062", "0.50", "-50.0%", "REGRESSION"]
    assert lines[-1] == "REGRESSION: 1M Short Messages (0.50); exit 3"


def test_scenarios_in_one_file_only_are_listed_not_judged() -> None:
    base, current = seed_results()[:3], seed_results()[1:]
    comparison = compare(base, current)
    assert [row.scenario for row in comparison.rows] == ["1M Medium Messages",
                                                        "1K Long Messages"]
    assert comparison.only_in_baseline == ("1M Short Messages",)
    assert comparison.only_in_current == ("Rapid Token Streaming", "Backpressure Handling")
    text = format_comparison(comparison, "a", "b")
    assert "Only in the baseline (not judged): 1M Short Messages" in text
    assert "Only in the current run (not judged): Rapid Token Streaming, Backpressure" in text
    assert text.endswith("No regression in 2 judged scenario(s); exit 0")


def test_a_run_that_measured_nothing_is_not_judged() -> None:
    crashed = dataclasses.replace(timeout_result(), metrics=dataclasses.replace(
        timeout_result().metrics, duration_s=0.0, throughput=0.0), status="crashed")
    (row,) = compare(seed_results()[:1], [crashed]).rows
    assert (row.verdict, row.regressed) == ("not judged: no current throughput", False)
    assert row.note == "current run crashed"


def test_different_sizes_are_noted() -> None:
    base = seed_results()[:1]
    scaled = [dataclasses.replace(base[0], scenario=base[0].scenario.scaled(0.01))]
    (row,) = compare(base, scaled).rows
    assert row.note == "messages differ: 1000000 vs 10000"


def test_json_against_a_log_matches_by_title(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    write_reports(seed_results(), tmp_path / "baseline")
    slower = with_throughput(seed_results(), rapid=63786 * 0.5)
    log = write_log(tmp_path / "current.log", slower)
    code = run_comparison(tmp_path / "baseline" / "results.json", log, 20)
    out = capsys.readouterr().out
    assert code == 3
    assert "Rapid Token Streaming" in out
    assert "0.50" in out
    # A folder stands for its results.json; a log against a log works the same way.
    assert run_comparison(tmp_path / "baseline", log, 60) == 0
    assert run_comparison(write_log(tmp_path / "base.log", seed_results()), log, 20) == 3


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    ("just some output\nThroughput: 5 tokens/sec\n", "no '=== Stress Test Results: TITLE ===' "
                                                     "block found"),
    ('{"version": 99, "scenarios": []}', "unsupported results.json version 99"),
    ('{"results": []}', "not a stress results.json (no 'scenarios' key)"),
    ("{not json", "not a stress results.json"),
])
def test_bad_input_is_one_line_naming_the_file(tmp_path: Path, content: str | None,
                                               message: str) -> None:
    path = tmp_path / "input.txt"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_results(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert "\n" not in text


def test_no_scenario_in_common_is_a_usage_error(tmp_path: Path) -> None:
    base = write_log(tmp_path / "a.log", seed_results()[:1])
    current = write_log(tmp_path / "b.log", seed_results()[1:2])
    with pytest.raises(ConfigError, match="no scenario in common"):
        run_comparison(base, current)


def test_the_max_drop_must_be_a_percentage() -> None:
    with pytest.raises(ConfigError, match="--max-drop 120"):
        compare(seed_results(), seed_results(), 120)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS",
                                                             "GITHUB_STEP_SUMMARY")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "stress", "compare"],
    [sys.executable, str(REPO / "ci" / "compare_perf.py")],
])
def test_the_command_and_the_ci_script_exit_3_on_a_regression(tmp_path: Path,
                                                              command: list[str]) -> None:
    base = write_log(tmp_path / "baseline.log", seed_results())
    current = write_log(tmp_path / "current.log", with_throughput(seed_results(), short=15000))
    done = subprocess.run([*command, str(base), str(current)], capture_output=True, text=True,
                          env=child_env(), timeout=120, check=False)
    assert done.returncode == 3, done.stderr
    assert "Rule: regression when current/baseline < 0.80 (a drop of more than 20%)" in done.stdout
    done = subprocess.run([*command, str(base), str(current), "--max-drop", "40"],
                          capture_output=True, text=True, env=child_env(), timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*command, str(base), str(tmp_path / "missing.log")],
                          capture_output=True, text=True, env=child_env(), timeout=120,
                          check=False)
    assert done.returncode == 2
    assert done.stderr == f"error: {tmp_path / 'missing.log'}: no such file; expected a " \
                          "results.json or the text log of a stress run\n"


def test_in_an_appended_log_the_latest_block_counts(tmp_path: Path) -> None:
    first, second = seed_results()[:2]
    faster = with_throughput([first], short=30000)[0]
    log = tmp_path / "appended.log"
    log.write_text("\n".join(format_block(r) for r in (first, second, faster)), encoding="utf-8")
    results = read_results(log)
    assert [(r.scenario.title, r.metrics.throughput) for r in results] == [
        ("1M Short Messages", 30000), ("1M Medium Messages", 10142)]
