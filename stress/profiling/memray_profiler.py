"""Memory profiles with memray: the scenario child runs under ``memray run``.

One run serves every memory artifact. ``--aggregate`` keeps the capture bounded by the
number of distinct stacks rather than the number of allocations (a full capture of a
1M-token run is megabytes and slow to render; the aggregated one is kilobytes), and
``PYTHONMALLOC=malloc`` sends every Python object through malloc, where memray sees each
allocation and free: what leak reports need. From the capture come the peak and leaks
flamegraphs (rendered with ``--no-web`` so they open offline), the leak report and the
statistics.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from stress.profiling.base import ProfileOutcome, error_line, finish_safely
from stress.profiling.memray_report import (
    leak_report_text,
    stats_json,
    stats_text,
    summarize_capture,
)
from stress.profiling.offline_html import inline_remote_assets, memray_vendor_dir
from stress.report.files import bounded_name, write_file_atomically

RENDER_TIMEOUT_S = 300.0
SUFFIXES = {
    "memray_capture": "-memray.bin",
    "memray_flamegraph": "-memray-flamegraph.html",
    "memray_leaks_flamegraph": "-leaks-flamegraph.html",
    "memray_stats_txt": "-memray-stats.txt",
    "memray_stats_json": "-memray-stats.json",
    "leak_report": "-leak-report.txt",
}


class MemrayProfiler:
    kind = "memory"

    def __init__(self, *, out_dir: Path, scenario: str, source_lines: bool = True) -> None:
        self.out_dir = out_dir
        self.scenario = scenario
        self.names = {role: bounded_name(scenario, suffix) for role, suffix in SUFFIXES.items()}
        # False: the flamegraphs carry function names, files and line numbers, no source text.
        self.source_lines = source_lines
        self._interpreter = sys.executable
        self._notes: list[str] = []
        self._output: list[str] = []  # memray's own error output, for the scenario log
        # Every file memray itself writes goes to a fresh, unguessable name and is renamed
        # into place: memray would write through a link planted at the final name.
        self._token = secrets.token_hex(6)

    def path(self, role: str) -> Path:
        return self.out_dir / self.names[role]

    def _scratch(self, role: str) -> Path:
        return self.out_dir / f".{self.names[role]}.{self._token}.tmp"

    def _publish(self, role: str) -> None:
        os.replace(self._scratch(role), self.path(role))

    def wrap(self, argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        """``python -m memray run --aggregate ... -m module args`` (or ``... script args``)."""
        self._interpreter, rest = argv[0], argv[1:]
        if not rest:
            raise ValueError(f"memray: nothing to run in {argv!r}")
        # A capture left by an earlier run must not pass for this one if the child dies early.
        self.path("memray_capture").unlink(missing_ok=True)
        capture = self._scratch("memray_capture")
        wrapped = [self._interpreter, "-m", "memray", "run", "--aggregate", "--quiet",
                   "--force", "--output", str(capture), *rest]
        return wrapped, {**env, "PYTHONMALLOC": "malloc"}

    def attach(self, pid: int) -> None:
        return  # memray runs inside the child

    def finish(self, *, timed_out: bool) -> ProfileOutcome:
        return finish_safely(self.kind, "memray", self._notes,
                             lambda: self._finish(timed_out=timed_out))

    def _finish(self, *, timed_out: bool) -> ProfileOutcome:
        scratch = self._scratch("memray_capture")
        if not scratch.exists() or scratch.stat().st_size == 0:
            how = "it was killed" if timed_out else "it crashed or was killed"
            scratch.unlink(missing_ok=True)
            return self._outcome({}, f"memray wrote no capture: the child exited before memray "
                                     f"could write it ({how}); see the scenario log")
        self._publish("memray_capture")
        capture = self.path("memray_capture")
        artifacts = {"memray_capture": capture.name}
        try:
            summary = summarize_capture(capture)
        except Exception as exc:  # memray raises plain IOError/ValueError/RuntimeError here
            return self._outcome(artifacts, f"memray's capture {capture.name} could not be read "
                                            f"({type(exc).__name__}: {exc})")
        report = leak_report_text(summary, scenario=self.scenario)
        try:
            write_file_atomically(self.path("leak_report"), report)
            write_file_atomically(self.path("memray_stats_txt"),
                                  stats_text(summary, scenario=self.scenario))
            write_file_atomically(self.path("memray_stats_json"),
                                  json.dumps(stats_json(summary), indent=2) + "\n")
            artifacts.update({role: self.names[role] for role in
                              ("leak_report", "memray_stats_txt", "memray_stats_json")})
        except OSError as exc:  # a full disk: none of the three, rather than some
            for role in ("leak_report", "memray_stats_txt", "memray_stats_json"):
                self.path(role).unlink(missing_ok=True)
            self._notes.append(f"memray statistics could not be written: {exc}")
        artifacts.update(self._render_flamegraphs(capture))
        return ProfileOutcome(kind=self.kind, artifacts=artifacts, notes=tuple(self._notes),
                              leaked_mb=summary.leaked_mb, leak_report=report,
                              tool_output="\n".join(self._output))

    def _outcome(self, artifacts: dict[str, str], note: str) -> ProfileOutcome:
        self._notes.append(note)
        return ProfileOutcome(kind=self.kind, artifacts=artifacts, notes=tuple(self._notes))

    def _render_flamegraphs(self, capture: Path) -> dict[str, str]:
        """Both HTML reports, rendered side by side, then checked for network assets."""
        roles: dict[str, list[str]] = {"memray_flamegraph": [],
                                       "memray_leaks_flamegraph": ["--leaks"]}
        artifacts: dict[str, str] = {}
        for no_web in (True, False):
            running = {role: self._start_render(capture, role, extra, no_web=no_web)
                       for role, extra in roles.items()}
            retry: dict[str, list[str]] = {}
            for role, proc in running.items():
                try:
                    _, stderr = proc.communicate(timeout=RENDER_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
                    self._notes.append(f"memray flamegraph for {self.names[role]} took over "
                                       f"{RENDER_TIMEOUT_S:.0f}s and was stopped")
                    continue
                if stderr.strip():
                    self._output.append(f"memray flamegraph ({self.names[role]}):\n{stderr}")
                if proc.returncode == 0:
                    self._publish(role)
                    self._make_offline(role)
                    artifacts[role] = self.names[role]
                elif no_web and "--no-web" in stderr:
                    retry[role] = roles[role]  # an older memray: render, then inline assets
                else:
                    self._scratch(role).unlink(missing_ok=True)
                    self._notes.append(f"memray flamegraph failed for {self.names[role]}: "
                                       f"{error_line(stderr)}")
            if not retry:
                break
            roles = retry
        return artifacts

    def _start_render(self, capture: Path, role: str, extra: list[str], *,
                      no_web: bool) -> subprocess.Popen[str]:
        confidential = [] if self.source_lines else ["--confidential-files", "all"]
        argv = [self._interpreter, "-m", "memray", "flamegraph", *extra, *confidential,
                "--force", "--output", str(self._scratch(role)), str(capture)]
        if no_web:
            argv.insert(4, "--no-web")
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

    def _make_offline(self, role: str) -> None:
        page = self.path(role)
        html = page.read_text(encoding="utf-8")
        fixed, remote = inline_remote_assets(html, memray_vendor_dir())
        if fixed != html:
            write_file_atomically(page, fixed)
        if remote:
            self._notes.append(f"{page.name} still loads {len(remote)} assets from the network "
                               f"(e.g. {remote[0]}): it needs a connection to display")
