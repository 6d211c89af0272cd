"""The results folder and the run's own reliability pieces, in process: the lock, stale files,
a full disk injected into the report writer, the capped log, a run that was interrupted."""

from __future__ import annotations

import dataclasses
import errno
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from stress.engine.capped import cap_section
from stress.errors import ConfigError, ExitCode
from stress.report import folder
from stress.report.files import DROPPED_NOTE, open_new_text_file, write_file_atomically
from stress.report.html import render_html
from stress.report.junit import render_junit
from stress.report.summary import render_summary
from stress.results import (
    MISSING_PROFILE_NOTE,
    Result,
    not_run_result,
    overall_exit_code,
    parse_results_document,
    results_document,
)
from tests.test_report_fixtures import LONG, SHORT, result


def test_the_lock_names_the_run_that_holds_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    held = pytest.raises(ConfigError, match=rf"pid {os.getpid()}, started at 20")
    with folder.claim(out), held, folder.claim(out):
        pass
    with folder.claim(out):  # released: a later run gets it
        pass
    assert not (out / folder.LOCK_NAME).exists()


def test_a_lock_left_by_a_killed_run_holds_nothing(tmp_path: Path) -> None:
    (tmp_path / folder.LOCK_NAME).write_text("pid 1, started at 2020-01-01\n", encoding="utf-8")
    with folder.claim(tmp_path):
        assert str(os.getpid()) in (tmp_path / folder.LOCK_NAME).read_text(encoding="utf-8")


def test_only_the_kits_own_files_are_removed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text(
        '{"version": 1, "scenarios": [{"artifacts": {"a": "../outside.txt", "b": "old.svg",'
        ' "c": "/etc/passwd"}}]}', encoding="utf-8")
    for name in ("old.svg", "short-memray.bin", "stress-test-short.log", "notes.txt"):
        (out / name).write_text("x", encoding="utf-8")
    removed = folder.remove_stale_files(out, ["short"])
    assert sorted(removed) == ["old.svg", "short-memray.bin", "stress-test-short.log"]
    assert outside.exists()
    assert (out / "notes.txt").exists()


def test_a_full_disk_drops_the_profiles_and_keeps_the_reports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "short-memray-flamegraph.html").write_text("big", encoding="utf-8")
    profiled = dataclasses.replace(result(SHORT), artifacts={
        "log": "stress-test-short.log", "memray_flamegraph": "short-memray-flamegraph.html"})
    calls = {"n": 0}

    def full_once(path: Path, data: str | bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        write_file_atomically(path, data)

    monkeypatch.setattr("stress.report.write_file_atomically", full_once)
    written = folder.write_reports_safely([profiled, result(LONG)], tmp_path)
    for name in ("results.json", "junit.xml", "summary.md", "report.html"):
        assert (tmp_path / name).stat().st_size > 0
    assert written[0].artifacts == {"log": "stress-test-short.log"}
    assert "the disk was full" in written[0].notes[-1]
    assert not (tmp_path / "short-memray-flamegraph.html").exists()
    assert written[1] == result(LONG)


def test_a_full_disk_cuts_the_logs_when_dropping_the_profiles_is_not_enough(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "stress-test-short.log"
    log.write_text("the header\n" + "".join(f"output line {i}\n" for i in range(50_000))
                   + "the verdict\n", encoding="utf-8")
    logged = dataclasses.replace(result(SHORT), artifacts={"log": log.name})
    calls = {"n": 0}

    def full_twice(path: Path, data: str | bytes) -> None:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        write_file_atomically(path, data)

    monkeypatch.setattr("stress.report.write_file_atomically", full_twice)
    (written,) = folder.write_reports_safely([logged], tmp_path)
    text = log.read_text(encoding="utf-8")
    assert text.startswith("the header\n")
    assert text.endswith("the verdict\n")
    assert len(text.encode()) < 2 * folder.LOG_KEEP_BYTES + 200
    (note,) = [n for n in written.notes if n.startswith(DROPPED_NOTE)]
    assert f"from the middle of {log.name}" in note
    assert "the disk was full" in note
    assert "bytes of this log cut here: the disk was full" in text
    assert note in (tmp_path / "summary.md").read_text(encoding="utf-8")


def test_reports_that_never_fit_are_an_error_and_leave_no_partial_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_file_atomically(tmp_path / "results.json", "an earlier write, of part of the run")

    def full(path: Path, data: str | bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("stress.report.write_file_atomically", full)
    kept = folder.write_reports_safely([result(SHORT)], tmp_path, final=False)
    assert kept == [result(SHORT)], "after a scenario: the next write tries again"
    assert (tmp_path / "results.json").exists()
    with pytest.raises(folder.FullDiskError, match=r"the disk is full") as raised:
        folder.write_reports_safely([result(SHORT)], tmp_path)
    assert raised.value.exit_code == ExitCode.CRASHED_OR_HUNG
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "results.json").exists()


def test_a_log_on_a_full_disk_counts_what_it_dropped_instead_of_raising() -> None:
    full = Path("/dev/full")  # every write there fails with ENOSPC, as on a full disk
    if not full.exists():
        pytest.skip("no /dev/full here")
    with open_new_text_file(full) as log:
        log.write("the runner's header\n")
        log.flush()
        log.write("x" * 100_000)
        log.flush()
    assert log.dropped_bytes == len("the runner's header\n") + 100_000


def test_other_write_errors_are_not_mistaken_for_a_full_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(path: Path, data: str | bytes) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("stress.report.write_file_atomically", denied)
    with pytest.raises(PermissionError):
        folder.write_reports_safely([result(SHORT)], tmp_path)


def test_the_log_keeps_the_start_and_the_end_of_a_flood(tmp_path: Path) -> None:
    path = tmp_path / "scenario.log"
    with open_new_text_file(path) as log:
        log.write("# the runner's header\n")
        log.flush()
        start = path.stat().st_size
        log.write("first line\n")
        for i in range(10_000):
            log.write(f"line {i}\n")
        log.write("last line ✓\n")
        cut = cap_section(log, start, head_bytes=1000, tail_bytes=1000)
        log.write("the verdict\n")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# the runner's header\nfirst line\n")
    assert text.endswith("last line ✓\nthe verdict\n")
    assert f"[... {cut:,} bytes of the scenario's output cut here" in text
    assert len(text) < 2500
    assert cut > 80_000
    for line in text.splitlines():  # no line cut in two
        assert line.startswith(("#", "first", "line ", "last", "the verdict", "[...")) or not line


def test_a_log_under_the_cap_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "scenario.log"
    with open_new_text_file(path) as log:
        log.write("short\n")
        assert cap_section(log, 0) == 0
    assert path.read_text(encoding="utf-8") == "short\n"


def interrupted_run() -> list[Result]:
    first = dataclasses.replace(result(SHORT), interrupted=True)
    return [first, not_run_result(LONG)]


def test_an_interrupted_run_says_so_first_and_lists_what_did_not_run() -> None:
    results = interrupted_run()
    assert overall_exit_code(results) == ExitCode.CRASHED_OR_HUNG
    first_line = render_summary(results).splitlines()[0]
    assert first_line == ("# Stress: interrupted after 1 of 2 scenario(s); "
                          "not run (interrupted): long (exit 4)")
    junit = ET.fromstring(render_junit(results))
    suite = junit.find("testsuite")
    assert suite is not None
    assert suite.get("skipped") == "1"
    assert suite.get("errors") == "0"
    html = render_html(results)
    assert "interrupted after 1 of 2" in html
    assert "NOT RUN" in html
    assert parse_results_document(results_document(results)) == results


def test_a_passed_run_that_was_interrupted_is_not_green() -> None:
    (only,) = interrupted_run()[:1]
    assert overall_exit_code([only]) == ExitCode.CRASHED_OR_HUNG
    assert "interrupted" in render_summary([only]).splitlines()[0]


def test_a_missing_profile_is_listed_in_the_summary() -> None:
    noted = dataclasses.replace(result(SHORT), notes=(
        f"{MISSING_PROFILE_NOTE} cpu: py-spy could not attach",))
    assert "## Missing profiles" in render_summary([noted])
    assert "## Missing profiles" not in render_summary([result(SHORT)])


def test_profiles_replace_a_planted_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    from stress.profiling.cpu_profiler import write_cpu_artifacts
    from stress.profiling.stacks import Frame, SampledStacks

    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("s-cpu-flamegraph.svg", "s-cpu-speedscope.json"):
        (out / name).symlink_to(victim)
    stacks = SampledStacks()
    stacks.thread("MainThread").add((stacks.frame_id(Frame("main", "/app.py", 1)),), 0.01)
    artifacts = write_cpu_artifacts(stacks, out_dir=out, scenario="s", recorder="test")
    assert victim.read_text(encoding="utf-8") == "precious"
    for name in artifacts.values():
        assert not (out / name).is_symlink()
        assert (out / name).stat().st_size > 0


def test_memray_flamegraphs_can_leave_the_source_out(tmp_path: Path) -> None:
    from stress.profiling import make_profiler
    from stress.profiling.memray_profiler import MemrayProfiler

    for source_lines, expected in ((True, []), (False, ["--confidential-files", "all"])):
        profiler = make_profiler("memory", out_dir=tmp_path, scenario="s",
                                 source_lines=source_lines)
        assert isinstance(profiler, MemrayProfiler)
        proc = profiler._start_render(tmp_path / "missing.bin", "memray_flamegraph", [],
                                      no_web=True)
        proc.communicate()
        argv = [str(a) for a in proc.args]  # type: ignore[union-attr]
        flags = argv[argv.index("flamegraph") + 1:argv.index("--force")]
        assert [f for f in flags if f != "--no-web"] == expected
