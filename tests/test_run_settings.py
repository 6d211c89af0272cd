"""`stress-kit run` takes its defaults from the project's [tool.stress]; typed flags win."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stress.cli import build_parser
from stress.commands.run import apply_settings
from stress.config.scenarios import load_scenarios

REPO = Path(__file__).resolve().parents[1]
PROJECT = """\
[project]
name = "chat"
version = "1"

[tool.stress]
select = ["short", "backpressure"]
scale = 0.002
out = "build/stress"

[tool.stress.scenarios.short.thresholds]
min_throughput = 123
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".git").mkdir()  # the config search stops at the repository's root
    (tmp_path / "pyproject.toml").write_text(PROJECT, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("STRESS_")]:
        monkeypatch.delenv(name)
    return tmp_path


def resolved(*argv: str) -> tuple[object, ...]:
    args = build_parser().parse_args(["run", *argv])
    settings = apply_settings(args)
    return args.names, args.scale, args.out, settings.chosen_scenarios()[0].thresholds


def test_the_project_config_gives_the_defaults(project: Path) -> None:
    names, scale, out, thresholds = resolved()
    assert names == ["short", "backpressure"]
    assert scale == 0.002
    assert out == project / "build" / "stress"  # relative to the config file
    assert thresholds.min_throughput == 123  # type: ignore[attr-defined]


def test_typed_flags_and_variables_win(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRESS_SCALE", "0.5")
    assert resolved()[1] == 0.5
    # A typed value equal to the built-in default still wins over the project's.
    names, scale, out, _ = resolved("long", "--scale", "1.0", "--out", "here")
    assert (names, scale, out) == (["long"], 1.0, Path("here"))


def test_a_container_run_is_handed_the_resolved_scenarios(project: Path) -> None:
    from stress.container import session

    args = build_parser().parse_args(["run", "--engine", "docker"])
    apply_settings(args)
    handed = load_scenarios(args.scenarios)
    assert handed["short"].thresholds.min_throughput == 123
    plan = session.plan(args, cwd=project)
    assert plan.environment["STRESS_NO_PROJECT_CONFIG"] == "1"  # the inner run must not
    assert "STRESS_NO_PROJECT_CONFIG" not in os.environ  # re-apply; this process is untouched


def test_a_host_run_uses_the_project_config_end_to_end(project: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STRESS_", "GITHUB_"))} | {"PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "stress", "run"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads((project / "build" / "stress" / "results.json").read_text())
    thresholds = {s["name"]: s["thresholds"]["min_throughput"] for s in document["scenarios"]}
    assert thresholds == {"short": 123, "backpressure": None}
