"""memray profiles of real scenario children: captures, leak reports, offline flamegraphs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stress.config.scenario import Scenario
from stress.engine.options import Deadlines
from stress.engine.protocol import ChildFigures, ChildSpec
from stress.engine.supervise import CHILD_MODULE, run_child
from stress.process import child_environment
from stress.profiling import ProfileOutcome, Profiler, make_profiler
from stress.profiling.offline_html import memray_vendor_dir, remote_assets

REPO = Path(__file__).resolve().parents[1]
MEMORY_ROLES = {"memray_capture", "memray_flamegraph", "memray_leaks_flamegraph",
                "memray_stats_txt", "memray_stats_json", "leak_report"}


@dataclass(frozen=True)
class ProfiledRun:
    outcome: ProfileOutcome
    returncode: int | None
    figures: ChildFigures | None
    wall_s: float
    log: str


def run_profiled(profiler: Profiler | None, scenario: Scenario, target: str, work: Path, *,
                 timeout_s: float = 120) -> ProfiledRun:
    """One scenario child through the engine's supervisor, as the runner runs it."""
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "child.log"
    with log_path.open("w", encoding="utf-8") as log:
        run = run_child(scenario, target=target, loop="asyncio", log_file=log,
                        deadlines=Deadlines(run_s=timeout_s), profiler=profiler,
                        measure_quit=False)
    outcome = run.profile if run.profile is not None else ProfileOutcome(kind="none",
                                                                         artifacts={})
    return ProfiledRun(outcome=outcome, returncode=run.returncode, figures=run.figures,
                       wall_s=run.wall_s,
                       log=log_path.read_text(encoding="utf-8", errors="replace"))


def run_killed(profiler: Profiler, scenario: Scenario, target: str, work: Path, *,
               kill_after_s: float) -> ProfiledRun:
    """A child killed outright after ``kill_after_s`` (SIGKILL, as an OOM kill would).

    The supervisor never does this (it stops a child in stages), so it is spawned here by hand,
    the way the supervisor spawns it: wrap, spawn, attach, kill, finish.
    """
    work.mkdir(parents=True, exist_ok=True)
    spec = ChildSpec(scenario=scenario, target=target, loop="asyncio",
                     samples_path=work / "samples.jsonl", result_path=work / "result.json",
                     sample_interval_s=0.1, measure_quit=False)
    spec_path = work / "spec.json"
    spec_path.write_text(spec.to_json(), encoding="utf-8")
    argv, env = profiler.wrap([sys.executable, "-m", CHILD_MODULE, str(spec_path)],
                              child_environment(extra={"PYTHONUNBUFFERED": "1"}))
    log_path = work / "child.log"
    started = time.perf_counter()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    profiler.attach(proc.pid)
    try:
        proc.wait(timeout=kill_after_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    wall_s = time.perf_counter() - started
    return ProfiledRun(outcome=profiler.finish(timed_out=True), returncode=proc.returncode,
                       figures=None, wall_s=wall_s,
                       log=log_path.read_text(encoding="utf-8", errors="replace"))


def small(name: str, messages: int, **fields: Any) -> Scenario:
    return Scenario(name=name, title=name.title(), messages=messages, **fields)


@pytest.fixture(scope="module")
def leak_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProfiledRun, Path]:
    out = tmp_path_factory.mktemp("leak")
    profiler = make_profiler("memory", out_dir=out, scenario="leaky")
    return run_profiled(profiler, small("leaky", 20_000), "stress.pipeline.faults:leak",
                        out / "work"), out


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProfiledRun, Path]:
    out = tmp_path_factory.mktemp("reference")
    profiler = make_profiler("memory", out_dir=out, scenario="short")
    return run_profiled(profiler, small("short", 50_000), "stress.pipeline:reference",
                        out / "work"), out


@pytest.mark.slow
def test_leak_fault_is_named_in_the_leak_report(leak_run: tuple[ProfiledRun, Path]) -> None:
    run, out = leak_run
    assert run.returncode == 0, run.log
    outcome = run.outcome
    assert outcome.notes == ()
    assert set(outcome.artifacts) == MEMORY_ROLES
    # 20,000 tokens each keep a 1 KiB render buffer alive, plus their dict and text.
    assert outcome.leaked_mb is not None
    assert 19.5 < outcome.leaked_mb < 60
    report = outcome.leak_report
    assert report is not None
    top_site = next(line for line in report.splitlines() if line.lstrip().startswith("1. "))
    assert "render (stress/pipeline/faults.py:" in top_site
    assert "20,0" in top_site, "the site's allocation count: one buffer per token"
    assert "stress/pipeline/consumer.py" in report, "the stack that made it"
    assert (out / outcome.artifacts["leak_report"]).read_text(encoding="utf-8") == report
    stats = json.loads((out / outcome.artifacts["memray_stats_json"]).read_text(encoding="utf-8"))
    assert stats["leaked_mb"] == pytest.approx(outcome.leaked_mb, abs=0.001)
    assert stats["leaked_at_exit"]["top_allocations_by_size"][0]["location"].startswith(
        "render:stress/pipeline/faults.py:")
    assert stats["metadata"]["python_allocator"] == "malloc"
    leaks_html = (out / outcome.artifacts["memray_leaks_flamegraph"]).read_text(encoding="utf-8")
    assert "stress/pipeline/faults.py" in leaks_html
    assert "(memory leaks)" in leaks_html


@pytest.mark.slow
def test_reference_pipeline_profile(reference_run: tuple[ProfiledRun, Path]) -> None:
    run, out = reference_run
    assert run.returncode == 0, run.log
    assert run.figures is not None
    assert run.figures.run is not None
    assert run.figures.run.tokens_received == 50_000
    outcome = run.outcome
    assert outcome.kind == "memory"
    assert outcome.notes == ()
    assert set(outcome.artifacts) == MEMORY_ROLES
    assert all((out / name).is_file() for name in outcome.artifacts.values())
    # The reference pipeline frees what it streamed: what is left is a few objects.
    assert outcome.leaked_mb is not None
    assert outcome.leaked_mb < 2
    html = (out / outcome.artifacts["memray_flamegraph"]).read_text(encoding="utf-8")
    for name in ('"forward"', '"stream"', '"render"', "stress/pipeline/conductor.py",
                 "stress/pipeline/backend.py"):
        assert name in html
    capture = out / outcome.artifacts["memray_capture"]
    assert capture.stat().st_size < 2_000_000, "aggregated captures stay small"
    text = (out / outcome.artifacts["memray_stats_txt"]).read_text(encoding="utf-8")
    assert "Peak heap:" in text
    assert "Python allocator:          malloc" in text


@pytest.mark.slow
def test_flamegraphs_load_no_network_assets(reference_run: tuple[ProfiledRun, Path]) -> None:
    run, out = reference_run
    vendor = memray_vendor_dir()
    assert vendor is not None
    for role in ("memray_flamegraph", "memray_leaks_flamegraph"):
        html = (out / run.outcome.artifacts[role]).read_text(encoding="utf-8")
        assert remote_assets(html) == []
        assert "cdn.jsdelivr.net" not in html
        for library in ("d3.min.js", "d3-flamegraph.min.js", "plotly.min.js"):
            head = (vendor / library).read_text(encoding="utf-8")[:300]
            assert head in html, f"{library} is inlined"


@pytest.mark.slow
def test_killed_child_gives_a_note_not_an_error(tmp_path: Path) -> None:
    profiler = make_profiler("memory", out_dir=tmp_path, scenario="hang")
    run = run_killed(profiler, small("hang", 10_000), "stress.pipeline.faults:deadlock",
                     tmp_path / "work", kill_after_s=3.0)
    assert run.returncode == -signal.SIGKILL
    assert run.outcome.leaked_mb is None
    assert run.outcome.artifacts == {}
    assert len(run.outcome.notes) == 1
    assert run.outcome.notes[0].startswith("memray wrote no capture: the child exited before "
                                           "memray could write it (it was killed)")


def _offline_chromium(page: Path, profile_dir: Path) -> str:
    """The page's DOM after its scripts ran, in a chromium that has no network at all."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--no-first-run",
            f"--user-data-dir={profile_dir}", "--virtual-time-budget=15000",
            "--dump-dom", page.as_uri()]
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "--net", "true"], capture_output=True,
                                  check=False).returncode == 0:
        argv = [unshare, "--net", *argv]  # a network namespace with no interfaces
    else:  # no privilege for a namespace: send every request to a dead proxy
        argv += ["--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.browser
def test_flamegraph_renders_offline_in_chromium(reference_run: tuple[ProfiledRun, Path],
                                                tmp_path: Path) -> None:
    if not (shutil.which("chromium") or Path("/usr/bin/chromium").exists()):
        pytest.skip("chromium is not installed")
    run, out = reference_run
    dom = _offline_chromium(out / run.outcome.artifacts["memray_flamegraph"], tmp_path / "p")
    # d3-flamegraph drew the frames and plotly the memory chart: the inlined scripts ran.
    assert 'class="partition d3-flame-graph"' in dom
    assert dom.count('class="d3-flame-graph-label"') > 5
    assert "js-plotly-plot" in dom
    assert "forward" in dom
