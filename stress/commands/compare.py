"""``python -m stress compare BASELINE CURRENT``: fail when a scenario's throughput dropped."""

from __future__ import annotations

import argparse
from pathlib import Path

from stress.compare import DEFAULT_MAX_DROP_PCT, run_comparison

HELP = ("compare throughput per scenario against a baseline (results.json or text log); "
        "exit 3 on a regression")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", type=Path, metavar="BASELINE",
                        help="results.json, a results folder, or a text log of the reference run")
    parser.add_argument("current", type=Path, metavar="CURRENT",
                        help="results.json, a results folder, or a text log of the run to judge")
    parser.add_argument("--max-drop", type=float, default=DEFAULT_MAX_DROP_PCT, metavar="PCT",
                        help="largest throughput drop allowed, in percent (default: "
                             f"{DEFAULT_MAX_DROP_PCT:g}); a regression is current/baseline "
                             "< 1 - PCT/100")


def run(args: argparse.Namespace) -> int:
    return run_comparison(args.baseline, args.current, args.max_drop)
