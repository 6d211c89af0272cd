"""Reading results back, with the text format's labels shared by the writer and the reader."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from stress import judge
from stress.report import labels, text
from stress.report.read import parse_blocks, read_results, read_results_json
from stress.report.text import format_block
from tests.test_report_fixtures import SHORT, loss_result, seed_results, timeout_result


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
