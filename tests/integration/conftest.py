"""Helpers for tests that run the kit as a user would: `python -m stress ...` in a child."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def stress_env() -> dict[str, str]:
    """The environment for a `python -m stress` child: the repo importable (for tests.*)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS",
                                                             "GITHUB_STEP_SUMMARY")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_stress(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stress", *map(str, args)], cwd=REPO,
                          env=stress_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.fixture
def scenarios_file(tmp_path: Path) -> Path:
    """Two quick scenarios; the second uses 13-character tokens (tests.user_targets:picky)."""
    path = tmp_path / "scenarios.yaml"
    path.write_text(
        "scenarios:\n"
        "  first:\n    title: First Quick\n    messages: 2000\n    timeout_s: 30\n"
        "    thresholds: {max_loss_pct: 1.0}\n"
        "  second:\n    title: Second Quick\n    messages: 2000\n    message_size: 13\n"
        "    timeout_s: 30\n"
        "  third:\n    title: Third Quick\n    messages: 2000\n    timeout_s: 30\n",
        encoding="utf-8")
    return path


def results_of(out: Path) -> dict[str, dict[str, Any]]:
    """A run's results.json, scenario by scenario."""
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert document["version"] == 1
    return {entry["name"]: entry for entry in document["scenarios"]}


def log_of(out: Path, scenario: str) -> str:
    return (out / f"stress-test-{scenario}.log").read_text(encoding="utf-8")
