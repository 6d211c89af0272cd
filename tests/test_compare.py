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
from stress.report.text import format_block
from stress.results import Result
from tests.test_report_fixtures import seed_results, timeout_result

REPO = Path(__file__).resolve().parents[1]

def with_throughput(results: list[Result], **throughputs: float) -> list[Result]:
    return [dataclasses.replace(r, metrics=dataclasses.replace(
        r.metrics, throughput=throughputs[r.scenario.name])) if r.scenario.name in throughputs
        else r for r in results]


def write_log(path: Path, results: list[Result]) -> Path:
    """What a run prints on stdout: each scenario's block, with other output between."""
    path.write_text("--- scenario\n" + "\n--- scenario\n".join(map(format_block, results))
                    + "\n5 scenario(s): 5 passed\n", encoding="utf-8")
    return path


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
