"""``python -m stress bench``: the reference pipeline against a bare asyncio.Queue ceiling."""

from __future__ import annotations

import argparse
import json
import sys

from stress import bench
from stress.commands.common import check_loops, check_scale
from stress.errors import ExitCode

HELP = ("benchmark the reference pipeline on the seed's workloads against a bare "
        "asyncio.Queue measured in the same run (tokens/s, ratio, memory, quit latency)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"workloads (default: all): {', '.join(bench.workload_names())}")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list of rows instead of the table")
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "both"), default="asyncio",
                        help="event loop(s) to measure on (both: uvloop's figures beside)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply message counts (targets are set for full size)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a target is missed (default: figures only)")


def run(args: argparse.Namespace) -> int:
    check_scale(args.scale)
    loops = list(bench.LOOPS) if args.loop == "both" else [args.loop]
    check_loops(loops)
    workloads = bench.select(args.names)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        rows = bench.run_bench(workloads, loops, args.scale, progress)
    except bench.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(ExitCode.CRASHED_OR_HUNG)
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=2))
    else:
        print(f"Reference pipeline vs bare asyncio.Queue ceiling "
              f"({bench.environment_line(loops, args.scale)})")
        if args.scale != 1.0:
            print("Note: targets are set for full-size workloads (--scale 1).")
        print(bench.format_table(rows))
    missed = [row for row in rows if not row.target_ok]
    if args.check and missed:
        return int(ExitCode.THRESHOLD_FAILED)
    return int(ExitCode.PASSED)
