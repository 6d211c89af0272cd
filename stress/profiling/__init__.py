"""Profilers the runner attaches to a scenario child: memray (memory) and py-spy/perf (CPU).

The runner drives every profiler the same way (:class:`Profiler`): ``wrap`` the child's
command line before it is spawned, ``attach`` to its pid right after, ``finish`` once it has
exited. ``finish`` never raises for a profiler's own trouble; it returns notes instead, so
the scenario is still judged. All artifacts land at the top of the results folder, named
after the scenario::

    <scenario>-memray.bin                memray capture (aggregated: bounded in size)
    <scenario>-memray-flamegraph.html    peak memory flamegraph, opens offline
    <scenario>-leaks-flamegraph.html     allocations still alive at exit, opens offline
    <scenario>-memray-stats.txt / .json  statistics from the capture
    <scenario>-leak-report.txt           top allocation sites alive at exit, with stacks
    <scenario>-cpu-flamegraph.svg        CPU flamegraph (py-spy or perf)
    <scenario>-cpu-speedscope.json       the same samples, in time order, for speedscope
"""

from __future__ import annotations

from pathlib import Path

from stress.engine.options import CPU_PROFILERS, PROFILE_KINDS, CpuProfiler, ProfileKind
from stress.errors import ConfigError
from stress.profiling.base import ProfileOutcome, Profiler

__all__ = [
    "CPU_PROFILERS",
    "PROFILE_KINDS",
    "ProfileOutcome",
    "Profiler",
    "make_profiler",
    "parse_profile_kinds",
]


def parse_profile_kinds(text: str) -> tuple[ProfileKind, ...]:
    """``"memory,cpu"`` -> ``("memory", "cpu")``; ``""`` -> ``()``. Order kept, repeats dropped."""
    kinds: list[ProfileKind] = []
    for part in text.split(","):
        name = part.strip().lower()
        if not name:
            continue
        kind = next((k for k in PROFILE_KINDS if k == name), None)
        if kind is None:
            raise ConfigError(f"--profile {text!r}: unknown kind {name!r}; allowed: "
                              f"{', '.join(PROFILE_KINDS)} (comma-separated, e.g. memory,cpu)")
        if kind not in kinds:
            kinds.append(kind)
    return tuple(kinds)


def make_profiler(kind: str, *, out_dir: Path, scenario: str,
                  cpu_profiler: CpuProfiler | str = "py-spy",
                  source_lines: bool = True) -> Profiler:
    if kind == "memory":
        from stress.profiling.memray_profiler import MemrayProfiler

        return MemrayProfiler(out_dir=out_dir, scenario=scenario, source_lines=source_lines)
    if kind == "cpu":
        if cpu_profiler == "py-spy":
            from stress.profiling.cpu_profiler import PySpyProfiler

            return PySpyProfiler(out_dir=out_dir, scenario=scenario)
        if cpu_profiler == "perf":
            from stress.profiling.perf_profiler import PerfProfiler

            return PerfProfiler(out_dir=out_dir, scenario=scenario)
        raise ConfigError(f"--cpu-profiler {cpu_profiler!r}: allowed: {', '.join(CPU_PROFILERS)}")
    raise ConfigError(f"--profile: unknown kind {kind!r}; allowed: {', '.join(PROFILE_KINDS)}")
