"""``python -m stress report RESULTS_DIR``: rewrite the reports from a folder's results.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from stress.report import REPORT_FILES, load_baseline, write_reports
from stress.report.read import read_results_json
from stress.report.summary import verdict_line

HELP = ("regenerate results.json, junit.xml, summary.md and report.html from a results "
        "folder (e.g. a downloaded CI artifact)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", type=Path, metavar="RESULTS_DIR",
                        help="the folder holding results.json; the reports are written there")
    parser.add_argument("--baseline", type=Path, metavar="FILE",
                        help="results.json or text log whose throughputs are shown beside "
                             "each scenario's, with the change in percent")


def run(args: argparse.Namespace) -> int:
    """Exit 0 once the reports are written; the run's own verdict is in their first line."""
    results = read_results_json(args.results_dir / "results.json")
    baseline = load_baseline(args.baseline) if args.baseline else None
    write_reports(results, args.results_dir, baseline=baseline, final=True)
    print(verdict_line(results).removeprefix("# "))
    print(f"wrote {', '.join(REPORT_FILES)} in {args.results_dir}/")
    return 0
