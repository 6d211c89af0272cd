"""The results folder of a run: checked before the first scenario, held by one run at a time,
cleared of the kit's own stale files, and given its reports even when the disk is full.

- ``claim`` checks that ``--out`` is (or can be made) a writable folder and takes its lock: a
  second run into the same folder fails with the pid and start time of the first. The lock is
  an ``flock`` on ``.stress-run.lock``, so a run that was killed holds nothing.
- ``remove_stale_files`` removes, before the run, the files an earlier run of the kit left
  there: every artifact named by the earlier results.json, and the artifacts the chosen
  scenarios would write. The reports are replaced anyway; files the kit did not write stay.
- ``write_reports_safely``: when the disk is full (ENOSPC, EDQUOT), the profiles go first, with
  a note on each scenario, so results.json, junit.xml, summary.md and report.html still fit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from stress.errors import ConfigError
from stress.report.files import bounded_name
from stress.results import Result

log = logging.getLogger("stress.report.folder")

LOCK_NAME = ".stress-run.lock"
FULL_DISK = frozenset({errno.ENOSPC, errno.EDQUOT})
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
        note = f"Profiles dropped ({', '.join(sorted(profiles.values()))}): {why}"
        dropped.append(dataclasses.replace(
            result, artifacts={k: v for k, v in result.artifacts.items() if k == "log"},
            notes=(*result.notes, note)))
    return dropped


def write_reports_safely(results: list[Result], out: Path, *,
                         baseline: list[Result] | None = None, final: bool = True) -> list[Result]:
    """``write_reports``; on a full disk the profiles are dropped (noted) and it tries again.

    Returns the results as written: the caller keeps them, so the notes stay in later writes.
    """
    from stress.report import write_reports

    try:
        write_reports(results, out, baseline=baseline, final=final)
        return results
    except OSError as exc:
        if not is_full_disk(exc):
            raise
        log.warning("the disk of %s is full (%s): dropping the profiles to make room for the "
                    "reports", out, exc.strerror)
        why = f"the disk was full ({exc.strerror}); the reports were kept instead"
        results = drop_profiles(results, out, why)
    write_reports(results, out, baseline=baseline, final=final)
    return results
