"""CPU profiles with py-spy: attach to the scenario child, sample it, draw a flamegraph.

py-spy records once, in speedscope form (stacks in time order); the speedscope artifact and
the SVG flamegraph are both derived from that one recording. py-spy attaches with ptrace,
which a container without ``SYS_PTRACE`` forbids: then py-spy exits at once with a
permission error, and the scenario runs and is judged without a CPU profile, with one note
saying how to allow it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from stress.engine.teardown import work_dir_prefix
from stress.process import stop_in_stages
from stress.profiling.base import READY_ENV, ProfileOutcome, finish_safely, first_line
from stress.profiling.flamegraph_svg import render_flamegraph_svg
from stress.profiling.stacks import SampledStacks, from_speedscope, write_speedscope
from stress.report.files import bounded_name, write_file_atomically

SAMPLE_RATE_HZ = 100
ATTACHED_MARKER = b"Sampling process"  # py-spy's first line once it samples the child
ATTACH_WAIT_S = 10.0
PERMISSION_MARKERS = ("permission denied", "operation not permitted", "os error 1)",
                      "os error 13)")
PTRACE_FIX = ("run the container with --cap-add SYS_PTRACE (or as root on the host), "
              "or use --profile memory only")


def py_spy_command() -> list[str] | None:
    """How to start py-spy: ``STRESS_PY_SPY`` (e.g. ``sudo -n py-spy`` on macOS), else the
    py-spy next to this interpreter, else the one on PATH."""
    configured = os.environ.get("STRESS_PY_SPY")
    if configured:
        return shlex.split(configured)
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("py-spy")
    return [found] if found else None


def write_cpu_artifacts(stacks: SampledStacks, *, out_dir: Path, scenario: str,
                        recorder: str) -> dict[str, str]:
    """The SVG flamegraph and the speedscope JSON for one scenario, from sampled stacks."""
    svg_name = bounded_name(scenario, "-cpu-flamegraph.svg")
    speedscope_name = bounded_name(scenario, "-cpu-speedscope.json")
    subtitle = (f"{recorder}: {stacks.sample_count} samples, "
                f"{stacks.total_seconds:.2f} s on CPU")
    svg = render_flamegraph_svg(stacks.collapsed(), title=f"CPU flamegraph: {scenario}",
                                subtitle=subtitle)
    write_file_atomically(out_dir / svg_name, svg)  # never through a link planted there
    write_speedscope(stacks, out_dir / speedscope_name, name=f"{scenario} ({recorder})")
    return {"cpu_flamegraph": svg_name, "cpu_speedscope": speedscope_name}


class PySpyProfiler:
    kind = "cpu"

    def __init__(self, *, out_dir: Path, scenario: str,
                 command: Sequence[str] | None = None, rate_hz: int = SAMPLE_RATE_HZ) -> None:
        self.out_dir = out_dir
        self.scenario = scenario
        self.command = list(command) if command is not None else py_spy_command()
        self.rate_hz = rate_hz
        self._work: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._notes: list[str] = []
        self._argv: list[str] = []

    def wrap(self, argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        # py-spy attaches to the running child instead; the child waits for it before its
        # measured run (a quick run could otherwise end before py-spy is there).
        self._work = Path(tempfile.mkdtemp(prefix=work_dir_prefix(f"pyspy-{self.scenario}")))
        return argv, {**env, READY_ENV: str(self._ready)}

    def attach(self, pid: int) -> None:
        self._pid = pid
        if self._work is None:  # attach without wrap: no child waits for us
            self._work = Path(tempfile.mkdtemp(prefix=work_dir_prefix(f"pyspy-{self.scenario}")))
        try:
            self._start(pid)
        finally:
            self._ready.touch()  # whatever happened: the child must not wait any longer

    def _start(self, pid: int) -> None:
        if self.command is None:
            self._notes.append("py-spy is not installed, so no CPU profile was taken: "
                               "pip install py-spy")
            return
        argv = [*self.command, "record", "--pid", str(pid), "--rate", str(self.rate_hz),
                "--format", "speedscope", "--output", str(self._recording)]
        self._argv = argv
        with self._stderr_path.open("wb") as stderr:
            try:
                # A session of its own: a Ctrl-C on the terminal must not end the recording
                # before the runner stops the child; finish() stops py-spy in stages.
                self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                              stdout=stderr, stderr=stderr,
                                              start_new_session=True)
            except OSError as exc:
                self._notes.append(f"py-spy could not be started ({exc}): "
                                   "check STRESS_PY_SPY or pip install py-spy")
                return
        deadline = time.monotonic() + ATTACH_WAIT_S
        while time.monotonic() < deadline and self._proc.poll() is None:
            if ATTACHED_MARKER in self._stderr_path.read_bytes():
                return
            time.sleep(0.01)

    @property
    def _ready(self) -> Path:
        assert self._work is not None
        return self._work / "attached"

    @property
    def _recording(self) -> Path:
        assert self._work is not None
        return self._work / "py-spy.speedscope.json"

    @property
    def _stderr_path(self) -> Path:
        assert self._work is not None
        return self._work / "py-spy.stderr"

    def finish(self, *, timed_out: bool) -> ProfileOutcome:
        try:
            return finish_safely(self.kind, "py-spy", self._notes, self._finish)
        finally:
            if self._work is not None:
                shutil.rmtree(self._work, ignore_errors=True)

    def _finish(self) -> ProfileOutcome:
        proc = self._proc
        if proc is None:
            return ProfileOutcome(kind=self.kind, artifacts={}, notes=tuple(self._notes))
        # py-spy ends by itself once the child has exited; SIGINT makes it write what it has.
        stop_in_stages(proc, exit_wait_s=10.0, interrupt_wait_s=20.0, terminate_wait_s=3.0)
        stderr = self._stderr_path.read_text(encoding="utf-8", errors="replace")
        output = f"$ {shlex.join(self._argv)}\n{stderr}"
        if not self._recording.exists():
            self._notes.append(self._failure_note(proc.returncode, stderr))
            return ProfileOutcome(kind=self.kind, artifacts={}, notes=tuple(self._notes),
                                  tool_output=output)
        try:
            stacks = from_speedscope(json.loads(self._recording.read_text(encoding="utf-8")))
            artifacts = write_cpu_artifacts(stacks, out_dir=self.out_dir,
                                            scenario=self.scenario,
                                            recorder=f"py-spy {self.rate_hz} Hz")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._notes.append(f"py-spy's recording for pid {self._pid} could not be turned "
                               f"into a flamegraph: {type(exc).__name__}: {exc}")
            return ProfileOutcome(kind=self.kind, artifacts={}, notes=tuple(self._notes),
                                  tool_output=output)
        if stacks.sample_count == 0:
            self._notes.append(f"py-spy took no samples of pid {self._pid} "
                               "(the child was idle or exited at once)")
        return ProfileOutcome(kind=self.kind, artifacts=artifacts, notes=tuple(self._notes),
                              tool_output=output)

    def _failure_note(self, returncode: int | None, stderr: str) -> str:
        lowered = stderr.lower()
        if any(marker in lowered for marker in PERMISSION_MARKERS):
            return (f"py-spy could not attach to pid {self._pid} (ptrace not permitted): "
                    + PTRACE_FIX)
        if "os error 2)" in lowered or "no such process" in lowered:
            return (f"py-spy recorded no profile of pid {self._pid}: the child exited before "
                    "py-spy could attach")
        return (f"py-spy recorded no profile of pid {self._pid} (exit {returncode}): "
                f"{first_line(stderr)}")
