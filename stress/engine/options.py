"""How a run measures: the options the run command hands the engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from stress.engine.protocol import Loop
from stress.target import DEFAULT_TARGET

# The smaller of the two sizes an instruction count runs a scenario at (the other is twice
# it). Start-up dominates a counted run's time (about 600 million instructions, seconds under
# valgrind; 20,000 short tokens add a fraction of a second), while the odd run whose fixed
# costs differ by some ten thousand instructions moves the figure by 0.1% at 10,000 tokens
# apart and by half that at 20,000.
DEFAULT_INSTRUCTION_TOKENS = 20_000

ProfileKind = Literal["memory", "cpu"]
PROFILE_KINDS: tuple[ProfileKind, ...] = get_args(ProfileKind)
CpuProfiler = Literal["py-spy", "perf"]
CPU_PROFILERS: tuple[CpuProfiler, ...] = get_args(CpuProfiler)
# wall: tokens/s only. instructions: also instructions per token under cachegrind.
# callgrind: instructions per token under callgrind, with each function's (what `ab` runs to
# name the functions that got slower).
Measure = Literal["wall", "instructions", "callgrind"]
MEASURES: tuple[Measure, ...] = get_args(Measure)


@dataclass(frozen=True, kw_only=True)
class Deadlines:
    """How long each phase of a child may take, and how long a stop may."""

    startup_s: float = 30.0  # interpreter start and target import
    setup_s: float = 30.0  # the target's setup() and warm-up
    run_s: float = 60.0  # the measured run (the scenario's timeout_s)
    quit_s: float = 10.0  # how long run() may take to return after quit is set
    teardown_s: float = 10.0  # the target's teardown()
    stop_grace_s: float = 5.0  # after SIGTERM, before SIGKILL (lets memray finish its file)


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    out_dir: Path
    target: str = DEFAULT_TARGET
    loop: Loop = "asyncio"
    repeat: int = 1
    profile: tuple[ProfileKind, ...] = ()
    cpu_profiler: CpuProfiler = "py-spy"
    evidence: bool = True  # profile a failed scenario once more when no profile was asked
    sample_interval_s: float = 0.1
    flamegraph_source: bool = True  # False: memray's flamegraphs carry no source lines
    startup_budget_s: float = 30.0  # interpreter start and target import
    quit_budget_s: float = 10.0  # how long run() may take to return after quit is set
    setup_budget_s: float = 30.0  # the target's setup() and warm-up
    teardown_budget_s: float = 10.0  # the target's teardown()
    ignore_tasks: tuple[str, ...] = ()  # added to every scenario's ignore_tasks
    stop_grace_s: float = 5.0  # after SIGTERM, before SIGKILL (lets memray finish its file)
    measure: Measure = "wall"
    instruction_tokens: int = DEFAULT_INSTRUCTION_TOKENS

    def deadlines(self, run_s: float) -> Deadlines:
        return Deadlines(startup_s=self.startup_budget_s, setup_s=self.setup_budget_s,
                         run_s=run_s, quit_s=self.quit_budget_s,
                         teardown_s=self.teardown_budget_s, stop_grace_s=self.stop_grace_s)
