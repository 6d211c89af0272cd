"""examples/chatapp, a project of its own on anyio, passes its [tool.stress] selection on the
host, judged by its own two throughput limits and the built-in rest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "chatapp"

pytest.importorskip("anyio")


@pytest.mark.slow
def test_the_example_project_passes_its_own_selection(tmp_path: Path) -> None:
    project = tmp_path / "chatapp"
    shutil.copytree(EXAMPLE, project)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRESS_", "GITHUB_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(project / "src"), str(REPO)])
    done = subprocess.run([sys.executable, "-m", "stress", "run", "--engine", "host"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    document = json.loads((project / "stress-results" / "results.json").read_text())
    by_name = {s["name"]: s for s in document["scenarios"]}
    assert list(by_name) == ["short", "backpressure", "concurrent", "errors"]
    assert by_name["short"]["thresholds"]["min_throughput"] == 2000
    assert by_name["errors"]["thresholds"]["min_throughput"] == 10000  # built in
    for entry in by_name.values():
        assert entry["metrics"]["verified"], entry["name"]  # the harness checked every token
        assert entry["metrics"]["lost"] == 0
