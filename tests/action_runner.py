"""Run a composite action's shell steps in order, as a GitHub runner would, on this machine.

The runner's part is small and written down here: each `run:` step gets its own GITHUB_OUTPUT
and GITHUB_STEP_SUMMARY files (a runner gives each step fresh ones), the job-wide GITHUB_ENV and
GITHUB_PATH, the step's `env:` with its expressions evaluated, and `bash --noprofile --norc -eo
pipefail`, the runner's bash. A step without `if:` runs only while every step before it
passed. `uses:` steps are not run: a test says what each one outputs, and the `with:` of each
is kept (with its expressions evaluated) so a test can check what an upload would take.

The expressions understood are the few the action uses: a context path (`inputs.out`,
`steps.run.outputs.exit-code`), `a || b`, `a && b`, `a == 'x'`, `a != 'x'` and `always()`.
Anything else fails the test, so a new kind of expression in action.yml comes with a line here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}", re.S)
Context = Mapping[str, Any]
# What the runner sets itself, never inherited from the machine running the test.
RUNNER_PREFIXES = ("GITHUB_", "RUNNER_", "STRESS_", "INPUT_")
REPO = Path(__file__).resolve().parents[1]


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def lookup(path: str, context: Context) -> Any:
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return ""
        value = value.get(part, "")
    return value


def evaluate(expression: str, context: Context) -> Any:
    """The value of one expression (the text between `${{` and `}}`)."""
    text = expression.strip()
    if "||" in text:
        for part in text.split("||"):
            if value := evaluate(part, context):
                return value
        return value
    if "&&" in text:
        value = True
        for part in text.split("&&"):
            if not (value := evaluate(part, context)):
                return value
        return value
    if match := re.fullmatch(r"(.+?)\s*(==|!=)\s*(.+)", text):
        left, right = evaluate(match[1], context), evaluate(match[3], context)
        return (str(left) == str(right)) == (match[2] == "==")
    if text == "always()":
        return True
    if match := re.fullmatch(r"'([^']*)'", text):
        return match[1]
    if re.fullmatch(r"[A-Za-z_][\w-]*(\.[\w-]+)+", text):
        return lookup(text, context)
    raise AssertionError(f"the test's runner does not know the expression {text!r}")


def substitute(text: str, context: Context) -> str:
    """`text` with each `${{ ... }}` replaced by its value, as the runner does in `env:`."""
    def value(match: re.Match[str]) -> str:
        result = evaluate(match[1], context)
        return str(result).lower() if isinstance(result, bool) else str(result)
    return EXPRESSION.sub(value, text)


def condition(text: str | None, context: Context, *, failed: bool) -> bool:
    if text is None:
        return not failed
    inner = m[1] if (m := EXPRESSION.fullmatch(text.strip())) else text
    if "always()" not in inner and failed:
        return False
    return bool(evaluate(inner, context))


def read_outputs(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT's two forms: `name=value` lines and `name<<DELIMITER` blocks."""
    outputs: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").splitlines())
    for line in lines:
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for body_line in lines:
                if body_line == delimiter:
                    break
                body.append(body_line)
            else:
                raise AssertionError(f"{name}: no closing {delimiter!r} in {path}")
            outputs[name] = "\n".join(body)
        else:
            name, sep, value = line.partition("=")
            assert sep, f"not an output line: {line!r}"
            outputs[name] = value
    return outputs


@dataclass
class StepResult:
    id: str
    outcome: str  # success, failure or skipped
    outputs: dict[str, str]
    log: str = ""


@dataclass
class ActionRun:
    steps: list[StepResult]
    outputs: dict[str, str]
    summary: str  # the job summary: every step's, in order
    uses: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    github_env: str = ""
    github_path: str = ""

    def step(self, step_id: str) -> StepResult:
        [found] = [s for s in self.steps if s.id == step_id]
        return found

    @property
    def failed(self) -> bool:
        return any(s.outcome == "failure" for s in self.steps)


def run_action(action: dict[str, Any], *, inputs: Mapping[str, str], workspace: Path,
               temp: Path, action_path: Path, event_name: str = "push",
               event: Mapping[str, Any] | None = None,
               given: Mapping[str, Mapping[str, str]] | None = None,
               environment: Mapping[str, str] | None = None,
               timeout: float = 600) -> ActionRun:
    """Run `action`'s steps. `given` holds the outputs of steps not run here (by step id):
    every `uses:` step, and any `run:` step a test stands in for."""
    declared = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    unknown = set(inputs) - set(declared)
    assert not unknown, f"not inputs of the action: {unknown}"
    given = dict(given or {})
    for folder in (workspace, temp):
        folder.mkdir(parents=True, exist_ok=True)
    files = {name: temp / f"github-{name}" for name in ("env", "path")}
    for file in files.values():
        file.touch()
    context: dict[str, Any] = {
        "inputs": {**declared, **inputs},
        "github": {"action_path": str(action_path), "event_name": event_name,
                   "event": dict(event or {}), "workspace": str(workspace)},
        "runner": {"temp": str(temp)},
        "steps": {},
    }
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(RUNNER_PREFIXES)}
    base_env.update({
        "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": event_name,
        "GITHUB_WORKSPACE": str(workspace), "GITHUB_ACTION_PATH": str(action_path),
        "GITHUB_ENV": str(files["env"]), "GITHUB_PATH": str(files["path"]),
        "RUNNER_TEMP": str(temp),
    })
    base_env.update(environment or {})
    results: list[StepResult] = []
    uses: list[tuple[str, dict[str, str]]] = []
    summary: list[str] = []
    failed = False
    for index, step in enumerate(action["runs"]["steps"]):
        step_id = step.get("id", f"step{index}")
        if not condition(step.get("if"), context, failed=failed):
            result = StepResult(step_id, "skipped", {})
        elif "uses" in step:
            with_ = {k: substitute(str(v), context) for k, v in step.get("with", {}).items()}
            uses.append((step["uses"], with_))
            result = StepResult(step_id, "success", dict(given.get(step_id, {})))
        elif step_id in given:
            result = StepResult(step_id, "success", dict(given[step_id]))
        else:
            result = run_step(step, step_id, context, base_env, workspace=workspace,
                              temp=temp, index=index, timeout=timeout)
            summary.append((temp / f"summary-{index}.md").read_text(encoding="utf-8"))
        failed |= result.outcome == "failure"
        context["steps"][step_id] = {"outputs": result.outputs, "outcome": result.outcome}
        results.append(result)
    outputs = {name: substitute(spec["value"], context)
               for name, spec in action.get("outputs", {}).items()}
    return ActionRun(results, outputs, "".join(summary), uses,
                     files["env"].read_text(encoding="utf-8"),
                     files["path"].read_text(encoding="utf-8"))


def run_step(step: Mapping[str, Any], step_id: str, context: Context,
             base_env: Mapping[str, str], *, workspace: Path, temp: Path, index: int,
             timeout: float) -> StepResult:
    assert step.get("shell") == "bash", f"{step_id}: a composite run step names its shell"
    script = temp / f"step-{index}.sh"
    script.write_text(step["run"], encoding="utf-8")
    output, step_summary = temp / f"output-{index}", temp / f"summary-{index}.md"
    output.touch()
    step_summary.touch()
    env = {**base_env, "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(step_summary)}
    env.update({name: substitute(str(value), context)
                for name, value in step.get("env", {}).items()})
    cwd = workspace / substitute(step.get("working-directory", "."), context)
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    return StepResult(step_id, "success" if done.returncode == 0 else "failure",
                      read_outputs(output), done.stdout + done.stderr)


# -- a recording stress-kit -------------------------------------------------------------------

# Stands in for the installed `stress-kit`: records its arguments, writes what the kit writes
# into --out, exits with $FAKE_EXIT (or $FAKE_AB_EXIT for ab), and appends the summary to the
# step summary as the kit does on a runner when $FAKE_APPENDS_SUMMARY is set.
FAKE_KIT = """\
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["FAKE_CALLS"], "a", encoding="utf-8") as calls:
    calls.write(json.dumps(args) + "\\n")
out = Path(args[args.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)
code = int(os.environ.get("FAKE_AB_EXIT" if args[0] == "ab" else "FAKE_EXIT", "0"))
name = "ab.md" if args[0] == "ab" else "summary.md"
text = f"**{args[0]} verdict: exit {code}**\\n\\n| table |\\n"
(out / name).write_text(text, encoding="utf-8")
(out / ("ab.json" if args[0] == "ab" else "results.json")).write_text("{}", encoding="utf-8")
(out / f"{args[0]}.pythonpath").write_text(os.environ.get("PYTHONPATH", ""), encoding="utf-8")
if os.environ.get("FAKE_APPENDS_SUMMARY") or args[0] == "ab":
    with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as summary:
        summary.write(text + "\\n")
sys.exit(code)
"""


def write_fake_kit(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "stress-kit"
    script.write_text(f"#!{sys.executable}\n{FAKE_KIT}", encoding="utf-8")
    script.chmod(0o755)
    return script


def run_with_fake(action: dict[str, Any], tmp_path: Path, fake_kit: Path, *,
                  inputs: dict[str, str] | None = None, event_name: str = "push",
                  **environment: str) -> tuple[ActionRun, list[list[str]]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    calls = tmp_path / "calls.jsonl"
    calls.touch()
    workspace = tmp_path / "workspace"
    base = git_repository(workspace) if event_name == "pull_request" else ""
    run = run_action(
        action, inputs=inputs or {}, workspace=workspace, temp=tmp_path / "runner-temp",
        action_path=REPO, event_name=event_name,
        event={"pull_request": {"base": {"sha": environment.pop("BASE", base)}}},
        given={"python": {"python-path": sys.executable}, "kit": {"command": str(fake_kit)}},
        environment={"FAKE_CALLS": str(calls), **environment})
    return run, [json.loads(line) for line in calls.read_text(encoding="utf-8").splitlines()]


def git_repository(folder: Path) -> str:
    """A repository with two commits; the first one's SHA (a pull request's base)."""
    folder.mkdir(parents=True)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True,
                              text=True, env={**env, "PATH": "/usr/bin:/bin"}).stdout.strip()
    git("init", "-q")
    for name in ("base", "head"):
        (folder / name).write_text(name, encoding="utf-8")
        git("add", name)
        git("commit", "-qm", name)
    return git("rev-parse", "HEAD~1")
