"""A correct SSE target on real libraries (uvicorn, sse-starlette, httpx over loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stress.errors import ExitCode
from tests.integration.conftest import results_of
from tests.integration.test_runner_lifecycle import run

pytest.importorskip("sse_starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")
pytestmark = pytest.mark.slow

SSE = """\
scenarios:
  plain:
    title: SSE
    messages: 5000
    timeout_s: 30
  sse:
    title: SSE Accepted
    messages: 5000
    timeout_s: 30
    ignore_tasks: ["sse_starlette.*"]
"""


def test_sse_starlette_watcher_is_the_library_s_and_accepted(tmp_path: Path) -> None:
    scenarios = tmp_path / "sse.yaml"
    scenarios.write_text(SSE, encoding="utf-8")
    out = tmp_path / "out"
    # The default budgets: on a loaded machine the stream may start slowly.
    code, output = run(out, "RealSse", "plain", "sse", scenarios=scenarios,
                       module="tests.life_real_sse",
                       extra=("--quit-budget", "10", "--teardown-budget", "10"))
    results = results_of(out)
    accepted = results["sse"]
    assert accepted["status"] == "passed", accepted["failures"]
    assert accepted["metrics"]["tokens_received"] == 5000
    assert accepted["metrics"]["quit_latency_ms"] < 1000
    # Without the pattern, what is left is the library's watcher, never the target's code.
    plain = results["plain"]
    for failure in plain["failures"]:
        assert failure["kind"] == "leftover", failure
        assert "started by sse_starlette" in failure["message"]
        assert "_shutdown_watcher() running at" in failure["message"]
    assert code in (ExitCode.PASSED, ExitCode.THRESHOLD_FAILED), output
