"""The results model's one home for verdicts and matching: threshold_checks, checks_of,
find_match, measured_throughput."""

from __future__ import annotations

import dataclasses

import pytest

from stress.config.scenario import Scenario, Thresholds
from stress.results import (
    Check,
    Result,
    Status,
    checks_of,
    find_match,
    measured_throughput,
    parse_results_document,
    results_document,
    threshold_checks,
)
from tests.test_report_fixtures import SHORT, loss_result, result, seed_results


def test_each_threshold_gets_a_check_with_its_verdict() -> None:
    short = seed_results()[0]
    assert threshold_checks(short.scenario, short.metrics, short.status) == (
        Check(metric="memory_growth_mb", label="Memory growth", limit=100, value=45.32,
              better="lower", met=True),
        Check(metric="throughput", label="Throughput", limit=10_000, value=22124,
              better="higher", met=True))


def test_a_limit_of_zero_means_none_allowed_and_passes_at_exactly_zero() -> None:
    scenario = Scenario(name="z", title="Z", messages=10, thresholds=Thresholds(max_loss_pct=0))
    clean = result(scenario, duration_s=1.0, loss_pct=0.0)
    lossy = result(scenario, duration_s=1.0, loss_pct=0.01)
    assert [c.met for c in threshold_checks(scenario, clean.metrics, "passed")] == [True]
    assert [c.met for c in threshold_checks(scenario, lossy.metrics, "failed")] == [False]


def test_limits_are_met_strictly_as_the_judge_fails_them() -> None:
    scenario = Scenario(name="edge", title="Edge", messages=10,
                        thresholds=Thresholds(min_throughput=100, max_loss_pct=1.0))
    edge = result(scenario, duration_s=1.0, throughput=100, loss_pct=1.0)
    assert [c.met for c in threshold_checks(scenario, edge.metrics, "failed")] == [False, False]


def test_what_was_not_measured_has_no_verdict() -> None:
    scenario = Scenario(name="q", title="Q", messages=10,
                        thresholds=Thresholds(max_quit_latency_ms=1000, max_leaked_mb=5))
    bare = result(scenario, duration_s=1.0, quit_latency_ms=None, leaked_mb=None)
    assert [(c.value, c.met) for c in checks_of(bare)] == [(None, None), (None, None)]


@pytest.mark.parametrize("status", ["timeout", "crashed", "interrupted"])
def test_an_unfinished_runs_loss_is_not_measured(status: Status) -> None:
    hung = dataclasses.replace(loss_result(), status=status)
    (loss,) = checks_of(hung)
    assert (loss.metric, loss.value, loss.met) == ("loss_pct", None, None)
    # Nor is any other figure of a run that did not finish.
    short = dataclasses.replace(seed_results()[0], status=status)
    assert [(c.value, c.met) for c in checks_of(short)] == [(None, None), (None, None)]
    (finished,) = checks_of(loss_result())
    assert finished.value == pytest.approx(15.43)
    assert finished.met is False


def test_the_judges_checks_are_kept_and_old_results_get_derived_ones() -> None:
    judged = Check(metric="throughput", label="Throughput", limit=10_000, value=22124,
                   better="higher", met=False)
    short = dataclasses.replace(seed_results()[0], checks=(judged,))
    assert checks_of(short) == (judged,)  # not recomputed from the figures
    document = results_document([seed_results()[0]])
    for entry in document["scenarios"]:
        del entry["checks"]  # a results.json from before checks were recorded
    (old,) = parse_results_document(document)
    assert [c.metric for c in checks_of(old)] == ["memory_growth_mb", "throughput"]


def test_old_failures_without_evidence_still_load() -> None:
    document = results_document([loss_result()])
    for entry in document["scenarios"]:
        for failure in entry["failures"]:
            del failure["evidence"]
    (loaded,) = parse_results_document(document)
    assert loaded.failures[0].evidence is None
    assert loaded == loss_result()


def test_a_match_is_by_name_then_by_title() -> None:
    runs = seed_results()
    renamed = dataclasses.replace(runs[1], scenario=dataclasses.replace(
        runs[1].scenario, name="other", title="1m SHORT messages"))
    assert find_match(runs[0], [renamed, runs[0]]) is runs[0]
    assert find_match(runs[0], [renamed]) is renamed
    assert find_match(runs[0], runs[2:]) is None


def test_a_run_that_measured_nothing_has_no_throughput() -> None:
    crashed: Result = result(SHORT, status="crashed", duration_s=0.0, throughput=0.0)
    assert measured_throughput(crashed) is None
    assert measured_throughput(seed_results()[0]) == 22124
