"""Every command in README.md is run: here, in a user's workspace, or by `.ci/run`.

The README's ``sh`` blocks are its commands. `python ...` commands run here, in order, in a
folder holding the files the README tells the reader to write (its ``<!-- file: NAME -->``
blocks), so later commands see what earlier ones wrote. `nox ...` and the other set-up commands
must be ones `.ci/run` runs. A trailing ``# exit N`` (or ``# exit 0 or 3``) states the exit
codes the README promises; without it, 0.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from stress.config import load_scenarios
from tests.test_noxfile import sessions as noxfile_sessions

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CI_RUN = REPO / ".ci" / "run"

# Commands that cannot run on a CI machine of this project, each with the reason.
NOT_RUN = {
    "nox -s lock -- --upgrade": "moves every pin to the newest release: a deliberate change",
    "nox -s pin": "needs a reachable container registry to read the tag's digest",
}
# README commands and the line of .ci/run that runs the same thing.
CI_RUN_FORMS = {
    "python -m pip install nox": '"$VENV/bin/python" -m pip install',
    "sudo bash ci/build-base-image.sh stress-kit-base:trixie":
        'as_root bash ci/build-base-image.sh "$BASE_TAG"',
}


@dataclass(frozen=True)
class Command:
    text: str  # as written, without its trailing comment
    exit_codes: frozenset[int]


def sh_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", markdown, flags=re.S | re.M)


def readme_commands() -> list[Command]:
    commands = []
    for block in sh_blocks(README.read_text(encoding="utf-8")):
        for line in block.splitlines():
            text, _, comment = line.partition("  #")
            if not text.strip():
                continue
            codes = re.search(r"\bexit (\d+(?: or \d+)*)", comment)
            exit_codes = frozenset(int(c) for c in codes.group(1).split(" or ")) if codes \
                else frozenset({0})
            commands.append(Command(text.strip(), exit_codes))
    return commands


def readme_files() -> dict[str, str]:
    found = re.findall(r"^<!-- file: (\S+) -->\n```\w*\n(.*?)^```",
                       README.read_text(encoding="utf-8"), flags=re.S | re.M)
    return dict(found)


def ci_run_nox_commands() -> set[str]:
    """The `nox ...` command lines .ci/run runs, written as a reader would type them."""
    lines = CI_RUN.read_text(encoding="utf-8").splitlines()
    return {"nox " + line.strip().removeprefix("run_nox ") for line in lines
            if line.strip().startswith("run_nox ")}


def without_env_prefix(text: str) -> tuple[dict[str, str], str]:
    words = shlex.split(text)
    env = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, shlex.join(words)


def python_commands() -> list[Command]:
    return [c for c in readme_commands() if without_env_prefix(c.text)[1].startswith("python ")
            and c.text not in CI_RUN_FORMS]


def test_the_readme_has_commands_and_files_to_run() -> None:
    names = {without_env_prefix(c.text)[1] for c in readme_commands()}
    # The first screen's two set-up commands.
    assert {"python -m pip install nox", "nox -s stress", "nox -s tests"} <= names
    assert set(readme_files()) == {"my_pipeline.py", "my-scenarios.yaml"}
    assert len(python_commands()) >= 10


def test_every_other_command_is_run_by_ci_run() -> None:
    ci_run = CI_RUN.read_text(encoding="utf-8")
    nox_lines = ci_run_nox_commands()
    run_here = python_commands()
    for command in readme_commands():
        if command in run_here or command.text in NOT_RUN:
            continue
        if command.text in CI_RUN_FORMS:
            assert CI_RUN_FORMS[command.text] in ci_run, command.text
            continue
        env, text = without_env_prefix(command.text)
        assert text.startswith("nox "), f"README command with no runner: {command.text}"
        assert text in nox_lines, f"README's {text!r} is not run by .ci/run"
        assert shlex.split(text)[2] in noxfile_sessions(), text
        for name, value in env.items():
            assert f"{name}=" in ci_run, f".ci/run does not set {name} for {text!r}"
            # ... to the README's value, or with the README's value as its default.
            settings = (f"{name}={value}", f'{name}="{value}"', f'"${{{name}:-{value}}}"')
            assert any(setting in ci_run for setting in settings), \
                f".ci/run does not set {name}={value} for {text!r}"


def test_commands_not_run_are_still_real_sessions() -> None:
    for text in NOT_RUN:
        assert shlex.split(text)[2] in noxfile_sessions(), text


def test_the_scenarios_table_matches_the_builtin_file() -> None:
    readme = README.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \|.*\| (\d+) s \|$", readme, flags=re.M)
    scenarios = load_scenarios(None).values()
    assert [(name, float(timeout)) for name, timeout in rows] == \
        [(s.name, s.timeout_s) for s in scenarios]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's folder: the README's files, the kit's ci/ scripts, a git history for `ab`."""
    folder = tmp_path_factory.mktemp("readme")
    for name, text in readme_files().items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "ci").symlink_to(REPO / "ci")
    git = ["git", "-c", "user.name=readme", "-c", "user.email=readme@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=folder, check=True)
    subprocess.run([*git, "add", "my_pipeline.py", "my-scenarios.yaml"], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "my pipeline"], cwd=folder, check=True)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(python_commands())),
                         ids=[c.text[:60] for c in python_commands()])
def test_python_commands_run_as_written(workspace: Path, index: int) -> None:
    """In README order (pytest keeps parameter order), so later commands see earlier output."""
    command = python_commands()[index]
    env = {k: v for k, v in os.environ.items()
           if k not in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "STRESS_LOG")}
    # `python` is this test's interpreter, the one the kit is installed in.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    done = subprocess.run(["bash", "-c", command.text], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode in command.exit_codes, \
        f"{command.text}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
