"""The artifact folder of a profiled run of the built-in suite stays bounded in size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stress.config.scenarios import load_scenarios

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
# Per file: memray's HTML carries its inlined libraries (about 4.6 MB, whatever the run);
# the rest grows with distinct stacks or run time, not with tokens.
LIMITS = {
    "-memray-flamegraph.html": 6 * MB, "-leaks-flamegraph.html": 6 * MB,
    "-memray.bin": 1 * MB, "-memray-stats.json": 256 * 1024, "-memray-stats.txt": 16 * 1024,
    "-leak-report.txt": 32 * 1024, "-cpu-flamegraph.svg": 1 * MB,
    "-cpu-speedscope.json": 2 * MB,
}


@pytest.mark.slow
def test_scaled_suite_with_both_profiles_stays_bounded(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("GITHUB_ACTIONS", None)
    done = subprocess.run(
        [sys.executable, "-m", "stress", "run", "--out", str(out), "--scale", "0.02",
         "--profile", "memory,cpu", "--no-evidence"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    scenarios = load_scenarios()
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))["scenarios"]
    assert [r["name"] for r in results] == list(scenarios)
    for result in results:
        artifacts = result["artifacts"]
        for suffix in LIMITS:
            assert f"{result['name']}{suffix}" in artifacts.values(), (result["name"], suffix)
        assert not [n for n in result["notes"] if "could not" in n or "failed" in n]
    files = [p for p in out.rglob("*") if p.is_file()]
    for path in files:
        limit = next((size for suffix, size in LIMITS.items() if path.name.endswith(suffix)),
                     None)
        if limit is not None:
            assert path.stat().st_size < limit, f"{path.name}: {path.stat().st_size} bytes"
    total = sum(p.stat().st_size for p in files)
    # The full-size suite makes the same files: only captures and CPU samples grow with run
    # time, and they are a small share. 100 MB is the bound for the full suite.
    assert total < 100 * MB, f"{total / MB:.1f} MB"
