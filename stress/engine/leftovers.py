"""What a target leaves running: asyncio tasks, threads and child processes, found and judged.

The child takes a :class:`Leftovers` record at each checkpoint (after the measured run, after
quit under load, after teardown, at exit). Each task is recorded as it was *before* the kit
cancelled it and is attributed by its coroutine's module: the target's own code, or a library
named by its top-level package (``sse_starlette``). A scenario's ``ignore_tasks`` patterns
(``fnmatch`` on the coroutine's ``module.qualname``) accept known library tasks, which are
noted rather than failed. Child processes are killed with their whole process group.

A process the target daemonized (a double fork, or a subprocess whose parent exited first)
would be re-parented to init and outlive the scenario unseen. On Linux the scenario child is
therefore a child subreaper (:func:`become_subreaper`): such orphans are re-parented to it, so
each checkpoint finds them among its children, names them as re-parented, kills them with their
group (they may have left it with setsid()) and reaps them. Elsewhere only the processes still
below the scenario child are seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fnmatch
import gc
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import psutil

from stress.process import PR_GET_CHILD_SUBREAPER, PR_SET_CHILD_SUBREAPER, prctl
from stress.results import Failure

Checkpoint = Literal["run", "quit", "teardown", "exit"]
CHECKPOINTS: tuple[Checkpoint, ...] = ("run", "quit", "teardown", "exit")
_AFTER = {"run": "after the measured run", "quit": "after quit under load",
          "teardown": "after teardown", "exit": "at exit"}
THREAD_JOIN_S = 0.5  # how long non-daemon threads get to end before they count as left
MAX_SHOWN = 3  # tasks/threads/processes named in a failure message
CANCEL_WAIT_S = 0.5  # for cancelled leftover tasks to unwind
GRACE_S = 0.25  # for tasks that are already ending to end before they count as left
SWEEP_ROUNDS = 3  # a process forked while a sweep kills its parent is caught by the next round
REAP_WAIT_S = 1.0  # for a killed orphan to die, so it is reaped rather than left a zombie


@dataclass(frozen=True, kw_only=True)
class LeftTask:
    repr: str  # as it was before the kit cancelled it
    name: str  # the coroutine's module.qualname, what ignore_tasks patterns match
    origin: str  # "the target" or the library's top-level package
    ignored: bool = False


@dataclass(frozen=True, kw_only=True)
class Leftovers:
    """What was still alive at one checkpoint."""

    checkpoint: Checkpoint
    tasks: tuple[LeftTask, ...] = ()
    threads: tuple[str, ...] = ()  # names of non-daemon threads still running
    processes: tuple[str, ...] = ()  # "pid 123 (sleep 60)", killed with their group
    # Processes whose parent had exited, re-parented to the scenario child (the subreaper):
    # a double fork, a daemon. Killed with their group too.
    orphans: tuple[str, ...] = ()
    # False: only observed (a target with a teardown owns what runs until its teardown, such
    # as a server's handlers still ending); noted, nothing cancelled or killed.
    judged: bool = True

    @property
    def empty(self) -> bool:
        return not (self.tasks or self.threads or self.processes or self.orphans)

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint,
                "tasks": [{"repr": t.repr, "name": t.name, "origin": t.origin,
                           "ignored": t.ignored} for t in self.tasks],
                "threads": list(self.threads), "processes": list(self.processes),
                "orphans": list(self.orphans), "judged": self.judged}

    @classmethod
    def from_dict(cls, data: object) -> Leftovers:
        from stress.engine.protocol import ProtocolError  # protocol imports this module

        where = "figures.leftovers"
        if not isinstance(data, dict):
            raise ProtocolError(f"{where}: expected an object, got {type(data).__name__}")
        checkpoint = data.get("checkpoint")
        if checkpoint not in CHECKPOINTS:
            raise ProtocolError(f"{where}: 'checkpoint' is {checkpoint!r}")
        tasks = []
        for task in _list_of(data, "tasks", dict, where):
            fields = {key: task.get(key) for key in ("repr", "name", "origin")}
            if not all(isinstance(v, str) for v in fields.values()) \
                    or not isinstance(task.get("ignored"), bool):
                raise ProtocolError(f"{where}: a task is malformed: {task!r}")
            tasks.append(LeftTask(**fields, ignored=task["ignored"]))
        judged = data.get("judged")
        if not isinstance(judged, bool):
            raise ProtocolError(f"{where}: 'judged' is {judged!r}, expected a bool")
        return cls(checkpoint=checkpoint, tasks=tuple(tasks),
                   threads=tuple(_list_of(data, "threads", str, where)),
                   processes=tuple(_list_of(data, "processes", str, where)),
                   orphans=tuple(_list_of(data, "orphans", str, where)), judged=judged)


def _list_of(data: dict[str, Any], key: str, kind: type, where: str) -> list[Any]:
    from stress.engine.protocol import ProtocolError

    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise ProtocolError(f"{where}: {key!r} must be a list of {kind.__name__}")
    return value


# Taking a checkpoint (in the child).

# Coroutines that only wrap another (anyio names such a task after the function it runs).
_WRAPPERS = ("anyio.",)


def coroutine_name(task: asyncio.Task[Any]) -> str:
    """``module.qualname`` of the task's coroutine (its first frame's module)."""
    coro = task.get_coro()
    frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
    if frame is None:  # e.g. an async generator's aclose() scheduled by the loop
        return f"asyncio.{getattr(coro, '__qualname__', type(coro).__name__)}"
    name = f"{frame.f_globals.get('__name__', '?')}.{getattr(coro, '__qualname__', '?')}"
    if name.startswith(_WRAPPERS) and "." in task.get_name():
        return task.get_name()
    return name


def attribute(name: str, target_module: str) -> str:
    """Who started a task: the target's package, or a library named by its top package."""
    top = name.split(".", 1)[0]
    return "the target" if top == target_module.split(".", 1)[0] else top


async def take_tasks(*, exclude: Collection[asyncio.Task[Any]], target_module: str,
                     ignore: Iterable[str], grace_s: float = GRACE_S,
                     cancel: bool = True) -> tuple[LeftTask, ...]:
    """Every task but ``exclude`` still pending after ``grace_s``, recorded, then cancelled
    unless ignored (in that order: a repr taken after cancel() says "cancelling" and hides
    what the task was doing). The grace lets what is already ending end (a server's handler
    of a stream the client just closed). An ignored library task is left alone: the library
    may rely on it in the next run."""
    patterns = tuple(ignore)
    current = asyncio.current_task()

    def pending() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks()
                if t is not current and t not in exclude and not t.done()]

    def ignored_name(task: asyncio.Task[Any]) -> bool:
        return any(fnmatch.fnmatchcase(coroutine_name(task), p) for p in patterns)

    # Waiting may start more (an async generator's aclose() when it is collected): wait for
    # those too, within the same grace.
    deadline = time.monotonic() + grace_s
    while (waiting := [t for t in pending() if not ignored_name(t)]) \
            and (left_s := deadline - time.monotonic()) > 0:
        await asyncio.wait(waiting, timeout=left_s)
    records = []
    cancelled = []
    for task in sorted(pending(), key=lambda t: t.get_name()):
        name = coroutine_name(task)
        ignored = any(fnmatch.fnmatchcase(name, p) for p in patterns)
        records.append(LeftTask(repr=repr(task), name=name,
                                origin=attribute(name, target_module), ignored=ignored))
        if cancel and not ignored:
            cancelled.append(task)
    for task in cancelled:
        task.cancel()
    if cancelled:  # let them unwind, so the next checkpoint does not see them again
        await asyncio.wait(cancelled, timeout=CANCEL_WAIT_S)
    return tuple(records)


def live_threads(known: Collection[int], join_s: float = THREAD_JOIN_S) -> tuple[str, ...]:
    """Non-daemon threads other than ``known`` (idents) still running after ``join_s``."""
    deadline = time.monotonic() + join_s
    left = []
    for thread in threading.enumerate():
        if thread.daemon or thread.ident in known or thread is threading.current_thread():
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            left.append(thread.name)
    return tuple(left)


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux 3.4+).

    A subprocess of the target that double-forks, or whose parent exits first, is then
    re-parented here instead of to init, where no leftover check would see it. False where the
    kernel has no such call (the sweep then sees only what is still below this process).
    """
    return prctl(PR_SET_CHILD_SUBREAPER, 1)


def is_subreaper() -> bool:
    """Whether this process adopts its orphaned descendants (asked of the kernel)."""
    flag = ctypes.c_int(0)
    return prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag)) and flag.value != 0


@dataclass(frozen=True, kw_only=True)
class Swept:
    """The processes one sweep found alive and killed, each with its process group."""

    children: tuple[str, ...] = ()  # "pid 123 (sleep 60)": still below what started it
    orphans: tuple[str, ...] = ()  # re-parented to this process when their parent exited


def sweep_processes(known: Collection[int]) -> Swept:
    """Kill every descendant process but ``known`` (pids), each with its process group.

    A direct child that no subprocess object of this interpreter holds, in a subreaper, is an
    orphan the kernel re-parented here (its own parent exited: a double fork, a daemon). It is
    named as such, and reaped once killed; so is an orphan that already ended (a zombie). The
    target's own subprocesses stay its to reap (its Popen would otherwise misread the status).
    """
    me = os.getpid()
    own_group = os.getpgid(0)
    adopts = is_subreaper()
    held: set[int] | None = None  # the pids this interpreter's subprocess objects hold
    children: list[str] = []
    orphans: list[str] = []
    reap: list[int] = []
    seen = set(known)
    for _ in range(SWEEP_ROUNDS):
        try:
            found = [p for p in psutil.Process(me).children(recursive=True)
                     if p.pid not in seen]
        except psutil.Error:
            break
        if not found:
            break
        for proc in found:
            seen.add(proc.pid)
            try:
                with proc.oneshot():
                    parent = proc.ppid()
                    zombie = proc.status() == psutil.STATUS_ZOMBIE
                    text = "" if zombie else \
                        f"pid {proc.pid} ({' '.join(proc.cmdline())[:80] or proc.name()})"
                group = os.getpgid(proc.pid)
            except (psutil.Error, ProcessLookupError):
                continue
            orphan = False
            if adopts and parent == me:
                if held is None:
                    held = _held_pids()
                orphan = proc.pid not in held
            if orphan:
                reap.append(proc.pid)
            if zombie:  # ended already: nothing left running
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError, psutil.Error):
                if group != own_group:
                    os.killpg(group, signal.SIGKILL)  # its group: forks of its own go too
                else:
                    proc.kill()
            (orphans if orphan else children).append(text)
    _reap(reap)
    return Swept(children=tuple(children), orphans=tuple(orphans))


def _held_pids() -> set[int]:
    """The pids of the subprocesses this interpreter started and still holds an object of:
    subprocess.Popen (asyncio's subprocesses on the default loop use it), a Popen dropped
    while running (subprocess keeps it to reap), multiprocessing's processes, and any
    subprocess transport (uvloop's, which spawns without Popen)."""
    pids = {p.pid for p in getattr(subprocess, "_active", ()) if isinstance(p, subprocess.Popen)}
    kinds: list[type] = [subprocess.Popen]
    multiprocessing = sys.modules.get("multiprocessing.process")
    if multiprocessing is not None:
        kinds.append(multiprocessing.BaseProcess)
    holders = tuple(kinds)
    transports: dict[type, bool] = {}
    for obj in gc.get_objects():
        kind = type(obj)
        pid: object = None
        if isinstance(obj, holders):
            with contextlib.suppress(Exception):  # a closed multiprocessing.Process raises
                pid = getattr(obj, "pid", None)
        else:
            is_transport = transports.get(kind)
            if is_transport is None:
                is_transport = transports[kind] = callable(getattr(kind, "get_pid", None)) \
                    and "Transport" in kind.__name__
            if not is_transport:
                continue
            with contextlib.suppress(Exception):  # a closed transport may refuse
                pid = obj.get_pid()
        if isinstance(pid, int):
            pids.add(pid)
    return pids


def _reap(pids: Collection[int], wait_s: float = REAP_WAIT_S) -> None:
    """Collect the exit status of orphans this process adopted, so none is left a zombie."""
    pending = set(pids)
    deadline = time.monotonic() + wait_s
    while pending:
        for pid in list(pending):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped already, or not ours after all
                done = pid
            if done:
                pending.discard(pid)
        if not pending or time.monotonic() > deadline:
            return
        time.sleep(0.01)


def child_pids() -> frozenset[int]:
    try:
        return frozenset(p.pid for p in psutil.Process().children(recursive=True))
    except psutil.Error:
        return frozenset()


# Judging (in the parent).

def judge_leftovers(records: Iterable[Leftovers]) -> tuple[list[Failure], list[str]]:
    """The failures (tasks of the target or of a library not ignored, threads, processes) and
    the notes (tasks accepted by ``ignore_tasks``) of every checkpoint."""
    failures: list[Failure] = []
    notes: list[str] = []
    noted: set[str] = set()  # an ignored task is left alone, so later checkpoints see it too
    for record in records:
        after = _AFTER[record.checkpoint]
        tasks = [t for t in record.tasks if not t.ignored]
        ignored = [t for t in record.tasks if t.ignored and _identity(t) not in noted]
        noted.update(_identity(t) for t in ignored)
        if ignored:
            names = sorted({t.name for t in ignored})
            notes.append(f"Ignored {len(ignored)} task(s) left {after} (ignore_tasks): "
                         + ", ".join(names[:MAX_SHOWN]))
        if not record.judged:
            if tasks:
                names = sorted({t.name for t in tasks})
                notes.append(f"{len(tasks)} task(s) still running {after}, left to the "
                             f"target's teardown: {', '.join(names[:MAX_SHOWN])}")
            continue
        if tasks:
            failures.append(_task_failure(record.checkpoint, tasks))
        failures.extend(_exit_failures(record))
    return failures, notes


def _identity(task: LeftTask) -> str:
    """The task's name from its repr (unique per task), which stays as the task moves on."""
    found = re.search(r"name='([^']*)'", task.repr)
    return found.group(1) if found else task.repr


def _task_failure(checkpoint: Checkpoint, tasks: list[LeftTask]) -> Failure:
    origins = sorted({t.origin for t in tasks}, key=lambda o: (o != "the target", o))
    libraries = [o for o in origins if o not in ("the target", "asyncio", "?")]
    hint = (f"if a library's task outlives every run by design, accept it with ignore_tasks: "
            f"[\"{libraries[0]}.*\"]",) if libraries else ()
    headline = "FAILURE: Quit left tasks running" if checkpoint == "quit" \
        else f"FAILURE: Tasks left running {_AFTER[checkpoint]}"
    return Failure(
        kind="leftover",
        message=f"Tasks left pending {_AFTER[checkpoint]}: {len(tasks)}, started by "
                f"{' and '.join(origins)} ({'; '.join(t.repr for t in tasks[:MAX_SHOWN])})",
        headline=headline,
        diagnosis=("A task created outside a TaskGroup or without an owner that cancels it",
                   *hint),
    )


def _exit_failures(record: Leftovers) -> list[Failure]:
    failures = []
    where = "" if record.checkpoint == "exit" else f" {_AFTER[record.checkpoint]}"
    if record.threads:
        counts = Counter(record.threads)
        names = [n if c == 1 else f"{n} (x{c})" for n, c in counts.items()]
        failures.append(Failure(
            kind="exit",
            message=f"Target did not exit{where}: threads {', '.join(names[:MAX_SHOWN])} "
                    "still running",
            headline="FAILURE: Target did not exit",
            diagnosis=("A non-daemon thread nobody stops or joins (a pool, a client or a "
                       "worker never closed)",),
        ))
    if record.processes or record.orphans:
        # The orphans first: nothing else would have shown them.
        shown = [*(f"{name}, re-parented to the kit after its parent exited"
                   for name in record.orphans), *record.processes]
        diagnosis = (("A subprocess started without waiting for it or terminating it",)
                     if record.processes else ()) + ((
            "A daemonized subprocess (a double fork, setsid(), or one whose parent exited "
            "first) that nothing stops: keep its pid and terminate it in teardown",)
            if record.orphans else ())
        failures.append(Failure(
            kind="exit",
            message=f"Processes left running {_AFTER[record.checkpoint]}: "
                    f"{', '.join(shown[:MAX_SHOWN])} (killed with their process group)",
            headline="FAILURE: Target left processes running",
            diagnosis=diagnosis,
        ))
    return failures
