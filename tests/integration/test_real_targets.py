"""Targets on real network libraries over loopback, through `python -m stress run`.

Starlette + sse-starlette served by uvicorn and read with httpx (`async for` over
`aiter_lines`), and a websockets server and client: each correct target passes, and each
broken variant gets the verdict that names its bug.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sse_starlette")
pytest.importorskip("websockets")

from tests.targets import NETWORK_STREAM_SCENARIOS

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(tmp_path: Path, target: str, *, extra: str = "") -> tuple[int, str, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    scenarios = tmp_path / "scenarios.yaml"
    scenarios.write_text(NETWORK_STREAM_SCENARIOS.format(extra=extra), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRESS_", "GITHUB_"))}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "stress", "run", "--target", target, "--scenarios",
         str(scenarios), "--out", str(tmp_path / "out"), "--no-evidence"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    (entry,) = json.loads((tmp_path / "out" / "results.json").read_text())["scenarios"]
    return done.returncode, done.stdout, entry


def headlines(entry: Any) -> list[str]:
    return [f["headline"] for f in entry["failures"]]


def test_a_correct_sse_stream_passes_once_the_librarys_watcher_is_accepted(
        tmp_path: Path) -> None:
    code, stdout, entry = run(tmp_path, "tests.targets.sse_chat:sse_chat",
                              extra='    ignore_tasks: ["sse_starlette.*"]\n')
    assert code == 0, stdout
    metrics = entry["metrics"]
    assert metrics["verified"]
    assert metrics["lost"] == 0
    assert metrics["errors"] == 1  # the one injected failure, reported


def test_sse_starlettes_watcher_is_attributed_to_the_library(tmp_path: Path) -> None:
    """sse-starlette's per-loop watcher outlives the server; it ends by itself only when the
    server's shutdown takes over 0.5 s, so on a loaded machine it may be gone in time. When it
    is left, the kit blames the library, not the target, and shows it as it was."""
    code, stdout, entry = run(tmp_path / "plain", "tests.targets.sse_chat:sse_chat")
    messages = [f["message"] for f in entry["failures"]]
    if code == 0:
        assert messages == [], stdout
        return
    assert code == 1, stdout
    (message,) = messages
    assert "started by sse_starlette" in message
    assert "_shutdown_watcher" in message
    assert "cancelling" not in message  # the task as it was, before the kit cancelled it


def test_a_duplicate_on_reconnect_is_caught(tmp_path: Path) -> None:
    code, stdout, entry = run(tmp_path, "tests.targets.sse_chat:resume_wrong_id",
                              extra='    ignore_tasks: ["sse_starlette.*"]\n')
    assert code == 1, stdout
    assert "FAILURE: Tokens delivered more than once" in headlines(entry)
    assert entry["metrics"]["duplicated"] > 0
    assert ": duplicated (expected '" in entry["metrics"]["first_divergence"]


def test_a_stream_cut_by_a_read_timeout_is_loss_and_an_unexpected_error(tmp_path: Path) -> None:
    code, stdout, entry = run(tmp_path, "tests.targets.sse_chat:read_timeout",
                              extra='    ignore_tasks: ["sse_starlette.*"]\n')
    assert code == 1, stdout
    assert "FAILURE: More errors than injected" in headlines(entry)
    assert entry["metrics"]["lost"] > 0


def test_a_websocket_stream_passes_and_a_slow_quit_fails(tmp_path: Path) -> None:
    code, stdout, entry = run(tmp_path / "ok", "tests.targets.ws_chat:ws_chat")
    assert code == 0, stdout
    assert entry["metrics"]["quit_latency_ms"] < 1000
    code, stdout, entry = run(tmp_path / "slow", "tests.targets.ws_chat:slow_close")
    assert code == 1, stdout
    assert entry["metrics"]["quit_latency_ms"] >= 5000
    assert "FAILURE: Quit not responsive under load" in headlines(entry)
