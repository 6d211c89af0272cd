""".github/workflows/stress-kit.yml, the reusable workflow: its inputs, its jobs (a matrix per
scenario, the gate on pull requests, a merged report) and the kit's action at the caller's
commit. The schema and zizmor checks of every workflow are in test_workflow.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
REUSABLE = REPO / ".github" / "workflows" / "stress-kit.yml"
KIT = "./.stress-kit"
INPUTS = {"kit-ref", "kit-repository", "scenarios", "target", "profiles", "python-version",
          "gate", "max-drop", "working-directory"}

Node = Any  # a parsed YAML document or part of one


@pytest.fixture(scope="module")
def workflow() -> Node:
    document: Node = yaml.safe_load(REUSABLE.read_text(encoding="utf-8"))
    return document


def kit_step(job: Node) -> Node:
    (step,) = [s for s in job["steps"] if s.get("uses") == KIT]
    return step


def test_it_is_called_with_the_inputs_the_issue_names_each_described_and_used(
        workflow: Node) -> None:
    call = workflow[True]["workflow_call"]  # 'on'
    assert set(workflow[True]) == {"workflow_call"}
    assert set(call["inputs"]) == INPUTS
    assert call["inputs"]["kit-ref"]["required"] is True
    assert call["inputs"]["gate"] == {"description": call["inputs"]["gate"]["description"],
                                      "type": "boolean", "default": True}
    text = REUSABLE.read_text(encoding="utf-8")
    for name, spec in call["inputs"].items():
        assert spec["description"].strip(), name
        assert re.search(rf"inputs\.{re.escape(name)}(?![\w-])", text), name


def test_least_privilege_and_every_job_ends_within_15_minutes(workflow: Node) -> None:
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert job["permissions"] == {"contents": "read"}, name
        assert job["timeout-minutes"] <= 15, name
        for step in job["steps"]:
            assert step.get("timeout-minutes", 0) < job["timeout-minutes"], name
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, name


def test_each_job_runs_the_kit_checked_out_at_the_callers_commit_before_using_it(
        workflow: Node) -> None:
    action_inputs = set(yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
                        ["inputs"])
    for name, job in workflow["jobs"].items():
        steps = job["steps"]
        (kit,) = [i for i, s in enumerate(steps) if s.get("with", {}).get("path") == ".stress-kit"]
        assert steps[kit]["with"]["repository"] == "${{ inputs.kit-repository }}", name
        assert steps[kit]["with"]["ref"] == "${{ inputs.kit-ref }}", name
        # The project's own checkout first: it cleans the workspace, which holds the kit's.
        assert all(not s.get("uses", "").startswith("actions/checkout@") or
                   "path" in s.get("with", {}) for s in steps[kit + 1:]), name
        for i, step in enumerate(steps):
            if step.get("uses") == KIT:
                assert i > kit, name
                assert set(step["with"]) <= action_inputs, name


def test_one_job_per_scenario_in_the_container_without_the_gate(workflow: Node) -> None:
    job = workflow["jobs"]["stress"]
    assert job["needs"] == "scenarios"
    assert job["strategy"] == {"fail-fast": False, "matrix": {
        "scenario": "${{ fromJSON(needs.scenarios.outputs.names) }}"}}
    step = kit_step(job)["with"]
    assert step["scenarios"] == "${{ matrix.scenario }}"
    assert step["engine"] == "docker"
    assert step["gate"] == "false"
    assert step["profile"] == "${{ inputs.profiles }}"
    assert step["artifact-name"] == "stress-${{ matrix.scenario }}"
    # The container's deadline (540 s) before the step's (13 min), before the job's (15).
    assert "--container-timeout 540" in step["run-args"]
    assert kit_step(job)["timeout-minutes"] == 13


def test_pull_requests_are_gated_once_against_their_base_commit(workflow: Node) -> None:
    job = workflow["jobs"]["gate"]
    assert job["if"] == "github.event_name == 'pull_request' && inputs.gate"
    assert job["steps"][0]["with"]["fetch-depth"] == 0
    step = kit_step(job)["with"]
    assert step["gate"] == "only"
    assert step["max-drop"] == "${{ inputs.max-drop }}"
    # Its artifact is not one of the scenarios' the report merges.
    assert not step["artifact-name"].startswith("stress-")


def test_the_report_merges_every_scenarios_artifact_after_failures_too(workflow: Node) -> None:
    job = workflow["jobs"]["report"]
    assert job["needs"] == ["scenarios", "stress"]
    assert "!cancelled()" in job["if"]
    assert "needs.scenarios.result == 'success'" in job["if"]
    (download,) = [s for s in job["steps"]
                   if s.get("uses", "").startswith("actions/download-artifact@")]
    assert download["with"] == {"pattern": "stress-*", "path": "scenario-results"}
    (merge,) = [s for s in job["steps"] if "stress-kit\" merge" in s.get("run", "")]
    assert "--out stress-report" in merge["run"]
    (upload,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-")]
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "stress-report/"


def list_script(workflow: Node) -> str:
    (step,) = [s for s in workflow["jobs"]["scenarios"]["steps"] if s.get("id") == "list"]
    script: str = step["run"]
    return script


def test_the_names_given_become_the_matrix(workflow: Node, tmp_path: Path) -> None:
    output = tmp_path / "output"
    env = {**os.environ, "SCENARIOS": " short  errors ", "GITHUB_OUTPUT": str(output),
           "KIT": str(tmp_path / "no-kit"), "RUNNER_TEMP": str(tmp_path)}
    subprocess.run(["bash", "-e", "-o", "pipefail", "-c", list_script(workflow)], env=env,
                   check=True, capture_output=True, text=True)
    assert output.read_text(encoding="utf-8") == 'names=["short","errors"]\n'


@pytest.mark.parametrize(("table", "names"), [
    ('[tool.stress]\nselect = ["errors", "short"]\n', ["errors", "short"]),
    ("", None),  # no select: every scenario, in the kit's order
])
def test_without_names_the_projects_select_is_the_matrix(
        workflow: Node, tmp_path: Path, table: str, names: list[str] | None) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "p"\nversion = "1"\n{table}',
                                             encoding="utf-8")
    (jq_filter,) = re.findall(r"jq -c '([^']+)'", list_script(workflow))
    config = subprocess.run([sys.executable, "-m", "stress", "config", "--json"], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, check=True,
                            capture_output=True, text=True).stdout
    done = subprocess.run(["jq", "-c", jq_filter], input=config, check=True,
                          capture_output=True, text=True)
    from stress.config.scenarios import load_scenarios

    assert json.loads(done.stdout) == (names or list(load_scenarios()))
