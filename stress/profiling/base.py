"""What every profiler shares: the outcome type and the protocol the runner drives."""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger("stress.profiling")

MIB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ProfileOutcome:
    """What one profiled run left behind, for the runner to attach to the scenario's Result."""

    kind: str  # "memory" | "cpu"
    artifacts: dict[str, str]  # role -> file name relative to the results folder
    notes: tuple[str, ...] = ()  # one line each, e.g. why a profiler could not attach
    leaked_mb: float | None = None  # memory: bytes still allocated at exit, in MB
    leak_report: str | None = None  # memory: plain text for the scenario log and failures
    # The profiler's own output (py-spy's messages, memray's render errors), for the scenario
    # log: the reason a profile is missing is there.
    tool_output: str = ""


# The scenario child waits, before its measured run, until the file this variable names exists:
# a profiler that attaches from outside (py-spy) creates it once it samples, so a quick run is
# not over before the profiler is there.
READY_ENV = "STRESS_PROFILER_READY"
READY_WAIT_S = 15.0


def wait_until_attached(timeout_s: float = READY_WAIT_S) -> None:
    """In the child: wait for the profiler named by ``READY_ENV`` (none named: return at once)."""
    path = os.environ.get(READY_ENV)
    if not path:
        return
    import time

    deadline = time.monotonic() + timeout_s
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


class Profiler(Protocol):
    """One profiled child run: ``wrap`` before spawn, ``attach`` after, ``finish`` after exit."""

    kind: str

    def wrap(self, argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]: ...
    def attach(self, pid: int) -> None: ...
    def finish(self, *, timed_out: bool) -> ProfileOutcome: ...


def finish_safely(kind: str, tool: str, notes: list[str],
                  finish: Callable[[], ProfileOutcome]) -> ProfileOutcome:
    """Run a profiler's finish step; any error becomes a note, as the runner's contract says.

    A profiler that cannot write its artifacts must not turn a measured scenario into a crash.
    """
    try:
        return finish()
    except Exception as exc:
        log.exception("%s could not finish its profile", tool)
        return ProfileOutcome(kind=kind, artifacts={}, notes=(
            *notes, f"{tool} could not finish its profile: {type(exc).__name__}: {exc}"))


_LIB_PREFIX = re.compile(r"^.*?/lib/python\d+\.\d+t?/(?:site-packages/|dist-packages/)?")


@functools.lru_cache(maxsize=4096)
def short_path(path: str) -> str:
    """A source path as its import name reads ("asyncio/events.py", "stress/engine/child.py").

    Absolute paths make stacks unreadable and differ between machines. The file's package
    folders (those with an ``__init__.py``) are kept and everything above them dropped;
    for a file that is not on this machine, any ``lib/pythonX.Y/`` (and its site-packages)
    prefix is dropped instead.
    """
    if not os.path.isabs(path):
        return path  # "<frozen runpy>", "<string>", already relative
    file = Path(path)
    if not file.is_file():
        return _LIB_PREFIX.sub("", path)
    root = file.parent
    while (root / "__init__.py").is_file() and root.parent != root:
        root = root.parent
    return file.relative_to(root).as_posix()


def first_line(text: str, limit: int = 300) -> str:
    """The first meaningful line of a tool's error output, for a one-line note."""
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("py-spy>"):
            return line[:limit]
    return "(no output)"


def error_line(text: str, limit: int = 300) -> str:
    """The line of a tool's error output that says what went wrong: a Python traceback's last
    line (the exception), else the first meaningful line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        return lines[-1][:limit]
    return first_line(text, limit)
