"""Project settings: one cascade (default < project config < STRESS_* < flags), one-line errors."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stress.config.scenarios import load_scenarios
from stress.config.settings import KEYS, resolve_settings, to_json
from stress.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

PYPROJECT = """\
[project]
name = "chatapp"

[tool.stress]
target = "chatapp.stress:target"
select = ["short", "backpressure"]
profile = ["memory", "cpu"]
engine = "auto"
out = "build/stress"
scale = 0.1

[tool.stress.container]
python = "3.12"
memory = "2g"
cpus = 1.5

[tool.stress.ab]
scenarios = ["short"]
rounds = 7
max_drop = 15

[tool.stress.scenarios.short.thresholds]
min_throughput = 2000
max_memory_growth_mb = 0

[tool.stress.scenarios.backpressure.thresholds]
max_loss_pct = 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository with a [tool.stress] table and a sub-folder to run from."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (tmp_path / "src" / "chatapp").mkdir(parents=True)
    return tmp_path


def test_defaults_without_any_config(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    settings = resolve_settings({}, tmp_path, {})
    assert settings.config_file is None
    assert all(item.origin == "default" for _, item in settings.items())
    assert settings.target.value == "stress.pipeline:reference"
    assert settings.engine.value == "host"
    assert settings.ab.rounds.value == 5
    assert settings.scenarios == tuple(load_scenarios().values())
    assert [s.name for s in settings.chosen_scenarios()] == list(load_scenarios())


def test_project_config_is_found_from_a_subfolder_and_applied(project: Path) -> None:
    settings = resolve_settings({}, project / "src" / "chatapp", {})
    label = f"{project / 'pyproject.toml'} [tool.stress]"
    assert settings.config_file == label
    assert settings.target.value == "chatapp.stress:target"
    assert settings.target.origin == label
    assert settings.select.value == ("short", "backpressure")
    assert settings.profile.value == ("memory", "cpu")
    assert settings.engine.value == "auto"
    assert settings.out.value == project / "build" / "stress"  # relative to the config file
    assert settings.container.python.value == "3.12"
    assert settings.container.memory.value == "2g"
    assert settings.container.cpus.value == 1.5
    assert (settings.ab.scenarios.value, settings.ab.rounds.value) == (("short",), 7)
    assert settings.ab.max_drop.value == 15.0
    builtin = load_scenarios()
    scenarios = settings.scenario_map()
    assert scenarios["short"].thresholds.min_throughput == 2000
    assert scenarios["short"].thresholds.max_memory_growth_mb == 0.0
    assert scenarios["backpressure"].thresholds.max_loss_pct == 0.0
    assert scenarios["medium"] == builtin["medium"]  # nothing else changes
    assert list(scenarios) == list(builtin)
    chosen = settings.chosen_scenarios()
    assert [s.name for s in chosen] == ["short", "backpressure"]
    assert chosen[0].messages == 100_000  # scaled by 0.1
    origins = dict(zip(scenarios, settings.scenario_origins, strict=True))
    assert origins["short"] == f"built-in, changed in {label}"
    assert origins["medium"] == "built-in"


def test_environment_beats_config_and_flags_beat_both(project: Path) -> None:
    environ = {"STRESS_SCALE": "0.5", "STRESS_CONTAINER_MEMORY": "8g",
               "STRESS_AB_ROUNDS": "9", "STRESS_PROFILE": "cpu", "STRESS_TARGET": ""}
    settings = resolve_settings({"scale": 2.0, "select": ["errors"], "out": None},
                                project, environ)
    assert (settings.scale.value, settings.scale.origin) == (2.0, "command line")
    assert (settings.container.memory.value, settings.container.memory.origin) == \
        ("8g", "STRESS_CONTAINER_MEMORY")
    assert settings.ab.rounds.value == 9
    assert settings.profile.value == ("cpu",)
    assert settings.select.value == ("errors",)
    assert settings.target.origin.endswith("[tool.stress]")  # an empty variable is unset
    assert settings.out.origin.endswith("[tool.stress]")  # None: the flag was not given


def test_stress_toml_serves_a_repository_without_pyproject(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "stress.toml").write_text('scale = 0.2\n[container]\nmemory = "1g"\n',
                                          encoding="utf-8")
    settings = resolve_settings({}, tmp_path, {})
    assert settings.config_file == str(tmp_path / "stress.toml")
    assert (settings.scale.value, settings.container.memory.value) == (0.2, "1g")


def test_search_stops_at_the_git_root(tmp_path: Path) -> None:
    (tmp_path / "stress.toml").write_text("scale = 0.2\n", encoding="utf-8")
    inner = tmp_path / "repo"
    (inner / ".git").mkdir(parents=True)
    assert resolve_settings({}, inner, {}).config_file is None


def test_a_pyproject_without_a_table_is_passed_over(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "stress.toml").write_text("scale = 0.3\n", encoding="utf-8")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "pyproject.toml").write_text("[project]\nname = 'p'\n",
                                                     encoding="utf-8")
    assert resolve_settings({}, tmp_path / "pkg", {}).scale.value == 0.3


def test_scenarios_file_from_config_then_overrides(project: Path) -> None:
    (project / "mine.yaml").write_text("extends: builtin\nscenarios:\n"
                                       "  soak: {title: Soak, messages: 10}\n",
                                       encoding="utf-8")
    text = PYPROJECT.replace('scale = 0.1\n', 'scale = 0.1\nscenarios_file = "mine.yaml"\n')
    (project / "pyproject.toml").write_text(text, encoding="utf-8")
    settings = resolve_settings({}, project / "src", {})
    assert settings.scenarios_file.value == project / "mine.yaml"
    scenarios = settings.scenario_map()
    assert list(scenarios)[-1] == "soak"
    assert scenarios["short"].thresholds.min_throughput == 2000


BAD_CONFIGS = [
    ("[tool.stress]\nscael = 1\n",
     "[tool.stress]: unknown key 'tool.stress.scael'; did you mean 'tool.stress.scale'?"),
    ("[tool.stress.container]\nmemroy = '1g'\n",
     "unknown key 'tool.stress.container.memroy'; did you mean 'tool.stress.container.memory'?"),
    ("[tool.stress]\nscale = 'fast'\n",
     "key 'tool.stress.scale' is 'fast'; expected a finite number"),
    ("[tool.stress]\nscale = nan\n", "key 'tool.stress.scale' is nan; expected a finite number"),
    ("[tool.stress]\nscale = -1\n", "key 'tool.stress.scale' is -1; expected a factor > 0"),
    ("[tool.stress]\nengine = 'podman'\n", "expected one of host, docker, auto"),
    ("[tool.stress]\nprofile = ['memory', 'heap']\n", "unknown profile kind 'heap'"),
    ("[tool.stress]\ntarget = 'chatapp'\n", "expected MODULE:ATTR"),
    ("[tool.stress]\nselect = ['shrot']\n", "no scenario named 'shrot'; did you mean 'short'?"),
    ("[tool.stress]\nselect = 'short'\nab = 3\n", "key 'tool.stress.ab' must be a table"),
    ("[tool.stress.ab]\nrounds = 2.5\n", "key 'tool.stress.ab.rounds' is 2.5; expected a whole"),
    ("[tool.stress.ab]\nmax_drop = 100\n", "expected a percentage between 0 and 100"),
    ("[tool.stress.container]\nmemory = 'lots'\n", "expected e.g. 4g or 512m"),
    ("[tool.stress.container]\npython = 3.12\n",
     "key 'tool.stress.container.python' is the number 3.12; expected text in quotes, "
     "e.g. '3.12'"),
    ("[tool.stress.container]\nmemory = 2048\n", "expected text in quotes, e.g. '4g'"),
    ("[tool.stress.scenarios.shrot.thresholds]\nmin_throughput = 1\n",
     "tool.stress.scenarios: scenario 'shrot': no such scenario to change; "
     "did you mean 'short'?"),
    ("[tool.stress.scenarios.short.thresholds]\nmin_thruput = 1\n",
     "thresholds: unknown key 'min_thruput'; did you mean 'min_throughput'?"),
    ("[tool.stress.scenarios.short]\nthresholds = {min_throughput = inf}\n",
     "key 'thresholds.min_throughput' is inf; expected a finite number"),
    ("[tool.stress]\nscenarios = 'mine.yaml'\n",
     "must be a table of scenario names, got 'mine.yaml' (the file is 'scenarios_file')"),
    ("[tool.stress]\nscenarios_file = 'missing.yaml'\n",
     "[tool.stress]: key 'tool.stress.scenarios_file': no such file '/"),
    ("[tool.stress\n", "is not valid TOML"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_bad_config_gets_one_line_naming_file_and_key(
        tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / ".git").mkdir()
    path = tmp_path / "pyproject.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        resolve_settings({}, tmp_path, {})
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(("cli", "environ", "expected"), [
    ({"scale": float("nan")}, {}, "--scale is nan; expected a finite number"),
    ({"scale": "nan"}, {}, "--scale is nan; expected a finite number"),
    ({}, {"STRESS_SCALE": "abc"}, "STRESS_SCALE is 'abc'; expected a finite number"),
    ({}, {"STRESS_AB_ROUNDS": "0"}, "STRESS_AB_ROUNDS is 0; expected a whole number >= 1"),
    ({}, {"STRESS_ENGINE": "podman"}, "expected one of host, docker, auto"),
    ({"select": ["nope"]}, {}, "stress/scenarios.yaml: no scenario named 'nope'; "
                               "available: short"),
    ({"container.cpus": 0}, {}, "--cpus is 0; expected CPUs > 0"),
    ({"scenarios_file": Path("nope.yaml")}, {}, "--scenarios: no such file 'nope.yaml'"),
])
def test_bad_flag_or_variable_gets_one_line(
        tmp_path: Path, cli: dict[str, object], environ: dict[str, str], expected: str) -> None:
    (tmp_path / ".git").mkdir()
    with pytest.raises(ConfigError) as caught:
        resolve_settings(cli, tmp_path, environ)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_both_config_files_in_one_folder_is_an_error(project: Path) -> None:
    (project / "stress.toml").write_text("scale = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"stress\.toml: .*pyproject\.toml has a "
                                          r"\[tool\.stress\] table too; keep the settings in one"):
        resolve_settings({}, project, {})


def test_non_utf8_config_is_one_line(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "stress.toml").write_bytes(b"target = '\xff'\n")
    with pytest.raises(ConfigError, match=r"stress\.toml: not UTF-8 text \(byte 0xff"):
        resolve_settings({}, tmp_path, {})


def test_unknown_cli_name_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no setting named 'scael'"):
        resolve_settings({"scael": 1}, tmp_path, {})


def test_every_key_has_a_derived_variable() -> None:
    assert [key.env for key in KEYS if "." in key.name] == [
        "STRESS_CONTAINER_PYTHON", "STRESS_CONTAINER_MEMORY", "STRESS_CONTAINER_CPUS",
        "STRESS_AB_SCENARIOS", "STRESS_AB_ROUNDS", "STRESS_AB_MAX_DROP"]


def _kit(*args: str, cwd: Path,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "stress", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=60, check=False)


def test_config_command_prints_each_value_and_its_origin(project: Path) -> None:
    done = _kit("config", cwd=project / "src", env={"STRESS_SCALE": "0.5"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"config file: {project / 'pyproject.toml'} [tool.stress]"
    scale = next(line for line in lines if line.startswith("scale "))
    assert scale.split() == ["scale", "0.5", "(STRESS_SCALE)"]
    engine = next(line for line in lines if line.startswith("engine "))
    assert "auto" in engine
    assert "[tool.stress])" in engine
    assert any(line.split()[:1] == ["short"] and "min_throughput=2000" in line
               for line in lines)
    done = _kit("config", "--json", cwd=project)
    data = json.loads(done.stdout)
    assert data == json.loads(json.dumps(to_json(resolve_settings({}, project, {}))))
    assert data["settings"]["ab.rounds"] == {"value": 7, "origin": data["config_file"]}


def test_config_command_error_is_exit_2_and_one_line(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.stress]\nscael = 1\n", encoding="utf-8")
    done = _kit("config", cwd=project)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "unknown key 'tool.stress.scael'; did you mean 'tool.stress.scale'?" in done.stderr


def test_settings_are_frozen_and_keyword_only(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    settings = resolve_settings({}, tmp_path, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.scale = settings.scale  # type: ignore[misc]
    with pytest.raises(TypeError):
        type(settings)(None)  # type: ignore[call-arg]
