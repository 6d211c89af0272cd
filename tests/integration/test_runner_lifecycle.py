"""A target's lifecycle, quit and leftovers, judged through the real runner.

Each test runs ``python -m stress run`` against a target of tests.life_targets (counters only),
each breaking one rule of the target contract, on scenarios small enough to take a second.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from stress.errors import ExitCode
from tests.integration.conftest import log_of, results_of, run_stress
from tests.life_targets import SETUP_S, SLOW_QUIT_S

pytestmark = pytest.mark.slow

TARGETS = "tests.life_targets"
# Unpaced but long enough to interrupt: quit is requested after 2,000 of 20,000 tokens.
SCENARIOS = """\
scenarios:
  plain:
    title: Plain
    messages: 20000
    timeout_s: 10
  lenient:
    title: Lenient Quit
    messages: 20000
    timeout_s: 10
    thresholds: {max_quit_latency_ms: 5000}
  library:
    title: Library Task Accepted
    messages: 20000
    timeout_s: 10
    ignore_tasks: ["fake_sse.*"]
  paced:
    title: Paced
    messages: 2000
    token_delay_us: 500
    timeout_s: 10
  warm:
    title: Warm
    messages: 2000
    warmup_messages: 500
    timeout_s: 10
"""
BUDGETS = ("--setup-budget", "2", "--quit-budget", "2", "--teardown-budget", "2")


@pytest.fixture
def scenarios(tmp_path: Path) -> Path:
    path = tmp_path / "life.yaml"
    path.write_text(SCENARIOS, encoding="utf-8")
    return path


def run(out: Path, target: str, *names: str, scenarios: Path | None = None,
        extra: tuple[str, ...] = (), module: str = TARGETS) -> tuple[int, str]:
    flags: list[str | Path] = ["--scenarios", scenarios] if scenarios is not None else []
    done = run_stress("run", *names, *flags, "--target", f"{module}:{target}", "--out", out,
                      "--no-evidence", *BUDGETS, *extra, timeout=120)
    return done.returncode, done.stdout + done.stderr


def kinds(result: dict[str, Any]) -> list[str]:
    return [f["kind"] for f in result["failures"]]


def only(result: dict[str, Any], kind: str) -> dict[str, Any]:
    matching: list[dict[str, Any]] = [f for f in result["failures"] if f["kind"] == kind]
    (failure,) = matching
    return failure


@pytest.mark.parametrize("target", ["ServerLike", "ContextServer"])
def test_setup_is_outside_the_measured_window(tmp_path: Path, target: str) -> None:
    """The built-in long scenario at a small scale (10 tokens, > 100 tokens/s): a server that
    takes a second to start would miss it by far if its start-up were measured."""
    out = tmp_path / "out"
    code, output = run(out, target, "long", extra=("--scale", "0.01"))
    assert code == ExitCode.PASSED, output
    result = results_of(out)["long"]
    assert result["status"] == "passed"
    assert result["metrics"]["tokens_received"] == 10
    assert result["metrics"]["duration_s"] < SETUP_S / 2
    # Setup ran (run() raises without it) and teardown stopped the server.
    assert "server stopped" in log_of(out, "long")
    # Ten tokens end before quit can be requested: a note, not a failure.
    assert "Quit latency not judged: the stream finished before quit could be requested " \
           "under load" in result["notes"]


def test_setup_failure_and_hang_have_their_own_verdicts(tmp_path: Path,
                                                        scenarios: Path) -> None:
    out = tmp_path / "raises"
    code, output = run(out, "SetupRaises", "plain", scenarios=scenarios)
    assert code == ExitCode.CRASHED_OR_HUNG, output
    result = results_of(out)["plain"]
    assert result["status"] == "crashed"
    failure = only(result, "setup")
    assert failure["headline"] == "FAILURE: Target setup failed"
    assert failure["message"] == ("Target setup raised ConnectionRefusedError: the server did "
                                  "not come up on 127.0.0.1:1; nothing was measured")
    assert "Traceback (most recent call last)" in log_of(out, "plain")

    out = tmp_path / "hangs"
    code, output = run(out, "SetupHangs", "plain", scenarios=scenarios)
    assert code == ExitCode.CRASHED_OR_HUNG, output
    result = results_of(out)["plain"]
    assert result["status"] == "timeout"
    failure = only(result, "timeout")
    assert failure["headline"] == "FAILURE: Target setup did not finish in 2s"
    assert failure["message"].startswith("Target setup had not finished after 2.")
    assert "Possible deadlock" not in output
    assert result["metrics"]["tokens_received"] == 0
    assert result["metrics"]["duration_s"] == 0  # nothing was measured, no setup time either
    assert "=== Stacks of every thread (SIGUSR1) ===" in log_of(out, "plain")


def test_teardown_failure_and_hang_keep_the_measured_figures(tmp_path: Path,
                                                             scenarios: Path) -> None:
    out = tmp_path / "raises"
    code, output = run(out, "TeardownRaises", "plain", scenarios=scenarios)
    assert code == ExitCode.THRESHOLD_FAILED, output
    result = results_of(out)["plain"]
    assert result["status"] == "failed"
    assert kinds(result) == ["teardown"]
    assert only(result, "teardown")["headline"] == "FAILURE: Target teardown failed"
    assert "OSError: close() failed" in only(result, "teardown")["message"]
    assert result["metrics"]["tokens_received"] == 20000

    out = tmp_path / "hangs"
    code, output = run(out, "TeardownHangs", "plain", scenarios=scenarios)
    assert code == ExitCode.CRASHED_OR_HUNG, output
    result = results_of(out)["plain"]
    assert result["status"] == "timeout"
    assert kinds(result) == ["timeout"]
    assert only(result, "timeout")["headline"] == "FAILURE: Target teardown did not finish in 2s"
    assert result["metrics"]["tokens_received"] == 20000
    assert result["metrics"]["streams_completed"] == 1
    assert result["metrics"]["quit_latency_ms"] is not None


def test_a_slow_quit_fails_the_default_bound_in_an_unpaced_scenario(tmp_path: Path,
                                                                    scenarios: Path) -> None:
    out = tmp_path / "out"
    code, output = run(out, "SlowQuit", "plain", "lenient", scenarios=scenarios,
                       extra=("--quit-budget", "10"))
    assert code == ExitCode.THRESHOLD_FAILED, output
    results = results_of(out)
    plain = results["plain"]
    assert plain["status"] == "failed"
    assert kinds(plain) == ["quit_latency"]
    latency = plain["metrics"]["quit_latency_ms"]
    assert SLOW_QUIT_S * 1000 <= latency < SLOW_QUIT_S * 1000 + 1500
    failure = only(plain, "quit_latency")
    assert failure["message"] == f"Quit latency too high: {latency:.0f}ms (expected < 1000ms)"
    assert failure["headline"] == "FAILURE: Quit not responsive under load"
    (check,) = [c for c in plain["checks"] if c["metric"] == "quit_latency_ms"]
    assert (check["limit"], check["met"]) == (1000, False)
    # A scenario's own limit replaces the default.
    assert results["lenient"]["status"] == "passed", results["lenient"]["failures"]


def test_a_hanging_quit_keeps_the_measured_figures(tmp_path: Path, scenarios: Path) -> None:
    out = tmp_path / "out"
    code, output = run(out, "QuitHangs", "plain", scenarios=scenarios)
    assert code == ExitCode.CRASHED_OR_HUNG, output
    result = results_of(out)["plain"]
    assert result["status"] == "timeout"
    metrics = result["metrics"]
    # The measured run's figures, not the quit run's (which stopped at ~2,000 tokens).
    assert (metrics["messages_sent"], metrics["tokens_received"]) == (20000, 20000)
    assert metrics["streams_completed"] == 1
    assert metrics["loss_pct"] == 0
    assert metrics["throughput"] > 20000
    assert kinds(result) == ["timeout"]
    assert only(result, "timeout")["message"].startswith(
        "Quit was requested under load but run() had not returned after 2.")


def test_a_quit_that_raises_keeps_the_measured_figures(tmp_path: Path,
                                                       scenarios: Path) -> None:
    out = tmp_path / "out"
    code, output = run(out, "QuitRaises", "plain", scenarios=scenarios)
    assert code == ExitCode.CRASHED_OR_HUNG, output
    result = results_of(out)["plain"]
    assert result["status"] == "crashed"
    assert (result["metrics"]["tokens_received"], result["metrics"]["streams_completed"]) == \
        (20000, 1)
    assert kinds(result) == ["crash"]
    assert "raised RuntimeError: the stream's close handshake failed" in \
        only(result, "crash")["message"]


def test_a_leftover_task_of_the_target_fails_with_its_repr_before_cancel(
        tmp_path: Path, scenarios: Path) -> None:
    out = tmp_path / "out"
    code, output = run(out, "LeakyTask", "plain", scenarios=scenarios)
    assert code == ExitCode.THRESHOLD_FAILED, output
    result = results_of(out)["plain"]
    assert kinds(result) == ["leftover", "leftover"]  # after the measured run and after quit
    first, second = result["failures"]
    assert first["headline"] == "FAILURE: Tasks left running after the measured run"
    assert second["headline"] == "FAILURE: Quit left tasks running"
    for failure in (first, second):
        assert "started by the target" in failure["message"]
        assert re.search(r"<Task pending name='heartbeat' coro=<LeakyTask\._heartbeat\(\) "
                         r"running at .*life_targets\.py:\d+>", failure["message"])
        assert "cancelling" not in failure["message"]


def test_a_target_with_a_teardown_has_its_leftovers_judged_after_it(
        tmp_path: Path, scenarios: Path) -> None:
    out = tmp_path / "out"
    code, output = run(out, "ServerLeaksTask", "plain", scenarios=scenarios)
    assert code == ExitCode.THRESHOLD_FAILED, output
    result = results_of(out)["plain"]
    # The server task started in setup is no leftover; the heartbeats of both runs are.
    failure = only(result, "leftover")
    assert failure["headline"] == "FAILURE: Tasks left running after teardown"
    assert failure["message"].startswith("Tasks left pending after teardown: 2, started by the "
                                         "target (<Task pending name='heartbeat'")
    assert "cancelling" not in failure["message"]
    assert "server" not in failure["message"]
    assert any(note.startswith("1 task(s) still running after the measured run, left to the "
                               "target's teardown: tests.life_targets.LeakyTask._heartbeat")
               for note in result["notes"]), result["notes"]


def test_a_library_task_is_named_and_accepted_by_ignore_tasks(tmp_path: Path,
                                                              scenarios: Path) -> None:
    out = tmp_path / "out"
    code, output = run(out, "LibraryTask", "plain", "library", scenarios=scenarios)
    assert code == ExitCode.THRESHOLD_FAILED, output
    results = results_of(out)
    failure = only(results["plain"], "leftover")
    assert "started by fake_sse" in failure["message"]
    assert "_shutdown_watcher() running at" in failure["message"]
    assert 'accept it with ignore_tasks: ["fake_sse.*"]' in "\n".join(failure["diagnosis"])
    library = results["library"]
    assert library["status"] == "passed", library["failures"]
    assert "Ignored 1 task(s) left after the measured run (ignore_tasks): " \
           "fake_sse._shutdown_watcher" in library["notes"]

    # The same patterns for every scenario of a run, from the command line.
    out = tmp_path / "flag"
    code, output = run(out, "LibraryTask", "plain", scenarios=scenarios,
                       extra=("--ignore-task", "fake_sse.*"))
    assert code == ExitCode.PASSED, output
    assert results_of(out)["plain"]["scenario"]["ignore_tasks"] == ["fake_sse.*"]


def test_a_lingering_thread_is_did_not_exit_not_a_deadlock(tmp_path: Path,
                                                          scenarios: Path) -> None:
    out = tmp_path / "out"
    code, output = run(out, "LingeringThread", "plain", scenarios=scenarios)
    assert code == ExitCode.THRESHOLD_FAILED, output
    result = results_of(out)["plain"]
    assert result["status"] == "failed"
    assert kinds(result) == ["exit"]
    failure = only(result, "exit")
    assert failure["message"] == ("Target did not exit: threads lingering-worker (x2) still "
                                  "running")
    assert failure["headline"] == "FAILURE: Target did not exit"
    assert "Possible deadlock" not in output
    assert result["metrics"]["tokens_received"] == 20000


def test_a_leftover_process_is_killed_and_reported(tmp_path: Path, scenarios: Path) -> None:
    out = tmp_path / "out"
    code, output = run(out, "LeftProcess", "plain", scenarios=scenarios)
    assert code == ExitCode.THRESHOLD_FAILED, output
    result = results_of(out)["plain"]
    assert kinds(result) == ["exit", "exit"]  # one per run of the target
    pids = []
    for failure in result["failures"]:
        assert failure["headline"] == "FAILURE: Target left processes running"
        assert "(killed with their process group)" in failure["message"]
        match = re.search(r"pid (\d+) \(.*time\.sleep\(60\)\)", failure["message"])
        assert match is not None, failure["message"]
        pids.append(int(match.group(1)))
    for pid in pids:  # gone (or a zombie waiting for init to reap it)
        with contextlib.suppress(psutil.NoSuchProcess):
            assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="a child subreaper is Linux's (elsewhere a daemon is not seen)")
def test_a_daemonized_process_is_adopted_killed_and_reported(tmp_path: Path,
                                                             scenarios: Path) -> None:
    """A double-forked ``sleep 60`` in a session of its own, whose parent exited: re-parented
    to the scenario child (a subreaper) rather than to init, so it is found and killed."""
    out = tmp_path / "out"
    code, output = run(out, "Daemonizes", "plain", scenarios=scenarios)
    found = re.search(r"daemon pid (\d+)", log_of(out, "plain"))
    assert found is not None, output
    daemon = int(found.group(1))
    try:
        assert code == ExitCode.THRESHOLD_FAILED, output
        result = results_of(out)["plain"]
        assert result["metrics"]["tokens_received"] == 20000  # the run itself passed
        assert kinds(result) == ["exit"]
        failure = only(result, "exit")
        assert failure["headline"] == "FAILURE: Target left processes running"
        assert failure["message"] == (
            f"Processes left running after the measured run: pid {daemon} (sleep 60), "
            "re-parented to the kit after its parent exited (killed with their process group)")
        assert failure["diagnosis"] == [
            "A daemonized subprocess (a double fork, setsid(), or one whose parent exited "
            "first) that nothing stops: keep its pid and terminate it in teardown"]
        with pytest.raises(ProcessLookupError):  # killed and reaped, not even a zombie
            os.kill(daemon, 0)
    finally:  # never leave it behind when the kit missed it
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(daemon)
            if process.cmdline() == ["sleep", "60"]:
                process.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="a child subreaper is Linux's (elsewhere a daemon is not seen)")
def test_a_hung_target_stopped_by_the_kit_leaves_no_daemon(tmp_path: Path,
                                                          scenarios: Path) -> None:
    out = tmp_path / "out"
    code, output = run(out, "DaemonizesThenHangs", "plain", scenarios=scenarios)
    found = re.search(r"daemon pid (\d+)", log_of(out, "plain"))
    assert found is not None, output
    daemon = int(found.group(1))
    try:
        assert code == ExitCode.CRASHED_OR_HUNG, output
        assert kinds(results_of(out)["plain"]) == ["timeout"]
        assert f"=== killed 1 process(es) the stopped scenario left running: pid {daemon} " \
               "(sleep 60) ===" in log_of(out, "plain")
        # Killed; its zombie is reaped by whoever adopted it when the child died.
        with contextlib.suppress(psutil.NoSuchProcess):
            assert psutil.Process(daemon).status() == psutil.STATUS_ZOMBIE
    finally:  # never leave it behind when the kit missed it
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(daemon)
            if process.cmdline() == ["sleep", "60"]:
                process.kill()


def test_a_daemon_that_ended_and_a_waited_subprocess_are_no_leftovers(
        tmp_path: Path, scenarios: Path) -> None:
    out = tmp_path / "out"
    code, output = run(out, "DaemonEnds", "plain", scenarios=scenarios)
    assert code == ExitCode.PASSED, output
    result = results_of(out)["plain"]
    assert result["status"] == "passed"
    assert result["failures"] == []
    assert "left processes running" not in output
    assert re.search(r"daemon pid \d+", log_of(out, "plain"))


def test_a_target_that_ignores_pacing_fails(tmp_path: Path, scenarios: Path) -> None:
    out = tmp_path / "unpaced"
    code, output = run(out, "Unpaced", "paced", scenarios=scenarios)
    assert code == ExitCode.THRESHOLD_FAILED, output
    result = results_of(out)["paced"]
    assert kinds(result) == ["pacing"]
    failure = only(result, "pacing")
    assert failure["headline"] == "FAILURE: Target ignores the scenario's pacing"
    assert re.fullmatch(r"The run took 0\.\d{3}s, under half the 1\.000s its pacing takes "
                        r"\(2000 tokens, token_delay_us 500, consumer_delay_us 0, "
                        r"1 conversation\(s\)\)", failure["message"])

    out = tmp_path / "paced"
    code, output = run(out, "Plain", "paced", "warm", scenarios=scenarios)
    assert code == ExitCode.PASSED, output
    results = results_of(out)
    assert results["paced"]["metrics"]["duration_s"] >= 0.9
    # The warm-up's 500 tokens are not counted in the measured run.
    assert results["warm"]["metrics"]["tokens_received"] == 2000
