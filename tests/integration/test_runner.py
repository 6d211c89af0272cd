"""The runner end to end: real child processes, real files, as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stress.errors import ExitCode
from tests.integration.conftest import REPO, results_of, run_stress, stress_env

pytestmark = pytest.mark.slow


def test_user_target_through_target_flag(tmp_path: Path, scenarios_file: Path) -> None:
    out = tmp_path / "out"
    done = run_stress("run", "first", "third", "--scenarios", scenarios_file,
                      "--target", "tests.user_targets:echo", "--out", out)
    assert done.returncode == ExitCode.PASSED, done.stdout + done.stderr
    results = results_of(out)
    assert set(results) == {"first", "third"}
    first = results["first"]
    assert first["passed"] is True
    assert first["metrics"]["tokens_received"] == 2000
    assert first["metrics"]["messages_sent"] == 2000
    assert first["metrics"]["loss_pct"] == 0.0
    assert first["metrics"]["quit_latency_ms"] is not None
    assert first["environment"]["target"] == "tests.user_targets:echo"
    assert first["thresholds"]["max_loss_pct"] == 1.0
    assert "=== Stress Test Results: First Quick ===" in done.stdout
    log = (out / "stress-test-first.log").read_text(encoding="utf-8")
    assert "=== Stress Test Results: First Quick ===" in log
    assert "✅ Test passed!" in log
    for name in ("junit.xml", "summary.md", "report.html"):
        assert (out / name).is_file(), name


def test_a_crash_is_reported_and_the_other_scenarios_kept(tmp_path: Path,
                                                          scenarios_file: Path) -> None:
    out = tmp_path / "out"
    done = run_stress("run", "--scenarios", scenarios_file, "--target",
                      "tests.user_targets:picky", "--out", out, "--no-evidence")
    assert done.returncode == ExitCode.CRASHED_OR_HUNG, done.stdout + done.stderr
    results = results_of(out)
    assert [results[n]["status"] for n in ("first", "second", "third")] == \
        ["passed", "crashed", "passed"]
    (failure,) = results["second"]["failures"]
    assert failure["message"] == ("Scenario crashed: the target raised ValueError: "
                                  "13-character tokens are not supported")
    log = (out / "stress-test-second.log").read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in log
    assert "FAILURE: Scenario crashed" in log


def test_a_native_crash_names_the_signal(tmp_path: Path, scenarios_file: Path) -> None:
    out = tmp_path / "out"
    done = run_stress("run", "first", "--scenarios", scenarios_file, "--target",
                      "tests.user_targets:aborting", "--out", out, "--no-evidence")
    assert done.returncode == ExitCode.CRASHED_OR_HUNG
    (failure,) = results_of(out)["first"]["failures"]
    assert "killed by SIGABRT (6)" in failure["message"]


def test_a_hang_is_diagnosed_with_task_stacks_then_killed(tmp_path: Path) -> None:
    scenarios = tmp_path / "hang.yaml"
    scenarios.write_text("scenarios:\n  hang:\n    title: Hang Test\n    messages: 100\n"
                         "    timeout_s: 2\n", encoding="utf-8")
    out = tmp_path / "out"
    started = time.monotonic()
    done = run_stress("run", "--scenarios", scenarios, "--target", "tests.user_targets:stuck",
                      "--out", out, "--no-evidence")
    assert time.monotonic() - started < 30
    assert done.returncode == ExitCode.CRASHED_OR_HUNG
    result = results_of(out)["hang"]
    assert result["status"] == "timeout"
    assert result["failures"][0]["message"].startswith(
        "Test should complete within timeout (2s), took 2.")
    log = (out / "stress-test-hang.log").read_text(encoding="utf-8")
    assert "=== Stacks of every thread (SIGUSR1) ===" in log
    assert "=== asyncio tasks ===" in log
    # The await chain reaches the line that blocks, inside the target.
    assert "user_targets.py" in log.split("=== asyncio tasks ===")[1]
    assert "FAILURE: Possible deadlock detected" in log
    assert "Deadlock in message channel" in log


def test_sigterm_stops_the_child_and_keeps_what_was_measured(tmp_path: Path) -> None:
    scenarios = tmp_path / "slow.yaml"
    scenarios.write_text(
        "scenarios:\n"
        "  quick:\n    title: Quick\n    messages: 100\n"
        "  slowsigterm:\n    title: Slow\n    messages: 100000\n    consumer_delay_us: 1000\n"
        "    timeout_s: 300\n"
        "  never:\n    title: Never Started\n    messages: 100\n",
        encoding="utf-8")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stress", "run", "--scenarios", str(scenarios), "--out", str(out),
         "--no-evidence"],
        cwd=REPO, env=stress_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "stress-test-slowsigterm.log").exists():
        time.sleep(0.1)
    time.sleep(1.5)  # well into the slow scenario
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.CRASHED_OR_HUNG, output
    results = results_of(out)
    assert results["quick"]["status"] == "passed"
    assert results["slowsigterm"]["status"] == "interrupted"
    assert results["slowsigterm"]["metrics"]["tokens_received"] > 0
    assert results["never"]["status"] == "not_run", "a scenario not run is listed, not dropped"
    assert not _processes_with("-slowsigterm-"), "the scenario child outlived the runner"


def test_results_survive_a_killed_runner(tmp_path: Path, scenarios_file: Path) -> None:
    """A job killed outright (timeout, OOM) still leaves the finished scenarios' results."""
    scenarios = tmp_path / "two.yaml"
    scenarios.write_text(
        "scenarios:\n"
        "  done:\n    title: Done\n    messages: 100\n"
        "  slow:\n    title: Slow\n    messages: 100000\n    consumer_delay_us: 1000\n"
        "    timeout_s: 300\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stress", "run", "--scenarios", str(scenarios), "--out", str(out),
         "--no-evidence"],
        cwd=REPO, env=stress_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "stress-test-slow.log").exists():
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    results = results_of(out)
    assert results["done"]["status"] == "passed"
    assert (out / "junit.xml").is_file()


def test_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    done = run_stress("run", "nosuch", "--out", tmp_path)
    assert done.returncode == ExitCode.USAGE_ERROR
    assert done.stderr.strip().splitlines() == [
        "error: stress/scenarios.yaml: no scenario named 'nosuch'; "
        "available: short, medium, long, rapid, backpressure, concurrent, errors"]
    done = run_stress("run", "short", "--target", "nosuch.module:x", "--out", tmp_path)
    assert done.returncode == ExitCode.USAGE_ERROR
    assert "cannot import module 'nosuch.module'" in done.stderr
    # A project not installed where the kit runs: the two ways out, on the one line.
    assert len(done.stderr.strip().splitlines()) == 1
    assert "pip install -e . there" in done.stderr
    assert "--engine docker" in done.stderr
    done = run_stress("run", "short", "--scale", "0", "--out", tmp_path)
    assert done.returncode == ExitCode.USAGE_ERROR
    assert "--scale 0.0: expected a factor > 0" in done.stderr
    assert not (tmp_path / "results.json").exists()


def _processes_with(marker: str) -> list[int]:
    """Processes whose command line holds ``marker`` (children use per-scenario temp dirs)."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if any(marker in part for part in process.info["cmdline"] or ()):
            found.append(process.info["pid"])
    return found
