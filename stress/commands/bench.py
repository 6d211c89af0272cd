"""``python -m stress bench``: a target (the reference pipeline) against a bare asyncio.Queue."""

from __future__ import annotations

import argparse
import json
import sys

from stress.bench import workloads
from stress.commands.common import check_loops, check_scale
from stress.engine.protocol import Loop
from stress.errors import ExitCode
from stress.target import DEFAULT_TARGET, load_target

HELP = ("benchmark the reference pipeline (or --target) on the seed's workloads against a "
        "bare asyncio.Queue measured in the same run (tokens/s, ratio, memory, quit latency)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"workloads (default: all): {', '.join(workloads.workload_names())}")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list of rows instead of the table")
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "both"), default="asyncio",
                        help="event loop(s) to measure on (both: uvloop's figures beside)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply message counts (targets are set for full size)")
    parser.add_argument("--target", default=DEFAULT_TARGET, metavar="MODULE:ATTR",
                        help=f"the system under test (default: {DEFAULT_TARGET})")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a target is missed (default: figures only)")


def run(args: argparse.Namespace) -> int:
    from stress.bench import bench

    check_scale(args.scale)
    loops: tuple[Loop, ...] = ("asyncio", "uvloop") if args.loop == "both" else \
        ("uvloop",) if args.loop == "uvloop" else ("asyncio",)
    check_loops(list(loops))
    chosen = workloads.select(args.names)
    load_target(args.target)  # fail here, once, rather than in every child
    plan = bench.BenchPlan(target=args.target, loops=loops, scale=args.scale)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        rows = bench.run_bench(chosen, plan, progress)
    except bench.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=2))
    else:
        subject = "Reference pipeline" if args.target == DEFAULT_TARGET else args.target
        print(f"{subject} vs bare asyncio.Queue ceiling "
              f"({bench.environment_line(loops, args.scale)})")
        if args.scale != 1.0:
            print("Note: targets are set for full-size workloads (--scale 1).")
        print(bench.format_table(rows))
    missed = [row for row in rows if not row.target_ok]
    if args.check and missed:
        return int(ExitCode.THRESHOLD_FAILED)
    return int(ExitCode.PASSED)
