"""The GitHub Actions workflows and the action, read as data and tied to the kit they wrap.

The stress jobs run the kit's own action (`uses: ./`); the others run nox sessions. These tests
check what a security review asks (every remote action pinned by commit with its version beside,
a token that can only read), and tie the workflow to the kit itself: the matrix is the kit's own
scenario list, what each job's action would run parses with the kit's own parsers, the uploaded
folders are the ones those parsers say the kit writes, every nox session named exists. They do
not pin the text of the scripts: an edit that keeps those ties passes.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stress.cli import build_parser
from tests.action_runner import load, run_with_fake, substitute, write_fake_kit
from tests.test_action import run_help
from tests.test_noxfile import session_calls, sessions

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
WORKFLOW = REPO / ".github" / "workflows" / "stress.yml"
ACTION = REPO / "action.yml"
DEPENDABOT = REPO / ".github" / "dependabot.yml"
CI_RUN = REPO / ".ci" / "run"
TIMEOUT_MINUTES = 15
Node = dict[Any, Any]  # a mapping of the parsed YAML (where the key `on` comes back as True)
NOX_SESSIONS = re.compile(r"\b(?:run_)?nox\"?\s+-s\s+(?P<names>[\w-]+(?:[ \t]+(?!-)[\w-]+)*)")
# `uses: owner/repo[/path]@<full commit SHA> # v1.2.3`, as Dependabot writes and moves it.
PINNED = re.compile(r"uses:\s*(?P<action>[\w.-]+/[\w.-]+(?:/[\w./-]+)?)@(?P<sha>[0-9a-f]{40})"
                    r"\s+#\s*(?P<version>v\d+(?:\.\d+){0,2})\s*$")


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


def kit_action_step(workflow: Node, job: str) -> Node:
    found: list[Node] = [s for s in workflow["jobs"][job]["steps"] if s.get("uses") == "./"]
    assert len(found) == 1, f"{job}: {len(found)} steps use the kit's action"
    return found[0]


def nox_arguments(script: str, session: str, values: dict[str, str]) -> list[str]:
    """The arguments after `nox -s SESSION --`, with the shell's variables given values."""
    lines = [match for line in script.splitlines()
             if (match := re.search(rf"\bnox -s {session} -- (.+)", line))]
    assert len(lines) == 1, f"not one `nox -s {session} -- ...` in {script!r}"
    text = lines[0][1].split(")")[0]  # inside $( ... ), the command ends at the parenthesis
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


def action_calls(step: Node, tmp_path: Path, *, context: Node,
                 event_name: str = "push") -> list[list[str]]:
    """What the kit's action runs for this workflow step: its `with:`, evaluated as the runner
    would, given to action.yml's own steps with a recording stress-kit."""
    inputs = {name: substitute(str(value), context)
              for name, value in step.get("with", {}).items()}
    run, calls = run_with_fake(load(ACTION), tmp_path, write_fake_kit(tmp_path / "bin"),
                               inputs=inputs, event_name=event_name)
    assert not run.failed, [s.log for s in run.steps if s.outcome == "failure"]
    return calls


# -- triggers, limits, permissions, pins ----------------------------------------------------


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


def test_the_token_can_only_read_and_checkouts_keep_no_token(workflow: Node) -> None:
    assert workflow["permissions"] == {}  # nothing unless a job asks
    for name, job in workflow["jobs"].items():
        assert job["permissions"] == {"contents": "read"}, name
    checkouts = steps_using(workflow, "actions/checkout")
    assert {job for job, _ in checkouts} == set(workflow["jobs"])
    for job, step in checkouts:
        assert step["with"]["persist-credentials"] is False, job


def test_a_new_push_cancels_a_pull_requests_superseded_run(workflow: Node) -> None:
    concurrency = workflow["concurrency"]
    assert "github.workflow" in concurrency["group"]
    assert "github.ref" in concurrency["group"]
    assert "github.event_name == 'pull_request'" in concurrency["cancel-in-progress"]


def uses_lines() -> Iterator[tuple[str, str]]:
    for path in [*WORKFLOWS, ACTION]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.match(r"\s*(-\s+)?uses:", line):
                yield f"{path.relative_to(REPO)}:{number}", line.strip().removeprefix("- ")


def checked_out_paths(path: Path) -> set[str]:
    """The folders a workflow's checkouts write (a local action may be in one of them)."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {step["with"]["path"] for job in document.get("jobs", {}).values()
            for step in job.get("steps", [])
            if step.get("uses", "").startswith("actions/checkout@") and "path" in
            step.get("with", {})}


def test_every_remote_action_is_pinned_by_commit_with_its_version_beside() -> None:
    pins: dict[str, set[tuple[str, str]]] = {}
    for where, line in uses_lines():
        target = line.split(":", 1)[1].split("#")[0].strip()
        if target.startswith("./"):
            path = where.rsplit(":", 1)[0]
            assert (REPO / target / "action.yml").is_file() or \
                target.removeprefix("./") in checked_out_paths(REPO / path), \
                f"{where}: no action at {target}"
            continue
        match = PINNED.match(line)
        assert match, f"{where}: {line!r} is not `uses: OWNER/REPO@<40-hex SHA> # vX.Y.Z`"
        repository = "/".join(match["action"].split("/")[:2])
        pins.setdefault(repository, set()).add((match["sha"], match["version"]))
    assert pins, "no remote action found: the pattern above no longer matches `uses:` lines"
    for repository, found in pins.items():
        # one version of each action everywhere, so a Dependabot update moves them together
        assert len(found) == 1, f"{repository} is pinned at {sorted(found)}"


def test_dependabot_moves_the_action_pins() -> None:
    config = yaml.safe_load(DEPENDABOT.read_text(encoding="utf-8"))
    assert config["version"] == 2
    ecosystems = {update["package-ecosystem"]: update for update in config["updates"]}
    assert ecosystems["github-actions"]["directory"] == "/"  # the workflows and action.yml
    for update in config["updates"]:
        assert (REPO / update["directory"].lstrip("/")).is_dir(), update["directory"]
        assert update["cooldown"]["default-days"] >= 1  # not on the day of a release
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed here (the lint extra has it)")
    subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                    "vendor.dependabot", str(DEPENDABOT)], check=True, capture_output=True)


# -- what runs: the kit's action and nox sessions -------------------------------------------


def sessions_named(script: str) -> set[str]:
    return {name for match in NOX_SESSIONS.finditer(script) for name in match["names"].split()}


def test_every_nox_session_the_workflow_and_ci_run_exists(workflow: Node) -> None:
    defined = set(sessions())
    in_workflow = set().union(*(sessions_named(step.get("run", ""))
                                for _, step in all_steps(workflow)))
    in_ci_run = sessions_named(CI_RUN.read_text(encoding="utf-8"))
    assert in_workflow >= {"lint", "tests"}
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
    assert all("$NOX" in run for run in installs)


def test_the_workflow_calls_the_kit_and_its_tools_only_through_nox_or_the_action(
        workflow: Node) -> None:
    for job, step in all_steps(workflow):
        script = step.get("run", "")
        for direct in ("python -m stress", "stress-kit", "ci/container_session.py", "pytest",
                       "ruff", "mypy", "check-jsonschema", "hadolint", "zizmor"):
            assert not re.search(rf"(^|[\s;&|(]){re.escape(direct)}\b", script, re.M), \
                f"{job}: runs {direct} outside nox and the action"


def test_ci_run_runs_the_test_command_and_lint_as_commands_of_their_own() -> None:
    text = CI_RUN.read_text(encoding="utf-8")
    subprocess.run(["bash", "-n", str(CI_RUN)], check=True)
    commands = [line.strip() for line in text.splitlines()
                if re.match(r"^\s*run_nox\s", line)]
    # The README's test command first, lint next; then the README's other nox commands.
    assert [sessions_named(command) for command in commands][:2] == [{"tests"}, {"lint"}]


def lint_globs() -> list[str]:
    return [node.value for node in ast.walk(sessions()["lint"]) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and node.value.startswith(".github/workflows/")]


def test_lint_checks_the_workflows_against_githubs_schema() -> None:
    lint = sessions()["lint"]
    assert ["check-jsonschema", "--builtin-schema", "vendor.github-workflows"] in \
        session_calls(lint, "run")
    for path in WORKFLOWS:
        name = path.relative_to(REPO).as_posix()
        assert any(fnmatch.fnmatch(name, glob) for glob in lint_globs()), name
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed here (the lint extra has it)")
    subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                    "vendor.github-workflows", *map(str, WORKFLOWS)], check=True,
                   capture_output=True)


def test_lint_runs_zizmor_offline_and_it_finds_nothing() -> None:
    [command] = [call for call in session_calls(sessions()["lint"], "run")
                 if call[:1] == ["zizmor"]]
    assert "--offline" in command  # no GitHub API: the same verdict on any machine
    zizmor = shutil.which("zizmor") or shutil.which("zizmor", path=str(Path(sys.executable).parent))
    if zizmor is None:
        pytest.skip("zizmor is not installed here (the lint extra has it)")
    done = subprocess.run([zizmor, *command[1:]], cwd=REPO, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_script_passes_shellcheck(workflow: Node, tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed here")
    scripts = [(f"{job}: {step.get('name', step.get('id', ''))}", step["run"])
               for job, step in all_steps(workflow) if "run" in step]
    scripts += [(f"action.yml: {step['id']}", step["run"])
                for step in load(ACTION)["runs"]["steps"] if "run" in step]
    for index, (where, script) in enumerate(scripts):
        path = tmp_path / f"{index}.sh"
        path.write_text(f"#!/bin/bash\nset -eo pipefail\n{script}", encoding="utf-8")
        done = subprocess.run([shellcheck, "--shell=bash", str(path)], capture_output=True,
                              text=True, check=False)
        assert done.returncode == 0, f"{where}:\n{done.stdout}"


# -- the stress matrix and its artifacts ----------------------------------------------------


def test_the_matrix_is_the_kits_own_scenario_list(workflow: Node) -> None:
    jobs = workflow["jobs"]
    stress = jobs["stress"]
    assert stress["strategy"]["fail-fast"] is False
    assert stress["strategy"]["matrix"] == {
        "scenario": "${{ fromJSON(needs.scenarios.outputs.names) }}"}
    assert "scenarios" in stress["needs"]
    [output] = re.findall(r"steps\.([\w-]+)\.outputs\.([\w-]+)", jobs["scenarios"]["outputs"]
                          ["names"])
    [step] = [s for s in jobs["scenarios"]["steps"] if s.get("id") == output[0]]
    # What that session runs with the job's arguments, run for real.
    [command] = session_calls(sessions()["scenarios"], "run")
    assert command[0] == "python"
    listed = subprocess.run([sys.executable, *command[1:],
                             *nox_arguments(step["run"], "scenarios", {})],
                            cwd=REPO, check=True, capture_output=True, text=True).stdout
    assert json.loads(listed) == kit_scenario_names()
    assert f"{output[1]}=" in step["run"]  # the step writes the output the job declares


def matrix_context(scenario: str, *, cache_hit: bool) -> Node:
    return {"matrix": {"scenario": scenario},
            "steps": {"image": {"outputs": {"cache-hit": "true" if cache_hit else ""}}}}


def test_each_stress_job_runs_its_scenario_profiled_in_the_container(
        workflow: Node, tmp_path: Path) -> None:
    step = kit_action_step(workflow, "stress")
    for scenario in kit_scenario_names()[:2]:
        [call] = action_calls(step, tmp_path / scenario,
                              context=matrix_context(scenario, cache_hit=False))
        assert call[call.index("--engine") + 1] == "docker"
        assert "--container-timeout" in call
        args, rest = build_parser().parse_known_args(call)
        # until the run command takes the container options, they are left over
        assert not rest or "--engine" not in run_help(), rest
        assert args.names == [scenario]
        assert args.profile == "memory,cpu"


def test_a_cached_image_is_run_as_it_is(workflow: Node, tmp_path: Path) -> None:
    jobs = workflow["jobs"]
    step = kit_action_step(workflow, "stress")
    for hit in (True, False):
        [call] = action_calls(step, tmp_path / str(hit),
                              context=matrix_context("short", cache_hit=hit))
        assert ("--no-build" in call) is hit
    image_tag = jobs["image"]["env"]["STRESS_IMAGE"]
    assert jobs["stress"]["env"]["STRESS_IMAGE"] == image_tag  # the variable the kit reads

    key_step = next(s for s in jobs["image"]["steps"] if s.get("id") == "key")
    patterns = re.findall(r"'([^']+)'", json.dumps(key_step).split("hashFiles(")[1])
    for pattern in ("Dockerfile", "pyproject.toml", "stress/**"):
        assert pattern in patterns
    for pattern in patterns:
        assert any(REPO.glob(pattern)), f"hashFiles('{pattern}') matches nothing"

    caches = [(job, s) for job, s in all_steps(workflow)
              if s.get("uses", "").startswith("actions/cache/") and job in ("image", "stress")]
    assert {s["with"]["path"] for _, s in caches} == {"~/.cache/stress-kit"}
    [restore] = [s for job, s in caches if job == "stress"]
    assert restore["with"]["key"] == "${{ needs.image.outputs.key }}"
    assert "steps.key.outputs.key" in jobs["image"]["outputs"]["key"]
    save, load_ = step_running(workflow, "image", "docker save"), \
        step_running(workflow, "stress", "docker load")
    tar = re.findall(r"~/\.cache/stress-kit/\S+\.tar", save["run"])
    assert tar
    assert tar == re.findall(r"~/\.cache/stress-kit/\S+\.tar", load_["run"])
    assert f"steps.{restore['id']}.outputs.cache-hit == 'true'" in load_["if"]


def test_stress_artifacts_are_the_folder_the_kit_writes_named_after_the_scenario(
        workflow: Node, tmp_path: Path) -> None:
    step = kit_action_step(workflow, "stress")
    action = load(ACTION)
    out = step["with"].get("out", action["inputs"]["out"]["default"])
    assert Path(out) == build_parser().parse_args(["run"]).out  # the kit's own default
    assert step["with"]["artifact-name"] == "stress-${{ matrix.scenario }}"
    [call] = action_calls(step, tmp_path, context=matrix_context("short", cache_hit=True))
    assert Path(call[call.index("--out") + 1]) == tmp_path / "workspace" / out


def test_uploads_run_after_failures_and_expire(workflow: Node) -> None:
    uploads = steps_using(workflow, "actions/upload-artifact")
    [action_upload] = [s for s in load(ACTION)["runs"]["steps"]
                       if s.get("uses", "").startswith("actions/upload-artifact@")]
    for job, step in [*uploads, ("action.yml", action_upload)]:
        assert "always()" in step["if"], job
    for job, step in uploads:
        assert 1 <= step["with"]["retention-days"] <= 90, job


def artifact_names(workflow: Node) -> set[str]:
    names = {step["with"]["name"] for _, step in steps_using(workflow, "actions/upload-artifact")}
    default = load(ACTION)["inputs"]["artifact-name"]["default"]
    for job in workflow["jobs"]:
        for step in workflow["jobs"][job]["steps"]:
            if step.get("uses") == "./":
                names.add(step.get("with", {}).get("artifact-name", default))
    return names


def test_the_report_merges_every_scenarios_artifact_and_nothing_else(
        workflow: Node) -> None:
    names = kit_scenario_names()
    [(job, download)] = steps_using(workflow, "actions/download-artifact")
    assert job == "report"
    pattern = download["with"]["pattern"]
    artifacts = artifact_names(workflow)
    scenario_artifacts = {"stress-${{ matrix.scenario }}".replace("${{ matrix.scenario }}", n)
                          for n in names}
    others = artifacts - {"stress-${{ matrix.scenario }}"}
    assert "stress-${{ matrix.scenario }}" in artifacts
    assert all(fnmatch.fnmatch(name, pattern) for name in scenario_artifacts)
    assert not any(fnmatch.fnmatch(name, pattern) for name in others)
    merge = step_running(workflow, "report", "nox -s merge")
    folder = f"{download['with']['path']}/stress-$name"
    assert f'"{folder}/results.json"' in merge["run"]
    assert f'("{folder}")' in merge["run"]
    assert "needs.scenarios.outputs.names" in merge["env"]["SCENARIOS"]
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
        workflow: Node, tmp_path: Path) -> None:
    job = workflow["jobs"]["ab"]
    assert job["if"] == "github.event_name == 'pull_request'"
    [(_, checkout)] = [(name, step) for name, step in steps_using(workflow, "actions/checkout")
                       if name == "ab"]
    assert checkout["with"]["fetch-depth"] == 0  # the base commit must be in the clone
    step = kit_action_step(workflow, "ab")
    assert "continue-on-error" not in step  # this is the step that fails a pull request
    [call] = action_calls(step, tmp_path, context={}, event_name="pull_request")
    args = build_parser().parse_args(call)
    assert call[0] == "ab"
    assert args.head_ref == "HEAD"
    assert args.names
    assert set(args.names) <= set(kit_scenario_names())
    assert args.max_drop == 20
    # the matrix jobs leave the gate to this one job, on one runner
    assert kit_action_step(workflow, "stress")["with"]["gate"] == "false"


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
