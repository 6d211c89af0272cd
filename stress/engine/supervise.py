"""Start one scenario child, hold it to each phase's deadline, and collect what it measured.

Each child is a fresh interpreter (its own memory baseline, killable) in a session of its own.
The parent owns every deadline: a child past its phase's budget gets SIGUSR1 (it dumps every
thread's and every asyncio task's stack into the log), then the staged stop (SIGTERM to its
process group, then SIGKILL).
"""

from __future__ import annotations

import logging
import os
import signal
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

from stress.engine import teardown
from stress.engine.capped import CappedCopy
from stress.engine.options import Deadlines
from stress.engine.protocol import ChildFigures, ChildSpec, Loop, Phase, ProtocolError, Sample
from stress.process import child_environment, stop_in_stages
from stress.scenario import Scenario

if TYPE_CHECKING:
    from stress.profiling.base import ProfileOutcome, Profiler

log = logging.getLogger("stress.engine.supervise")

CHILD_MODULE = "stress.engine.child"
STACK_DUMP_WAIT_S = 1.5  # for the child to write its stacks after SIGUSR1
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

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


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
        # the child in stages, instead of killing the child mid-write.
        # The child's output reaches the log through a pipe, capped (engine/capped.py). The
        # child asks for SIGKILL when this process dies (engine/teardown.py, at its start).
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(argv, stdout=write_fd, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        output = CappedCopy(read_fd, log_file)
        output.start()
        if profiler is not None:
            profiler.attach(proc.pid)
        reader = SampleReader(spec.samples_path)
        status, phase, elapsed = _supervise(proc, reader, deadlines=deadlines, stop=stop,
                                            on_sample=on_sample)
        if status in ("timeout", "interrupted"):
            stop_in_stages(proc, terminate_wait_s=deadlines.stop_grace_s, group=True)
        returncode = proc.wait()
        output.close()
        wall_s = time.monotonic() - started
        outcome = profiler.finish(timed_out=status == "timeout") if profiler else None
        reader.poll()
        figures = _read_figures(spec.result_path)
        if status == "ok" and not (returncode == 0 and figures is not None and figures.finished):
            status = "crashed"
        return ChildRun(status=status, figures=figures, samples=tuple(reader.samples),
                        returncode=returncode, elapsed_s=elapsed, phase=phase, wall_s=wall_s,
                        profile=outcome)


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
    budgets: dict[Phase, float] = {"start": deadlines.startup_s, "run": deadlines.run_s,
                                   "quit": deadlines.quit_s}
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
            _dump_stacks(proc)
            return "timeout", phase, elapsed
        time.sleep(POLL_S)


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


def _dump_stacks(proc: subprocess.Popen[bytes]) -> None:
    """Ask the child for its thread and task stacks, and give it a moment to write them."""
    child = _python_child(proc.pid)
    if child is None:
        return
    try:
        child.send_signal(signal.SIGUSR1)
    except psutil.Error:
        return
    time.sleep(STACK_DUMP_WAIT_S)
