"""The child's answer to SIGUSR1: every thread's stack and every asyncio task's await chain.

The parent sends SIGUSR1 to a child past its deadline before stopping it, so the scenario log
shows where a hang waits.
"""

from __future__ import annotations

import asyncio
import faulthandler
import sys
from types import FrameType
from typing import Any

# The running loop, for the signal handler (which gets no context of its own).
_loop_for_dumps: list[asyncio.AbstractEventLoop] = []


def watch_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The loop whose tasks a stack dump lists."""
    _loop_for_dumps[:] = [loop]


def dump_stacks(_signum: int = 0, _frame: FrameType | None = None) -> None:
    """Write every thread's stack and every asyncio task's stack to stderr."""
    out = sys.stderr
    out.write("\n=== Stacks of every thread (SIGUSR1) ===\n")
    out.flush()
    faulthandler.dump_traceback(file=out, all_threads=True)
    out.write("\n=== asyncio tasks ===\n")
    loop = _loop_for_dumps[0] if _loop_for_dumps else None
    tasks = asyncio.all_tasks(loop) if loop is not None and not loop.is_closed() else set()
    if not tasks:
        out.write("(no asyncio tasks)\n")
    for task in sorted(tasks, key=lambda t: t.get_name()):
        out.write(f"\n{task!r}\n")
        for line in await_chain(task):
            out.write(f"  {line}\n")
    out.write("=== end of stacks ===\n")
    out.flush()


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """Where a task is suspended: each coroutine it awaits, outermost first.

    ``Task.print_stack`` shows only the task's own coroutine; the line that actually
    blocks is usually several awaits deeper.
    """
    lines: list[str] = []
    awaitable: Any = task.get_coro()
    while awaitable is not None and len(lines) < 100:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            if isinstance(awaitable, asyncio.Future):
                lines.append(f"waiting on {awaitable!r}")
            break
        code = frame.f_code
        lines.append(f'File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}')
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return lines
