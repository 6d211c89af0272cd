"""Instructions per token: a CPU measure a noisy, shared machine cannot disturb.

The child runs under valgrind with cache simulation off (``cachegrind --cache-sim=no``, or
``callgrind`` when per-function costs are wanted) and ``PYTHONHASHSEED=0``; valgrind counts
every instruction it executes. Two runs of the same code usually give the same total to the
instruction; now and then one differs by some thousands (see ``repeats``). The totals do
depend on the child's environment (a longer PATH moved the reference figure by 0.01%), so
base and head must be started with the same environment and interpreter.

Interpreter start-up, imports and the target's setup cost the same at any size, so the
child runs at two sizes, ``small`` and ``large`` tokens, and the figure is their difference
divided by ``large - small``. The default sizes are N and 2N rather than 0 and N: a zero-token
run is cheaper (N tokens less to simulate) but leaves the first token's one-off costs
(adaptive specialisation, queue and allocator growth, lazy imports) in the figure: on the
reference workload 0/3000 gave 43,130 instructions a token, 3000/6000 gave 43,013, a bias
of 0.27% that the N/2N difference does not have.

The caller says how to start the child for a given token count (:data:`ChildCommand`);
:func:`valgrind_command` is the one place that wraps such a command line. An engine that
spawns and supervises the child itself uses :class:`InstructionCounter` (``wrap`` before the
spawn, as a profiler's, ``read`` after a clean exit) and takes the difference itself.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stress.errors import StressError
from stress.profiling.base import first_line
from stress.profiling.callgrind import (
    CallgrindProfile,
    function_costs,
    per_token_costs,
    read_callgrind,
    read_perf_map,
)

Tool = Literal["cachegrind", "callgrind"]
# Builds the child's command line and environment for a run of that many tokens.
ChildCommand = Callable[[int], tuple[list[str], dict[str, str]]]

RUN_TIMEOUT_S = 600.0
HASH_SEED = "0"
INSTALL_HINT = "apt-get install valgrind"
_SUMMARY = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


class ValgrindMissing(StressError):
    """valgrind is not installed: the instruction measure cannot run (no silent fallback)."""

    def __init__(self, what: str = "valgrind is not installed (not on PATH)") -> None:
        super().__init__(f"instruction counts need valgrind: {what}; install it "
                         f"(Debian/Ubuntu: {INSTALL_HINT}) or measure wall time instead")


class InstructionRunError(StressError):
    """The child failed under valgrind, so its count would not measure the code."""


@dataclass(frozen=True, kw_only=True)
class InstructionCount:
    """One child run's instruction total, as valgrind counted it."""

    instructions: int
    tokens: int
    valgrind_version: str  # "valgrind-3.19.0"
    tool: Tool
    seconds: float  # wall time of the run under valgrind
    profile: CallgrindProfile | None = None  # callgrind: the per-function costs
    perf_map: dict[int, str] | None = None  # callgrind with -X perf: trampoline names


@dataclass(frozen=True, kw_only=True)
class InstructionsPerToken:
    """Instructions per token with fixed costs taken out: (large - small) / tokens apart."""

    per_token: float
    small: InstructionCount
    large: InstructionCount
    seconds: float  # wall time of the whole measurement (every run)
    repeat_spread: int = 0  # largest difference between repeats of one size

    @property
    def fixed(self) -> float:
        """Start-up, imports and setup: what a zero-token run would cost, by extrapolation."""
        return self.small.instructions - self.per_token * self.small.tokens


def find_valgrind() -> str | None:
    return shutil.which("valgrind")


def require_valgrind(valgrind: str | None = None) -> str:
    found = valgrind or find_valgrind()
    if found is None:
        raise ValgrindMissing()
    return found


@functools.lru_cache(maxsize=8)
def valgrind_version(valgrind: str) -> str:
    try:
        done = subprocess.run([valgrind, "--version"], capture_output=True, text=True,
                              timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ValgrindMissing(f"{valgrind} --version failed ({exc})") from exc
    return done.stdout.strip()


@functools.lru_cache(maxsize=16)
def real_interpreter(interpreter: str) -> str:
    """The interpreter binary itself: valgrind does not follow a pyenv shim or a wrapper
    script into the Python it starts (``--trace-children`` would count the shell too)."""
    done = subprocess.run([interpreter, "-c", "import sys; print(sys.executable)"],
                          capture_output=True, text=True, timeout=60, check=False)
    resolved = done.stdout.strip()
    return resolved if done.returncode == 0 and resolved else interpreter


def valgrind_command(argv: list[str], env: dict[str, str], *, out_file: Path,
                     log_file: Path, tool: Tool = "cachegrind", valgrind: str | None = None,
                     python_names: bool = False) -> tuple[list[str], dict[str, str]]:
    """``argv`` run under valgrind, counting instructions only, with a fixed hash seed.

    ``python_names`` (callgrind) turns on the interpreter's perf trampoline so the profile
    can name Python functions; it changes the counts, so compare like with like.
    """
    binary = require_valgrind(valgrind)
    options = ([f"--cachegrind-out-file={out_file}", "--cache-sim=no"] if tool == "cachegrind"
               else [f"--callgrind-out-file={out_file}", "--compress-strings=no",
                     "--compress-pos=no"])
    # valgrind's own messages go to a file: the child's stderr stays the child's.
    wrapped = [binary, f"--tool={tool}", *options, f"--log-file={log_file}",
               real_interpreter(argv[0]), *argv[1:]]
    child_env = {**env, "PYTHONHASHSEED": HASH_SEED}
    if python_names:
        child_env["PYTHONPERFSUPPORT"] = "1"
    return wrapped, child_env


class InstructionCounter:
    """One child run under valgrind, for a caller that spawns and supervises the child itself.

    ``wrap`` the child's command line before spawning it (as a profiler's ``wrap``), run it,
    then ``read`` the count once it has exited zero; ``close`` removes the work folder.
    """

    def __init__(self, *, tool: Tool = "cachegrind", valgrind: str | None = None,
                 python_names: bool = False) -> None:
        self.valgrind = require_valgrind(valgrind)
        self.version = valgrind_version(self.valgrind)
        self.tool: Tool = tool
        self.python_names = python_names
        self._work = Path(tempfile.mkdtemp(prefix="stress-instructions-"))
        self.out_file = self._work / f"{tool}.out"
        self.log_file = self._work / "valgrind.log"
        self._started = time.monotonic()

    def wrap(self, argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        self._started = time.monotonic()
        return valgrind_command(argv, env, out_file=self.out_file, log_file=self.log_file,
                                tool=self.tool, valgrind=self.valgrind,
                                python_names=self.python_names)

    def valgrind_log(self) -> str:
        """valgrind's own messages (its errors, when the child did not start)."""
        if not self.log_file.exists():
            return ""
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def read(self, tokens: int) -> InstructionCount:
        """The exited child's count; ``tokens`` is what it handled (the engine may know better
        than the size it asked for)."""
        seconds = time.monotonic() - self._started
        if not self.out_file.exists():
            raise InstructionRunError(f"{self.tool} wrote no counts: "
                                      f"{first_line(self.valgrind_log())}")
        if self.tool == "callgrind":
            profile = read_callgrind(self.out_file)
            total = profile.total
            perf_map = _take_perf_map(profile.pid) if self.python_names else None
        else:
            match = _SUMMARY.search(self.out_file.read_text(encoding="utf-8",
                                                            errors="replace"))
            if match is None:
                raise InstructionRunError(f"{self.tool} wrote no instruction total")
            total, profile, perf_map = int(match.group(1)), None, None
        return InstructionCount(instructions=total, tokens=tokens,
                                valgrind_version=self.version, tool=self.tool,
                                seconds=seconds, profile=profile, perf_map=perf_map)

    def close(self) -> None:
        shutil.rmtree(self._work, ignore_errors=True)


def count_instructions(command: ChildCommand, tokens: int, *, tool: Tool = "cachegrind",
                       valgrind: str | None = None, python_names: bool = False,
                       timeout_s: float = RUN_TIMEOUT_S, cwd: Path | None = None
                       ) -> InstructionCount:
    """Run the child for ``tokens`` under valgrind and read its instruction total."""
    counter = InstructionCounter(tool=tool, valgrind=valgrind, python_names=python_names)
    try:
        wrapped, child_env = counter.wrap(*command(tokens))
        try:
            done = subprocess.run(wrapped, env=child_env, cwd=cwd, capture_output=True,
                                  text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise InstructionRunError(f"the child did not finish within {timeout_s:g}s under "
                                      f"valgrind ({tokens} tokens)") from exc
        if done.returncode != 0:
            detail = done.stderr.strip().splitlines()[-1:] or [first_line(counter.valgrind_log())]
            raise InstructionRunError(f"the child exited with {done.returncode} under "
                                      f"valgrind ({tokens} tokens): {detail[0][:300]}")
        return counter.read(tokens)
    finally:
        counter.close()


def _take_perf_map(pid: int | None) -> dict[int, str] | None:
    """Read and remove the child's perf map (CPython writes it to /tmp whatever TMPDIR says)."""
    if pid is None:
        return None
    path = Path("/tmp") / f"perf-{pid}.map"
    if not path.exists():
        return None
    try:
        return read_perf_map(path)
    finally:
        path.unlink(missing_ok=True)


def warm_up(command: ChildCommand, tokens: int, *, timeout_s: float = RUN_TIMEOUT_S,
            cwd: Path | None = None) -> None:
    """One run without valgrind: it writes the ``.pyc`` files a fresh checkout lacks.

    Otherwise the first measured run compiles every module and the next one does not, and
    the difference (millions of instructions) lands in the per-token figure.
    """
    argv, env = command(tokens)
    subprocess.run(argv, env={**env, "PYTHONHASHSEED": HASH_SEED}, cwd=cwd,
                   capture_output=True, timeout=timeout_s, check=False)


def instructions_per_token(command: ChildCommand, tokens: int, *,
                           sizes: tuple[int, int] | None = None, tool: Tool = "cachegrind",
                           valgrind: str | None = None, python_names: bool = False,
                           repeats: int = 1, warm: bool = True,
                           timeout_s: float = RUN_TIMEOUT_S, cwd: Path | None = None
                           ) -> InstructionsPerToken:
    """Instructions per token from runs at two sizes (default ``tokens`` and ``2 * tokens``).

    With ``repeats`` above 1 each size runs that many times and the median total is used:
    counts are usually identical run to run, but now and then one differs by some
    thousands of instructions (here 3 of about 100 runs, the largest 0.12% of the per-token
    figure at 500 tokens apart); three repeats outvote it at three times the cost.
    """
    small_n, large_n = sizes or (tokens, 2 * tokens)
    if not 0 <= small_n < large_n:
        raise ValueError(f"sizes must grow: {small_n} then {large_n}")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, not {repeats}")
    require_valgrind(valgrind)
    started = time.monotonic()
    if warm:
        warm_up(command, small_n, timeout_s=timeout_s, cwd=cwd)
    chosen: list[InstructionCount] = []
    spread = 0
    for n in (small_n, large_n):
        runs = sorted((count_instructions(command, n, tool=tool, valgrind=valgrind,
                                          python_names=python_names, timeout_s=timeout_s,
                                          cwd=cwd) for _ in range(repeats)),
                      key=lambda count: count.instructions)
        chosen.append(runs[len(runs) // 2])
        spread = max(spread, runs[-1].instructions - runs[0].instructions)
    small, large = chosen
    per_token = (large.instructions - small.instructions) / (large_n - small_n)
    return InstructionsPerToken(per_token=per_token, small=small, large=large,
                                seconds=time.monotonic() - started, repeat_spread=spread)


def named_function_costs(count: InstructionCount) -> dict[str, int]:
    """A callgrind run's inclusive instructions per function, Python functions named where
    the run had ``python_names`` on a 3.12+ interpreter, C functions otherwise."""
    if count.profile is None:
        raise ValueError(f"a {count.tool} run has no per-function costs; use callgrind")
    return function_costs(count.profile, count.perf_map)


def naming_note(count: InstructionCount) -> str | None:
    """Why a callgrind run's functions are C functions, not Python ones; None when named."""
    if count.perf_map:
        return None
    return ("the functions are C functions: Python functions are named through the "
            "interpreter's perf trampoline, which needs Python 3.12+ and python_names on")


def function_costs_per_token(command: ChildCommand, tokens: int, *,
                             sizes: tuple[int, int] | None = None, valgrind: str | None = None,
                             warm: bool = True, timeout_s: float = RUN_TIMEOUT_S,
                             cwd: Path | None = None) -> dict[str, float]:
    """Inclusive instructions per token of each function, start-up and imports taken out:
    callgrind runs at two sizes with the perf trampoline on (Python 3.12+ names them)."""
    measured = instructions_per_token(command, tokens, sizes=sizes, tool="callgrind",
                                      valgrind=valgrind, python_names=True, warm=warm,
                                      timeout_s=timeout_s, cwd=cwd)
    return per_token_costs(named_function_costs(measured.small),
                           named_function_costs(measured.large),
                           measured.large.tokens - measured.small.tokens)
