"""The ab gate end to end: real git revisions, real environments, real scenario runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import stress
from stress.errors import ExitCode

pytestmark = pytest.mark.slow

KIT = Path(stress.__file__).resolve().parent  # the kit these tests import, and the gate runs

# A user's target, as committed in their repository. Every token costs WORK iterations of
# arithmetic; tokens of SLOW_SIZE characters cost SLOWDOWN times as much, so one commit can
# slow one scenario by a known factor and leave another exactly as it was.
TARGET = '''
import asyncio

WORK = 300
SLOW_SIZE = 0
SLOWDOWN = 1.0
CRASH_SIZE = 0


class Pipeline:
    async def run(self, params, stats, quit):
        if params.message_size == CRASH_SIZE:
            raise RuntimeError("the backend rejected the handshake")
        work = int(WORK * (SLOWDOWN if params.message_size == SLOW_SIZE else 1.0))
        queue = asyncio.Queue(maxsize=params.channel_buffer)

        async def produce():
            for _ in range(params.messages):
                await queue.put("x" * params.message_size)
                stats.messages_sent += 1
            await queue.put(None)

        async def consume():
            while await queue.get() is not None:
                total = 0
                for i in range(work):
                    total += i * i
                stats.tokens_received += 1
            stats.streams_completed += 1

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(produce())
            tasks.create_task(consume())


def pipeline():
    return Pipeline()
'''

SCENARIOS = """\
scenarios:
  same:
    title: Same Code Both Sides
    messages: 20000
    timeout_s: 30
  slowed:
    title: Slowed In Head
    messages: 20000
    message_size: 13
    timeout_s: 30
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
                   cwd=repo, check=True, capture_output=True)


def commit(repo: Path, files: dict[str, str], tag: str) -> None:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", tag)
    git(repo, "tag", tag)


def run_ab(repo: Path, *args: str | Path, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items()
                 if k not in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY")}
    child_env["PYTHONPATH"] = str(KIT.parent)  # the kit under test, however it is installed
    child_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "stress", "ab", *map(str, args)], cwd=repo,
                          env=child_env, capture_output=True, text=True, timeout=600,
                          check=False)


def ab_document(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "ab.json").read_text(encoding="utf-8"))
    return document


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in document["scenarios"]}


@pytest.fixture(scope="module")
def user_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's repository holding just their target: tags fast, slow (3x work on the
    13-character scenario) and crash (that scenario raises)."""
    repo = tmp_path_factory.mktemp("user") / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    slowed_everywhere = TARGET.replace("SLOW_SIZE = 0", "SLOW_SIZE = 10").replace(
        "SLOWDOWN = 1.0", "SLOWDOWN = 3.0")
    commit(repo, {"streamer.py": TARGET, "streamer_slowed.py": slowed_everywhere,
                  "scenarios.yaml": SCENARIOS}, "fast")
    commit(repo, {"streamer.py": TARGET.replace("SLOW_SIZE = 0", "SLOW_SIZE = 13")
                  .replace("SLOWDOWN = 1.0", "SLOWDOWN = 3.0")}, "slow")
    commit(repo, {"streamer.py": TARGET.replace("CRASH_SIZE = 0", "CRASH_SIZE = 13")}, "crash")
    return repo


def test_a_slowed_scenario_is_flagged_and_unchanged_code_is_not(user_repo: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "ab"
    step_summary = tmp_path / "step-summary.md"
    # 3x the work per token gives head/base near 0.33; identical code gives about 1.0, its
    # rounds spreading 0.75..1.45 on a busy 2-core machine. A limit of 0.60 keeps both verdicts
    # certain in a short test; the default 0.80 is measured by ci/ab_false_alarm.py.
    done = run_ab(user_repo, "fast", "slow", "--scenarios", "scenarios.yaml", "--target",
                  "streamer:pipeline", "--rounds", "3", "--confirm", "2", "--max-drop", "40",
                  "--out", out,
                  env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(step_summary)})
    assert done.returncode == ExitCode.REGRESSION, done.stdout + done.stderr
    document = ab_document(out)
    scenarios = by_name(document)
    slowed, same = scenarios["slowed"], scenarios["same"]
    assert slowed["verdict"] == "regression"
    assert slowed["median_ratio"] < 0.6
    assert same["verdict"] == "ok"
    assert same["median_ratio"] >= 0.6
    # Below the limit after 3 rounds, the slowed scenario got 2 more, after the other one's.
    assert len(same["ratios"]) == 3
    assert same["confirmation"] is None
    assert len(slowed["ratios"]) == 5
    assert slowed["confirmation"]["after_rounds"] == 3
    assert slowed["confirmation"]["median_before"] < 0.6
    assert [r["order"] for r in slowed["rounds"]] == [["base", "head"], ["head", "base"],
                                                      ["base", "head"], ["head", "base"],
                                                      ["base", "head"]]
    assert "ab confirmation round 4/5: head first" in done.stdout
    for r in slowed["rounds"]:
        assert r["ratio"] == pytest.approx(r["head"]["throughput"] / r["base"]["throughput"])
        assert (out / r["head"]["log"]).is_file()
    assert document["rule"]["text"] == ("regression when median head/base < 0.60 "
                                        "(a drop of more than 40%)")
    # No stress package in this repository: both sides ran the kit running the gate.
    for side in ("base", "head"):
        assert document[side]["own_kit"] is False
        assert Path(document[side]["stress_file"]).parent == KIT
    assert document["head"]["sha"] != document["base"]["sha"]
    run_results = json.loads((out / "runs/slowed/r01-head/results.json").read_text("utf-8"))
    assert run_results["scenarios"][0]["environment"]["git_sha"] == document["head"]["sha"]
    markdown = (out / "ab.md").read_text(encoding="utf-8")
    assert markdown.startswith("❌ Regression: median head/base slowed ")
    assert "regression when median head/base < 0.60 (a drop of more than 40%)" in markdown
    # The step summary holds the gate's table once, and nothing from the individual runs.
    assert step_summary.read_text(encoding="utf-8") == markdown + "\n"
    assert "::error title=stress ab: slowed::median head/base" in done.stdout
    assert "Rule: regression when median head/base < 0.60" in done.stdout
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=user_repo, capture_output=True,
                               text=True, check=True).stdout
    assert len(worktrees.splitlines()) == 1, worktrees
    # The regression's flamegraphs, base beside head, linked from ab.md; none for the other.
    assert_flamegraphs(out, slowed, markdown)
    assert same["flamegraphs"] is None


def assert_flamegraphs(out: Path, scenario: dict[str, Any], markdown: str) -> None:
    name = scenario["name"]
    assert scenario["flamegraphs"] == f"flamegraphs/{name}.html", scenario["flamegraph_note"]
    page = (out / scenario["flamegraphs"]).read_text(encoding="utf-8")
    assert page.index(f'src="{name}-base.svg"') < page.index(f'src="{name}-head.svg"')
    for side in ("base", "head"):
        svg = (out / "flamegraphs" / f"{name}-{side}.svg").read_text(encoding="utf-8")
        assert svg.startswith("<svg")
        assert f"CPU flamegraph: {name}" in svg
        assert "py-spy" in svg
    assert f"[flamegraphs/{name}.html](flamegraphs/{name}.html)" in markdown


needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None,
                                    reason="valgrind is not installed")


@needs_valgrind
def test_instruction_counts_judge_a_slowed_scenario_and_agree_on_unchanged_code(
        user_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "ab"
    done = run_ab(user_repo, "fast", "slow", "--scenarios", "scenarios.yaml", "--target",
                  "streamer:pipeline", "--measure", "instructions", "--instruction-tokens",
                  "2000", "--out", out)
    assert done.returncode == ExitCode.REGRESSION, done.stdout + done.stderr
    scenarios = by_name(ab_document(out))
    same, slowed = scenarios["same"], scenarios["slowed"]
    # Counted at once, on a machine busy with other work, the unchanged scenario's counts
    # agree within a tenth of a percent.
    assert same["measure"] == "instructions"
    assert same["median_ratio"] == pytest.approx(1.0, abs=0.001)
    assert same["verdict"] == "ok"
    # Three times the work a token: well over twice the instructions a token.
    assert slowed["verdict"] == "regression"
    assert slowed["median_ratio"] > 2.0
    assert len(slowed["ratios"]) == 1  # a count needs one round
    assert slowed["growth_table"].startswith("| function |")
    assert_flamegraphs(out, slowed, (out / "ab.md").read_text(encoding="utf-8"))


def test_a_crash_in_head_is_reported_not_skipped(user_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "ab"
    done = run_ab(user_repo, "fast", "crash", "--scenarios", "scenarios.yaml", "--target",
                  "streamer:pipeline", "--rounds", "2", "--max-drop", "40", "--out", out)
    assert done.returncode == ExitCode.CRASHED_OR_HUNG, done.stdout + done.stderr
    scenarios = by_name(ab_document(out))
    assert scenarios["same"]["verdict"] == "ok"
    crashed = scenarios["slowed"]
    assert crashed["verdict"] == "failed"
    assert len(crashed["rounds"]) == 1  # a crash ends that scenario's rounds
    (problem,) = crashed["problems"]
    assert problem.startswith("head round 1: crashed: ")
    assert "RuntimeError: the backend rejected the handshake" in problem
    markdown = (out / "ab.md").read_text(encoding="utf-8")
    assert markdown.startswith("💥 No verdict: slowed failed to run")
    assert "the backend rejected the handshake" in markdown


def test_two_targets_in_one_revision(user_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "ab"
    done = run_ab(user_repo, "fast", "fast", "same", "--scenarios", "scenarios.yaml",
                  "--base-target", "streamer:pipeline", "--head-target",
                  "streamer_slowed:pipeline", "--rounds", "2", "--confirm", "0", "--out", out)
    assert done.returncode == ExitCode.REGRESSION, done.stdout + done.stderr
    document = ab_document(out)
    assert document["base"]["sha"] == document["head"]["sha"]
    assert (document["base"]["target"], document["head"]["target"]) == (
        "streamer:pipeline", "streamer_slowed:pipeline")
    (same,) = document["scenarios"]
    assert same["verdict"] == "regression"
    assert len(same["ratios"]) == 2


def copy_of_the_kit(repo: Path) -> None:
    """This kit's own repository in miniature: the stress package and a pyproject.toml."""
    shutil.copytree(KIT, repo / "stress", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "kit-under-test"\nversion = "0"\n\n'
        '[tool.setuptools.packages.find]\ninclude = ["stress*"]\n\n'
        '[tool.setuptools.package-data]\nstress = ["scenarios.yaml"]\n', encoding="utf-8")


def test_a_revision_holding_the_kit_runs_its_own_copy(tmp_path: Path) -> None:
    repo = tmp_path / "kit"
    repo.mkdir()
    git(repo, "init", "-q")
    copy_of_the_kit(repo)
    tiny = "scenarios:\n  tiny:\n    title: Tiny\n    messages: 20000\n    timeout_s: 30\n"
    # The target lives inside the package: only the revision's own copy has it, so a run
    # that imported any other stress would fail, and the slowdown shows only if it runs.
    commit(repo, {"stress/scenarios.yaml": tiny, "stress/ab_probe_target.py": TARGET}, "base")
    commit(repo, {
        "stress/scenarios.yaml": tiny + "  extra:\n    title: Extra\n    messages: 100\n",
        "stress/ab_probe_target.py": TARGET.replace("WORK = 300", "WORK = 900"),
    }, "head")
    out = tmp_path / "ab"
    done = run_ab(repo, "base", "head", "--target", "stress.ab_probe_target:pipeline",
                  "--rounds", "3", "--confirm", "0", "--out", out)
    assert done.returncode == ExitCode.REGRESSION, done.stdout + done.stderr
    document = ab_document(out)
    for side in ("base", "head"):
        assert document[side]["own_kit"] is True
        stress_file = Path(document[side]["stress_file"])
        assert not stress_file.is_relative_to(KIT)
        assert f"/{side}/" in stress_file.as_posix()  # that revision's folder or install
        assert "its own copy" in (out / f"setup-{side}.log").read_text(encoding="utf-8")
    scenarios = by_name(document)
    assert scenarios["tiny"]["verdict"] == "regression"
    assert scenarios["tiny"]["median_ratio"] < 0.8
    assert len(scenarios["tiny"]["ratios"]) == 3  # --confirm 0: no confirmation rounds
    assert scenarios["extra"]["verdict"] == "not compared"
    assert scenarios["extra"]["not_compared"] == "not in base (new in head)"
