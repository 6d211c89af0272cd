"""A passing scenario is profiled on a slice of its tokens; a failure's evidence and a memray
run that judges a leak limit are profiled at full size. Real runs of the reference pipeline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stress.engine.runner import PROFILE_SLICE_S
from stress.errors import ExitCode
from tests.integration.conftest import run_stress

pytestmark = pytest.mark.slow

# Paced at 1 ms a token, each measured run lasts about 4 s, longer than a slice.
SCENARIOS = """\
scenarios:
  paced:
    title: Paced
    messages: 4000
    token_delay_us: 1000
    timeout_s: 30
  leak-limit:
    title: Leak Limit
    messages: 4000
    token_delay_us: 1000
    timeout_s: 30
    thresholds: {max_leaked_mb: 50}
  too-slow:
    title: Too Slow
    messages: 4000
    token_delay_us: 1000
    timeout_s: 30
    thresholds: {min_throughput: 100000}
"""


def test_only_a_passing_scenario_is_profiled_on_a_slice(tmp_path: Path) -> None:
    scenarios = tmp_path / "scenarios.yaml"
    scenarios.write_text(SCENARIOS, encoding="utf-8")
    out = tmp_path / "out"
    done = run_stress("run", "--scenarios", scenarios, "--profile", "memory", "--out", out,
                      timeout=240)
    assert done.returncode == ExitCode.THRESHOLD_FAILED, done.stdout + done.stderr
    results = {r["name"]: r for r in json.loads(
        (out / "results.json").read_text(encoding="utf-8"))["scenarios"]}
    assert [results[n]["status"] for n in ("paced", "leak-limit", "too-slow")] == \
        ["passed", "passed", "failed"]

    def profiled_tokens(name: str) -> int:
        log = (out / f"stress-test-{name}.log").read_text(encoding="utf-8")
        (count,) = re.findall(r"--- profiling run: memory, ([\d,]+) tokens", log)
        return int(count.replace(",", ""))

    paced = results["paced"]
    duration = paced["metrics"]["duration_s"]
    assert duration > PROFILE_SLICE_S  # else there is nothing to slice
    tokens = profiled_tokens("paced")
    assert tokens == round(4000 * PROFILE_SLICE_S / duration)
    assert f"The memory profile is of {tokens:,} of the 4,000 tokens (about " \
        f"{PROFILE_SLICE_S:g}s of the measured run): a passing scenario's profile needs " \
        "seconds, not its full size" in paced["notes"]
    assert (out / paced["artifacts"]["memray_flamegraph"]).is_file()
    assert paced["metrics"]["tokens_received"] == 4000  # the measured run is whole

    # The leak limit is judged on the memray run, and the failure's evidence reproduces it.
    for name in ("leak-limit", "too-slow"):
        assert profiled_tokens(name) == 4000, name
        assert not any(n.startswith("The memory profile is of") for n in results[name]["notes"])
    assert results["leak-limit"]["metrics"]["leaked_mb"] is not None
