"""Start one scenario child, hold it to each phase's deadline, and collect what it measured.

Each child is a fresh interpreter (its own memory baseline, killable) in a session of its own.
The parent owns every deadline: a child past its phase's budget gets SIGUSR1 (it dumps every
thread's and every asyncio task's stack into the log; SIGUSR2, faulthandler's dump, when that
goes unanswered), then the staged stop (SIGTERM to its process group, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Literal, TextIO

import psutil

from stress.config.scenario import Scenario
from stress.engine import stacks, teardown
from stress.engine.capped import cap_section
from stress.engine.options import Deadlines
from stress.engine.protocol import ChildFigures, ChildSpec, Loop, Phase, ProtocolError, Sample
from stress.process import child_environment, on_interrupt, stop_in_stages

if TYPE_CHECKING:
    from stress.profiling.base import ProfileOutcome, Profiler

log = logging.getLogger("stress.engine.supervise")

CHILD_MODULE = "stress.engine.child"
STACK_DUMP_WAIT_S = 1.5  # for the child to write its stacks after SIGUSR1
NATIVE_DUMP_WAIT_S = 1.0  # for faulthandler's dump after SIGUSR2
DUMP_WRITING_GRACE_S = 3.0  # more for a dump that is still being written
DUMP_STALL_S = 1.0  # a dump that wrote nothing for this long is not being written
DUMP_POLL_S = 0.05
POLL_S = 0.1

ChildStatus = Literal["ok", "timeout", "crashed", "interrupted"]


@dataclass(frozen=True, kw_only=True)
class ChildRun:
    """One child process: how it ended and what it measured."""

    status: ChildStatus
    figures: ChildFigures | None  # None: the child wrote no result file (killed, or no start)
    samples: tuple[Sample, ...]
    returncode: int | None
    elapsed_s: float  # of the phase it was in when it ended (the measured run, usually)
    phase: Phase
    wall_s: float  # spawn to exit
    profile: ProfileOutcome | None = None  # when a profiler was attached
    # A hang's stack dump: "event loop blocked in a synchronous call at FILE:LINE (function)"
    # when the loop's thread was not waiting in its selector.
    blocked_loop: str | None = None

    @property
    def last_sample(self) -> Sample | None:
        return self.samples[-1] if self.samples else None


class StopRequest:
    """Set by SIGINT/SIGTERM: the current child is stopped and no further scenario starts."""

    def __init__(self) -> None:
        self.requested = False

    @contextmanager
    def installed(self) -> Iterator[None]:
        def handler(_signum: int, _frame: FrameType | None) -> None:
            self.requested = True

        with on_interrupt(handler):
            yield


class SampleReader:
    """Reads the lines the child's sampler appends, as they arrive."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._partial = b""
        self.samples: list[Sample] = []

    def poll(self) -> list[Sample]:
        try:
            with self._path.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        new = [Sample.from_json(line.decode("utf-8")) for line in lines if line.strip()]
        self.samples.extend(new)
        return new


def run_child(scenario: Scenario, *, target: str, loop: Loop, log_file: TextIO,
              deadlines: Deadlines, stop: StopRequest | None = None,
              profiler: Profiler | None = None, measure_quit: bool = True,
              sample_interval_s: float = 0.1,
              on_sample: Callable[[Sample], None] | None = None) -> ChildRun:
    """Run ``scenario`` against ``target`` in a fresh child; its output goes to ``log_file``.

    ``on_sample`` sees each sample of the measured run as it arrives (a progress line).
    """
    # Named after this runner's pid: if it is killed, the next run removes the folder.
    with teardown.work_dir(scenario.name) as work:
        work_dir = Path(work)
        spec = ChildSpec(
            scenario=scenario, target=target, loop=loop,
            samples_path=work_dir / "samples.jsonl", result_path=work_dir / "result.json",
            sample_interval_s=sample_interval_s, measure_quit=measure_quit,
        )
        spec_path = work_dir / "spec.json"
        spec_path.write_text(spec.to_json(), encoding="utf-8")
        argv = [sys.executable, "-m", CHILD_MODULE, str(spec_path)]
        env = child_environment(extra={"PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1",
                                       teardown.RUNNER_PID_ENV: str(os.getpid())})
        if profiler is not None:
            argv, env = profiler.wrap(argv, env)
        log_file.write(f"$ {' '.join(argv)}\n")
        log_file.flush()
        started = time.monotonic()
        # A session of its own: a Ctrl-C on the terminal reaches the parent, which stops
        # the child in stages, instead of killing the child mid-write. The child asks for
        # SIGKILL when this process dies (engine/teardown.py, at its start).
        log_start = os.fstat(log_file.fileno()).st_size
        proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        if profiler is not None:
            profiler.attach(proc.pid)
        reader = SampleReader(spec.samples_path)
        status, phase, elapsed = _supervise(proc, reader, deadlines=deadlines, stop=stop,
                                            on_sample=on_sample)
        blocked_loop = _dump_stacks(proc, log_file) if status == "timeout" else None
        if status in ("timeout", "interrupted"):
            below = _descendants(proc.pid)
            stop_in_stages(proc, terminate_wait_s=deadlines.stop_grace_s, group=True)
            _kill_survivors(below, log_file)
        returncode = proc.wait()
        cap_section(log_file, log_start)  # a flooding target's output, cut in the middle
        wall_s = time.monotonic() - started
        outcome = profiler.finish(timed_out=status == "timeout") if profiler else None
        reader.poll()
        figures = _read_figures(spec.result_path)
        if status == "ok" and not (returncode == 0 and figures is not None and figures.finished):
            status = "crashed"
        return ChildRun(status=status, figures=figures, samples=tuple(reader.samples),
                        returncode=returncode, elapsed_s=elapsed, phase=phase, wall_s=wall_s,
                        profile=outcome, blocked_loop=blocked_loop)


def _read_figures(path: Path) -> ChildFigures | None:
    if not path.exists():
        return None
    try:
        return ChildFigures.from_json(path.read_text(encoding="utf-8"))
    except ProtocolError:
        log.exception("the child's result file %s is malformed", path)
        return None


def _supervise(proc: subprocess.Popen[bytes], reader: SampleReader, *, deadlines: Deadlines,
               stop: StopRequest | None,
               on_sample: Callable[[Sample], None] | None) -> tuple[ChildStatus, Phase, float]:
    """Wait for the child, enforcing each phase's deadline. Returns (status, phase, elapsed)."""
    phase: Phase = "start"
    phase_started = time.monotonic()
    budgets: dict[Phase, float] = {"start": deadlines.startup_s, "setup": deadlines.setup_s,
                                   "run": deadlines.run_s, "quit": deadlines.quit_s,
                                   "teardown": deadlines.teardown_s}
    while True:
        exited = proc.poll() is not None
        for sample in reader.poll():
            if sample.phase != phase:
                phase, phase_started = sample.phase, time.monotonic()
            if on_sample is not None and phase == "run":
                on_sample(sample)
        elapsed = time.monotonic() - phase_started
        if exited:
            return "ok", phase, elapsed
        if stop is not None and stop.requested:
            return "interrupted", phase, elapsed
        if elapsed > budgets.get(phase, deadlines.quit_s):
            return "timeout", phase, elapsed
        time.sleep(POLL_S)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _kill_survivors(below: list[psutil.Process], log_file: TextIO) -> None:
    """Kill what a stopped child left running. The child adopts the target's daemons (a child
    subreaper, engine/leftovers.py), which sit in sessions of their own out of reach of the
    signal to its group; with the child gone they would pass to init and outlive the run."""
    killed = []
    for process in below:
        # psutil checks the process is the one listed (its start time), not a reused pid.
        with contextlib.suppress(psutil.Error):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                name = " ".join(process.cmdline())[:80] or process.name()
                process.kill()
                killed.append(f"pid {process.pid} ({name})")
    if killed:
        _note(log_file, f"killed {len(killed)} process(es) the stopped scenario left running: "
                        f"{', '.join(killed[:3])}")


def _python_child(pid: int) -> psutil.Process | None:
    """The scenario interpreter: the spawned process itself, or one below a wrapper (perf)."""
    try:
        root = psutil.Process(pid)
        for candidate in [root, *root.children(recursive=True)]:
            if CHILD_MODULE in " ".join(candidate.cmdline()):
                return candidate
    except psutil.Error:
        return None
    return None


def _dump_stacks(proc: subprocess.Popen[bytes], log_file: TextIO) -> str | None:
    """Ask the child for its stacks; say in the log when it does not answer.

    Returns the dump's note that the event loop is blocked in a synchronous call, if any.
    SIGUSR1 gets the Python-level dump, which needs the child's main thread to come back to
    the interpreter; when no end marker arrives in time, SIGUSR2 gets faulthandler's, which
    is written from C whatever the threads are doing.
    """
    child = _python_child(proc.pid)
    if child is None:
        _note(log_file, "no stack dump: the scenario interpreter was not found")
        return None
    log_path = Path(log_file.name)
    start = _size(log_path)
    try:
        child.send_signal(stacks.DUMP_SIGNAL)
    except psutil.Error as exc:
        _note(log_file, f"no stack dump: SIGUSR1 could not be sent ({exc})")
        return None
    text = _wait_for_dump(log_path, start, STACK_DUMP_WAIT_S)
    if stacks.DUMP_END in text:
        return _blocked_loop(text)
    if stacks.DUMP_FAILED in text:
        _note(log_file, "the Python stack dump failed (above); asking faulthandler (SIGUSR2)")
    elif stacks.DUMP_HEADER in text:
        _note(log_file, "the Python stack dump (SIGUSR1) did not finish in time; "
                        "asking faulthandler (SIGUSR2)")
    else:
        _note(log_file, f"the Python stack dump (SIGUSR1) went unanswered within "
                        f"{STACK_DUMP_WAIT_S:g}s: the main thread is not running Python code "
                        "(blocked in C?); asking faulthandler (SIGUSR2)")
    native_start = _size(log_path)
    try:
        child.send_signal(stacks.NATIVE_DUMP_SIGNAL)
    except psutil.Error as exc:
        _note(log_file, f"no native stack dump: SIGUSR2 could not be sent ({exc})")
        return None
    native = _wait_for_growth(log_path, native_start, NATIVE_DUMP_WAIT_S)
    if not native.strip():
        _note(log_file, f"the native stack dump (SIGUSR2) went unanswered within "
                        f"{NATIVE_DUMP_WAIT_S:g}s")
        return None
    _note(log_file, "end of faulthandler's stacks (SIGUSR2)")
    return _blocked_in_native_dump(native)


def _note(log_file: TextIO, text: str) -> None:
    log_file.write(f"\n=== {text} ===\n")
    log_file.flush()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _wait_for_dump(path: Path, offset: int, wait_s: float) -> str:
    """The log written since ``offset``, once it holds a dump's last line (or ``wait_s``).

    A dump still being written (a big one on a loaded machine) gets up to
    ``DUMP_WRITING_GRACE_S`` more while it has grown in the last ``DUMP_STALL_S``.
    """
    started = last_growth = time.monotonic()
    size = 0
    while True:
        text = _read_from(path, offset)
        if stacks.DUMP_END in text or stacks.DUMP_FAILED in text:
            return text
        now = time.monotonic()
        if len(text) > size:
            size, last_growth = len(text), now
        writing = stacks.DUMP_HEADER in text and now - last_growth < DUMP_STALL_S
        if now - started > wait_s + DUMP_WRITING_GRACE_S or (now - started > wait_s
                                                              and not writing):
            return text
        time.sleep(DUMP_POLL_S)


def _wait_for_growth(path: Path, offset: int, wait_s: float) -> str:
    """The log written since ``offset``, once it stops growing (faulthandler has no marker)."""
    deadline = time.monotonic() + wait_s
    size = offset
    while time.monotonic() < deadline:
        time.sleep(DUMP_POLL_S)
        now = _size(path)
        if now > offset and now == size:
            break
        size = now
    return _read_from(path, offset)


def _blocked_loop(dump: str) -> str | None:
    """The dump's note that the loop is blocked (or busy), or None when it waits idle."""
    for line in dump.splitlines():
        if line.startswith(stacks.LOOP_STATE):
            state = line.removeprefix(stacks.LOOP_STATE).strip()
            return state if state.startswith("event loop ") else None
    return None


_NATIVE_FRAME = re.compile(r'^\s+File "(?P<file>.*)", line (?P<line>\d+) in (?P<fn>\S+)')


def _blocked_in_native_dump(dump: str) -> str | None:
    """Where faulthandler's dump shows the loop's (main) thread, unless it is idle.

    faulthandler lists the newest thread first, so the main thread, which runs the loop,
    is the last one.
    """
    blocks = re.split(r"^(?:Current thread|Thread) 0x[0-9a-f]+ .*:$", dump, flags=re.M)
    for line in blocks[-1].splitlines() if len(blocks) > 1 else ():
        frame = _NATIVE_FRAME.match(line)
        if frame is not None:
            if stacks.is_idle(frame["file"], frame["fn"]):
                return None
            return f"{stacks.BLOCKED}{frame['file']}:{frame['line']} ({frame['fn']}); " \
                   "it did not answer a Python signal handler"
    return None
