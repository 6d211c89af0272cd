"""Nothing outlives the run: a scenario child dies with its parent, and the temporary folders
of a runner that was killed are removed by the next run.

A runner killed with SIGKILL cannot stop its child or remove anything. The kernel can do the
first: ``PR_SET_PDEATHSIG`` makes the child receive SIGKILL when its parent dies (Linux; a
no-op elsewhere). The second falls to the next run: each runner's temporary folders carry its
pid, and a folder whose runner is gone is removed when a run starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path

from stress.process import PR_SET_PDEATHSIG, prctl

log = logging.getLogger("stress.engine.teardown")

RUNNER_PID_ENV = "STRESS_RUNNER_PID"  # set by the supervisor for the scenario child
STOP_WITH_ENV = "STRESS_STOP_WITH_PID"  # set by a launcher whose death interrupts the run
WORK_DIR_PREFIX = "stress-run-"
_WORK_DIR = re.compile(rf"^{WORK_DIR_PREFIX}(\d+)-")


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux only).

    Called first thing in the scenario child (not in a ``preexec_fn``: the runner has
    threads). A runner that died before the call, while this interpreter started, is caught by
    the check of its pid (``RUNNER_PID_ENV``), which also holds below a wrapper such as perf.
    """
    _signal_on_parent_death(sig)
    runner = os.environ.get(RUNNER_PID_ENV, "")
    if runner.isdigit() and not _alive(int(runner)):
        os._exit(128 + int(sig))


def stop_with_launcher() -> None:
    """Interrupt this run (SIGTERM, taken as Ctrl-C) when the process that launched it dies,
    even of SIGKILL, if that process named itself in ``STRESS_STOP_WITH_PID``.

    nox's ``stress`` session sets it: a killed nox must not leave its run going on alone, to
    rewrite the results folder later. A run started from a shell (or ``nohup``) does not
    set it, and outlives its parent as any command does.
    """
    launcher = os.environ.pop(STOP_WITH_ENV, "")  # this process's, not its children's
    if not launcher.isdigit():
        return
    _signal_on_parent_death(signal.SIGTERM)
    if not _alive(int(launcher)):
        raise KeyboardInterrupt  # it died while this interpreter started


def _signal_on_parent_death(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, int(sig))  # elsewhere than Linux: only the pid checks hold


def work_dir(label: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder named after this runner's pid, so the next run can reap it."""
    return tempfile.TemporaryDirectory(prefix=work_dir_prefix(label))


def work_dir_prefix(label: str) -> str:
    """The prefix of a folder the next run reaps if this runner dies (for ``mkdtemp``)."""
    return f"{WORK_DIR_PREFIX}{os.getpid()}-{label[:40]}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def reap_stale_work_dirs(root: Path | None = None) -> list[Path]:
    """Remove the temporary folders of runners that no longer exist; returns those removed."""
    base = Path(root if root is not None else tempfile.gettempdir())
    removed: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            match = _WORK_DIR.match(entry.name)
            if match is None or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
                continue
            if entry.is_symlink() or not entry.is_dir():
                continue
            try:
                if entry.stat().st_uid != os.getuid():
                    continue
            except OSError:
                continue
            shutil.rmtree(entry, ignore_errors=True)
            log.debug("removed %s, left by a runner that was killed", entry)
            removed.append(entry)
    return removed
