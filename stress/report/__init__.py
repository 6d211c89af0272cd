"""The reports of a run, all written into its results folder.

``write_reports`` is called after every scenario and once at the end; each file is replaced
atomically (report/files.py), so a run killed at any moment leaves the previous complete
version, never half, and a symlink planted in the folder is replaced, not written through.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from stress.report.files import write_file_atomically
from stress.report.html import render_html
from stress.report.json_report import render_json
from stress.report.junit import render_junit
from stress.report.read import read_results
from stress.report.summary import render_summary
from stress.results import Result

log = logging.getLogger("stress")

REPORT_FILES = ("results.json", "junit.xml", "summary.md", "report.html")


def write_reports(results: list[Result], out_dir: Path, *,
                  baseline: list[Result] | None = None, final: bool = True) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    summary = render_summary(results, baseline=baseline, final=final)
    write_file_atomically(out_dir / "results.json", render_json(results, generated_at=now))
    write_file_atomically(out_dir / "junit.xml", render_junit(results))
    write_file_atomically(out_dir / "summary.md", summary)
    write_file_atomically(out_dir / "report.html",
                          render_html(results, baseline=baseline, out_dir=out_dir, final=final,
                                      generated_at=now))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if final and step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write(summary + "\n")
        except OSError as exc:  # the step summary is a courtesy; the reports are written
            log.warning("could not append to $GITHUB_STEP_SUMMARY (%s): %s", step_summary, exc)


def load_baseline(path: Path) -> list[Result]:
    """A baseline for the reports: a results.json (or its folder) or a text log."""
    return read_results(path)


__all__ = ["REPORT_FILES", "load_baseline", "write_reports"]
