"""``python -m stress merge DIR ... --out OUT``: one report from several results folders.

Each DIR is one CI matrix job's folder (results.json plus its artifacts); stress.report.merge
says how artifacts are placed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stress.report import REPORT_FILES, load_baseline, write_reports
from stress.report.merge import merge
from stress.report.summary import verdict_line
from stress.results import overall_exit_code

HELP = ("merge results folders (one per CI job) into one: results.json, junit.xml, summary.md "
        "and report.html in --out, artifacts copied along")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                        help="results folders, each holding a results.json")
    parser.add_argument("--out", type=Path, required=True,
                        help="the merged folder (created if missing; may be one of the DIRs' "
                             "parent)")
    parser.add_argument("--baseline", type=Path, metavar="FILE",
                        help="results.json or text log whose throughputs report.html shows "
                             "beside each scenario's")


def run(args: argparse.Namespace) -> int:
    """Exit with the merged run's code: 4 if any job crashed or hung, 1 if any failed."""
    baseline = load_baseline(args.baseline) if args.baseline else None
    merged, warnings = merge(args.dirs, args.out)
    for warning in warnings:
        print(f"note: {warning}")
    write_reports(merged, args.out, baseline=baseline, final=True)
    print(verdict_line(merged).removeprefix("# "))
    print(f"merged {len(merged)} scenario result(s) from {len(args.dirs)} folder(s); "
          f"wrote {', '.join(REPORT_FILES)} in {args.out}/")
    return int(overall_exit_code(merged))
