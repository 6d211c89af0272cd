"""The child's answer to a hang: every thread's stack and every asyncio task's await chain.

The parent sends SIGUSR1 to a child past its deadline before stopping it, so the scenario log
shows where a hang waits. The dump goes to a copy of stderr's file descriptor taken when the
child starts, so a target that replaces ``sys.stderr`` (Textual does) cannot break it. A
Python-level handler only runs when the main thread gets back to the interpreter; when it does
not answer (the loop thread is stuck in C code), the parent sends SIGUSR2, which faulthandler
answers from C with every thread's Python stack.

The dump's lines that the parent reads (see stress.engine.supervise):

* ``DUMP_END`` closes a dump that was written in full, ``DUMP_FAILED`` one that was not;
* ``LOOP_STATE`` says what the event loop's thread was doing: waiting in its selector, or
  blocked in a synchronous call at FILE:LINE (function).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dis
import faulthandler
import gc
import linecache
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

DUMP_SIGNAL = signal.SIGUSR1
NATIVE_DUMP_SIGNAL = signal.SIGUSR2
DUMP_HEADER = "=== Stacks of every thread (SIGUSR1) ==="
TASKS_HEADER = "=== asyncio tasks ==="
DUMP_END = "=== end of stacks ==="
DUMP_FAILED = "=== stack dump failed: "
LOOP_STATE = "Event loop thread: "
LOOP_IDLE = "waiting in its selector"
BLOCKED = "event loop blocked in a synchronous call at "

# A hang with 51,000 tasks once made a 10.8 MB log: show this many in full, count the rest.
MAX_TASKS = 100
MAX_TASK_LINES = 2_000
MAX_CHAIN = 60  # awaits followed per task
MAX_REPR = 300
HEARTBEAT_S = 0.1  # how often a running loop notes that it ran (the sampler beats it)
# A loop that ran nothing for this long is blocked, not busy. Generous against the beat: when a
# fast target's own pulses stop, the sampler's thread takes up to a second to restart its timer.
BLOCKED_AFTER_S = 2.0

# Calls without a frame of their own: a frame stopped at one of these waits in C code.
_CALL_OPS = frozenset(op for op in dis.opmap if op.startswith(("CALL", "PRECALL")))
# The loop's own frames when it has nothing to run (the C loop of uvloop shows as the runner).
_LOOP_DRIVERS = frozenset({"run_forever", "run_until_complete", "run", "_run_once", "select"})


@dataclass
class _Watched:
    loop: asyncio.AbstractEventLoop | None = None
    thread_id: int | None = None
    last_beat: float | None = None  # time.monotonic() of the loop's last heartbeat
    out_fd: int = 2  # the saved copy of stderr


_watched = _Watched()


def install_dump_handlers() -> None:
    """Save a copy of stderr and answer SIGUSR1 (Python dump) and SIGUSR2 (faulthandler)."""
    _watched.out_fd = os.dup(2)
    signal.signal(DUMP_SIGNAL, dump_stacks)
    faulthandler.register(NATIVE_DUMP_SIGNAL, file=_watched.out_fd, all_threads=True)


def watch_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The loop whose tasks a stack dump lists; call it from inside the running loop."""
    _watched.loop, _watched.thread_id = loop, threading.get_ident()
    heartbeat()


def heartbeat() -> None:
    """The watched loop ran just now: called on its thread (by the sampler, every HEARTBEAT_S
    while the loop runs), so a dump can tell a loop busy in Python code from a blocked one.

    No timer of its own: any timer in a loop's schedule costs an unpaced pipeline about 1%.
    """
    _watched.last_beat = time.monotonic()


def dump_stacks(_signum: int = 0, frame: FrameType | None = None) -> None:
    """Write every thread's stack, the loop's state and every task's await chain.

    A signal handler: an exception here would surface in the target's code, so none leaves.
    """
    fd = _watched.out_fd
    try:
        _write(fd, f"\n{DUMP_HEADER}\n")
        faulthandler.dump_traceback(file=fd, all_threads=True)
        _write(fd, f"{LOOP_STATE}{loop_state(frame)}\n")
        _write(fd, "".join(line + "\n" for line in _task_section()))
        _write(fd, f"{DUMP_END}\n")
    except Exception as exc:
        # (KeyboardInterrupt, the child's stop request, is let through.)
        with contextlib.suppress(Exception):  # nowhere left to say it; the parent will
            _write(fd, f"\n{DUMP_FAILED}{type(exc).__name__}: {exc} ===\n"
                       f"{traceback.format_exc()}")


def _write(fd: int, text: str) -> None:
    data = text.encode("utf-8", "backslashreplace")
    while data:
        data = data[os.write(fd, data):]


def loop_state(handler_frame: FrameType | None) -> str:
    """What the loop's thread is doing: waiting in its selector, or where it is stuck."""
    thread_id = _watched.thread_id
    if thread_id is None and asyncio._get_running_loop() is not None:
        thread_id = threading.get_ident()  # a loop runs here, though nobody called watch_loop
    if thread_id is None:
        return "not started"
    if thread_id == threading.get_ident():
        frame = handler_frame  # the frame the signal interrupted
    else:
        frame = sys._current_frames().get(thread_id)
    if frame is None:
        return "no Python frame"
    if is_idle(frame.f_code.co_filename, frame.f_code.co_name):
        return LOOP_IDLE
    where = f"{frame.f_code.co_filename}:{frame.f_lineno} ({frame.f_code.co_name})"
    since = None if _watched.last_beat is None else time.monotonic() - _watched.last_beat
    ran = "" if since is None else f"; its last callback ran {since:.1f}s ago"
    if _in_c_call(frame) or (since is not None and since >= BLOCKED_AFTER_S):
        return f"{BLOCKED}{where}{ran}"
    return f"event loop busy running Python code at {where}{ran}"


def is_idle(filename: str, function: str) -> bool:
    """Whether a thread's innermost frame is the event loop waiting for something to do."""
    path = Path(filename)
    if path.name == "selectors.py":
        return True
    return path.parent.name == "asyncio" and function in _LOOP_DRIVERS


def _in_c_call(frame: FrameType) -> bool:
    code = frame.f_code.co_code
    return 0 <= frame.f_lasti < len(code) and dis.opname[code[frame.f_lasti]] in _CALL_OPS


def _task_section() -> list[str]:
    # The running loop: the signal handler runs on the main thread, inside it if it runs there.
    loop = _watched.loop
    if loop is None or loop.is_closed():
        loop = asyncio._get_running_loop()
    tasks = list(asyncio.all_tasks(loop)) if loop is not None and not loop.is_closed() else []
    lines = [TASKS_HEADER, f"{len(tasks):,} pending"] if tasks else [TASKS_HEADER]
    if not tasks:
        return [*lines, "(no asyncio tasks)"]
    tasks.sort(key=_task_order)
    shown = 0
    for task in tasks:
        block = [f"\n{_short(repr(task))}", *(f"  {line}" for line in await_chain(task))]
        if shown >= MAX_TASKS or len(lines) + len(block) > MAX_TASK_LINES:
            break
        lines.extend(block)
        shown += 1
    rest = tasks[shown:]
    if rest:
        lines.append(f"\n... {len(rest):,} more tasks not shown (by coroutine: "
                     f"{_count_coroutines(rest)})")
    return lines


def _task_order(task: asyncio.Task[Any]) -> tuple[int, int, str]:
    # Tasks the target named first, then the rest in creation order (Task-1, Task-2, ...).
    name = task.get_name()
    number = name.removeprefix("Task-")
    if number.isdigit():
        return 1, int(number), name
    return 0, 0, name


def _count_coroutines(tasks: Iterable[asyncio.Task[Any]]) -> str:
    counts = collections.Counter(
        getattr(task.get_coro(), "__qualname__", type(task.get_coro()).__name__)
        for task in tasks)
    top = ", ".join(f"{n:,} {name}" for name, n in counts.most_common(5))
    others = sum(counts.values()) - sum(n for _, n in counts.most_common(5))
    return top + (f", {others:,} others" if others else "")


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """Where a task is suspended: each coroutine it awaits, outermost first.

    ``Task.print_stack`` shows only the task's own coroutine; the line that actually
    blocks is usually several awaits deeper, often behind an ``async for`` (an async
    generator's ``asend`` object) inside a library.
    """
    lines: list[str] = []
    awaitable: Any = task.get_coro()
    for _ in range(MAX_CHAIN):
        if awaitable is None:
            break
        if isinstance(awaitable, asyncio.Future):
            lines.append(f"waiting on {_short(repr(awaitable))}")
            break
        frame, kind, awaited = _step(awaitable)
        if frame is not None:
            code = frame.f_code
            lines.append(f'File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}'
                         + kind)
            source = linecache.getline(code.co_filename, frame.f_lineno).strip()
            if source:
                lines.append(f"  {source}")
        elif awaited is None:
            lines.append(f"waiting on {_short(repr(awaitable))}")
        awaitable = awaited
    else:
        lines.append(f"... (more than {MAX_CHAIN} awaits deep)")
    return lines


def _step(awaitable: Any) -> tuple[FrameType | None, str, Any]:
    """(its frame, a label, what it awaits) for one link of an await chain."""
    if hasattr(awaitable, "ag_frame"):  # an async generator, suspended inside an await
        return awaitable.ag_frame, " (async generator)", awaitable.ag_await
    if hasattr(awaitable, "cr_frame"):
        return awaitable.cr_frame, "", awaitable.cr_await
    if hasattr(awaitable, "gi_frame"):
        return awaitable.gi_frame, "", awaitable.gi_yieldfrom
    # Wrappers without a frame: an async generator's asend/athrow objects (what `async for`
    # awaits), anext()'s awaitable, a coroutine's __await__() wrapper, a future's iterator.
    # None exposes what it wraps as an attribute on every version, but gc sees it.
    inner = gc.get_referents(awaitable)
    for candidate in inner:
        if isinstance(candidate, asyncio.Future) or any(
                hasattr(candidate, a) for a in ("ag_frame", "cr_frame", "gi_frame")):
            return None, "", candidate
    for candidate in inner:  # a wrapper around a wrapper (anext() around an asend object)
        if hasattr(candidate, "send") and hasattr(candidate, "throw"):
            return None, "", candidate
    return None, "", None


def _short(text: str) -> str:
    return text if len(text) <= MAX_REPR else text[:MAX_REPR] + "...>"
