"""CPU profiles with Linux perf and Python's perf support (3.12+), drawn like py-spy's.

Python 3.13+ runs with ``-X perf_jit`` (``PYTHON_PERF_JIT_SUPPORT=1``): it writes a jitdump
that ``perf inject --jit`` merges in, and DWARF unwinding then walks through every Python
frame. Python 3.12 only has the perf-map trampoline (``PYTHONPERFSUPPORT=1``), whose stacks
are whole only when the interpreter was built with frame pointers; a profile whose stacks
break off says so in a note. ``perf script`` output is reduced to the Python frames
(``py::function:file``) and rendered by the same code as py-spy's recordings.

Where perf is missing, the interpreter is older than 3.12, or the kernel refuses perf events
(``perf_event_paranoid``, a container without ``PERFMON``), the child runs unprofiled and
one note says why and what to do.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from stress.engine.teardown import work_dir_prefix
from stress.profiling.base import ProfileOutcome, finish_safely, first_line
from stress.profiling.cpu_profiler import write_cpu_artifacts
from stress.profiling.stacks import Frame, SampledStacks

FREQUENCY_HZ = 99  # not 100: avoids sampling in lockstep with periodic timers
TOOL_TIMEOUT_S = 300.0
NO_PYTHON_FRAME = Frame("[no Python frame]", "")
# Where a whole native call chain starts: a stack that does not end in one of these was cut
# short by the unwinder.
_CHAIN_ROOTS = ("_start", "__libc_start_main", "__libc_start_call_main", "start_thread",
                "clone", "clone3", "__clone", "__clone3")

_HEADER = re.compile(r"^(?P<comm>\S.*?)\s+(?P<pid>\d+)/(?P<tid>\d+)\s+(?P<period>\d+)\s*$")
_FRAME = re.compile(r"^\s+(?P<ip>[0-9a-f]+)\s+(?P<sym>.+?)\s+\((?P<dso>[^()]*)\)\s*$")


@dataclass(frozen=True, kw_only=True)
class Interpreter:
    version: tuple[int, int]
    frame_pointers: bool  # built with -fno-omit-frame-pointer: perf's -g can walk its stacks


_PROBE = ("import sys, sysconfig; flags = ' '.join(str(sysconfig.get_config_var(v) or '') "
          "for v in ('CFLAGS', 'PY_CFLAGS', 'PY_CFLAGS_NODIST', 'CONFIGURE_CFLAGS')); "
          "print(*sys.version_info[:2], int('-fno-omit-frame-pointer' in flags))")


def inspect_interpreter(interpreter: str) -> Interpreter | None:
    """The child interpreter's version and build (it may not be the runner's own)."""
    try:
        done = subprocess.run([interpreter, "-c", _PROBE], capture_output=True, text=True,
                              timeout=30, check=True)
        major, minor, frame_pointers = done.stdout.split()
        return Interpreter(version=(int(major), int(minor)), frame_pointers=frame_pointers == "1")
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def _paranoid_level() -> str:
    try:
        return Path("/proc/sys/kernel/perf_event_paranoid").read_text(encoding="utf-8").strip()
    except OSError:
        return "unknown"


@dataclass(frozen=True, kw_only=True)
class PerfScriptSummary:
    samples: int  # every sample perf took of the child
    with_python: int  # samples with at least one Python frame
    whole: int  # samples with Python frames whose native chain reached its root
    pids: frozenset[int]


def parse_perf_script(lines: Iterable[str]) -> tuple[SampledStacks, PerfScriptSummary]:
    """Samples from ``perf script -F comm,pid,tid,period,ip,sym,dso`` output, Python frames only."""
    stacks = SampledStacks()
    samples = with_python = whole = 0
    pids: set[int] = set()
    header: re.Match[str] | None = None
    frames: list[str] = []

    def flush() -> None:
        nonlocal samples, with_python, whole
        if header is None:
            return
        samples += 1
        pids.add(int(header["pid"]))
        python = [_python_frame(sym) for sym in frames if sym.startswith("py::")]
        if python:
            with_python += 1
            if frames and frames[-1].startswith(_CHAIN_ROOTS):
                whole += 1
        chain = [stacks.frame_id(f) for f in reversed(python)] or \
            [stacks.frame_id(NO_PYTHON_FRAME)]
        thread = stacks.thread(f"{header['comm']} {header['tid']}")
        thread.add(tuple(chain), int(header["period"]) / 1e9)

    for line in lines:
        if not line.strip():
            continue
        if not line[0].isspace():
            flush()
            header, frames = _HEADER.match(line.rstrip("\n")), []
            continue
        match = _FRAME.match(line.rstrip("\n"))
        if match is not None:
            frames.append(re.sub(r"\+0x[0-9a-f]+$", "", match["sym"]))
    flush()
    return stacks, PerfScriptSummary(samples=samples, with_python=with_python, whole=whole,
                                     pids=frozenset(pids))


def _python_frame(sym: str) -> Frame:
    name, _, file = sym[len("py::"):].partition(":")
    return Frame(name, file)


class PerfProfiler:
    kind = "cpu"

    def __init__(self, *, out_dir: Path, scenario: str, perf: str | None = None,
                 frequency_hz: int = FREQUENCY_HZ) -> None:
        self.out_dir = out_dir
        self.scenario = scenario
        self.perf = perf or shutil.which("perf")
        self.frequency_hz = frequency_hz
        self._work: Path | None = None
        self._jit = False
        self._notes: list[str] = []

    @property
    def _data(self) -> Path:
        assert self._work is not None
        return self._work / "perf.data"

    def check(self, interpreter: str) -> Interpreter | str:
        """The child interpreter, if perf can profile it here; else why not, with the fix."""
        if self.perf is None:
            return ("--cpu-profiler perf: perf is not installed (Debian/Ubuntu: apt-get install "
                    "linux-perf); use --cpu-profiler py-spy")
        info = inspect_interpreter(interpreter)
        # Probe with the options the real run will use, so a refusal shows up here.
        options = self._record_options(info or Interpreter(version=(3, 13), frame_pointers=False))
        with tempfile.TemporaryDirectory(prefix="stress-perf-probe-") as probe:
            try:
                done = subprocess.run(
                    [self.perf, "--buildid-dir", str(Path(probe) / "buildid"), "record", "-q",
                     "-N", *options, "-o", str(Path(probe) / "probe.data"), "--", "true"],
                    capture_output=True, text=True, timeout=60, check=False)
            except (OSError, subprocess.SubprocessError) as exc:
                return (f"--cpu-profiler perf: perf could not be run ({exc}); "
                        "use --cpu-profiler py-spy")
        if done.returncode != 0:
            return (f"--cpu-profiler perf: perf cannot record here "
                    f"({first_line(done.stderr + done.stdout, 160)}); kernel.perf_event_paranoid "
                    f"is {_paranoid_level()}: run as root or set it to 1 or lower, and in a "
                    "container add --cap-add PERFMON; or use --cpu-profiler py-spy")
        if info is None or info.version < (3, 12):
            shown = "unknown" if info is None else ".".join(map(str, info.version))
            return (f"--cpu-profiler perf: Python's perf support needs Python 3.12+ and the "
                    f"scenario child runs Python {shown}; use --cpu-profiler py-spy")
        return info

    def _record_options(self, info: Interpreter) -> list[str]:
        rate = ["-F", str(self.frequency_hz)]
        if info.version >= (3, 13):
            # perf inject --jit needs the monotonic clock; DWARF unwinding crosses Python frames.
            # 32 KB of stack per sample (perf's default is 8): an asyncio task's stack under
            # the runner is deeper than 8 KB, and a shorter copy cuts its callers off.
            return ["-k", "1", *rate, "--call-graph", "dwarf,32768"]
        if info.frame_pointers:
            return [*rate, "-g"]
        # Without frame pointers only DWARF finds the innermost Python frame (the 3.12
        # trampoline has no unwind tables, so callers are lost: finish() says so).
        return [*rate, "--call-graph", "dwarf"]

    def wrap(self, argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        info = self.check(argv[0])
        if isinstance(info, str):
            self._notes.append(info)
            return argv, env
        self._jit = info.version >= (3, 13)
        self._work = Path(tempfile.mkdtemp(prefix=work_dir_prefix(f"perf-{self.scenario}")))
        env = {**env, "PYTHON_PERF_JIT_SUPPORT" if self._jit else "PYTHONPERFSUPPORT": "1"}
        wrapped = [*self._perf_command(), "record", "-q", "-N", *self._record_options(info),
                   "-o", str(self._data), "--", *argv]
        return wrapped, env

    def attach(self, pid: int) -> None:
        return  # perf started the child itself

    def finish(self, *, timed_out: bool) -> ProfileOutcome:
        if self._work is None:
            return ProfileOutcome(kind=self.kind, artifacts={}, notes=tuple(self._notes))
        try:
            return finish_safely(self.kind, "perf", self._notes, self._finish)
        finally:
            shutil.rmtree(self._work, ignore_errors=True)

    def _perf_command(self) -> list[str]:
        # perf caches every binary it sees (and perf inject every jitted function) under
        # ~/.debug; keep that cache in the work folder, which finish() removes.
        assert self.perf is not None
        assert self._work is not None
        return [self.perf, "--buildid-dir", str(self._work / "buildid")]

    def _run_tool(self, args: list[str],
                  stdout: IO[str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._perf_command(), *args], stdout=stdout or subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=TOOL_TIMEOUT_S,
                              check=False)

    def _finish(self) -> ProfileOutcome:
        if not self._data.exists() or self._data.stat().st_size == 0:
            self._notes.append("perf wrote no samples (perf record failed or was killed); "
                               "see the scenario log")
            return ProfileOutcome(kind=self.kind, artifacts={}, notes=tuple(self._notes))
        data = self._data
        summary: PerfScriptSummary | None = None
        try:
            if self._jit:
                injected = self._work_path("perf.jit.data")
                done = self._run_tool(["inject", "--jit", "-i", str(data), "-o", str(injected)])
                if done.returncode == 0:
                    data = injected
                else:
                    self._notes.append("perf inject --jit failed, Python frames may be "
                                       f"missing: {first_line(done.stderr)}")
            script_out = self._work_path("perf.script")
            with script_out.open("w", encoding="utf-8") as out:
                done = self._run_tool(["script", "-F", "comm,pid,tid,period,ip,sym,dso",
                                       "-i", str(data)], out)
            if done.returncode != 0:
                self._notes.append(f"perf script failed: {first_line(done.stderr)}")
                return ProfileOutcome(kind=self.kind, artifacts={}, notes=tuple(self._notes))
            with script_out.open(encoding="utf-8", errors="replace") as lines:
                stacks, summary = parse_perf_script(lines)
            artifacts = write_cpu_artifacts(
                stacks, out_dir=self.out_dir, scenario=self.scenario,
                recorder=f"perf {self.frequency_hz} Hz" + (" (perf_jit)" if self._jit else ""))
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            self._notes.append(f"perf's samples could not be turned into a flamegraph: "
                               f"{type(exc).__name__}: {exc}")
            return ProfileOutcome(kind=self.kind, artifacts={}, notes=tuple(self._notes))
        finally:
            if summary is not None:
                _remove_jit_files(summary.pids)
        if summary.with_python == 0:
            self._notes.append("perf recorded no Python frames: the interpreter's perf "
                               "support did not start, or perf could not walk its stacks; "
                               "use Python 3.13+ (-X perf_jit) or --cpu-profiler py-spy")
        elif summary.whole < summary.with_python / 2:
            why = ("perf's stack copies were too short for some deep stacks" if self._jit else
                   "this Python 3.12 was built without frame pointers")
            advice = "--cpu-profiler py-spy gives" if self._jit else \
                "Python 3.13+ (-X perf_jit) or py-spy give"
            self._notes.append(
                f"perf: only {summary.whole} of {summary.with_python} samples have whole "
                f"stacks ({why}), so the flamegraph shows callers cut short; {advice} whole "
                "stacks")
        return ProfileOutcome(kind=self.kind, artifacts=artifacts, notes=tuple(self._notes))

    def _work_path(self, name: str) -> Path:
        assert self._work is not None
        return self._work / name


def _remove_jit_files(pids: Iterable[int]) -> None:
    """The perf map and jitdump files the child's interpreter left in /tmp, and perf inject's
    per-function objects: needed only until ``perf script`` has read them."""
    tmp = Path("/tmp")  # CPython writes these to /tmp whatever TMPDIR says
    for pid in pids:
        for path in (tmp / f"perf-{pid}.map", tmp / f"jit-{pid}.dump"):
            path.unlink(missing_ok=True)
        for path in tmp.glob(f"jitted-{pid}-*.so"):
            path.unlink(missing_ok=True)
