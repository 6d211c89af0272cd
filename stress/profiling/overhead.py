"""How much each profiler slows a scenario down: ``python -m stress.profiling.overhead``.

Runs one scenario (default: 1M tokens of 10 characters through the reference pipeline) in
a scenario child, unprofiled and under each profiler, a few times each, and prints the
median wall time of the child, the median measured run, their ratio to the unprofiled run
(the overhead factor), the time spent turning the recording into artifacts, and the
artifact sizes. The unprofiled reference is measured in the same invocation, so the
factors hold on a noisy machine even when the absolute times do not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from stress.child import ChildSpec
from stress.profiling import Profiler, make_profiler
from stress.scenario import Scenario
from stress.target import DEFAULT_TARGET


@dataclass(frozen=True)
class Timing:
    wall_s: float  # the child process, start to exit
    run_s: float  # the measured run inside it
    finish_s: float  # rendering artifacts after the child exited
    sizes: dict[str, int]  # artifact role -> bytes
    notes: tuple[str, ...]


def run_once(profiler: Profiler | None, scenario: Scenario, target: str, work: Path) -> Timing:
    spec = ChildSpec(scenario=scenario, target=target, loop="asyncio",
                     samples_path=work / "samples.jsonl", result_path=work / "result.json",
                     sample_interval_s=0.1, measure_quit=False)
    spec_path = work / "spec.json"
    spec_path.write_text(spec.to_json(), encoding="utf-8")
    argv = [sys.executable, "-m", "stress.child", str(spec_path)]
    env = dict(os.environ)
    if profiler is not None:
        argv, env = profiler.wrap(argv, env)
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if profiler is not None:
        profiler.attach(proc.pid)
    proc.wait()
    exited = time.perf_counter()
    outcome = profiler.finish(timed_out=False) if profiler is not None else None
    finished = time.perf_counter()
    figures = json.loads(spec.result_path.read_text(encoding="utf-8"))
    out_dir = spec_path.parent
    sizes = {role: (out_dir / name).stat().st_size
             for role, name in (outcome.artifacts.items() if outcome else ())}
    return Timing(wall_s=exited - started, run_s=float(figures["duration_s"]),
                  finish_s=finished - exited, sizes=sizes,
                  notes=outcome.notes if outcome else ())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stress.profiling.overhead",
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
                results.setdefault(label, []).append(
                    run_once(profiler, scenario, args.target, work))
    base = results["unprofiled"]
    base_wall = statistics.median(t.wall_s for t in base)
    base_run = statistics.median(t.run_s for t in base)
    print(f"{'setup':<11} {'wall s':>8} {'x wall':>7} {'run s':>8} {'x run':>7} "
          f"{'render s':>9}  artifacts")
    for label, timings in results.items():
        wall = statistics.median(t.wall_s for t in timings)
        run = statistics.median(t.run_s for t in timings)
        render = statistics.median(t.finish_s for t in timings)
        sizes = ", ".join(f"{role} {size / 1024:.0f} kB"
                          for role, size in sorted(timings[-1].sizes.items()))
        print(f"{label:<11} {wall:>8.2f} {wall / base_wall:>7.2f} {run:>8.3f} "
              f"{run / base_run:>7.2f} {render:>9.2f}  {sizes or '-'}")
        for note in timings[-1].notes:
            print(f"{'':<11} note: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
