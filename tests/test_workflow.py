"""The GitHub Actions workflow's shape, tied to the kit it wraps.

The workflow only runs nox sessions; these tests read it as data and check it against the kit
itself: the matrix is the kit's own scenario list, the uploaded folders are the ones the kit's
parsers say it writes, every session named exists. `nox -s lint` checks it against GitHub's
workflow schema (check-jsonschema's vendor.github-workflows).
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stress.cli import build_parser
from stress.container import session as container_session
from tests.test_noxfile import session_calls, sessions

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "stress.yml"
CI_RUN = REPO / ".ci" / "run"

# The current major version of each action, looked up when the workflow was written (2026-11).
# Moving one is a deliberate edit of both files.
ACTION_MAJORS = {
    "actions/checkout": "v7",
    "actions/setup-python": "v7",
    "actions/upload-artifact": "v7",
    "actions/download-artifact": "v8",
    "actions/cache": "v6",
}
TIMEOUT_MINUTES = 15
Node = dict[Any, Any]  # a mapping of the parsed YAML (where the key `on` comes back as True)
NOX_SESSIONS = re.compile(r"\b(?:run_)?nox\"?\s+-s\s+(?P<names>[\w-]+(?:[ \t]+(?!-)[\w-]+)*)")


@pytest.fixture(scope="module")
def workflow() -> Node:
    data: Node = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def all_steps(workflow: Node) -> Iterator[tuple[str, Node]]:
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            yield name, step


def step_running(workflow: Node, job: str, text: str) -> Node:
    """The one step of `job` whose script contains `text`."""
    found: list[Node] = [step for step in workflow["jobs"][job]["steps"]
                         if text in step.get("run", "")]
    assert len(found) == 1, f"{job}: {len(found)} steps run {text!r}"
    return found[0]


def steps_using(workflow: Node, action: str) -> list[tuple[str, Node]]:
    return [(job, step) for job, step in all_steps(workflow)
            if step.get("uses", "").split("@")[0] == action]


def nox_arguments(script: str, session: str, values: dict[str, str]) -> list[str]:
    """The arguments after `nox -s SESSION --`, with the shell's variables given values."""
    lines = [match for line in script.splitlines()
             if (match := re.search(rf"\bnox -s {session} -- (.+)", line))]
    assert len(lines) == 1, f"not one `nox -s {session} -- ...` in {script!r}"
    match = lines[0]
    text = match[1].split(")")[0]  # inside $( ... ), the command ends at the parenthesis
    args = []
    for token in shlex.split(text):
        if token in values:
            args += values[token].split()
        elif token.startswith("$"):
            raise AssertionError(f"no value given for {token} in {script!r}")
        else:
            args.append(token)
    return args


def kit_scenario_names() -> list[str]:
    plain = subprocess.run([sys.executable, "-m", "stress", "list"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split()
    assert plain, "python -m stress list printed no scenario"
    return plain


# -- triggers, limits, permissions ----------------------------------------------------------


def test_runs_on_push_to_main_and_on_pull_requests(workflow: Node) -> None:
    on = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert set(on) == {"push", "pull_request"}
    assert on["push"] == {"branches": ["main"]}
    assert not on["pull_request"]  # every pull request, whatever its base


def test_every_job_ends_within_15_minutes_and_steps_before_their_job(
        workflow: Node) -> None:
    for name, job in workflow["jobs"].items():
        assert job.get("timeout-minutes") == TIMEOUT_MINUTES, name
        for step in job["steps"]:
            # a step's own limit leaves its job the time to upload what the step left
            assert step.get("timeout-minutes", 0) < TIMEOUT_MINUTES, (name, step)
    assert "stress" in workflow["jobs"]
    assert "ab" in workflow["jobs"]


def test_permissions_are_read_only_and_checkouts_keep_no_token(workflow: Node) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        assert "permissions" not in job, f"{name}: the top-level read-only token is enough"
    checkouts = steps_using(workflow, "actions/checkout")
    assert {job for job, _ in checkouts} == set(workflow["jobs"])
    for job, step in checkouts:
        assert step["with"]["persist-credentials"] is False, job


def test_a_new_push_cancels_a_pull_requests_superseded_run(workflow: Node) -> None:
    concurrency = workflow["concurrency"]
    assert "github.workflow" in concurrency["group"]
    assert "github.ref" in concurrency["group"]
    assert concurrency["cancel-in-progress"] == \
        "${{ github.event_name == 'pull_request' }}"


def test_every_action_is_an_official_one_at_its_current_major(workflow: Node) -> None:
    used = set()
    for job, step in all_steps(workflow):
        if "uses" not in step:
            continue
        match = re.fullmatch(r"(?P<repo>[\w.-]+/[\w.-]+)(?:/[\w./-]+)?@(?P<ref>[\w.-]+)",
                             step["uses"])
        assert match, f"{job}: {step['uses']!r}"
        assert match["repo"] in ACTION_MAJORS, f"{job}: {match['repo']} is not listed here"
        assert match["ref"] == ACTION_MAJORS[match["repo"]], f"{job}: {step['uses']}"
        used.add(match["repo"])
    assert used == set(ACTION_MAJORS), "an action listed here is no longer used: drop it"


# -- what runs: nox sessions only -----------------------------------------------------------


def sessions_named(script: str) -> set[str]:
    return {name for match in NOX_SESSIONS.finditer(script) for name in match["names"].split()}


def test_every_nox_session_the_workflow_and_ci_run_exists(workflow: Node) -> None:
    defined = set(sessions())
    in_workflow = set().union(*(sessions_named(step.get("run", ""))
                                for _, step in all_steps(workflow)))
    in_ci_run = sessions_named(CI_RUN.read_text(encoding="utf-8"))
    assert in_workflow == {"lint", "tests", "scenarios", "image", "stress", "ab", "merge",
                           "compare"}
    assert in_ci_run >= {"lint", "tests"}
    assert in_workflow | in_ci_run <= defined


def test_the_workflow_installs_the_nox_the_noxfile_needs(workflow: Node) -> None:
    tree = ast.parse((REPO / "noxfile.py").read_text(encoding="utf-8"))
    [needs] = [ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
               and ast.unparse(node.targets[0]) == "nox.needs_version"]
    assert workflow["env"]["NOX"] == f"nox{needs}"
    installs = [step["run"] for _, step in all_steps(workflow)
                if "pip install" in step.get("run", "")]
    assert installs
    assert all(run == 'python -m pip install "$NOX"' for run in installs)


def test_the_workflow_calls_the_kit_and_its_tools_only_through_nox(
        workflow: Node) -> None:
    for job, step in all_steps(workflow):
        script = step.get("run", "")
        for direct in ("python -m stress", "ci/container_session.py", "pytest", "ruff", "mypy",
                       "check-jsonschema", "hadolint"):
            assert direct not in script, f"{job}: runs {direct} outside nox"


def test_ci_run_runs_the_test_command_and_lint_as_commands_of_their_own() -> None:
    text = CI_RUN.read_text(encoding="utf-8")
    subprocess.run(["bash", "-n", str(CI_RUN)], check=True)
    commands = [line.strip() for line in text.splitlines()
                if re.match(r"^\s*run_nox\s", line)]
    # The README's test command first, lint next; then the README's other nox commands.
    assert [sessions_named(command) for command in commands][:2] == [{"tests"}, {"lint"}]


def test_lint_checks_this_workflow_against_githubs_schema() -> None:
    lint = sessions()["lint"]
    assert ["check-jsonschema", "--builtin-schema", "vendor.github-workflows"] in \
        session_calls(lint, "run")
    globs = [node.value for node in ast.walk(lint) if isinstance(node, ast.Constant)
             and isinstance(node.value, str) and node.value.startswith(".github/workflows/")]
    assert any(fnmatch.fnmatch(WORKFLOW.relative_to(REPO).as_posix(), glob) for glob in globs)
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed here (the lint extra has it)")
    subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                    "vendor.github-workflows", str(WORKFLOW)], check=True, capture_output=True)


# -- the stress matrix and its artifacts ----------------------------------------------------


def test_the_matrix_is_the_kits_own_scenario_list(workflow: Node) -> None:
    jobs = workflow["jobs"]
    stress = jobs["stress"]
    assert stress["strategy"]["fail-fast"] is False
    assert stress["strategy"]["matrix"] == {
        "scenario": "${{ fromJSON(needs.scenarios.outputs.names) }}"}
    assert "scenarios" in stress["needs"]
    assert jobs["scenarios"]["outputs"]["names"] == "${{ steps.list.outputs.names }}"
    step = step_running(workflow, "scenarios", "nox -s scenarios")
    assert step["id"] == "list"
    assert re.search(r'^names="\$\(nox -s scenarios -- [^)]*\)"$', step["run"], re.M)
    assert 'echo "names=$names" >> "$GITHUB_OUTPUT"' in step["run"]
    # What that session runs with the job's arguments, run for real.
    [command] = session_calls(sessions()["scenarios"], "run")
    assert command[0] == "python"
    listed = subprocess.run([sys.executable, *command[1:],
                             *nox_arguments(step["run"], "scenarios", {})],
                            cwd=REPO, check=True, capture_output=True, text=True).stdout
    names = json.loads(listed)
    assert names == kit_scenario_names()


def stress_arguments(workflow: Node, scenario: str) -> list[str]:
    step = step_running(workflow, "stress", "nox -s stress")
    assert step["env"]["SCENARIO"] == "${{ matrix.scenario }}"
    return nox_arguments(step["run"], "stress", {
        "$SCENARIO": scenario, "${BUILD_OPTION:+$BUILD_OPTION}": "--no-build"})


def stress_run(workflow: Node, scenario: str) -> Any:
    """The job's `nox -s stress -- ...` as the kit parses it: the session's command, then those."""
    [command] = session_calls(sessions()["stress"], "run")
    return build_parser().parse_args([*command[3:], *stress_arguments(workflow, scenario)])


def test_each_stress_job_runs_its_scenario_profiled_in_the_container(
        workflow: Node) -> None:
    for scenario in kit_scenario_names():
        args = stress_run(workflow, scenario)
        assert args.engine == "docker"
        assert args.names == [scenario]
        assert args.profile == "memory,cpu"


def test_stress_artifacts_are_the_folder_the_kit_writes_named_after_the_scenario(
        workflow: Node) -> None:
    written = container_session.plan(stress_run(workflow, "short"), cwd=REPO).results_dir
    assert written == REPO / build_parser().parse_args(["run"]).out
    [(_, upload)] = [(job, step) for job, step in steps_using(workflow, "actions/upload-artifact")
                     if job == "stress"]
    assert REPO / upload["with"]["path"] == written
    assert upload["with"]["name"] == "stress-${{ matrix.scenario }}"


def test_uploads_run_after_failures_and_expire(workflow: Node) -> None:
    uploads = steps_using(workflow, "actions/upload-artifact")
    assert {job for job, _ in uploads} == {"stress", "ab", "report"}
    for job, step in uploads:
        assert "always()" in step["if"], job
        assert 1 <= step["with"]["retention-days"] <= 90, job


def test_the_report_merges_every_scenarios_artifact_and_nothing_else(
        workflow: Node) -> None:
    names = kit_scenario_names()
    [(job, download)] = steps_using(workflow, "actions/download-artifact")
    assert job == "report"
    pattern = download["with"]["pattern"]
    artifacts = {step["with"]["name"] for _, step in steps_using(workflow,
                                                                 "actions/upload-artifact")}
    scenario_artifacts = {"stress-${{ matrix.scenario }}".replace("${{ matrix.scenario }}", n)
                          for n in names}
    others = artifacts - {"stress-${{ matrix.scenario }}"}
    assert all(fnmatch.fnmatch(name, pattern) for name in scenario_artifacts)
    assert not any(fnmatch.fnmatch(name, pattern) for name in others)
    merge = step_running(workflow, "report", "nox -s merge")
    folder = f"{download['with']['path']}/stress-$name"
    assert f'"{folder}/results.json"' in merge["run"]
    assert f'("{folder}")' in merge["run"]
    assert merge["env"]["SCENARIOS"] == "${{ needs.scenarios.outputs.names }}"
    report = workflow["jobs"]["report"]
    assert {"scenarios", "stress"} <= set(report["needs"])
    assert "!cancelled()" in report["if"]  # after failed or timed-out scenarios too
    args = build_parser().parse_args(["merge", *nox_arguments(merge["run"], "merge", {
        '${folders[@]}': "scenario-results/stress-short", '${baseline[@]}': ""})])
    [(_, upload)] = [(job, step) for job, step in steps_using(workflow, "actions/upload-artifact")
                     if job == "report"]
    assert Path(upload["with"]["path"]) == args.out


# -- the regression gate and the trend ------------------------------------------------------


def test_pull_requests_are_gated_by_ab_against_their_base_commit(
        workflow: Node) -> None:
    job = workflow["jobs"]["ab"]
    assert job["if"] == "github.event_name == 'pull_request'"
    [(_, checkout)] = [(name, step) for name, step in steps_using(workflow, "actions/checkout")
                       if name == "ab"]
    assert checkout["with"]["fetch-depth"] == 0  # the base commit must be in the clone
    step = step_running(workflow, "ab", "nox -s ab")
    assert step["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    assert "continue-on-error" not in step  # this is the step that fails a pull request
    args = build_parser().parse_args(
        ["ab", *nox_arguments(step["run"], "ab", {"$BASE_SHA": "0" * 40})])
    assert (args.base_ref, args.head_ref) == ("0" * 40, "HEAD")
    assert args.names
    assert set(args.names) <= set(kit_scenario_names())
    assert args.max_drop == 20
    [(_, upload)] = [(name, s) for name, s in steps_using(workflow, "actions/upload-artifact")
                     if name == "ab"]
    assert Path(upload["with"]["path"]) == args.out


def test_mains_baseline_is_kept_by_main_and_only_shown_beside_a_run(
        workflow: Node) -> None:
    report = workflow["jobs"]["report"]["steps"]
    [restore] = [s for s in report if s.get("uses", "").startswith("actions/cache/restore@")]
    [save] = [s for s in report if s.get("uses", "").startswith("actions/cache/save@")]
    # A pull request finds main's latest by the prefix; main saves one per commit under it.
    prefix = restore["with"]["restore-keys"]
    assert restore["with"]["key"] == f"{prefix}${{{{ github.sha }}}}"
    assert save["with"]["key"].startswith(restore["with"]["key"])
    assert restore["with"]["path"] == save["with"]["path"]
    [keep] = [s for s in report if "cp stress-report/results.json" in s.get("run", "")]
    for step in (keep, save):
        assert "github.event_name == 'push'" in step["if"]
        assert "github.ref == 'refs/heads/main'" in step["if"]
        assert "needs.stress.result == 'success'" in step["if"]
    baseline_file = f"{save['with']['path']}/results.json"
    merge = step_running(workflow, "report", "nox -s merge")
    assert f"--baseline {baseline_file}" in merge["run"]
    compare = step_running(workflow, "report", "nox -s compare")
    assert compare["continue-on-error"] is True  # a trend from another runner; ab gates
    args = build_parser().parse_args(["compare", *nox_arguments(compare["run"], "compare", {})])
    assert args.baseline == Path(baseline_file)
    assert args.max_drop == 20


# -- the image cache ------------------------------------------------------------------------


def test_the_image_is_cached_by_its_inputs_and_run_as_it_is_when_found(
        workflow: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = workflow["jobs"]
    image_tag = jobs["image"]["env"]["STRESS_IMAGE"]
    assert jobs["stress"]["env"]["STRESS_IMAGE"] == image_tag
    monkeypatch.setenv("STRESS_IMAGE", image_tag)  # the variable the kit's sessions read
    assert build_parser().parse_args(["run"]).image == image_tag

    key_step = next(s for s in jobs["image"]["steps"] if s.get("id") == "key")
    patterns = re.findall(r"'([^']+)'", key_step["run"].split("hashFiles(")[1])
    for pattern in ("Dockerfile", "pyproject.toml", "stress/**"):
        assert pattern in patterns
    for pattern in patterns:
        assert any(REPO.glob(pattern)), f"hashFiles('{pattern}') matches nothing"

    caches = [(job, step) for job, step in all_steps(workflow)
              if step.get("uses", "").startswith("actions/cache/") and job in ("image", "stress")]
    assert {step["with"]["path"] for _, step in caches} == {"~/.cache/stress-kit"}
    [stress_restore] = [step for job, step in caches if job == "stress"]
    assert stress_restore["with"]["key"] == "${{ needs.image.outputs.key }}"
    assert jobs["image"]["outputs"]["key"] == "${{ steps.key.outputs.key }}"

    save = step_running(workflow, "image", "docker save")
    assert 'docker save "$STRESS_IMAGE" --output ~/.cache/stress-kit/image.tar' in save["run"]
    load = step_running(workflow, "stress", "docker load")
    assert "docker load --input ~/.cache/stress-kit/image.tar" in load["run"]
    assert load["if"] == f"steps.{stress_restore['id']}.outputs.cache-hit == 'true'"
    assert 'echo "BUILD_OPTION=--no-build" >> "$GITHUB_ENV"' in load["run"]
    # With the cached image loaded, the session runs it as it is.
    assert stress_run(workflow, "short").build is False
