"""Child processes: the one staged stop, and the one place a child's environment is built."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger("stress.process")

# What makes the kit's console speak GitHub Actions (groups, annotations, the step summary).
# A child the kit runs for its own measurements must not write into the job's page.
CI_OUTPUT_VARIABLES = ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY")


def child_environment(*, quiet_ci: bool = False, drop: Sequence[str] = (),
                      extra: Mapping[str, str] | None = None,
                      base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: this one's, less ``drop``, plus ``extra``.

    ``quiet_ci`` removes the GitHub Actions output variables, so a child's own reports do not
    land in the job summary beside the parent's.
    """
    removed = set(drop) | (set(CI_OUTPUT_VARIABLES) if quiet_ci else set())
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in removed}
    env.update(extra or {})
    return env


# <linux/prctl.h>
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def prctl(option: int, arg: object = 0) -> bool:
    """Linux's prctl(2) with one argument: True when it succeeded; False elsewhere, where the
    C library has no such call, or when the kernel refused."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # here, not at import: most commands never call it

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, arg, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals, group: bool) -> bool:
    """Send ``sig`` to the process (or its group); False when it is already gone."""
    try:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except ProcessLookupError:
        return False
    return True


def stop_in_stages(proc: subprocess.Popen[bytes], *, exit_wait_s: float = 0.0,
                   interrupt_wait_s: float = 0.0, terminate_wait_s: float = 5.0,
                   kill_wait_s: float = 5.0, group: bool = False) -> int | None:
    """Stop a child in stages: wait for it, then SIGINT, SIGTERM, SIGKILL, each with a timeout.

    A stage with no wait is skipped (SIGKILL never is). ``group`` signals the child's whole
    process group (a child started with ``start_new_session``), so nothing it started is left.
    Returns the exit code, or None if even SIGKILL did not reap it within ``kill_wait_s``.
    """
    stages: list[tuple[signal.Signals | None, float]] = [
        (None, exit_wait_s),
        (signal.SIGINT, interrupt_wait_s),
        (signal.SIGTERM, terminate_wait_s),
        (signal.SIGKILL, kill_wait_s),
    ]
    for sig, wait_s in stages:
        if proc.poll() is not None:
            return proc.returncode
        if wait_s <= 0 and sig is not signal.SIGKILL:
            continue
        if sig is not None:
            if sig is signal.SIGKILL:
                log.warning("pid %d did not stop in time; killing it", proc.pid)
            if not _signal(proc, sig, group):
                break
        try:
            return proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
    if group and proc.poll() is not None:
        _signal(proc, signal.SIGKILL, group)  # the child is gone; anything it left is not
    return proc.poll()


@contextmanager
def on_interrupt(handler: Callable[[int, FrameType | None], object]) -> Iterator[None]:
    """SIGINT and SIGTERM go to ``handler`` while the block runs; the previous handlers after."""
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
