"""The hang dump, in process: await chains through every kind of awaitable, the size cap, what
the loop thread was doing, and a dump that fails saying so."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

import pytest

from stress.engine import stacks, supervise


async def _ticker(gate: asyncio.Event) -> AsyncIterator[int]:
    yield 1
    await gate.wait()  # the stuck await, one generator deep
    yield 2


async def _closing(gate: asyncio.Event) -> AsyncGenerator[int, None]:
    try:
        yield 1
    finally:
        await gate.wait()  # stuck in cleanup: what aclose() (an athrow object) waits for


async def _consume(gate: asyncio.Event) -> None:
    async for _ in _ticker(gate):
        pass


async def _close_it(gate: asyncio.Event) -> None:
    generator = _closing(gate)
    await anext(generator)
    await generator.aclose()


async def _anext_default(gate: asyncio.Event) -> None:
    generator = _ticker(gate)
    await anext(generator, None)
    await anext(generator, None)  # anext()'s own awaitable around the asend object


class _Awaitable:
    """An object whose __await__ is another coroutine's (a coroutine_wrapper)."""

    def __init__(self, gate: asyncio.Event) -> None:
        self.gate = gate

    def __await__(self) -> Generator[Any, None, bool]:
        return self.gate.wait().__await__()


async def _await_wrapper(gate: asyncio.Event) -> None:
    await _Awaitable(gate)


def _chains(*coroutines: Any) -> list[str]:
    async def main() -> list[str]:
        gate = asyncio.Event()
        tasks = [asyncio.create_task(make(gate)) for make in coroutines]
        await asyncio.sleep(0.01)
        chains = ["\n".join(stacks.await_chain(task)) for task in tasks]
        gate.set()
        await asyncio.gather(*tasks)
        return chains

    return asyncio.run(main())


@pytest.mark.parametrize(("coroutine", "through"), [
    (_consume, r"in _ticker \(async generator\)\n  await gate\.wait\(\)"),
    (_close_it, r"in _closing \(async generator\)\n  await gate\.wait\(\)"),
    (_anext_default, r"in _ticker \(async generator\)\n  await gate\.wait\(\)"),
    (_await_wrapper, r"in _await_wrapper\n  await _Awaitable\(gate\)"),
])
def test_the_chain_reaches_the_stuck_await(coroutine: Any, through: str) -> None:
    (chain,) = _chains(coroutine)
    assert re.search(through, chain), chain
    # Down to the event's own wait and the future it parks on.
    assert re.search(r'locks\.py", line \d+, in wait\n', chain), chain
    assert chain.endswith("waiting on <Future pending cb=[Task.task_wakeup()]>"), chain


@pytest.fixture
def dump_file(tmp_path: Any) -> Iterator[Any]:
    path = tmp_path / "dump.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    saved = stacks._watched.out_fd
    stacks._watched.out_fd = fd
    try:
        yield path
    finally:
        stacks._watched.out_fd = saved
        stacks._watched.loop = stacks._watched.thread_id = stacks._watched.last_beat = None
        os.close(fd)


def test_a_dump_of_many_tasks_is_capped_and_counts_the_rest(dump_file: Any) -> None:
    async def main() -> None:
        stacks.watch_loop(asyncio.get_running_loop())
        gate = asyncio.Event()
        tasks = [asyncio.create_task(gate.wait()) for _ in range(5_000)]
        await asyncio.sleep(0.01)
        stacks.dump_stacks()
        gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    text = dump_file.read_text(encoding="utf-8")
    assert text.count("\n<Task pending") == stacks.MAX_TASKS
    hidden = 5_001 - stacks.MAX_TASKS
    assert f"... {hidden:,} more tasks not shown (by coroutine: {hidden:,} Event.wait)" in text
    assert text.rstrip().endswith(stacks.DUMP_END)
    assert len(text) < 100_000


def test_a_dump_finds_the_running_loop_without_watch_loop(dump_file: Any) -> None:
    async def main() -> None:  # a hang before the measured run, in a target's setup say
        gate = asyncio.Event()
        task = asyncio.create_task(gate.wait(), name="in-setup")
        await asyncio.sleep(0.01)
        stacks.dump_stacks()
        gate.set()
        await task

    asyncio.run(main())
    text = dump_file.read_text(encoding="utf-8")
    assert "name='in-setup'" in text
    assert f"{stacks.LOOP_STATE}not started" not in text


def test_a_dump_that_fails_says_so(dump_file: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> list[str]:
        raise RuntimeError("no tasks today")

    monkeypatch.setattr(stacks, "_task_section", broken)
    stacks.dump_stacks()  # and raises nothing into the code it interrupted
    text = dump_file.read_text(encoding="utf-8")
    assert f"{stacks.DUMP_FAILED}RuntimeError: no tasks today ===" in text
    assert stacks.DUMP_END not in text


def test_the_loop_state_says_idle_or_where_it_is_blocked(dump_file: Any) -> None:
    states: dict[str, str] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stacks.watch_loop(loop)
        # From another thread, as the parent's signal would find it: idle in the selector...
        states["idle"] = await loop.run_in_executor(None, _state_after, 0.2)
        # ...and stuck in time.sleep (the heartbeat stops, and the frame waits in a C call).
        blocked = loop.run_in_executor(None, _state_after, 0.7)
        time.sleep(1.0)  # noqa: ASYNC251 - the blocked loop under test
        states["blocked"] = await blocked

    asyncio.run(main())
    assert states["idle"] == stacks.LOOP_IDLE
    assert re.fullmatch(rf"{stacks.BLOCKED}{re.escape(__file__)}:\d+ \(main\); "
                        r"its last callback ran \d\.\ds ago", states["blocked"]), states


def _state_after(delay_s: float) -> str:
    time.sleep(delay_s)
    return stacks.loop_state(None)


NATIVE_DUMP = """\
Thread 0x00007f9fb26366c0 (most recent call first):
  File "/usr/lib/python3.11/threading.py", line 331 in wait
  File "/kit/stress/engine/sampler.py", line 102 in _loop

Current thread 0x00007f9fb47c5b80 (most recent call first):
  File "/app/target.py", line 115 in run
  File "/kit/stress/engine/child.py", line 54 in _measure
  File "/usr/lib/python3.11/asyncio/events.py", line 80 in _run
"""


def test_the_parent_reads_the_blocked_frame_from_faulthandlers_dump() -> None:
    # The main thread (the loop's) is listed last; its innermost frame is the blocked call.
    assert supervise._blocked_in_native_dump(NATIVE_DUMP) == (
        f"{stacks.BLOCKED}/app/target.py:115 (run); it did not answer a Python signal handler")
    idle = NATIVE_DUMP.replace('"/app/target.py", line 115 in run',
                               '"/usr/lib/python3.11/selectors.py", line 468 in select')
    assert supervise._blocked_in_native_dump(idle) is None


def test_the_parent_takes_the_loop_state_only_when_it_is_a_finding() -> None:
    dump = f"{stacks.DUMP_HEADER}\n{stacks.LOOP_STATE}%s\n{stacks.DUMP_END}\n"
    assert supervise._blocked_loop(dump % stacks.LOOP_IDLE) is None
    blocked = f"{stacks.BLOCKED}/app/x.py:3 (f); its last callback ran 2.0s ago"
    assert supervise._blocked_loop(dump % blocked) == blocked


def test_the_parent_waits_longer_for_a_dump_still_being_written(tmp_path: Any) -> None:
    log = tmp_path / "log"
    log.write_text("before\n", encoding="utf-8")
    offset = log.stat().st_size

    def write_slowly() -> None:
        with log.open("a", encoding="utf-8") as f:
            f.write(stacks.DUMP_HEADER + "\n")
            for _ in range(8):
                f.flush()
                time.sleep(0.1)
                f.write("a line\n")
            f.write(stacks.DUMP_END + "\n")

    writer = threading.Thread(target=write_slowly)
    writer.start()
    text = supervise._wait_for_dump(log, offset, 0.3)
    writer.join()
    assert text.startswith(stacks.DUMP_HEADER)
    assert text.rstrip().endswith(stacks.DUMP_END)
