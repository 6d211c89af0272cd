"""results.json, junit.xml, summary.md and how write_reports puts them on disk."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from stress.report import REPORT_FILES, write_reports
from stress.report.files import (
    MAX_NAME_BYTES,
    bounded_name,
    open_new_text_file,
    write_file_atomically,
)
from stress.report.summary import render_summary, verdict_line
from stress.results import RESULTS_VERSION, Check, Result, checks_of, parse_results_document
from tests.test_report_fixtures import (
    ENVIRONMENT,
    loss_result,
    memory_result,
    seed_results,
    timeout_result,
)


def failing_run() -> list[Result]:
    return [*seed_results(), memory_result(), loss_result(), timeout_result()]


def test_every_report_is_written_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    write_reports(seed_results(), tmp_path / "out", final=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(REPORT_FILES)


def test_results_json_round_trips_with_environment_and_time(tmp_path: Path) -> None:
    results = failing_run()
    write_reports(results, tmp_path)
    document = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert document["version"] == RESULTS_VERSION
    assert document["environment"] == dataclasses.asdict(ENVIRONMENT)
    assert document["generated_at"].endswith("+00:00")
    entry = document["scenarios"][0]
    assert {"name", "passed", "metrics", "thresholds", "failures", "environment"} <= set(entry)
    assert entry["thresholds"] == {"min_throughput": 10000, "max_memory_growth_mb": 100,
                                   "max_quit_latency_ms": None, "max_loss_pct": None,
                                   "max_leaked_mb": None, "max_p99_latency_ms": None,
                                   "max_ttft_ms": None, "max_gap_ms": None,
                                   "max_memory_slope_mb_per_min": None}
    assert parse_results_document(document) == results


def test_a_failed_write_keeps_the_previous_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "summary.md"
    write_file_atomically(target, "the previous summary\n")
    with pytest.raises(UnicodeEncodeError):
        write_file_atomically(target, "half a summary, then an unencodable \ud800")
    assert target.read_text(encoding="utf-8") == "the previous summary\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]


def test_reports_are_readable_by_others(tmp_path: Path) -> None:
    write_reports(seed_results(), tmp_path)
    assert (tmp_path / "report.html").stat().st_mode & 0o044  # not mkstemp's 0600


def test_junit_has_a_testcase_per_scenario_with_failures_and_errors(tmp_path: Path) -> None:
    write_reports(failing_run(), tmp_path)
    root = ET.parse(tmp_path / "junit.xml").getroot()
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "stress"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("8", "2", "1")
    assert [case.get("name") for case in suite.findall("testcase")] == [
        "short", "medium", "long", "rapid", "backpressure", "medium", "backpressure", "short"]
    passed, *_ = suite.findall("testcase")
    assert passed.find("failure") is None
    assert passed.find("error") is None
    out = passed.findtext("system-out") or ""
    assert out.startswith("=== Stress Test Results: 1M Short Messages ===")
    memory, loss, timeout = suite.findall("testcase")[5:]
    failure = memory.find("failure")
    assert failure is not None
    assert failure.get("message") == "Memory growth too high: 1234.56 MB (expected < 500MB)"
    assert failure.get("type") == "memory"
    assert "FAILURE: Unbounded memory growth detected" in (failure.text or "")
    assert loss.find("failure") is not None
    error = timeout.find("error")
    assert error is not None
    assert timeout.find("failure") is None
    assert error.get("message") == "Test should complete within timeout (60s), took 62.345s"
    assert timeout.get("time") == "62.345"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["python"] == "3.11.7"


def test_junit_stays_valid_xml_with_control_characters_and_markup(tmp_path: Path) -> None:
    broken = timeout_result()
    failure = dataclasses.replace(broken.failures[0],
                                  message="stack: \x1b[31m<frame> & \"quotes\"\x00\x1b[0m")
    write_reports([dataclasses.replace(broken, failures=(failure,))], tmp_path)
    error = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite/testcase/error")
    assert error is not None
    assert error.get("message") == "stack: \ufffd[31m<frame> & \"quotes\"\ufffd\ufffd[0m"


@pytest.mark.parametrize(("results", "line"), [
    (seed_results(), "# Stress: all 5 scenarios passed"),
    (seed_results()[:1], "# Stress: the 1 scenario passed (short)"),
    ([*seed_results(), loss_result()], "# Stress: threshold failed in backpressure (exit 1)"),
    ([timeout_result(), *seed_results()[1:], memory_result()],
     "# Stress: crashed or hung: short; threshold failed in medium (exit 4)"),
    ([], "# Stress: no scenario ran"),
])
def test_the_summary_starts_with_the_verdict(results: list[Result], line: str) -> None:
    assert verdict_line(results) == line
    assert render_summary(results).splitlines()[0] == line


def test_the_summary_has_the_seeds_two_tables() -> None:
    text = render_summary(seed_results())
    lines = text.splitlines()
    start = lines.index("## Performance Comparison")
    assert lines[start + 2:start + 9] == [
        "| Test | Messages | Duration | Throughput | Memory | Status |",
        "|------|----------|----------|------------|--------|--------|",
        "| Short (1M) | 1,000,000 | 45.2s | 22K msg/s | 45 MB | ✅ PASS |",
        "| Medium (1M) | 1,000,000 | 98.6s | 10K msg/s | 235 MB | ✅ PASS |",
        "| Long (1K) | 1,000 | 3.5s | 289 msg/s | 12 MB | ✅ PASS |",
        "| Rapid (1M) | 1,000,000 | 15.7s | 64K msg/s | N/A | ✅ PASS |",
        "| Backpressure (100K) | 100,000 | 12.3s | 8K msg/s | N/A | ✅ PASS |",
    ]
    start = lines.index("## Baseline Comparison")
    assert lines[start + 2:start + 13] == [
        "| Metric | Target | Achieved | Delta |",
        "|--------|--------|----------|-------|",
        "| Throughput (short) | > 10K | 22K | +121% |",
        "| Memory (short) | < 100 MB | 45 MB | -55% |",
        "| Throughput (medium) | > 5K | 10K | +103% |",
        "| Memory (medium) | < 500 MB | 235 MB | -53% |",
        "| Throughput (long) | > 100 | 289 | +189% |",
        "| Quit latency (rapid) | < 1s | 234ms | -77% |",
        "| Message loss (backpressure) | < 1% | 0% | -100% |",
        "",
        "**All baselines exceeded** ✅",
    ]
    assert "## Failures" not in text


def test_the_summary_names_missed_baselines_and_shows_failures() -> None:
    text = render_summary([memory_result(), loss_result()])
    assert "| Memory (medium) | < 500 MB | 1235 MB | +147% |" in text
    assert "**Missed: Memory (medium), Message loss (backpressure)** ❌" in text
    assert "```\nMemory growth too high: 1234.56 MB (expected < 500MB)\n\n" \
           "FAILURE: Unbounded memory growth detected\n" in text


def test_the_summary_puts_each_throughput_beside_the_baseline() -> None:
    slower = dataclasses.replace(seed_results()[0], metrics=dataclasses.replace(
        seed_results()[0].metrics, throughput=11062))
    text = render_summary([slower, seed_results()[3]], baseline=seed_results()[:1])
    assert "| Short (1M) | 22124 | 11062 | -50% |" in text
    assert "| Rapid (1M) | not in baseline | 63786 | N/A |" in text


def test_markdown_in_titles_cannot_break_the_tables() -> None:
    hostile = loss_result()
    hostile = dataclasses.replace(hostile, scenario=dataclasses.replace(
        hostile.scenario, name="a|b", title="<img src=x> | ```"))
    text = render_summary([hostile])
    assert text.startswith("# Stress: threshold failed in a\\|b (exit 1)\n")
    assert "| A\\|b (100K) |" in text
    assert "### &lt;img src=x> \\| ``` (a\\|b)" in text


def test_the_step_summary_gets_the_final_summary_only(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    step = tmp_path / "step-summary.md"
    step.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    write_reports(seed_results()[:2], tmp_path / "out", final=False)
    assert step.read_text(encoding="utf-8") == "earlier step\n"
    write_reports(seed_results(), tmp_path / "out", final=True)
    appended = step.read_text(encoding="utf-8").removeprefix("earlier step\n")
    assert appended == (tmp_path / "out" / "summary.md").read_text(encoding="utf-8") + "\n"
    assert appended.startswith("# Stress: all 5 scenarios passed\n")


def test_an_unwritable_step_summary_does_not_lose_the_reports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "no-such-dir" / "summary.md"))
    write_reports(seed_results(), tmp_path / "out")
    assert (tmp_path / "out" / "report.html").exists()
    assert "GITHUB_STEP_SUMMARY" in caplog.text


def test_an_in_progress_summary_says_so() -> None:
    assert "_Run in progress" in render_summary(seed_results()[:2], final=False)
    assert "_Run in progress" not in render_summary(seed_results()[:2], final=True)


def test_the_summary_lists_the_profiles_of_each_failure() -> None:
    failed = dataclasses.replace(loss_result(), artifacts={
        "log": "stress-test-backpressure.log",
        "cpu_flamegraph": "backpressure-cpu-flamegraph.svg",
        "memray_flamegraph": "backpressure-memray-flamegraph.html"})
    text = render_summary([failed])
    evidence = text[text.index("Profiles of this failure"):].splitlines()
    # Memory first, then CPU, each a link relative to the summary in the results folder.
    assert evidence[2:4] == [
        "- Memory flamegraph (memray): "
        "[backpressure-memray-flamegraph.html](backpressure-memray-flamegraph.html)",
        "- CPU flamegraph: [backpressure-cpu-flamegraph.svg](backpressure-cpu-flamegraph.svg)"]
    assert "Profiles of this failure" not in render_summary([loss_result()])


def test_a_symlink_planted_in_the_folder_is_replaced_not_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not the kit's\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    for name in REPORT_FILES:
        (out / name).symlink_to(outside)
    write_reports(seed_results(), out)
    assert outside.read_text(encoding="utf-8") == "not the kit's\n"
    for name in REPORT_FILES:
        assert not (out / name).is_symlink()
    assert parse_results_document(json.loads((out / "results.json").read_text(
        encoding="utf-8"))) == seed_results()
    write_file_atomically(out / "blob.bin", b"\x00\x01")  # binary artifacts too
    assert (out / "blob.bin").read_bytes() == b"\x00\x01"


def test_file_names_from_long_scenario_names_are_bounded(tmp_path: Path) -> None:
    long_a, long_b = "a" * 299 + "x", "a" * 299 + "y"
    names = [bounded_name(f"stress-test-{n}", ".log") for n in (long_a, long_b, "é" * 300)]
    assert all(len(name.encode()) <= MAX_NAME_BYTES for name in names)
    assert len(set(names)) == 3  # cut names stay distinct
    assert all(name.endswith(".log") for name in names)
    assert bounded_name("stress-test-short", ".log") == "stress-test-short.log"
    for name in names:
        write_file_atomically(tmp_path / name, "log\n")
    long_run = dataclasses.replace(loss_result(), scenario=dataclasses.replace(
        loss_result().scenario, name=long_a, title="T" * 300))
    write_reports([long_run], tmp_path / "out")
    assert long_a in (tmp_path / "out" / "summary.md").read_text(encoding="utf-8")


def test_a_hung_run_is_not_all_baselines_exceeded() -> None:
    # The quit phase hung after a measured run that met its throughput and memory limits.
    hung = dataclasses.replace(seed_results()[0], status="timeout",
                               failures=timeout_result().failures)
    text = render_summary([hung, *seed_results()[1:]])
    assert "All baselines exceeded" not in text
    assert "**Not measured: Throughput (short), Memory (short)** ❌" in text
    failed = dataclasses.replace(seed_results()[1], status="failed")  # e.g. streams unaccounted
    assert "All baselines exceeded" not in render_summary([failed])
    assert "**No threshold missed, but not passed: medium** ❌" in render_summary([failed])
    both = render_summary([hung, memory_result()])
    assert "**Missed: Memory (medium); Not measured: Throughput (short), Memory (short)** ❌" \
        in both
    assert "**All baselines exceeded** ✅" in render_summary(seed_results())


def test_an_unfinished_runs_loss_is_not_measured_in_summary_and_junit(tmp_path: Path) -> None:
    hung = dataclasses.replace(loss_result(), status="timeout",
                               failures=timeout_result().failures)
    text = render_summary([hung])
    assert "| Message loss (backpressure) | < 1% | not measured | N/A |" in text
    assert "15.43%" not in text
    write_reports([hung], tmp_path)
    case = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite/testcase")
    assert case is not None
    out = case.findtext("system-out") or ""
    assert "  Message loss: not measured (the run did not finish; 15430 sent but not yet " \
           "received)" in out
    assert "15.43%" not in ET.tostring(case, encoding="unicode")


def test_the_judges_checks_are_shown_in_the_seeds_order() -> None:
    short = seed_results()[0]
    judged = dataclasses.replace(short, checks=tuple(reversed(checks_of(short))))
    assert render_summary([judged]) == render_summary([short])


def test_the_summary_renders_the_judges_checks_without_judging_again() -> None:
    short = seed_results()[0]
    judged = dataclasses.replace(short, checks=(Check(
        metric="throughput", label="Throughput", limit=10_000, value=22124, better="higher",
        met=False),))
    text = render_summary([judged])
    assert "| Throughput (short) | > 10K | 22K | +121% |" in text
    assert "Memory (short)" not in text  # only what the judge checked
    assert "**Missed: Throughput (short)** ❌" in text


def test_text_from_targets_cannot_become_markup_or_workflow_commands() -> None:
    hostile = loss_result()
    failure = dataclasses.replace(
        hostile.failures[0], message="the target raised RuntimeError: boom\n"
        "::add-mask::secret\n  ::error::fake &amp; <b>bold</b>")
    hostile = dataclasses.replace(hostile, failures=(failure,), scenario=dataclasses.replace(
        hostile.scenario, title="Loss &lt;b&gt; &amp; line\nbreak\r\n::warning::x"))
    text = render_summary([hostile])
    assert not any(line.lstrip().startswith("::") for line in text.splitlines())
    assert "\n\u200b::add-mask::secret\n  \u200b::error::fake &amp; <b>bold</b>\n" in text
    assert "### Loss &amp;lt;b&amp;gt; &amp;amp; line break ::warning::x (backpressure)" in text


def test_a_streamed_file_replaces_a_planted_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not the kit's\n", encoding="utf-8")
    log = tmp_path / "stress-test-short.log"
    log.symlink_to(outside)
    with open_new_text_file(log) as handle:
        handle.write("# scenario short\n")
    assert outside.read_text(encoding="utf-8") == "not the kit's\n"
    assert not log.is_symlink()
    assert log.read_text(encoding="utf-8") == "# scenario short\n"
    with open_new_text_file(log) as handle:  # an earlier run's log is truncated
        handle.write("again\n")
    assert log.read_text(encoding="utf-8") == "again\n"
