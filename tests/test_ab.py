"""The ab gate's judging, wording and files, from measurements built in the test (fast)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from stress.ab.gate import read_measurement
from stress.ab.model import (
    AbOptions,
    AbReport,
    Measurement,
    Revision,
    Round,
    ScenarioRounds,
    round_order,
    rule_text,
    spread,
)
from stress.ab.render import headline, render_markdown, render_text, write_outputs
from stress.ab.revisions import resolve_commit
from stress.cli import main
from stress.config.scenario import Scenario
from stress.errors import ConfigError, ExitCode
from stress.results import Failure, Metrics, Result, results_document


def pair(number: int, base: float, head: float) -> Round:
    return Round(number=number, base=Measurement(throughput=base, log="b.log"),
                 head=Measurement(throughput=head, log="h.log"))


def comparison(name: str, ratios: list[float]) -> ScenarioRounds:
    return ScenarioRounds(name=name, rounds=tuple(pair(i, 1000.0, 1000.0 * r)
                                              for i, r in enumerate(ratios, start=1)))


def revision(side: str, ref: str) -> Revision:
    return Revision(side="base" if side == "base" else "head", ref=ref, sha=f"{side[0]}" * 40,
                    target="mod:factory", tree=Path("tree"), cwd=Path("run"), env={},
                    stress_file="stress/__init__.py", own_kit=False,
                    setup="no pyproject.toml: its folder first on PYTHONPATH")


def report(*comparisons: ScenarioRounds, interrupted: bool = False,
           max_drop: float = 20.0) -> AbReport:
    return AbReport(options=AbOptions(base_ref="main", head_ref="HEAD", max_drop_pct=max_drop,
                                      rounds=5),
                    revisions={"base": revision("base", "main"), "head": revision("head", "HEAD")},
                    comparisons=comparisons, interrupted=interrupted)


def test_the_rule_is_stated_as_a_ratio() -> None:
    assert rule_text(20) == "regression when median head/base < 0.80 (a drop of more than 20%)"
    assert rule_text(12.5) == ("regression when median head/base < 0.875 "
                               "(a drop of more than 12.5%)")
    assert AbOptions(base_ref="a", head_ref="b", max_drop_pct=20).min_ratio == pytest.approx(0.8)


def test_rounds_alternate_abba() -> None:
    assert [round_order(n) for n in (1, 2, 3, 4)] == [
        ("base", "head"), ("head", "base"), ("base", "head"), ("head", "base")]


def test_spread_median_range_and_quartiles() -> None:
    s = spread([1.0, 0.9, 1.1, 0.8, 1.2])
    assert (s.median, s.low, s.high) == (1.0, 0.8, 1.2)
    assert s.q1 == pytest.approx(0.9)
    assert s.q3 == pytest.approx(1.1)
    one = spread([0.7])
    assert (one.median, one.low, one.high, one.q1, one.q3) == (0.7, 0.7, 0.7, 0.7, 0.7)


def test_verdict_is_on_the_median_ratio_strictly_below_the_limit() -> None:
    # One slow round out of five does not make a regression: the median does.
    assert comparison("s", [1.0, 0.5, 0.98, 1.01, 0.97]).verdict(0.8) == "ok"
    assert comparison("s", [0.79, 0.5, 0.78, 1.01, 0.7]).verdict(0.8) == "regression"
    assert comparison("s", [0.80, 0.80, 0.80]).verdict(0.8) == "ok"
    assert comparison("s", [0.7999]).verdict(0.8) == "regression"


def test_a_failed_run_makes_the_scenario_failed_with_its_reason() -> None:
    crashed = Round(number=2, base=Measurement(throughput=1000.0, log="runs/s/r02-base.log"),
                    head=Measurement(problem="crashed: Scenario crashed: boom",
                                     log="runs/s/r02-head.log"))
    c = ScenarioRounds(name="s", rounds=(pair(1, 1000.0, 990.0), crashed))
    assert c.verdict(0.8) == "failed"
    assert c.ratios == [0.99]
    assert c.problems == ["head round 2: crashed: Scenario crashed: boom "
                          "(log: runs/s/r02-head.log)"]


def test_a_confirmed_scenario_is_judged_on_all_its_rounds() -> None:
    # Three low rounds out of five, then five clean confirmation rounds: not a regression.
    ratios = [0.7, 0.75, 0.78, 1.0, 1.1, 1.0, 0.98, 1.02, 0.99, 1.01]
    cleared = ScenarioRounds(name="short", rounds=comparison("short", ratios).rounds,
                             suspect_median=0.78, confirm_after=5)
    assert cleared.verdict(0.8) == "ok"
    text = render_markdown(report(cleared))
    assert ("- short: median 0.780 after 5 rounds was below the limit; the verdict is on all "
            "10 rounds, confirmation rounds included") in text.splitlines()
    assert "| short | 10 |" in text
    assert "a scenario below the limit gets 5 more rounds, later, and is judged on all" in text


def test_exit_code_regression_outranks_a_failure() -> None:
    failed = ScenarioRounds(name="f", rounds=(Round(number=1,
                                                    base=Measurement(problem="timeout: x"),
                                                    head=Measurement(problem="not run")),))
    slow = comparison("slow", [0.5, 0.5, 0.5])
    fine = comparison("fine", [1.0, 1.02, 0.99])
    new = ScenarioRounds(name="new", not_compared="not in base (new in head)")
    assert report(fine, slow, failed).exit_code == ExitCode.REGRESSION
    assert report(fine, failed).exit_code == ExitCode.CRASHED_OR_HUNG
    assert report(fine, new).exit_code == ExitCode.PASSED
    assert report(fine, interrupted=True).exit_code == ExitCode.CRASHED_OR_HUNG
    assert report(new).exit_code == ExitCode.PASSED


def test_the_markdown_starts_with_the_verdict_and_states_the_rule() -> None:
    text = render_markdown(report(comparison("short", [0.5, 0.52, 0.48, 0.51, 0.5]),
                                  comparison("long", [1.0, 1.01, 0.99, 1.0, 1.02])))
    lines = text.splitlines()
    assert lines[0] == ("❌ Regression: median head/base short 0.500 — "
                        f"head HEAD ({'h' * 12}) vs base main ({'b' * 12})")
    assert "Rule: regression when median head/base < 0.80 (a drop of more than 20%)." in text
    assert ("| short | 5 | 1,000 tokens/s | 500 tokens/s | 0.500 | 0.480..0.520 | "
            "0.500..0.510 | ❌ regression |") in lines
    assert "| long | 5 | 1,000 tokens/s | 1,000 tokens/s | 1.000 | 0.990..1.020 |" in text
    assert "- short: head/base per round 0.500, 0.520, 0.480, 0.510, 0.500" in lines


def test_headlines_for_pass_failure_and_nothing_compared() -> None:
    fine = comparison("short", [1.0, 1.0, 1.0])
    assert headline(report(fine)).startswith("✅ No regression in 1 scenario(s) — head HEAD")
    failed = ScenarioRounds(name="long", rounds=(Round(number=1, base=Measurement(problem="x"),
                                                       head=Measurement(problem="y")),))
    assert headline(report(fine, failed)).startswith("💥 No verdict: long failed to run")
    new = ScenarioRounds(name="new", not_compared="not in base (new in head)")
    assert headline(report(new)).startswith("➖ Nothing compared")
    assert headline(report(fine, interrupted=True)) == (
        f"💥 Interrupted before a verdict — head HEAD ({'h' * 12}) vs base main ({'b' * 12})")
    assert headline(report(comparison("s", [0.5]), interrupted=True)).endswith(
        "(interrupted: on the rounds measured before)")
    text = render_text(report(fine, new))
    assert "- new: not in base (new in head)" in text
    assert "Rule: regression when median head/base < 0.80" in text


def test_outputs_written_and_appended_to_the_step_summary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    done = report(comparison("short", [0.9, 0.95, 0.92]))
    write_outputs(done, tmp_path)
    document = json.loads((tmp_path / "ab.json").read_text(encoding="utf-8"))
    assert document["exit_code"] == 0
    assert (document["rounds"], document["confirm_rounds"]) == (5, 5)
    assert document["rule"] == {"max_drop_pct": 20.0, "min_ratio": pytest.approx(0.8),
                                "text": rule_text(20)}
    (scenario,) = document["scenarios"]
    assert scenario["verdict"] == "ok"
    assert scenario["ratios"] == pytest.approx([0.9, 0.95, 0.92])
    assert scenario["median_ratio"] == pytest.approx(0.92)
    assert scenario["confirmation"] is None
    assert [r["order"] for r in scenario["rounds"]] == [["base", "head"], ["head", "base"],
                                                        ["base", "head"]]
    markdown = (tmp_path / "ab.md").read_text(encoding="utf-8")
    assert markdown.startswith("✅ No regression")
    assert summary.read_text(encoding="utf-8") == "earlier step\n" + markdown + "\n"


def scenario_result(status: str, throughput: float, failures: tuple[Failure, ...] = ()) -> Result:
    return Result(scenario=Scenario(name="short", title="Short", messages=10),
                  status=status,  # type: ignore[arg-type]
                  metrics=Metrics(throughput=throughput, tokens_received=10), failures=failures)


def test_throughput_read_from_results_json_and_failures_named(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    log = tmp_path / "run.log"
    log.write_text("...\nerror: --target 'x:y': cannot import module 'x'\n", encoding="utf-8")
    missing = read_measurement(results, "short", 2, log, "run.log")
    assert missing.throughput is None
    assert missing.problem == ("`python -m stress run` exited 2 without results.json: "
                               "error: --target 'x:y': cannot import module 'x'")
    # A failed threshold still measured a throughput: the gate compares it.
    results.write_text(json.dumps(results_document([scenario_result("failed", 1234.5)])),
                       encoding="utf-8")
    assert read_measurement(results, "short", 1, log, "run.log").throughput == 1234.5
    crash = Failure(kind="crash", message="Scenario crashed: the target raised ValueError: no",
                    headline="FAILURE: Scenario crashed")
    results.write_text(json.dumps(results_document([scenario_result("crashed", 0.0, (crash,))])),
                       encoding="utf-8")
    crashed = read_measurement(results, "short", 4, log, "run.log")
    assert crashed.problem == "crashed: Scenario crashed: the target raised ValueError: no"
    assert read_measurement(results, "other", 4, log, "run.log").problem == \
        "results.json has no scenario 'other'"


def git_repo(path: Path) -> Path:
    path.mkdir()
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "first"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                       cwd=path, check=True)
    return path


def test_a_ref_that_is_not_a_commit_is_one_clear_line(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    assert len(resolve_commit(repo, "HEAD", "HEAD_REF")) == 40
    with pytest.raises(ConfigError) as caught:
        resolve_commit(repo, "xyz", "BASE_REF")
    assert str(caught.value) == (f"BASE_REF 'xyz' is not a commit in {repo}: fetch it first, "
                                 "e.g. git fetch origin main")


def test_command_rejects_bad_flags_and_refs(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    repo = git_repo(tmp_path / "repo")
    out = str(tmp_path / "out")
    assert main(["ab", "HEAD", "HEAD", "--rounds", "0", "--repo", str(repo)]) == 2
    assert main(["ab", "HEAD", "HEAD", "--max-drop", "100", "--repo", str(repo)]) == 2
    assert main(["ab", "HEAD", "HEAD", "--confirm", "-1", "--repo", str(repo)]) == 2
    assert main(["ab", "nope", "HEAD", "--repo", str(repo), "--out", out]) == 2
    assert main(["ab", "HEAD", "HEAD", "--repo", str(tmp_path), "--out", out]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        "error: --rounds 0: expected a whole number >= 1 (5 is usual)",
        "error: --max-drop 100: expected a percentage between 0 and 100, e.g. 20 "
        "(a regression is then head/base < 0.80)",
        "error: --confirm -1: expected a whole number >= 0 (0 turns confirmation rounds off)",
        f"error: BASE_REF 'nope' is not a commit in {repo}: fetch it first, "
        "e.g. git fetch origin main",
        f"error: --repo {tmp_path}: not a git repository; run the gate inside the repository "
        "or pass --repo DIR",
    ]
