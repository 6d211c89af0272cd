"""ci/ab_false_alarm.py's counting and summary, on gate documents built in the test (fast)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "ci" / "ab_false_alarm.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ab_false_alarm", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def scenario(name: str, ratios: list[float], verdict: str,
             before: float | None = None) -> dict[str, Any]:
    ordered = sorted(ratios)
    return {"name": name, "verdict": verdict, "ratios": ratios,
            "median_ratio": ordered[len(ordered) // 2] if ratios else None,
            "confirmation": None if before is None else {"after_rounds": 3,
                                                         "median_before": before}}


def gate_document(*scenarios: dict[str, Any]) -> dict[str, Any]:
    return {"scenarios": list(scenarios)}


def args(**overrides: Any) -> argparse.Namespace:
    values = {"self_runs": 2, "slow_runs": 2, "rounds": 3, "confirm": 3, "max_drop": 20.0}
    return argparse.Namespace(**{**values, **overrides})


def test_self_comparisons_count_alarms_suspects_and_the_first_rounds(script: ModuleType) -> None:
    found = script.SelfFigures()
    # Run 1: both scenarios fine. Run 2: `short` dipped below the limit in its first three
    # rounds, and the confirmation rounds kept it there; `concurrent` gave no figures.
    found.add(gate_document(scenario("short", [1.0, 0.98, 1.02], "ok"),
                            scenario("concurrent", [1.01, 0.99, 1.0], "ok")), rounds=3)
    found.add(gate_document(scenario("short", [0.7, 0.75, 0.9, 0.7, 0.72, 0.74], "regression",
                                     before=0.75),
                            scenario("concurrent", [], "failed")), rounds=3)
    assert (found.gate_alarms, found.scenario_alarms) == (1, 1)
    assert (found.gate_suspects, found.suspects, found.problems) == (1, 1, 1)
    assert found.medians == [1.0, 1.0, 0.75]  # the first three rounds only
    assert found.ratios == [1.0, 0.98, 1.02, 1.01, 0.99, 1.0, 0.7, 0.75, 0.9]


def test_detection_counts_runs_below_the_limit_and_flagged(script: ModuleType) -> None:
    detection = script.Detection()
    detection.add(gate_document(scenario("short", [0.7, 0.72, 0.69], "regression")),
                  rounds=3, limit=0.8)
    detection.add(gate_document(scenario("short", [0.78, 0.79, 0.85, 0.9, 0.88, 0.86], "ok",
                                         before=0.79)), rounds=3, limit=0.8)
    detection.add(gate_document(scenario("short", [], "failed")), rounds=3, limit=0.8)
    assert (detection.suspected, detection.flagged, detection.problems) == (2, 1, 1)
    assert detection.medians == [0.7, 0.86]


def detected(script: ModuleType, flagged: int, medians: list[float]) -> Any:
    return script.Detection(suspected=flagged, flagged=flagged, medians=medians)


def test_the_smallest_factor_caught_is_the_first_of_an_unbroken_run(script: ModuleType) -> None:
    detection = {1.35: detected(script, 1, [0.79, 0.81]), 1.5: detected(script, 2, [0.66, 0.7]),
                 1.75: detected(script, 2, [0.57, 0.58])}
    assert script.smallest_caught(detection, runs=2) == 1.5
    assert script.verdict_line([1.35, 1.5, 1.75], detection, 2) == (
        "Smallest slowdown flagged in every run (and every larger one): x1.5 work per token "
        "(expected head/base 0.667)")
    detection[1.75] = detected(script, 1, [0.79, 0.6])  # a miss above clears the smaller ones
    assert script.smallest_caught(detection, runs=2) is None
    assert script.verdict_line([1.35, 1.5, 1.75], detection, 2) == (
        "No slowdown factor was flagged in every run")


def test_the_summary_states_alarms_spread_and_detection(script: ModuleType) -> None:
    found = script.SelfFigures(gate_alarms=1, scenario_alarms=1, suspects=2, gate_suspects=1,
                               medians=[0.9, 1.0, 1.1], ratios=[0.8, 0.9, 1.0, 1.1, 1.2])
    detection = {1.5: detected(script, 2, [0.64, 0.68])}
    assert script.summary_lines(args(), found, detection) == [
        "False alarms, same commit both sides (short, concurrent):",
        "  after 3 rounds: 1 of 2 gate runs, 2 of 4 scenario verdicts below the limit",
        "  after 3 confirmation rounds: 1 of 2 gate runs (50%), 1 of 4 scenario verdicts",
        "  median head/base of the first 3 rounds: 0.90..1.10 (sd 0.082); single rounds: "
        "0.80..1.20, 5th..95th percentile 0.82..1.18",
        "Detection on `short`, 2 gate runs per factor:",
        "  work/token  expected head/base  final medians  below after 3  flagged in the end",
        "  x1.5        0.667               0.64..0.68     2/2             2/2",
    ]
    without_confirm = script.summary_lines(args(confirm=0), script.SelfFigures(), {})
    assert not any("confirmation rounds" in line for line in without_confirm)
    assert not any("percentile" in line for line in without_confirm)


def test_flag_rates_from_fixed_rounds(script: ModuleType) -> None:
    steady = [1.0] * 20
    rate = script.flag_rate
    assert rate(steady, 1.0, limit=0.8, rounds=5, confirm=0, rng=random.Random(1), draws=50) == 0
    assert rate(steady, 1.5, limit=0.8, rounds=5, confirm=5, rng=random.Random(1),
                draws=50) == 1.0


def test_the_runs_get_this_checkout_and_no_ci_output(
        script: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = script.kit_env(tmp_path)
    assert "GITHUB_ACTIONS" not in env
    assert "GITHUB_STEP_SUMMARY" not in env
    assert env["PYTHONPATH"].split(os.pathsep) == [str(tmp_path), str(script.REPO)]
