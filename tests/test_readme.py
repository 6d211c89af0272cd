"""Every command in README.md is run: here, in a user's workspace, or by `.ci/run`.

The README's ``sh`` blocks are its commands. `python ...` and `stress-kit ...` commands run
here, in order, in a folder holding the files the README tells the reader to write (its
``<!-- file: NAME -->`` blocks), so later commands see what earlier ones wrote; those of "Use it
in your project" run in a project folder of their own, as a new user types them there. `nox ...`
and the other set-up commands must be ones `.ci/run` runs. A trailing ``# exit N`` (or
``# exit 0 or 3``) states the exit codes the README promises; without it, 0. A ``text`` block
marked ``<!-- output of: COMMAND -->`` is that command's output: its key lines must be in what
the command prints today.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from stress.config.scenarios import load_scenarios
from stress.config.settings import KEYS
from tests.test_noxfile import sessions as noxfile_sessions

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CI_RUN = REPO / ".ci" / "run"

# Commands that cannot run on a CI machine of this project, each with the reason.
NOT_RUN = {
    "nox -s lock -- --upgrade": "moves every pin to the newest release: a deliberate change",
    "nox -s pin": "needs a reachable container registry to read the tag's digest",
    # The installs: the package is not on PyPI yet, and these name a checkout of the kit in the
    # reader's folder. The tests run the kit installed the way `nox -s tests` installs it.
    "pipx install './asyncio-stress-kit[container]'":
        "installs from a checkout beside the reader's project; the tests use the installed kit",
    "python3 -m venv ~/.venvs/stress-kit && ~/.venvs/stress-kit/bin/pip install "
    "'./asyncio-stress-kit[container]'":
        "installs from a checkout beside the reader's project; the tests use the installed kit",
    'git add -A && git commit -m "Stress tests" && git push': "needs the reader's remote",
    "STRESS_KIT_COMPILE=1 pipx install './asyncio-stress-kit[container]'":
        "installs from a checkout beside the reader's project; nox -s tests-compiled installs "
        "the compiled kit the same way",
}
# README commands and the line of .ci/run that runs the same thing.
CI_RUN_FORMS = {
    "python -m pip install nox": '"$VENV/bin/python" -m pip install',
    "sudo bash ci/build-base-image.sh stress-kit-base:trixie":
        'as_root bash ci/build-base-image.sh "$BASE_TAG"',
    # Container runs: `nox -s stress` is the same `run --engine ...` in the image, on the base
    # image .ci/run built (it sets STRESS_BASE_IMAGE).
    "stress-kit run --engine docker": "run_nox -s stress\n",
    "stress-kit run --engine docker --base stress-kit-base:trixie --scale 0.01":
        "run_nox -s stress\n",
}
ADOPTION = "Use it in your project"  # the section whose commands run in a project of their own
INSTALLS = [text for text in NOT_RUN if "install" in text and "nox" not in text]
# STRESS_ names in the code that are not environment variables a user sets.
NOT_VARIABLES = {"STRESS_KIT"}  # action.yml's name for the installed command, inside a step


@dataclass(frozen=True)
class Command:
    text: str  # as written, without its trailing comment
    exit_codes: frozenset[int]
    section: str  # the ## heading it is under


def sections(markdown: str) -> list[tuple[str, str]]:
    """(heading, text) of each ``##`` section, the introduction as ``""``."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.M)
    return [("", parts[0]), *zip(parts[1::2], parts[2::2], strict=True)]


def sh_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", markdown, flags=re.S | re.M)


def readme_commands() -> list[Command]:
    commands = []
    for heading, text in sections(README.read_text(encoding="utf-8")):
        for block in sh_blocks(text):
            for line in block.splitlines():
                command, _, comment = line.partition("  #")
                if not command.strip():
                    continue
                codes = re.search(r"\bexit (\d+(?: or \d+)*)", comment)
                exit_codes = frozenset(int(c) for c in codes.group(1).split(" or ")) \
                    if codes else frozenset({0})
                commands.append(Command(command.strip(), exit_codes, heading))
    return commands


def readme_outputs() -> dict[str, str]:
    """The README's sample outputs, by the command that printed them."""
    found = re.findall(r"^<!-- output of: (.+?) -->\n```text\n(.*?)^```",
                       README.read_text(encoding="utf-8"), flags=re.S | re.M)
    return dict(found)


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
    """The commands run here: `python ...` and the installed `stress-kit ...`."""
    return [c for c in readme_commands()
            if without_env_prefix(c.text)[1].startswith(("python ", "stress-kit "))
            and c.text not in CI_RUN_FORMS and c.text not in NOT_RUN]


def test_the_readme_has_commands_and_files_to_run() -> None:
    names = {without_env_prefix(c.text)[1] for c in readme_commands()}
    # The adoption path and the kit's own development.
    assert {"stress-kit init", "stress-kit run --engine host --scale 0.01",
            "stress-kit run --engine docker", "python -m pip install nox", "nox -s stress",
            "nox -s tests"} <= names
    assert set(readme_files()) == {"my_pipeline.py", "my-scenarios.yaml", "hang.yaml"}
    assert len(python_commands()) >= 10


def test_the_adoption_path_comes_first_and_takes_at_most_five_commands() -> None:
    commands = readme_commands()
    adoption = [c.text for c in commands if c.section == ADOPTION]
    # The installs are alternatives: one of them is typed.
    assert len([text for text in adoption if text not in INSTALLS]) + 1 <= 5, adoption
    # The install comes before the first command that runs the kit.
    assert commands[0].section == ADOPTION
    assert commands[0].text in INSTALLS
    runs_the_kit = ("stress-kit", "python -m stress")
    first_kit = next(c for c in commands if without_env_prefix(c.text)[1].startswith(runs_the_kit))
    assert first_kit.section == ADOPTION


def test_one_quick_scale_throughout() -> None:
    """One story for --scale: the quick run is 0.01 (the gate's own longer runs aside)."""
    scales = {re.search(r"--scale (\S+)", c.text).group(1)  # type: ignore[union-attr]
              for c in readme_commands() if "--scale" in c.text and " ab " not in f" {c.text} "}
    assert scales == {"0.01"}


def test_every_stress_variable_is_in_the_readme() -> None:
    found = set()
    for folder in ("stress", "ci", ".ci"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and path.suffix in {"", ".py", ".sh", ".yaml", ".yml"}:
                found |= set(re.findall(r"\bSTRESS_[A-Z_]*[A-Z]",
                                        path.read_text(encoding="utf-8", errors="replace")))
    found |= set(re.findall(r"\bSTRESS_[A-Z_]*[A-Z]", (REPO / "noxfile.py").read_text()))
    found |= {key.env for key in KEYS}
    readme = README.read_text(encoding="utf-8")
    missing = sorted(name for name in found - NOT_VARIABLES if f"`{name}`" not in readme)
    assert not missing, f"STRESS_* variables the README does not document: {missing}"


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
        if text.startswith("nox "):
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
    git_commit(folder, "my_pipeline.py", "my-scenarios.yaml", "hang.yaml")
    return folder


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new user's project, before `stress-kit init`: a pyproject and a git history."""
    folder = tmp_path_factory.mktemp("project")
    (folder / "pyproject.toml").write_text('[project]\nname = "myproject"\nversion = "0.1"\n',
                                           encoding="utf-8")
    git_commit(folder, "pyproject.toml")
    return folder


def git_commit(folder: Path, *names: str) -> None:
    git = ["git", "-c", "user.name=readme", "-c", "user.email=readme@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=folder, check=True)
    subprocess.run([*git, "add", *names], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "start"], cwd=folder, check=True)


FIGURE = r"\d+(?:\.\d+)?"


def key_lines_missing(sample: str, output: str) -> list[str]:
    """The sample's lines not in the real output. A line must be there as written, except its
    figures, which may differ; a note or the artifact list (they depend on the profilers this
    machine has) only by its label."""
    printed = output.splitlines()
    missing = []
    for line in sample.splitlines():
        if not line.strip():
            continue
        if line.startswith(("Note:", "Artifacts:")):
            label = line.split(":", 1)[0]
            if not any(printed_line.startswith(label) for printed_line in printed):
                missing.append(line)
            continue
        pattern = re.compile(FIGURE.join(re.escape(part) for part in re.split(FIGURE, line)))
        if not any(pattern.fullmatch(printed_line) for printed_line in printed):
            missing.append(line)
    return missing


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(python_commands())),
                         ids=[c.text[:60] for c in python_commands()])
def test_python_commands_run_as_written(workspace: Path, project: Path, index: int) -> None:
    """In README order (pytest keeps parameter order), so later commands see earlier output."""
    command = python_commands()[index]
    env = {k: v for k, v in os.environ.items()
           if k not in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "STRESS_LOG")}
    # `python` is this test's interpreter, the one the kit is installed in, and `stress-kit`
    # its console script beside it (`nox -s tests` installs the package).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if command.text.startswith("stress-kit") and not shutil.which("stress-kit", path=env["PATH"]):
        pytest.fail(f"no stress-kit beside {sys.executable}: install the package "
                    "(pip install -e '.[test]' in this venv; nox -s tests does)")
    cwd = project if command.section == ADOPTION else workspace
    done = subprocess.run(["bash", "-c", command.text], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode in command.exit_codes, \
        f"{command.text}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    sample = readme_outputs().get(command.text)
    if sample is not None:
        missing = key_lines_missing(sample, done.stdout + done.stderr)
        assert not missing, f"the README's output of {command.text!r} is not what it prints " \
            f"now; lines missing: {missing}\n{done.stdout[-3000:]}"


def test_every_sample_output_belongs_to_a_command_run_here() -> None:
    run_here = {c.text for c in python_commands()}
    assert set(readme_outputs()) <= run_here
    assert len(readme_outputs()) >= 2  # the loss failure and the hang


def test_a_changed_output_is_caught() -> None:
    sample = ("=== Stress Test Results: X ===\n  Duration: 0.004s\nFAILURE: Old wording\n"
              "Took 3.038s, timeout 3s\nNote: profiled")
    printed = ("=== Stress Test Results: X ===\n  Duration: 9s\nFAILURE: New wording\n"
               "Took 2s, timeout 3s\nNote: profiled elsewhere")
    assert key_lines_missing(sample, printed) == ["FAILURE: Old wording"]
    assert key_lines_missing("  Duration: 1s", "  Duration: quick") == ["  Duration: 1s"]
