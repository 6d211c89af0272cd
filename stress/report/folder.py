"""The results folder of a run: checked before the first scenario, held by one run at a time,
cleared of the kit's own stale files, and given its reports even when the disk is full.

- ``claim`` checks that ``--out`` is (or can be made) a writable folder and takes its lock: a
  second run into the same folder fails with the pid and start time of the first. The lock is
  an ``flock`` on ``.stress-run.lock``, so a run that was killed holds nothing.
- ``remove_stale_files`` removes, before the run, the files an earlier run of the kit left
  there: every artifact named by the earlier results.json, and the artifacts the chosen
  scenarios would write. The reports are replaced anyway; files the kit did not write stay.
- ``write_reports_safely``: when the disk is full (ENOSPC, EDQUOT), the profiles go first, then
  the middle of each scenario log, with a note on each scenario, so results.json, junit.xml,
  summary.md and report.html still fit; if even then they do not, the run is exit 4, never
  green, in one line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from stress.errors import ConfigError, ExitCode, StressError
from stress.report.files import DROPPED_NOTE, FULL_DISK, bounded_name, shrink_log
from stress.results import Result

log = logging.getLogger("stress.report.folder")

LOCK_NAME = ".stress-run.lock"
LOG_KEEP_BYTES = 32 * 1024  # of a log's start and of its end, when the disk is full
# The file names each scenario's artifacts get (engine/runner.py, stress/profiling/*).
ARTIFACT_SUFFIXES = ("-memray.bin", "-memray-flamegraph.html", "-leaks-flamegraph.html",
                     "-memray-stats.txt", "-memray-stats.json", "-leak-report.txt",
                     "-cpu-flamegraph.svg", "-cpu-speedscope.json")


def check_writable(out: Path) -> None:
    """``--out`` is a folder this process can create files in, or a ConfigError in one line."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder; "
                          "name a folder for the results")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".stress-probe.{os.getpid()}.{secrets.token_hex(4)}"
        with probe.open("x"):
            pass
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write there ({exc.strerror or exc}); "
                          "choose a writable folder") from exc


@contextlib.contextmanager
def claim(out: Path) -> Iterator[None]:
    """Hold ``out`` for this run: checked writable, locked against a second run."""
    check_writable(out)
    path = out / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot create its lock file {LOCK_NAME} "
                              f"({exc.strerror or exc})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "another run"
            os.close(fd)
            raise ConfigError(f"--out {out}: another run is writing there ({holder}); wait "
                              "for it to finish or choose another --out") from None
        # The holder before us may have removed the file after we opened it: lock the file
        # that is at the path now, or two runs would each hold a lock.
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}, started at {started}\n".encode())
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def _plain_name(name: object) -> str | None:
    """A file name directly in the folder (an earlier results.json is not trusted further)."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name \
            or "\\" in name or "\0" in name:
        return None
    return name


def remove_stale_files(out: Path, scenario_names: Iterable[str]) -> list[str]:
    """Remove what an earlier run of the kit left in ``out``; returns the names removed."""
    names: set[str] = set()
    for scenario in scenario_names:
        names.add(bounded_name(f"stress-test-{scenario}", ".log"))
        names.update(bounded_name(scenario, suffix) for suffix in ARTIFACT_SUFFIXES)
    try:
        earlier = json.loads((out / "results.json").read_text(encoding="utf-8"))
        for entry in earlier.get("scenarios", ()):
            for name in dict(entry.get("artifacts", {})).values():
                if (plain := _plain_name(name)) is not None:
                    names.add(plain)
    except (OSError, ValueError, AttributeError, TypeError):
        pass  # no earlier results, or not ours: only the known names go
    removed = []
    for name in sorted(names):
        path = out / name
        if path.is_symlink() or path.is_file():
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(name)
    if removed:
        log.info("removed %d file(s) an earlier run left in %s", len(removed), out)
    return removed


def is_full_disk(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in FULL_DISK


def drop_profiles(results: list[Result], out: Path, why: str) -> list[Result]:
    """Each result without its profiles (the files removed), a note saying why."""
    dropped = []
    for result in results:
        profiles = {role: name for role, name in result.artifacts.items() if role != "log"}
        if not profiles:
            dropped.append(result)
            continue
        for name in profiles.values():
            if (plain := _plain_name(name)) is not None:
                with contextlib.suppress(OSError):
                    (out / plain).unlink()
        note = f"{DROPPED_NOTE} the profiles ({', '.join(sorted(profiles.values()))}): {why}"
        dropped.append(dataclasses.replace(
            result, artifacts={k: v for k, v in result.artifacts.items() if k == "log"},
            notes=(*result.notes, note)))
    return dropped


def cut_logs(results: list[Result], out: Path, why: str) -> list[Result]:
    """Each result's log cut to its first and last part (LOG_KEEP_BYTES each), a note saying
    how much went and why; a log already that small is left alone."""
    cut_results = []
    for result in results:
        name = _plain_name(result.artifacts.get("log"))
        cut = 0
        if name is not None:
            with contextlib.suppress(OSError):  # gone or not a file: nothing to make room with
                cut = shrink_log(out / name, keep_bytes=LOG_KEEP_BYTES, why=why)
        if not cut:
            cut_results.append(result)
            continue
        note = (f"{DROPPED_NOTE} {cut:,} bytes from the middle of {name} (its first and last "
                f"{LOG_KEEP_BYTES // 1024} KB kept): {why}")
        cut_results.append(dataclasses.replace(result, notes=(*result.notes, note)))
    return cut_results


class FullDiskError(StressError):
    """The reports do not fit even with the profiles dropped and the logs cut: never green."""

    exit_code = ExitCode.CRASHED_OR_HUNG


def write_reports_safely(results: list[Result], out: Path, *,
                         baseline: list[Result] | None = None, final: bool = True) -> list[Result]:
    """``write_reports``; on a full disk the profiles are dropped, then the logs cut (each
    noted), and it tries again after each.

    Returns the results as written: the caller keeps them, so the notes stay in later writes.
    When even that does not fit, a write after a scenario gives up until the next one, and
    the final write removes the reports an earlier write left (they describe part of the
    run as if it were all) and raises FullDiskError: exit 4, in one line.
    """
    from stress.report import REPORT_FILES, write_reports

    def attempt() -> OSError | None:
        """None when written; the full disk's error otherwise (any other error is raised)."""
        try:
            write_reports(results, out, baseline=baseline, final=final)
        except OSError as exc:
            if not is_full_disk(exc):
                raise
            return exc
        return None

    full = attempt()
    for make_room, what in ((drop_profiles, "dropped the profiles"),
                            (cut_logs, "cut the middle of the scenario logs")):
        if full is None:
            return results
        before = results
        results = make_room(results, out, f"the disk was full ({full.strerror}); the reports "
                                          "were kept instead")
        if results != before:  # said once, when it happens (each result carries its note)
            log.warning("the disk of %s is full (%s): %s to make room for the reports", out,
                        full.strerror, what)
        full = attempt()
    if full is None:
        return results
    if not final:
        log.debug("the disk of %s is full (%s): the reports wait for the next scenario", out,
                  full.strerror)
        return results
    for name in REPORT_FILES:
        with contextlib.suppress(OSError):
            (out / name).unlink()
    raise FullDiskError(
        f"--out {out}: the disk is full ({full.strerror}): the reports do not fit even with "
        "the profiles dropped and the logs cut, so none is there (each scenario's verdict is "
        "in the output above); free some space and run again") from full
