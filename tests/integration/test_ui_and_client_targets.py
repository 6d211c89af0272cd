"""A Textual chat UI run headless, and the openai client's AsyncStream against a local
OpenAI-compatible endpoint, through `python -m stress run`.

Each correct target passes the built-in scenarios at --scale 0.01; each broken variant gets
the verdict that names its bug, and a hang's dump names the await it is stuck on: inside a
Textual worker while Textual holds sys.stderr, and behind the openai client's `async for`
down to the socket read in httpcore.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual")
pytest.importorskip("openai")

from stress.config.scenario import Scenario
from stress.engine import stacks
from stress.engine.harness import harness_for
from stress.errors import ExitCode
from tests.integration.conftest import log_of, run_stress
from tests.integration.test_runner_faults import failure_of, line_of
from tests.targets import NETWORK_STREAM_SCENARIOS, openai_chat, textual_chat

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCALE = "0.01"
BUILTIN = ("short", "medium", "long", "rapid", "backpressure", "concurrent", "errors")
# The openai target's per-target limit for errors at this scale (the file says why).
OPENAI_SCENARIOS = REPO / "tests" / "targets" / "openai_scenarios.yaml"
HANG = "scenarios:\n  hang:\n    title: Hang Check\n    messages: 100\n    timeout_s: 2\n"
SITE = r"site-packages/"


def run(out: Path, target: str, *args: str | Path) -> tuple[int, str, dict[str, Any]]:
    done = run_stress("run", *args, "--target", target, "--out", out, "--no-evidence",
                      timeout=120)
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    results = {entry["name"]: entry for entry in document["scenarios"]}
    return done.returncode, done.stdout + done.stderr, results


def scenarios_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenarios.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def assert_all_passed(results: dict[str, Any], names: tuple[str, ...], output: str) -> None:
    assert {name: r["status"] for name, r in results.items()} == dict.fromkeys(
        names, "passed"), output
    for name in names:
        metrics = results[name]["metrics"]
        assert metrics["verified"], name
        assert (metrics["lost"], metrics["duplicated"], metrics["reordered"]) == (0, 0, 0)
        assert metrics["quit_latency_ms"] < 1000, name
    if "errors" in names:
        assert results["errors"]["metrics"]["errors"] == 10  # the ten injected, reported


def frame(path: str, function: str) -> str:
    """A dump line naming a frame in ``path`` (a library file, under site-packages)."""
    return rf'File "[^"]*{SITE}{path}", line \d+, in {function}(?!\w)'


def task_block(log: str, needle: str) -> str:
    """The one task of the dump whose await chain contains ``needle``."""
    section = log.split(stacks.TASKS_HEADER, 1)[1].split(stacks.DUMP_END, 1)[0]
    (block,) = [b for b in section.split("\n<Task ")[1:] if needle in b]
    return block


def hang(tmp_path: Path, target: str) -> tuple[dict[str, Any], str]:
    out = tmp_path / "out"
    code, output, results = run(out, target, "--scenarios", scenarios_file(tmp_path, HANG))
    assert code == ExitCode.CRASHED_OR_HUNG, output
    assert results["hang"]["status"] == "timeout", results
    return results["hang"], log_of(out, "hang")


# Textual.


def test_textual_replaces_sys_stderr_while_the_chat_app_runs() -> None:
    """What the hang test below relies on: inside the app, sys.stderr is Textual's."""
    async def stderr_inside() -> object:
        target = textual_chat.textual_chat()
        params, _ = harness_for(Scenario(name="probe", title="Probe", messages=1))
        await target.setup(params)
        try:
            return sys.stderr
        finally:
            await target.teardown()

    before = sys.stderr
    inside = asyncio.run(stderr_inside())
    assert inside is not before
    assert type(inside).__module__.startswith("textual")
    assert sys.stderr is before


def test_a_textual_chat_passes_the_builtin_scenarios(tmp_path: Path) -> None:
    code, output, results = run(tmp_path / "out", "tests.targets.textual_chat:textual_chat",
                                "--scale", SCALE)
    assert code == ExitCode.PASSED, output
    assert_all_passed(results, BUILTIN, output)


def test_a_hang_in_a_textual_worker_is_dumped_though_textual_holds_stderr(
        tmp_path: Path) -> None:
    result, log = hang(tmp_path, "tests.targets.textual_chat:confirm_stall")
    assert stacks.DUMP_HEADER in log
    assert stacks.DUMP_END in log
    assert stacks.DUMP_FAILED not in log
    assert "went unanswered" not in log
    # The worker, from Textual's worker machinery down to the modal nobody answers.
    stuck = "await self.app.push_screen_wait(Confirm())"
    worker = task_block(log, stuck)
    assert worker.startswith("pending name='Task-")
    assert "coro=<Worker._run()" in worker
    line = line_of(stuck, textual_chat.TextualChat._stream)
    assert re.search(frame("textual/worker.py", "_run"), worker), worker
    assert re.search(r'textual_chat\.py", line \d+, in _model\n', worker), worker
    assert re.search(rf'textual_chat\.py", line {line}, in _stream\n\s+{re.escape(stuck)}',
                     worker), worker
    assert re.search(frame("textual/app.py", "push_screen_wait") + r"\n\s+return await "
                     r"asyncio\.shield\(", worker), worker
    # The run that waits for the stream, and the app's own tasks, idle.
    assert re.search(r'textual_chat\.py", line \d+, in run\n\s+await asyncio\.wait\(', log)
    assert "name=\"message pump Transcript(id='transcript'" in log
    assert failure_of(result, "timeout")["headline"] == "FAILURE: Possible deadlock detected"


# openai.


@pytest.mark.parametrize("names", [BUILTIN[:4], BUILTIN[4:]], ids=["first", "second"])
def test_an_openai_stream_passes_the_builtin_scenarios(tmp_path: Path,
                                                       names: tuple[str, ...]) -> None:
    code, output, results = run(tmp_path / "out", "tests.targets.openai_chat:openai_chat",
                                *names, "--scenarios", OPENAI_SCENARIOS, "--scale", SCALE)
    assert code == ExitCode.PASSED, output
    assert_all_passed(results, names, output)


@pytest.mark.parametrize(("target", "headline", "count", "kind"), [
    ("duplicate", "FAILURE: Tokens delivered more than once", "duplicated", "duplicated"),
    ("lost", "FAILURE: Significant message loss under error injection", "lost", "lost"),
])
def test_a_server_fault_behind_the_openai_client_is_diagnosed(
        tmp_path: Path, target: str, headline: str, count: str, kind: str) -> None:
    scenarios = scenarios_file(tmp_path, NETWORK_STREAM_SCENARIOS.format(extra=""))
    code, output, results = run(tmp_path / "out", f"tests.targets.openai_chat:{target}",
                                "--scenarios", scenarios)
    assert code == ExitCode.THRESHOLD_FAILED, output
    result = results["stream"]
    assert [f["headline"] for f in result["failures"]] == [headline], output
    metrics = result["metrics"]
    assert metrics["verified"]
    other = "lost" if count == "duplicated" else "duplicated"
    assert metrics[count] > 0
    assert metrics[other] == 0
    assert f": {kind} (expected '" in metrics["first_divergence"]
    assert metrics["errors"] == 1  # the injected failure, an error event the client raised


def test_a_stall_behind_the_openai_clients_async_for_names_the_stuck_read(
        tmp_path: Path) -> None:
    result, log = hang(tmp_path, "tests.targets.openai_chat:stall")
    reader = task_block(log, "name='openai-reader-0'")
    line = line_of("async for chunk in stream:", openai_chat.OpenAIChat._read)
    assert re.search(rf'openai_chat\.py", line {line}, in _read\n\s+async for chunk in '
                     r"stream:", reader), reader
    # openai's AsyncStream, its SSE decoder, httpx's byte stream and httpcore's HTTP/1.1
    # read, down to the socket read that never returns.
    chain = [("openai/_streaming.py", r"__aiter__ \(async generator\)"),
             ("openai/_streaming.py", r"__stream__ \(async generator\)"),
             ("openai/_streaming.py", r"_iter_events \(async generator\)"),
             ("httpx2?/_models.py", r"aiter_bytes \(async generator\)"),
             ("httpx2?/_models.py", r"aiter_raw \(async generator\)"),
             ("httpcore2?/_async/http11.py", r"_receive_response_body \(async generator\)"),
             ("httpcore2?/_async/http11.py", "_receive_event"),
             ("httpcore2?/_backends/anyio.py", "read"),
             ("anyio/_backends/_asyncio.py", "receive")]
    at = 0
    for path, function in chain:
        found = re.compile(frame(path, function)).search(reader, at)
        assert found, (path, function, reader)
        at = found.end()  # in this order, the outermost first
    assert reader.rstrip().endswith("waiting on <Future pending cb=[Task.task_wakeup()]>")
    # The server's side stops in the endpoint's chunk generator, behind Starlette's iterator.
    server = line_of("await self.stalled.wait()", openai_chat.OpenAIChat._chunks)
    assert re.search(rf'async for chunk in self\.body_iterator:\n\s+File "[^"]*openai_chat'
                     rf'\.py", line {server}, in _chunks \(async generator\)\n\s+await '
                     r"self\.stalled\.wait\(\)", log), log
    assert failure_of(result, "timeout")["headline"] == "FAILURE: Possible deadlock detected"
