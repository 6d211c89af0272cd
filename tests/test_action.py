"""The composite action (action.yml), read as data and run step by step as a runner would.

The unit part stands a small recording script in for `stress-kit`, so what each step runs, in
which order, what it writes to GITHUB_OUTPUT and the job summary, and what the upload would
take are checked on any machine. The end-to-end test installs the kit from this tree the way
the action does and runs a scenario on the host.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from stress.cli import build_parser
from tests.action_runner import (
    EXPRESSION,
    evaluate,
    load,
    read_outputs,
    run_action,
    run_with_fake,
    substitute,
    write_fake_kit,
)

REPO = Path(__file__).resolve().parents[1]
ACTION = REPO / "action.yml"

@pytest.fixture(scope="module")
def action() -> dict[str, Any]:
    return load(ACTION)


def run_steps(action: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for step in action["runs"]["steps"] if "run" in step]


def step_ids(action: dict[str, Any]) -> list[str]:
    return [step.get("id", step.get("name", "")) for step in action["runs"]["steps"]]


@pytest.fixture
def fake_kit(tmp_path: Path) -> Path:
    return write_fake_kit(tmp_path / "bin")


@functools.cache
def run_help() -> str:
    return subprocess.run([sys.executable, "-m", "stress", "run", "--help"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout


def parse_run(argv: list[str]) -> Any:
    """`argv` read by the kit's own run parser."""
    if "--engine" not in run_help():  # until the run command takes --engine
        at = argv.index("--engine")
        argv = argv[:at] + argv[at + 2:]
    return build_parser().parse_args(argv)


# -- read as data ---------------------------------------------------------------------------


def test_the_action_is_valid_against_githubs_schema() -> None:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed here (the test and lint extras have it)")
    subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                    "vendor.github-actions", str(ACTION)], check=True, capture_output=True)


def test_every_input_is_described_and_used_and_only_declared_ones_are_read(
        action: dict[str, Any]) -> None:
    text = ACTION.read_text(encoding="utf-8")
    read = {m for e in EXPRESSION.findall(text) for m in re.findall(r"\binputs\.([\w-]+)", e)}
    assert read == set(action["inputs"])
    for name, spec in action["inputs"].items():
        assert spec["description"], name
        assert "default" in spec, f"{name}: every input has a default, so `uses:` alone works"


def test_no_script_holds_an_expression_only_env_does(action: dict[str, Any]) -> None:
    # An expression inside `run:` is pasted into the script before bash reads it: an input
    # holding `$(...)` would run. Values reach the scripts through `env:` only.
    for step in run_steps(action):
        assert "${{" not in step["run"], step["id"]
        assert step["shell"] == "bash", step["id"]


def test_each_output_is_one_a_step_writes(action: dict[str, Any]) -> None:
    steps = {step.get("id"): step for step in action["runs"]["steps"]}
    for name, spec in action["outputs"].items():
        [expression] = EXPRESSION.findall(spec["value"])
        parts = expression.split(".")
        assert (parts[0], parts[2]) == ("steps", "outputs"), name
        step = steps[parts[1]]
        assert f'echo "{parts[3]}=' in step["run"], f"{name}: step {parts[1]} never writes it"


def test_steps_come_in_order_and_the_upload_and_verdict_run_after_failures(
        action: dict[str, Any]) -> None:
    ids = step_ids(action)
    assert ids.index("folder") < ids.index("kit") < ids.index("run") < ids.index("gate")
    steps = action["runs"]["steps"]
    [upload] = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    verdict = steps[ids.index("verdict")]
    for step in (upload, verdict):
        assert "always()" in step["if"]
    assert upload["with"]["path"] == "${{ steps.folder.outputs.results-dir }}"
    [setup] = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
    assert setup["with"]["update-environment"] is False  # the job's Python stays its own


def test_the_install_holds_the_build_backend_ab_installs_revisions_with(
        action: dict[str, Any]) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    [install] = [s for s in run_steps(action) if s["id"] == "kit"]
    assert "${{ github.action_path }}" in install["env"].values()
    for requirement in pyproject["build-system"]["requires"]:
        assert f'"{requirement}"' in install["run"], requirement


def test_the_results_folder_defaults_to_the_kits_own(action: dict[str, Any]) -> None:
    assert Path(action["inputs"]["out"]["default"]) == build_parser().parse_args(["run"]).out


def test_the_runners_expressions_and_output_files(tmp_path: Path) -> None:
    context = {"inputs": {"a": "", "b": "x"}, "steps": {"s": {"outputs": {"o": "1"}}}}
    assert evaluate("inputs.a || inputs.b", context) == "x"
    assert evaluate("steps.s.outputs.o == '1' && inputs.b", context) == "x"
    assert evaluate("always() && steps.s.outputs.missing != ''", context) is False
    assert substitute("-${{ inputs.b }}-${{ steps.s.outputs.o }}-", context) == "-x-1-"
    with pytest.raises(AssertionError, match="does not know"):
        evaluate("format('{0}', inputs.b)", context)
    file = tmp_path / "output"
    file.write_text("a=1\nb<<EOF\nline 1\nline 2\nEOF\nc=x=y\n", encoding="utf-8")
    assert read_outputs(file) == {"a": "1", "b": "line 1\nline 2", "c": "x=y"}


# -- run with a recording stress-kit ---------------------------------------------------------


def test_a_push_runs_the_suite_and_no_gate(action: dict[str, Any], tmp_path: Path,
                                           fake_kit: Path) -> None:
    run, calls = run_with_fake(action, tmp_path, fake_kit, inputs={
        "scenarios": "short medium", "target": "mypkg.pipeline:build"})
    results = Path(run.outputs["results-dir"])
    assert results == tmp_path / "workspace" / "stress-results"
    assert calls == [["run", "short", "medium", "--target", "mypkg.pipeline:build",
                      "--profile", "memory,cpu", "--engine", "docker", "--out", str(results)]]
    args = parse_run(calls[0])
    assert (args.names, args.target, args.profile, args.out) == (
        ["short", "medium"], "mypkg.pipeline:build", "memory,cpu", results)
    assert run.outputs == {"results-dir": str(results), "exit-code": "0", "gate-exit-code": "",
                           "passed": "true"}
    assert run.summary.count("**run verdict: exit 0**") == 1  # a container run leaves it here
    [(_, upload)] = [(u, w) for u, w in run.uses if u.startswith("actions/upload-artifact@")]
    assert upload["path"] == str(results)
    assert (results / "results.json").is_file()
    # the target is the project's module: the kit imports it from the working directory
    pythonpath = (results / "run.pythonpath").read_text(encoding="utf-8")
    assert pythonpath.split(":")[0] == str(tmp_path / "workspace")
    assert upload["name"] == "stress-results"
    assert (run.github_path, run.github_env) == ("", "")  # the job's PATH and env untouched


def test_a_summary_the_kit_appended_itself_is_not_added_twice(
        action: dict[str, Any], tmp_path: Path, fake_kit: Path) -> None:
    run, _ = run_with_fake(action, tmp_path, fake_kit, FAKE_APPENDS_SUMMARY="1")
    assert run.summary.count("**run verdict: exit 0**") == 1


def test_a_failed_suite_still_uploads_and_says_why(action: dict[str, Any], tmp_path: Path,
                                                   fake_kit: Path) -> None:
    run, calls = run_with_fake(action, tmp_path, fake_kit, inputs={
        "scenarios": "short", "profile": "", "engine": "host", "run-args": "--scale 0.1"},
        event_name="pull_request", FAKE_EXIT="1")
    assert calls == [["run", "short", "--engine", "host", "--out", run.outputs["results-dir"],
                      "--scale", "0.1"]]
    assert run.step("run").outcome == "failure"
    assert run.step("gate").outcome == "skipped"  # a failed suite fails the pull request anyway
    assert run.outputs["exit-code"] == "1"
    assert run.outputs["passed"] == "false"
    assert "**run verdict: exit 1**" in run.summary
    assert any(u.startswith("actions/upload-artifact@") for u, _ in run.uses)


def test_a_pull_request_is_gated_against_its_base_commit(
        action: dict[str, Any], tmp_path: Path, fake_kit: Path) -> None:
    run, calls = run_with_fake(action, tmp_path, fake_kit, inputs={
        "scenarios": "short", "max-drop": "15", "gate-args": "--rounds 3",
        "target": "mypkg.pipeline:build"},
        event_name="pull_request", FAKE_AB_EXIT="3")
    results = run.outputs["results-dir"]
    [suite, gate] = calls
    assert suite[0] == "run"
    base = subprocess.run(["git", "rev-parse", "HEAD~1"], cwd=tmp_path / "workspace",
                          check=True, capture_output=True, text=True).stdout.strip()
    assert gate == ["ab", base, "HEAD", "short", "--target", "mypkg.pipeline:build",
                    "--max-drop", "15", "--out", f"{results}/ab", "--rounds", "3"]
    args = build_parser().parse_args(gate)
    assert (args.base_ref, args.head_ref, args.names, args.target, args.max_drop,
            args.rounds) == (base, "HEAD", ["short"], "mypkg.pipeline:build", 15, 3)
    assert run.outputs["gate-exit-code"] == "3"
    assert run.outputs["exit-code"] == "0"
    assert run.outputs["passed"] == "false"
    assert "**ab verdict: exit 3**" in run.summary
    assert Path(results, "ab", "ab.json").is_file()  # inside the folder the upload takes


def test_the_gate_alone_and_a_base_missing_from_the_clone(
        action: dict[str, Any], tmp_path: Path, fake_kit: Path) -> None:
    run, calls = run_with_fake(action, tmp_path / "only", fake_kit, inputs={
        "scenarios": "short", "gate": "only"}, event_name="pull_request", BASE="HEAD~1")
    assert [call[0] for call in calls] == ["ab"]
    assert run.outputs["passed"] == "true"
    assert run.outputs["exit-code"] == ""

    run, calls = run_with_fake(action, tmp_path / "missing", fake_kit, inputs={
        "gate": "only"}, event_name="pull_request", BASE="1" * 40)
    assert calls == []
    assert run.step("gate").outcome == "failure"
    assert "fetch-depth: 0" in run.step("gate").log
    assert run.outputs["passed"] == "false"


def test_a_wrong_gate_value_stops_before_anything_runs(
        action: dict[str, Any], tmp_path: Path, fake_kit: Path) -> None:
    run, calls = run_with_fake(action, tmp_path, fake_kit, inputs={"gate": "yes"})
    assert run.step("folder").outcome == "failure"
    assert "it takes true, false or only" in run.step("folder").log
    assert calls == []
    assert not any(u.startswith("actions/upload-artifact@") for u, _ in run.uses)
    assert run.outputs["passed"] == "false"


# -- end to end: the real install and a real run ---------------------------------------------


def kit_is_built() -> str | None:
    """Why the end-to-end test cannot run yet, or None."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    if "stress-kit" not in scripts.get("scripts", {}):
        return "pyproject.toml installs no stress-kit command yet"
    if "--engine" not in run_help():
        return "`stress-kit run --help` lists no --engine yet"
    return None


@pytest.mark.slow
@pytest.mark.skipif(kit_is_built() is not None, reason=str(kit_is_built()))
def test_the_action_installs_the_kit_and_runs_a_scenario(action: dict[str, Any],
                                                         tmp_path: Path) -> None:
    # The host engine: this test checks the action, the container tests check the engine.
    # A user's project: its own target module in a folder of the workspace.
    project = tmp_path / "workspace" / "project"
    project.mkdir(parents=True)
    shutil.copy(REPO / "tests" / "user_targets.py", project / "user_targets.py")
    run = run_action(
        action, inputs={"scenarios": "short", "engine": "host", "profile": "",
                        "run-args": "--scale 0.01", "target": "user_targets:EchoPipeline",
                        "working-directory": "project"},
        workspace=tmp_path / "workspace", temp=tmp_path / "runner-temp", action_path=REPO,
        given={"python": {"python-path": sys.executable}})
    for step in run.steps:
        assert step.outcome in ("success", "skipped"), f"{step.id}:\n{step.log}"
    assert run.outputs["exit-code"] == "0"
    assert run.outputs["passed"] == "true"
    results = Path(run.outputs["results-dir"])
    assert results == project / "stress-results"
    for name in ("results.json", "junit.xml", "summary.md", "report.html"):
        assert (results / name).is_file(), name
    first_line = (results / "summary.md").read_text(encoding="utf-8").splitlines()[0]
    assert run.summary.splitlines().count(first_line) == 1
