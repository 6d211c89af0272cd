"""How much each profiler slows a scenario down: ``python ci/profiler_overhead.py``.

(With the kit installed, or ``PYTHONPATH=.`` from the checkout.)

Runs one scenario (default: 1M tokens of 10 characters through the reference pipeline) in
a scenario child, unprofiled and under each profiler, a few times each, and prints the
median wall time of the child, the median measured run, their ratio to the unprofiled run
(the overhead factor), the time spent turning the recording into artifacts, and the
artifact sizes. The unprofiled reference is measured in the same invocation, so the
factors hold on a noisy machine even when the absolute times do not. Every child runs through
the engine's supervisor (stress.engine.supervise.run_child), with its deadlines.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from stress.config.scenario import Scenario
from stress.engine.options import Deadlines
from stress.engine.supervise import run_child
from stress.profiling import Profiler, make_profiler
from stress.stats import median
from stress.target import DEFAULT_TARGET


@dataclass(frozen=True)
class Timing:
    wall_s: float  # the child process, start to exit
    run_s: float  # the measured run inside it
    finish_s: float  # rendering artifacts after the child exited
    sizes: dict[str, int]  # artifact role -> bytes
    notes: tuple[str, ...]


class RunFailedError(RuntimeError):
    """A child did not finish its measured run."""


def run_once(profiler: Profiler | None, scenario: Scenario, target: str, work: Path) -> Timing:
    started = time.monotonic()
    with (work / "child.log").open("w", encoding="utf-8") as log_file:
        run = run_child(scenario, target=target, loop="asyncio", log_file=log_file,
                        deadlines=Deadlines(run_s=scenario.timeout_s), profiler=profiler,
                        measure_quit=False)
    total_s = time.monotonic() - started
    if run.status != "ok" or run.figures is None or run.figures.run is None:
        raise RunFailedError(f"{scenario.name} ended as {run.status}; see {work / 'child.log'}")
    outcome = run.profile
    sizes = {role: (work / name).stat().st_size
             for role, name in (outcome.artifacts.items() if outcome else ())}
    return Timing(wall_s=run.wall_s, run_s=run.figures.run.duration_s,
                  finish_s=max(total_s - run.wall_s, 0.0), sizes=sizes,
                  notes=outcome.notes if outcome else ())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python ci/profiler_overhead.py",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--message-size", type=int, default=10)
    parser.add_argument("--target", default=DEFAULT_TARGET)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--perf", action="store_true", help="also measure --cpu-profiler perf")
    args = parser.parse_args(argv)
    scenario = Scenario(name="overhead", title="Profiler overhead", messages=args.messages,
                        message_size=args.message_size, timeout_s=600)
    setups: list[tuple[str, str | None, str]] = [
        ("unprofiled", None, ""), ("memray", "memory", ""), ("py-spy", "cpu", "py-spy")]
    if args.perf:
        setups.append(("perf", "cpu", "perf"))
    print(f"{args.messages:,} tokens x {args.message_size} chars, target {args.target}, "
          f"median of {args.repeat} runs, Python {sys.version.split()[0]}")
    results: dict[str, list[Timing]] = {}
    with tempfile.TemporaryDirectory(prefix="stress-overhead-") as tmp:
        for _ in range(args.repeat):  # interleaved, so drift hits every setup alike
            for label, kind, cpu in setups:
                work = Path(tmp) / label
                work.mkdir(exist_ok=True)
                profiler = make_profiler(kind, out_dir=work, scenario=scenario.name,
                                         cpu_profiler=cpu or "py-spy") if kind else None
                try:
                    results.setdefault(label, []).append(
                        run_once(profiler, scenario, args.target, work))
                except RunFailedError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
        print_table(results)
    return 0


def print_table(results: dict[str, list[Timing]]) -> None:
    base = results["unprofiled"]
    base_wall = median([t.wall_s for t in base])
    base_run = median([t.run_s for t in base])
    print(f"{'setup':<11} {'wall s':>8} {'x wall':>7} {'run s':>8} {'x run':>7} "
          f"{'render s':>9}  artifacts")
    for label, timings in results.items():
        wall = median([t.wall_s for t in timings])
        run = median([t.run_s for t in timings])
        render = median([t.finish_s for t in timings])
        sizes = ", ".join(f"{role} {size / 1024:.0f} kB"
                          for role, size in sorted(timings[-1].sizes.items()))
        print(f"{label:<11} {wall:>8.2f} {wall / base_wall:>7.2f} {run:>8.3f} "
              f"{run / base_run:>7.2f} {render:>9.2f}  {sizes or '-'}")
        for note in timings[-1].notes:
            print(f"{'':<11} note: {note}")


if __name__ == "__main__":
    raise SystemExit(main())
