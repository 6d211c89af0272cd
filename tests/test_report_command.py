"""``python -m stress report RESULTS_DIR``: every report rebuilt from results.json alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stress.report import REPORT_FILES, write_reports
from stress.report.text import format_block
from tests.test_report_fixtures import loss_result, seed_results

REPO = Path(__file__).resolve().parents[1]


def run_report(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS",
                                                             "GITHUB_STEP_SUMMARY")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "stress", "report", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_reports_are_rebuilt_from_results_json(tmp_path: Path) -> None:
    write_reports([*seed_results(), loss_result()], tmp_path)
    keep = (tmp_path / "results.json").read_text(encoding="utf-8")
    for name in REPORT_FILES[1:]:
        (tmp_path / name).unlink()
    done = run_report(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "Stress: threshold failed in backpressure (exit 1)"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(REPORT_FILES)
    assert "<svg" in (tmp_path / "report.html").read_text(encoding="utf-8")
    rebuilt = (tmp_path / "results.json").read_text(encoding="utf-8")
    # Only the generation time may differ.
    drop_time = [line for line in keep.splitlines() if '"generated_at"' not in line]
    assert [line for line in rebuilt.splitlines() if '"generated_at"' not in line] == drop_time


def test_a_baseline_log_appears_beside_each_throughput(tmp_path: Path) -> None:
    write_reports(seed_results(), tmp_path / "run")
    baseline = tmp_path / "baseline.log"
    baseline.write_text("\n".join(format_block(r) for r in seed_results()[:2]) + "\n",
                        encoding="utf-8")
    done = run_report(tmp_path / "run", "--baseline", baseline)
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "22,124 tokens/sec (baseline 22,124, +0%)" in html
    summary = (tmp_path / "run" / "summary.md").read_text(encoding="utf-8")
    assert "| Medium (1M) | 10142 | 10142 | +0% |" in summary
    assert "| Long (1K) | not in baseline | 289 | N/A |" in summary


def test_a_folder_without_results_json_is_a_usage_error(tmp_path: Path) -> None:
    done = run_report(tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {tmp_path / 'results.json'}: no such file")
