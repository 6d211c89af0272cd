"""The sweep of leftover processes, on real processes, in a fresh interpreter that is a child
subreaper as the scenario child is (this test process must not adopt anyone's orphans)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="a child subreaper is Linux's")

# Every way a target leaves a process: a Popen it holds, one it dropped while running, an
# asyncio subprocess (the default loop and uvloop, which spawns without Popen), and a daemon
# (a double fork into a session of its own); and a daemon that already ended, a zombie of the
# subreaper's.
SCRIPT = """\
import asyncio, json, os, subprocess, sys, time
import psutil, uvloop
from stress.engine.leftovers import become_subreaper, is_subreaper, sweep_processes
from tests.life_targets import daemonize

assert not is_subreaper()
assert become_subreaper() and is_subreaper()
# Not on this interpreter's pipes: a failed run is not held up 60 s reading its output.
quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
held = subprocess.Popen(["sleep", "60"], **quiet)
dropped = subprocess.Popen(["sleep", "60"], **quiet).pid
orphan = daemonize("60")
ended = daemonize("0.5")  # ends after its parent exited (which would reap it otherwise)
while (zombie := psutil.Process(ended).status() == psutil.STATUS_ZOMBIE) is False:
    time.sleep(0.01)
loops = [asyncio.new_event_loop(), uvloop.new_event_loop()]
spawned = [loop.run_until_complete(asyncio.create_subprocess_exec("sleep", "60", **quiet)).pid
           for loop in loops]
swept = sweep_processes(())
try:
    os.kill(ended, 0)
    reaped = False
except ProcessLookupError:
    reaped = True
print(json.dumps({"children": swept.children, "orphans": swept.orphans, "reaped": reaped,
                  "zombie": zombie,
                  "held": held.pid, "dropped": dropped, "orphan": orphan, "ended": ended,
                  "spawned": spawned, "again": sweep_processes(()).children}))
"""


def test_each_leftover_is_killed_and_an_adopted_daemon_is_named_as_one() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["orphans"] == [f"pid {seen['orphan']} (sleep 60)"]
    assert sorted(seen["children"]) == sorted(
        f"pid {pid} (sleep 60)" for pid in (seen["held"], seen["dropped"], *seen["spawned"]))
    assert seen["zombie"]  # the daemon that ended was the subreaper's zombie...
    assert seen["reaped"]  # ...reaped by the sweep, and not reported
    assert seen["again"] == []  # the killed children are zombies now: not running
    with pytest.raises(ProcessLookupError):  # the daemon: killed and reaped by the sweep
        os.kill(seen["orphan"], 0)
    for pid in (seen["held"], seen["dropped"], *seen["spawned"]):
        # The target's to reap: gone, or a zombie until whoever adopted the ended
        # interpreter's children reaps it.
        with contextlib.suppress(psutil.NoSuchProcess):
            assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
