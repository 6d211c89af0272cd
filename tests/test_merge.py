"""Merging CI matrix jobs' results folders into one, artifacts included."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stress.errors import ConfigError
from stress.report import write_reports
from stress.report.merge import merge, unique_labels
from stress.results import Result, parse_results_document
from tests.test_report_fixtures import loss_result, seed_results, timeout_result

REPO = Path(__file__).resolve().parents[1]


def job_folder(folder: Path, results: list[Result]) -> Path:
    """A results folder as one job leaves it: its logs and a profile, then the reports."""
    folder.mkdir(parents=True)
    placed = []
    for result in results:
        name = result.scenario.name
        (folder / f"stress-test-{name}.log").write_text(f"log of {name}\n", encoding="utf-8")
        (folder / "memray").mkdir(exist_ok=True)
        (folder / "memray" / f"{name}-flamegraph.html").write_text("<html></html>",
                                                                   encoding="utf-8")
        placed.append(dataclasses.replace(result, artifacts={
            "log": f"stress-test-{name}.log",
            "memray_flamegraph": f"memray/{name}-flamegraph.html"}))
    write_reports(placed, folder)
    return folder


def run_merge(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS",
                                                             "GITHUB_STEP_SUMMARY")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "stress", "merge", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_merged_reports_cover_every_job_and_artifacts_are_copied(tmp_path: Path) -> None:
    first = job_folder(tmp_path / "jobs" / "stress-results-short", seed_results()[:1])
    second = job_folder(tmp_path / "jobs" / "stress-results-backpressure", [loss_result()])
    out = tmp_path / "merged"
    done = run_merge(first, second, "--out", out)
    assert done.returncode == 1, done.stderr  # a threshold failed in one job
    assert "Stress: threshold failed in backpressure (exit 1)" in done.stdout
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    merged = parse_results_document(document)
    assert [r.scenario.name for r in merged] == ["short", "backpressure"]
    assert merged[0].artifacts == {
        "log": "stress-results-short/stress-test-short.log",
        "memray_flamegraph": "stress-results-short/memray/short-flamegraph.html"}
    for result in merged:
        for path in result.artifacts.values():
            assert (out / path).is_file(), path
    assert (out / "stress-results-backpressure" / "stress-test-backpressure.log").read_text(
        encoding="utf-8") == "log of backpressure\n"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'href="stress-results-short/memray/short-flamegraph.html"' in html
    assert "(missing)" not in html
    assert (out / "summary.md").read_text(encoding="utf-8").startswith(
        "# Stress: threshold failed in backpressure (exit 1)\n")
    assert (out / "junit.xml").read_text(encoding="utf-8").count("<testcase ") == 2


def test_folders_already_inside_out_are_referenced_not_copied(tmp_path: Path) -> None:
    first = job_folder(tmp_path / "all" / "job-a", seed_results()[:1])
    second = job_folder(tmp_path / "all" / "job-b", [timeout_result()])
    merged, warnings = merge([first, second], tmp_path / "all")
    assert warnings == ["scenario short appears 2 times (e.g. one per Python version); all kept"]
    assert merged[1].artifacts["log"] == "job-b/stress-test-short.log"
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["job-a", "job-b"]
    done = run_merge(first, second, "--out", tmp_path / "all")
    assert done.returncode == 4  # the timeout outranks everything
    assert "Stress: crashed or hung: short (exit 4)" in done.stdout
    assert "note: scenario short appears 2 times (e.g. one per Python version); all kept" \
        in done.stdout


def test_unsafe_and_missing_artifacts_are_reported(tmp_path: Path) -> None:
    folder = tmp_path / "job"
    folder.mkdir()
    result = dataclasses.replace(seed_results()[0], artifacts={
        "log": "stress-test-short.log", "leak_report": "../../etc/passwd",
        "cpu_flamegraph": "/etc/hostname"})
    write_reports([result], folder)
    merged, warnings = merge([folder], tmp_path / "out")
    assert merged[0].artifacts == {"log": "job/stress-test-short.log"}
    assert [w.split(": ", 1)[1] for w in warnings] == [
        "short's log is missing; its link is marked missing",
        "short leak_report '../../etc/passwd' points outside its folder; left out",
        "short cpu_flamegraph '/etc/hostname' points outside its folder; left out"]
    assert not (tmp_path / "out" / "etc").exists()


def test_same_named_folders_get_distinct_labels(tmp_path: Path) -> None:
    assert unique_labels([tmp_path / "a" / "results", tmp_path / "b" / "results",
                          tmp_path / "c" / "other"]) == ["results", "results-2", "other"]


def test_a_folder_without_results_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"results\.json: no such file"):
        merge([tmp_path / "empty"], tmp_path / "out")
    done = run_merge(tmp_path / "nowhere", "--out", tmp_path / "out")
    assert done.returncode == 2
    assert done.stderr == f"error: {tmp_path / 'nowhere'}: no such folder; pass results " \
                          "folders that each hold a results.json\n"
    assert not (tmp_path / "out").exists()


def test_links_are_not_followed_out_of_a_folder_or_into_out(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the artifact\n", encoding="utf-8")
    folder = job_folder(tmp_path / "job", seed_results()[:1])
    (folder / "stress-test-short.log").unlink()
    (folder / "stress-test-short.log").symlink_to(secret)
    (folder / "memray" / "stolen.txt").symlink_to(secret)
    (folder / "memray" / "stats.txt").write_text("stats\n", encoding="utf-8")
    with_folder = dataclasses.replace(seed_results()[0], artifacts={
        "log": "stress-test-short.log", "memray_flamegraph": "memray/short-flamegraph.html",
        "memray_stats_txt": "memray"})  # a whole folder as one artifact
    write_reports([with_folder], folder)
    out = tmp_path / "out"
    (out / "job" / "memray").mkdir(parents=True)
    planted = tmp_path / "planted.txt"
    planted.write_text("keep me\n", encoding="utf-8")
    (out / "job" / "memray" / "short-flamegraph.html").symlink_to(planted)
    merged, warnings = merge([folder], out)
    assert merged[0].artifacts == {"memray_flamegraph": "job/memray/short-flamegraph.html",
                                   "memray_stats_txt": "job/memray"}
    assert (out / "job" / "memray" / "stats.txt").read_text(encoding="utf-8") == "stats\n"
    assert warnings == [f"{folder}: short log 'stress-test-short.log' links outside its "
                        "folder; left out"]
    assert not (out / "job" / "stress-test-short.log").exists()
    assert not (out / "job" / "memray" / "stolen.txt").exists()
    copied = out / "job" / "memray" / "short-flamegraph.html"
    assert not copied.is_symlink()
    assert copied.read_text(encoding="utf-8") == "<html></html>"
    assert planted.read_text(encoding="utf-8") == "keep me\n"
