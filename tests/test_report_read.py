"""Reading results back, with the text format's labels shared by the writer and the reader."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from stress.engine import judge
from stress.errors import ConfigError
from stress.report import labels, text
from stress.report.read import parse_blocks, read_results, read_results_json
from stress.report.text import format_block
from tests.test_report_fixtures import SHORT, loss_result, seed_results, timeout_result

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


def test_the_judges_unfinished_headlines_are_the_ones_the_reader_knows() -> None:
    assert judge.timeout_failure(SHORT, 1.0, "run").headline == labels.DEADLOCK_HEADLINE
    assert judge.timeout_failure(SHORT, 1.0, "quit").headline == labels.DEADLOCK_HEADLINE
    assert judge.crash_failure(-9, None).headline == labels.CRASH_HEADLINE
    assert judge.interrupted_failure(1.0).headline == labels.INTERRUPTED_HEADLINE
    assert set(labels.UNFINISHED_HEADLINES.values()) == {"timeout", "crashed", "interrupted"}


def test_the_writer_takes_its_words_from_the_labels(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The writer takes its words from labels (the reader's table is built from them too).
    monkeypatch.setattr(labels, "THROUGHPUT", "Rate")
    block = text.format_block(seed_results()[0])
    assert "  Rate: 22124 tokens/sec" in block.splitlines()


def test_every_results_label_of_the_writer_is_read_back() -> None:
    from stress.report import read

    written = {line.split(":")[0].strip().lower()
               for r in [*seed_results(), loss_result(), timeout_result()]
               for line in text.results_lines(r) + text.configuration_lines(r.scenario)}
    assert written <= set(read._FIELDS)


def test_a_hung_block_reads_back_as_hung() -> None:
    (hung,) = parse_blocks(format_block(timeout_result()))
    assert hung.status == "timeout"


def test_a_folder_stands_for_its_results_json(tmp_path: Path) -> None:
    from stress.report import write_reports

    write_reports(seed_results()[:2], tmp_path)
    assert read_results(tmp_path) == read_results_json(tmp_path / "results.json")
    assert [r.scenario.name for r in read_results(tmp_path)] == ["short", "medium"]


def test_a_hung_runs_loss_that_was_not_measured_is_not_read_as_a_figure() -> None:
    hung = dataclasses.replace(loss_result(), status="timeout",
                               failures=timeout_result().failures)
    assert "  Message loss: not measured (the run did not finish; 15430 sent" in \
        format_block(hung)
    (parsed,) = parse_blocks(format_block(hung))
    assert (parsed.status, parsed.metrics.loss_pct) == ("timeout", 0.0)
    assert parsed.metrics.messages_sent == 100_000


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


def test_in_an_appended_log_the_latest_block_counts(tmp_path: Path) -> None:
    first, second = seed_results()[:2]
    faster = dataclasses.replace(first, metrics=dataclasses.replace(first.metrics,
                                                                    throughput=30000))
    log = tmp_path / "appended.log"
    log.write_text("\n".join(format_block(r) for r in (first, second, faster)), encoding="utf-8")
    results = read_results(log)
    assert [(r.scenario.title, r.metrics.throughput) for r in results] == [
        ("1M Short Messages", 30000), ("1M Medium Messages", 10142)]


def test_the_reporters_sit_below_compare_and_the_judge() -> None:
    """Results flow one way: the judge fills them, the reporters render, compare reads them."""
    import ast

    package = Path(__file__).resolve().parents[1] / "stress" / "report"
    for module in sorted(package.glob("*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names}
        assert not {name for name in imported
                    if name.startswith(("stress.compare", "stress.judge", "stress.engine"))}, \
            module.name
