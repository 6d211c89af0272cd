"""How often an instruction-count gate cries wolf, and which slowdowns it catches, here.

    python ci/instruction_gate.py [--self-runs 20] [--slow-runs 5] [--slowdowns 2,5,10]
                                  [--max-drop 3] [--tokens 500] [--repeats 1]
                                  [--python PYTHON]

The sibling of ci/ab_false_alarm.py for the instruction measure. The workload is
stress/profiling/instruction_workload.py (producer -> queue -> stage -> queue -> consumer
rendering each token). One gate comparison measures instructions per token for base and head
(each: two valgrind runs, at --tokens and twice as many, the difference taken so start-up is
out) and calls it a regression when base/head per-token instructions (head/base throughput,
as the wall-clock gate states its rule) is below 1 - --max-drop/100.

Identical code is compared with itself --self-runs times. For each slowdown of s%, head's
render gets enough extra steps a token for s% more instructions a token: the steps are
calibrated from two measured points (--work and twice it), and the expected head/base after
rounding to whole steps is printed beside what the gate measured. Then, with a 3.12+
interpreter (perf trampoline), one callgrind pair shows the table of functions that grew.
Prints figures; exit code 0 unless a measurement failed.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # this checkout's kit

from stress.errors import StressError  # noqa: E402  (after the checkout is on the path)
from stress.profiling import instructions  # noqa: E402
from stress.profiling.callgrind import growth_table, slower_functions  # noqa: E402
from stress.profiling.instructions import (  # noqa: E402
    ChildCommand,
    InstructionsPerToken,
    count_instructions,
    instructions_per_token,
    named_function_costs,
    require_valgrind,
    valgrind_version,
)
from stress.stats import median  # noqa: E402

WORKLOAD = Path(instructions.__file__).with_name("instruction_workload.py")


def workload(python: str, work: int) -> ChildCommand:
    return lambda tokens: ([python, str(WORKLOAD), str(tokens), "--work", str(work)],
                           {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})


@dataclass
class Comparison:
    """What the gate saw, over its comparisons of one pair of workloads."""

    ratios: list[float] = field(default_factory=list)  # base/head instructions per token
    flagged: int = 0
    seconds: list[float] = field(default_factory=list)  # wall time of each measurement


def compare(python: str, base_work: int, head_work: int, args: argparse.Namespace, *,
            runs: int, label: str) -> Comparison:
    found = Comparison()
    limit = 1 - args.max_drop / 100
    for i in range(1, runs + 1):
        started = time.monotonic()
        base, head = (instructions_per_token(workload(python, work), args.tokens,
                                             repeats=args.repeats)
                      for work in (base_work, head_work))
        ratio = base.per_token / head.per_token
        found.ratios.append(ratio)
        found.seconds += [base.seconds, head.seconds]
        found.flagged += ratio < limit
        print(f"{label} {i}/{runs}: head/base {ratio:.5f} "
              f"({base.per_token:,.1f} -> {head.per_token:,.1f} instructions a token) "
              f"{'regression' if ratio < limit else 'ok'}  [{time.monotonic() - started:.0f}s]",
              flush=True)
    return found


def calibrate(python: str, args: argparse.Namespace) -> tuple[InstructionsPerToken, float]:
    """Per-token instructions at --work, and what one more render step a token adds."""
    base = instructions_per_token(workload(python, args.work), args.tokens)
    doubled = instructions_per_token(workload(python, 2 * args.work), args.tokens)
    per_step = (doubled.per_token - base.per_token) / args.work
    print(f"calibration: {base.per_token:,.1f} instructions a token at --work {args.work} "
          f"(fixed costs {base.fixed:,.0f}), {per_step:,.1f} per render step; "
          f"{base.seconds:.1f}s a measurement")
    return base, per_step


def spread_text(values: list[float]) -> str:
    return f"{min(values):.5f}..{max(values):.5f}" if values else "-"


def function_table(python: str, args: argparse.Namespace, head_work: int) -> None:
    """One callgrind pair, base against the largest slowdown: the functions that grew."""
    if not python_names_available(python):
        print("No function table: Python functions are named through the perf trampoline, "
              "which needs Python 3.12+ (pass --python)")
        return
    started = time.monotonic()
    base, head = (named_function_costs(count_instructions(
        workload(python, work), args.tokens, tool="callgrind", python_names=True))
        for work in (args.work, head_work))
    rows = slower_functions(base, head, top=6)
    print(f"Functions that grew (callgrind, -X perf, {args.tokens} tokens, whole runs; "
          f"{time.monotonic() - started:.0f}s for the pair):")
    print(growth_table(rows))


def python_names_available(python: str) -> bool:
    done = subprocess.run([python, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() == "True"


def perf_python(requested: str | None) -> str:
    if requested:
        return requested
    if sys.version_info >= (3, 12):
        return sys.executable
    found = sorted(glob.glob("/root/.pyenv/versions/3.1[2-9]*/bin/python3"))
    return found[-1] if found else sys.executable


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--self-runs", type=int, default=20)
    parser.add_argument("--slow-runs", type=int, default=5)
    parser.add_argument("--slowdowns", default="2,5,10", help="percent more instructions a "
                        "token in head, comma-separated")
    parser.add_argument("--max-drop", type=float, default=3.0)
    parser.add_argument("--tokens", type=int, default=500, help="the smaller size")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each size, the median total used")
    parser.add_argument("--work", type=int, default=20, help="render's steps a token in base")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter the workload runs on")
    parser.add_argument("--table-python", default=None,
                        help="3.12+ interpreter for the function table (default: found)")
    args = parser.parse_args()
    try:
        version = valgrind_version(require_valgrind())
    except StressError as exc:
        print(exc)
        return 1
    slowdowns = sorted(float(s) for s in args.slowdowns.split(","))
    print(f"{os.cpu_count()} CPUs, {version}, {args.python}; regression when head/base < "
          f"{1 - args.max_drop / 100:.3f}; load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    started = time.monotonic()
    base, per_step = calibrate(args.python, args)
    same = compare(args.python, args.work, args.work, args, runs=args.self_runs,
                   label="self")
    detected: dict[float, tuple[float, Comparison]] = {}
    for slowdown in slowdowns:
        extra = round(slowdown / 100 * base.per_token / per_step)
        expected = base.per_token / (base.per_token + extra * per_step)
        detected[slowdown] = expected, compare(args.python, args.work, args.work + extra,
                                               args, runs=args.slow_runs,
                                               label=f"+{slowdown:g}%")
    seconds = same.seconds + [s for _, c in detected.values() for s in c.seconds]
    print(f"\nFalse alarms, same code both sides: {same.flagged} of {args.self_runs} "
          f"comparisons at a {args.max_drop:g}% limit")
    print(f"  head/base: {spread_text(same.ratios)} (sd "
          f"{statistics.pstdev(same.ratios) if same.ratios else 0:.6f})")
    print(f"Detection, {args.slow_runs} comparisons per slowdown:")
    print("  instructions/token  expected head/base  measured head/base   flagged")
    for slowdown, (expected, found) in detected.items():
        print(f"  +{slowdown:<17g} {expected:<19.4f} {spread_text(found.ratios):<19} "
              f"{found.flagged}/{args.slow_runs}")
    print(f"Wall time per measurement ({2 * args.repeats} valgrind runs): "
          f"median {median(seconds):.1f}s "
          f"({min(seconds):.1f}..{max(seconds):.1f}); a gate comparison is two measurements")
    function_table(perf_python(args.table_python), args,
                   args.work + round(max(slowdowns) / 100 * base.per_token / per_step))
    print(f"Took {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
