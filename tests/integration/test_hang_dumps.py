"""Hang dumps that reach the stuck line, through the real runner, on real libraries.

Each test runs ``python -m stress run`` against a target in tests.targets.hangs that hangs
the way real systems do, on one scenario with a 2 s timeout, and reads what the log and the
timeout failure say.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from stress.engine import stacks
from stress.errors import ExitCode
from tests.integration.conftest import log_of, results_of
from tests.integration.test_runner_faults import failure_of, line_of, run, task_dumps
from tests.targets import hangs

pytestmark = pytest.mark.slow

TARGETS = "tests.targets.hangs:"
SCENARIOS = "scenarios:\n  hang:\n    title: Hang Check\n    messages: 100\n    timeout_s: 2\n"
SITE = r"site-packages/"


@pytest.fixture
def scenarios(tmp_path: Path) -> Path:
    path = tmp_path / "hang.yaml"
    path.write_text(SCENARIOS, encoding="utf-8")
    return path


def hang(tmp_path: Path, scenarios: Path, target: str) -> tuple[dict[str, Any], str]:
    out = tmp_path / "out"
    code, output = run(scenarios, out, TARGETS + target, "hang")
    assert code == ExitCode.CRASHED_OR_HUNG, output
    result = results_of(out)["hang"]
    assert result["status"] == "timeout", result
    return result, log_of(out, "hang")


def frame(path: str, function: str) -> str:
    """A dump line naming a frame in ``path`` (a library file, under site-packages)."""
    return rf'File "[^"]*{SITE}{re.escape(path)}", line \d+, in {function}(?!\w)'


def test_a_hang_behind_async_for_over_httpx_names_the_stuck_await_in_httpcore(
        tmp_path: Path, scenarios: Path) -> None:
    result, log = hang(tmp_path, scenarios, "sse_stall")
    reader = task_dumps(log)["sse-reader"]
    # The target's own `async for`, then each async generator of httpx and httpcore down to
    # the read that never returns, and the event it waits on.
    assert "async for line in response.aiter_lines():" in reader
    for path, function in [("httpx/_models.py", "aiter_lines"),
                           ("httpx/_transports/default.py", "__aiter__"),
                           ("httpcore/_async/http11.py", "_receive_response_body"),
                           ("httpcore/_async/http11.py", "_receive_event"),
                           ("httpcore/_backends/anyio.py", "read"),
                           ("anyio/_backends/_asyncio.py", "receive")]:
        assert re.search(frame(path, function), reader), (path, function, reader)
    assert re.search(r"in aiter_lines \(async generator\)", reader)
    assert reader.rstrip().endswith("waiting on <Future pending cb=[Task.task_wakeup()]>")
    # The server's side stops in the target's event generator, behind Starlette's iterator.
    assert re.search(r"async for data in self\.body_iterator:\n\s+File \"[^\"]*hangs\.py\", "
                     r"line \d+, in events \(async generator\)\n\s+await stalled\.wait\(\)",
                     log), log
    assert f"{stacks.LOOP_STATE}{stacks.LOOP_IDLE}" in log
    # An idle loop is no finding: the diagnosis stays the seed's.
    failure = failure_of(result, "timeout")
    assert not failure["diagnosis"][0].startswith("event loop")


def test_a_hang_in_async_for_over_a_websocket_names_the_stuck_await(
        tmp_path: Path, scenarios: Path) -> None:
    _, log = hang(tmp_path, scenarios, "ws_stall")
    reader = task_dumps(log)["ws-reader"]
    assert "async for _message in ws:" in reader
    assert re.search(frame("websockets/asyncio/connection.py", r"__aiter__ \(async generator\)"),
                     reader), reader
    assert re.search(frame("websockets/asyncio/connection.py", "recv"), reader), reader
    assert re.search(frame("websockets/asyncio/messages.py", "get"), reader), reader


@pytest.mark.parametrize(("target", "source", "function"), [
    ("sleep_in_loop", "time.sleep(100)", hangs.SleepInLoop.run),
    ("lock_reacquired", "lock.acquire()  # the bug", hangs.LockReacquired.run),
])
def test_a_synchronous_call_in_a_coroutine_is_named_first_in_the_diagnosis(
        tmp_path: Path, scenarios: Path, target: str, source: str, function: Any) -> None:
    result, log = hang(tmp_path, scenarios, target)
    blocked = f"{stacks.BLOCKED}{hangs.__file__}:{line_of(source, function)} (run)"
    first = failure_of(result, "timeout")["diagnosis"][0]
    assert first.startswith(blocked + "; its last callback ran "), first
    assert f"- {first}\n" in log
    assert f"{stacks.LOOP_STATE}{first}" in log


def test_a_native_deadlock_gets_faulthandlers_dump_and_a_note(tmp_path: Path,
                                                              scenarios: Path) -> None:
    result, log = hang(tmp_path, scenarios, "native_deadlock")
    assert "the Python stack dump (SIGUSR1) went unanswered within 1.5s" in log
    assert stacks.DUMP_HEADER not in log  # the Python handler never ran
    native = log.split("asking faulthandler (SIGUSR2) ===", 1)[1].split(
        "end of faulthandler's stacks (SIGUSR2)", 1)[0]
    line = line_of("libc.pthread_mutex_lock(mutex)  # the bug", hangs.NativeDeadlock.run)
    assert re.search(rf'hangs\.py", line {line} in run\n', native), native
    assert re.search(r'sampler\.py", line \d+ in _loop', native)  # every thread
    first = failure_of(result, "timeout")["diagnosis"][0]
    assert first == (f"{stacks.BLOCKED}{hangs.__file__}:{line} (run); "
                     "it did not answer a Python signal handler")


def test_a_replaced_sys_stderr_does_not_lose_the_dump(tmp_path: Path, scenarios: Path) -> None:
    _, log = hang(tmp_path, scenarios, "replaced_stderr")
    assert stacks.DUMP_HEADER in log
    assert stacks.DUMP_END in log
    assert stacks.DUMP_FAILED not in log
    assert "went unanswered" not in log
    assert re.search(r"in _hang_until\n\s+await quit\.wait\(\)", log)


def test_a_dump_of_twenty_thousand_tasks_is_capped(tmp_path: Path, scenarios: Path) -> None:
    _, log = hang(tmp_path, scenarios, "many_tasks")
    assert f"{hangs.MANY_TASKS + 1:,} pending" in log  # and the kit's own (_measure)
    hidden = hangs.MANY_TASKS + 1 - stacks.MAX_TASKS
    assert re.search(rf"\.\.\. {hidden:,} more tasks not shown \(by coroutine: "
                     rf"\d[\d,]* Event\.wait", log), log
    assert len(task_dumps(log)) == stacks.MAX_TASKS
    assert stacks.DUMP_END in log
    assert len(log.encode()) < 200_000
