"""``python -m stress compare BASELINE CURRENT``: fail when a scenario's throughput dropped."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from stress.compare import (
    DEFAULT_MAX_DROP_PCT,
    DEFAULT_MAX_GROWTH_PCT,
    check_max_drop,
    compare,
    format_comparison,
    format_regression,
)
from stress.console import annotate_error
from stress.errors import ConfigError
from stress.report.read import read_results

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
    parser.add_argument("--max-growth", type=float, default=DEFAULT_MAX_GROWTH_PCT,
                        metavar="PCT",
                        help="where both sides have instructions per token (run --measure "
                             "instructions), they judge instead: a regression is current/"
                             f"baseline > 1 + PCT/100 (default: {DEFAULT_MAX_GROWTH_PCT:g})")


def run_comparison(baseline_path: Path, current_path: Path,
                   max_drop_pct: float = DEFAULT_MAX_DROP_PCT, out: TextIO | None = None,
                   max_growth_pct: float = DEFAULT_MAX_GROWTH_PCT) -> int:
    """Read both sides, print the table, annotate each regression; return 3 or 0."""
    check_max_drop(max_drop_pct)
    if not 0 <= max_growth_pct < 100:
        raise ConfigError(f"--max-growth {max_growth_pct:g}: expected a percentage from 0 to "
                          "below 100, e.g. 3")
    comparison = compare(read_results(baseline_path), read_results(current_path), max_drop_pct,
                         max_growth_pct)
    print(format_comparison(comparison, str(baseline_path), str(current_path)),
          file=out or sys.stdout, flush=True)
    if not comparison.rows:
        raise ConfigError(f"{current_path}: no scenario in common with {baseline_path} "
                          "(matched by name or title); compare runs of the same scenarios")
    for row in comparison.regressions:
        annotate_error("stress: throughput regression", format_regression(comparison, row))
    return int(comparison.exit_code)


def run(args: argparse.Namespace) -> int:
    return run_comparison(args.baseline, args.current, args.max_drop,
                          max_growth_pct=args.max_growth)
