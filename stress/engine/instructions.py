"""Instructions per token for one scenario: its child run under valgrind, at two sizes.

The measure behind ``run --measure instructions`` and the side-by-side gate's instruction
rounds. Each size is one supervised child (stress.engine.supervise.run_child, so deadlines,
interrupts and the log behave as for any run) with valgrind wrapped around it the way a
profiler wraps the child. Three things would make the count depend on the clock rather than
on the code, and are switched off for these runs: the sampler's thread and timers and the
stack dump's heartbeat (``SAMPLER_ENV``), and the quit-under-load phase (a polling loop).
Two more would make it depend on the machine, the process table psutil reads and how fast
the latencies came out, and are made to read only the child (``COUNTED_CHILD``).

The scenario is scaled to ``tokens`` and ``2 * tokens`` tokens; the figure is the difference
of the two totals over the difference of the tokens received, so interpreter start-up, the
kit's and the target's imports and its setup are taken out (stress.profiling.instructions
explains why N and 2N rather than 0 and N).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from stress.config.scenario import Scenario
from stress.engine.options import DEFAULT_INSTRUCTION_TOKENS, Deadlines, RunOptions
from stress.engine.protocol import Loop
from stress.engine.supervise import ChildRun, StopRequest, run_child
from stress.errors import StressError
from stress.profiling.base import ProfileOutcome
from stress.profiling.callgrind import per_token_costs
from stress.profiling.instructions import (
    RUN_TIMEOUT_S,
    InstructionCount,
    InstructionCounter,
    InstructionRunError,
    Tool,
    named_function_costs,
    naming_note,
    require_valgrind,
)
from stress.results import Metrics

# The child reads this: "off" starts no sampler thread, no sampler timer, no heartbeat.
SAMPLER_ENV = "STRESS_SAMPLER"
STARTUP_UNDER_VALGRIND_S = 120.0  # interpreter start and imports under valgrind
FUNCTIONS_FILE = "functions-{name}.json"  # callgrind's per-function costs per token


# The counted child: stress.engine.child as it is, with two things that read the machine
# rather than the code made to read only the child itself. Without them the fixed costs of
# two identical runs differed by up to a million instructions on a shared machine, 3% to 13%
# of the per-token figure at 10,000 tokens apart (two runs now agree to about a thousand):
# - psutil finds the child's own processes (each checkpoint's leftover check) by reading
#   every process's /proc entry, about 37,000 instructions a process on the machine; here it
#   reads /proc/PID/task/TID/children, the child's own (psutil's way stays where the kernel
#   has no such files);
# - time.perf_counter is a counter that steps a microsecond a call: the harness's latency
#   histograms and the figures it writes took a size, so a cost, from how fast the machine
#   happened to run (the loop's own clock, time.monotonic, is untouched). The counted run's
#   times mean nothing, and are not used: its figure is the count.
COUNTED_CHILD = """
import itertools, os, runpy, time
import psutil

def children(self, recursive=False):
    found, pending = [], [self.pid]
    while pending:
        pid = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children") as listed:
                    pids = [int(p) for p in listed.read().split()]
            except OSError:
                continue
            found += pids
            pending += pids if recursive else []
    out = []
    for pid in found:
        try:
            out.append(psutil.Process(pid))
        except psutil.Error:
            pass
    return out

if os.path.exists(f"/proc/self/task/{os.getpid()}/children"):
    psutil.Process.children = children
ticks = itertools.count(1)
time.perf_counter = lambda: next(ticks) * 1e-6
runpy.run_module(%r, run_name="__main__", alter_sys=True)
"""


def counted_child_argv(argv: list[str]) -> list[str]:
    """``python -m stress.engine.child SPEC`` as the counted child (:data:`COUNTED_CHILD`)."""
    if len(argv) < 3 or argv[1] != "-m":
        return argv
    return [argv[0], "-c", COUNTED_CHILD % argv[2], *argv[3:]]


class _ValgrindWrapper:
    """A profiler-shaped wrapper: run_child spawns and supervises, valgrind counts."""

    kind = "instructions"

    def __init__(self, counter: InstructionCounter) -> None:
        self.counter = counter

    def wrap(self, argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        return self.counter.wrap(counted_child_argv(argv), {**env, SAMPLER_ENV: "off"})

    def attach(self, pid: int) -> None:
        pass

    def finish(self, *, timed_out: bool) -> ProfileOutcome:
        return ProfileOutcome(kind=self.kind, artifacts={})


@dataclass(frozen=True, kw_only=True)
class InstructionFigures:
    """One scenario's instructions per token, and what it took to measure them."""

    per_token: float
    small_tokens: int
    large_tokens: int
    fixed: float  # start-up, imports, setup: a zero-token run's cost, by extrapolation
    seconds: float  # wall time of both valgrind runs
    valgrind_version: str
    tool: Tool
    functions: dict[str, float] | None = None  # callgrind: instructions per token per function
    naming_note: str | None = None  # callgrind: why the functions are C functions

    def note(self) -> str:
        return (f"Instructions per token: {self.per_token:,.1f} ({self.tool} "
                f"{self.valgrind_version}, {self.small_tokens:,} and {self.large_tokens:,} "
                f"tokens, fixed costs of {self.fixed:,.0f} instructions taken out; "
                f"{self.seconds:.1f}s under valgrind)")


def sized(scenario: Scenario, tokens: int) -> Scenario:
    """The scenario with about ``tokens`` tokens in all (its conversations kept)."""
    return scenario.scaled(tokens / max(1, scenario.expected_tokens))


def _one_run(scenario: Scenario, *, target: str, loop: Loop, log_file: TextIO,
             stop: StopRequest | None, tool: Tool, python_names: bool,
             timeout_s: float) -> tuple[InstructionCount, ChildRun]:
    counter = InstructionCounter(tool=tool, python_names=python_names)
    try:
        log_file.write(f"\n--- instruction count ({tool}): {scenario.expected_tokens:,} tokens "
                       f"(figures below are not judged) ---\n")
        log_file.flush()
        deadlines = Deadlines(startup_s=STARTUP_UNDER_VALGRIND_S, run_s=timeout_s,
                              quit_s=timeout_s)
        run = run_child(scenario, target=target, loop=loop, log_file=log_file,
                        deadlines=deadlines, stop=stop, profiler=_ValgrindWrapper(counter),
                        measure_quit=False, sample_interval_s=3600.0)
        if run.status != "ok" or run.figures is None or run.figures.run is None:
            error = run.figures.error if run.figures is not None else None
            detail = error or (counter.valgrind_log().strip().splitlines() or ["no detail"])[-1]
            raise InstructionRunError(
                f"the child ended as {run.status} under valgrind ({scenario.expected_tokens:,} "
                f"tokens): {detail[:300]}")
        return counter.read(run.figures.run.tokens_received), run
    finally:
        counter.close()


def measure_instructions(scenario: Scenario, *, target: str, loop: Loop, log_file: TextIO,
                         stop: StopRequest | None = None, tokens: int = DEFAULT_INSTRUCTION_TOKENS,
                         tool: Tool = "cachegrind") -> InstructionFigures:
    """Instructions per token of ``scenario`` against ``target``, start-up taken out.

    ``tool="callgrind"`` also gives each function's instructions per token, Python functions
    named on 3.12+ (the perf trampoline, which changes the counts: compare like with like).
    Raises ValgrindMissing without valgrind, InstructionRunError when a run fails.
    """
    require_valgrind()
    python_names = tool == "callgrind"
    timeout_s = RUN_TIMEOUT_S  # a scaled-down run: minutes under valgrind would be a hang
    started = time.monotonic()
    counts: list[InstructionCount] = []
    for size in (tokens, 2 * tokens):
        count, _ = _one_run(sized(scenario, size), target=target, loop=loop,
                            log_file=log_file, stop=stop, tool=tool,
                            python_names=python_names, timeout_s=timeout_s)
        counts.append(count)
    small, large = counts
    apart = large.tokens - small.tokens
    if apart <= 0:
        raise InstructionRunError(f"the larger run received {large.tokens:,} tokens, the "
                                  f"smaller {small.tokens:,}: no difference to measure")
    per_token = (large.instructions - small.instructions) / apart
    functions = note = None
    if python_names:
        functions = per_token_costs(named_function_costs(small), named_function_costs(large),
                                    apart)
        note = naming_note(small)
        if note is not None and sys.version_info < (3, 12):
            note = (f"The functions are C functions: Python {sys.version_info.major}."
                    f"{sys.version_info.minor} has no perf trampoline (Python names need 3.12+, "
                    "run with -X perf)")
    return InstructionFigures(per_token=per_token, small_tokens=small.tokens,
                              large_tokens=large.tokens,
                              fixed=small.instructions - per_token * small.tokens,
                              seconds=time.monotonic() - started,
                              valgrind_version=small.valgrind_version, tool=tool,
                              functions=functions, naming_note=note)


def write_functions(figures: InstructionFigures, out_dir: Path, name: str) -> str | None:
    """The per-function costs as an artifact (the gate reads both sides'); its file name."""
    if figures.functions is None:
        return None
    file_name = FUNCTIONS_FILE.format(name=name)
    payload = {"version": 1, "unit": "instructions per token", "tool": figures.tool,
               "naming_note": figures.naming_note, "per_token": figures.per_token,
               "functions": {k: round(v, 3) for k, v in sorted(figures.functions.items())
                             if v != 0}}
    (out_dir / file_name).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return file_name


def read_functions(path: Path) -> tuple[dict[str, float], str | None]:
    """An artifact written by :func:`write_functions`: the costs and the naming note."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        functions = {str(k): float(v) for k, v in data["functions"].items()}
        note = data.get("naming_note")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StressError(f"unreadable function costs {path}: {exc}") from exc
    return functions, note if isinstance(note, str) else None


def with_instructions(scenario: Scenario, options: RunOptions, metrics: Metrics, *,
                      log_file: TextIO, stop: StopRequest, notes: list[str],
                      artifacts: dict[str, str]) -> Metrics:
    """``metrics`` with the scenario's instructions per token (the runner's hook).

    A run that fails under valgrind leaves the figure out and says why in a note; a missing
    valgrind was refused before the first scenario (ValgrindMissing).
    """
    tool: Tool = "callgrind" if options.measure == "callgrind" else "cachegrind"
    try:
        figures = measure_instructions(scenario, target=options.target, loop=options.loop,
                                       log_file=log_file, stop=stop,
                                       tokens=options.instruction_tokens, tool=tool)
    except InstructionRunError as exc:
        notes.append(f"No instruction count: {exc}")
        return metrics
    notes.append(figures.note())
    if figures.naming_note:
        notes.append(figures.naming_note)
    file_name = write_functions(figures, options.out_dir, scenario.name)
    if file_name is not None:
        artifacts["functions"] = file_name
    return dataclasses.replace(metrics, instructions_per_token=round(figures.per_token, 3))
