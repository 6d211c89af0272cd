"""Run scenarios, each in its own child process, and turn what they measured into Results.

Each scenario gets a fresh interpreter (its own memory baseline, killable). The parent owns
every deadline: a child past its timeout gets SIGUSR1 (it dumps every thread's and every
asyncio task's stack into the scenario log), then SIGTERM, then SIGKILL. Results are written
after every scenario, so a killed job still leaves what finished behind.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal, Protocol, TextIO

import psutil

from stress import judge
from stress.child import PHASE_QUIT, PHASE_RUN, ChildSpec
from stress.console import Progress, annotate_error, group
from stress.report.text import format_block
from stress.results import Environment, Failure, Result, Sample, Status
from stress.scenario import Scenario
from stress.target import DEFAULT_TARGET

log = logging.getLogger("stress.runner")

MAX_SAMPLES_KEPT = 1000


class ChildProfiler(Protocol):
    """What the runner needs of a profiler (stress.profiling implements it)."""

    kind: str

    def wrap(self, argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]: ...
    def attach(self, pid: int) -> None: ...
    def finish(self, *, timed_out: bool) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    out_dir: Path
    target: str = DEFAULT_TARGET
    loop: str = "asyncio"
    repeat: int = 1
    profile: tuple[str, ...] = ()
    cpu_profiler: str = "py-spy"
    evidence: bool = True  # profile a failed scenario once more when no profile was asked
    sample_interval_s: float = 0.1
    startup_budget_s: float = 30.0  # interpreter start and target import
    quit_budget_s: float = 10.0  # how long run() may take to return after quit is set
    stop_grace_s: float = 5.0  # after SIGTERM, before SIGKILL (lets memray finish its file)


ChildStatus = Literal["ok", "timeout", "crashed", "interrupted"]


@dataclass(frozen=True, kw_only=True)
class ChildRun:
    """One child process: how it ended and what it measured."""

    status: ChildStatus
    figures: dict[str, Any]
    samples: list[dict[str, Any]]
    returncode: int | None
    elapsed_s: float  # of the phase it was in when it ended (the measured run, usually)
    phase: str
    profile: Any = None  # a stress.profiling.ProfileOutcome when a profiler was attached

    @property
    def last_sample(self) -> dict[str, Any] | None:
        return self.samples[-1] if self.samples else None


class StopRequest:
    """Set by SIGINT/SIGTERM: the current child is stopped and no further scenario starts."""

    def __init__(self) -> None:
        self.requested = False

    @contextmanager
    def installed(self) -> Iterator[None]:
        def handler(_signum: int, _frame: FrameType | None) -> None:
            self.requested = True

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def environment(options: RunOptions) -> Environment:
    return Environment(
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        platform=platform.platform(),
        cpu_count=os.cpu_count() or 1,
        git_sha=_git_sha(),
        # Only the image says so: some hosts carry a stray /.dockerenv, so it proves nothing.
        in_container=os.environ.get("STRESS_IN_CONTAINER") == "1",
        target=options.target,
        loop=options.loop,
    )


def _git_sha() -> str | None:
    for variable in ("STRESS_GIT_SHA", "GITHUB_SHA"):
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


class _SampleReader:
    """Reads the lines the child's sampler appends, as they arrive."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._partial = b""
        self.samples: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        try:
            with self._path.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        new = [json.loads(line) for line in lines if line.strip()]
        self.samples.extend(new)
        return new


def _python_child(pid: int) -> psutil.Process | None:
    """The scenario interpreter: the spawned process itself, or one below a wrapper (perf)."""
    try:
        root = psutil.Process(pid)
        for candidate in [root, *root.children(recursive=True)]:
            if "stress.child" in " ".join(candidate.cmdline()):
                return candidate
    except psutil.Error:
        return None
    return None


def _stop(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """Staged stop: SIGTERM (the child unwinds, profilers finish), then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        log.warning("pid %d ignored SIGTERM for %.0fs; killing it", proc.pid, grace_s)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_child(scenario: Scenario, options: RunOptions, log_file: TextIO, *,
              timeout_s: float, stop: StopRequest, profiler: ChildProfiler | None = None,
              measure_quit: bool = True, progress: Progress | None = None) -> ChildRun:
    with tempfile.TemporaryDirectory(prefix=f"stress-{scenario.name}-") as work:
        work_dir = Path(work)
        spec = ChildSpec(
            scenario=scenario, target=options.target, loop=options.loop,
            samples_path=work_dir / "samples.jsonl", result_path=work_dir / "result.json",
            sample_interval_s=options.sample_interval_s, measure_quit=measure_quit,
        )
        spec_path = work_dir / "spec.json"
        spec_path.write_text(spec.to_json(), encoding="utf-8")
        argv = [sys.executable, "-m", "stress.child", str(spec_path)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
        if profiler is not None:
            argv, env = profiler.wrap(argv, env)
        log_file.write(f"$ {' '.join(argv)}\n")
        log_file.flush()
        # A session of its own: a Ctrl-C on the terminal reaches the runner, which stops
        # the child in stages, instead of killing the child mid-write.
        proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        if profiler is not None:
            profiler.attach(proc.pid)
        status, phase, elapsed = _supervise(proc, scenario, options=options, spec=spec,
                                            timeout_s=timeout_s, stop=stop, progress=progress)
        if status in ("timeout", "interrupted"):
            _stop(proc, options.stop_grace_s)
        returncode = proc.wait()
        outcome = profiler.finish(timed_out=status == "timeout") if profiler else None
        reader = _SampleReader(spec.samples_path)
        reader.poll()
        figures: dict[str, Any] = {}
        if spec.result_path.exists():
            figures = json.loads(spec.result_path.read_text(encoding="utf-8"))
        finished = returncode == 0 and "error" not in figures and "duration_s" in figures
        if status == "ok" and not finished:
            status = "crashed"
        return ChildRun(status=status, figures=figures, samples=reader.samples,
                        returncode=returncode, elapsed_s=elapsed, phase=phase, profile=outcome)


def _supervise(proc: subprocess.Popen[bytes], scenario: Scenario, *, options: RunOptions,
               spec: ChildSpec, timeout_s: float, stop: StopRequest,
               progress: Progress | None) -> tuple[ChildStatus, str, float]:
    """Wait for the child, enforcing each phase's deadline. Returns (status, phase, elapsed)."""
    reader = _SampleReader(spec.samples_path)
    phase = "start"
    phase_started = time.monotonic()
    budgets = {"start": options.startup_budget_s, PHASE_RUN: timeout_s,
               PHASE_QUIT: options.quit_budget_s}
    while True:
        exited = proc.poll() is not None
        for sample in reader.poll():
            if sample["phase"] != phase:
                phase, phase_started = sample["phase"], time.monotonic()
            if progress is not None and phase == PHASE_RUN:
                progress.update(_progress_text(scenario, sample))
        elapsed = time.monotonic() - phase_started
        if exited:
            return "ok", phase, elapsed
        if stop.requested:
            return "interrupted", phase, elapsed
        if elapsed > budgets.get(phase, options.quit_budget_s):
            _dump_stacks(proc)
            return "timeout", phase, elapsed
        time.sleep(0.1)


def _dump_stacks(proc: subprocess.Popen[bytes]) -> None:
    """Ask the child for its thread and task stacks, and give it a moment to write them."""
    child = _python_child(proc.pid)
    if child is None:
        return
    try:
        child.send_signal(signal.SIGUSR1)
    except psutil.Error:
        return
    time.sleep(1.5)


def _progress_text(scenario: Scenario, sample: dict[str, Any]) -> str:
    t = max(sample["t"], 1e-9)
    return (f"{scenario.name}: {sample['received']:,}/{scenario.expected_tokens:,} tokens  "
            f"{sample['received'] / t:,.0f}/s  RSS {sample['rss_mb']:.0f} MB  {t:.0f}s")


def _series(samples: list[dict[str, Any]]) -> tuple[Sample, ...]:
    run = [s for s in samples if s["phase"] == PHASE_RUN]
    step = max(1, len(run) // MAX_SAMPLES_KEPT)
    return tuple(Sample(t_s=s["t"], rss_mb=s["rss_mb"], tokens=s["received"])
                 for s in run[::step])


def _median_run(runs: list[ChildRun]) -> ChildRun:
    """The run whose throughput is the median (the first failed run, if any failed)."""
    for run in runs:
        if run.status != "ok":
            return run

    def throughput(run: ChildRun) -> float:
        return float(run.figures["tokens_received"]) / max(float(run.figures["duration_s"]), 1e-9)

    ordered = sorted(runs, key=throughput)
    return ordered[(len(ordered) - 1) // 2]


@dataclass(kw_only=True)
class _ScenarioOutcome:
    """Mutable while a scenario is assembled; frozen into a Result at the end."""

    status: Status
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    leaked_mb: float | None = None


def run_scenario(scenario: Scenario, options: RunOptions, env: Environment,
                 stop: StopRequest) -> Result:
    log_name = f"stress-test-{scenario.name}.log"
    progress = Progress()
    with (options.out_dir / log_name).open("w", encoding="utf-8") as log_file:
        log_file.write(f"# scenario {scenario.name} ({scenario.title}), target {options.target}, "
                       f"started {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        log_file.flush()
        runs: list[ChildRun] = []
        for _ in range(options.repeat):
            runs.append(run_child(scenario, options, log_file, timeout_s=scenario.timeout_s,
                                  stop=stop, progress=progress))
            if runs[-1].status != "ok":
                break
        progress.clear()
        chosen = _median_run(runs)
        metrics = judge.metrics_from(chosen.figures, chosen.last_sample, chosen.elapsed_s)
        outcome = _judge_run(scenario, chosen)
        outcome.artifacts["log"] = log_name
        if len(runs) > 1:
            figures = ", ".join(f"{r.figures['tokens_received'] / r.figures['duration_s']:.0f}"
                                for r in runs if r.status == "ok")
            outcome.notes.append(f"Median of {len(runs)} runs; throughputs: {figures} tokens/sec")
        kinds = _profile_kinds(scenario, options, outcome.status)
        for kind in kinds:
            if stop.requested:
                break
            _profiled_run(kind, scenario, options=options, log_file=log_file, stop=stop,
                          measured=chosen, measured_throughput=metrics.throughput,
                          outcome=outcome)
        # A leak is found by the memray run itself, after the kinds were chosen: the CPU
        # evidence every failure gets can only follow it.
        if ("cpu" not in kinds and not stop.requested
                and "cpu" in _profile_kinds(scenario, options, outcome.status)):
            _profiled_run("cpu", scenario, options=options, log_file=log_file, stop=stop,
                          measured=chosen, measured_throughput=metrics.throughput,
                          outcome=outcome)
        if outcome.leaked_mb is not None:
            metrics = dataclasses.replace(metrics, leaked_mb=outcome.leaked_mb)
        result = Result(
            scenario=scenario, status=outcome.status, metrics=metrics,
            failures=tuple(outcome.failures), samples=_series(chosen.samples), environment=env,
            artifacts=outcome.artifacts, notes=tuple(outcome.notes), repeats=len(runs),
        )
        block = format_block(result)
        log_file.write("\n" + block + "\n")
    print(block, flush=True)
    for failure in result.failures:
        annotate_error(f"stress: {scenario.name}", f"{failure.message} — {failure.headline}")
    return result


def _judge_run(scenario: Scenario, run: ChildRun) -> _ScenarioOutcome:
    if run.status == "timeout":
        return _ScenarioOutcome(status="timeout", failures=[
            judge.timeout_failure(scenario, run.elapsed_s, run.phase)])
    if run.status == "interrupted":
        return _ScenarioOutcome(status="interrupted",
                                failures=[judge.interrupted_failure(run.elapsed_s)])
    if run.status == "crashed":
        return _ScenarioOutcome(status="crashed", failures=[
            judge.crash_failure(run.returncode or 0, run.figures.get("error"))])
    metrics = judge.metrics_from(run.figures, run.last_sample, run.elapsed_s)
    failures = judge.threshold_failures(scenario, metrics, run.figures)
    notes = [str(run.figures["quit_note"])] if run.figures.get("quit_note") else []
    return _ScenarioOutcome(status="failed" if failures else "passed", failures=failures,
                            notes=notes)


def _profile_kinds(scenario: Scenario, options: RunOptions, status: Status) -> list[str]:
    kinds = list(options.profile)
    if scenario.thresholds.max_leaked_mb is not None and "memory" not in kinds:
        kinds.insert(0, "memory")  # the leak threshold is judged on a memray capture
    if not options.profile and options.evidence and status in ("failed", "timeout", "crashed"):
        kinds = ["memory", "cpu"]  # evidence for the failure, from a separate run
    return kinds


def _profiled_run(kind: str, scenario: Scenario, *, options: RunOptions, log_file: TextIO,
                  stop: StopRequest, measured: ChildRun, measured_throughput: float,
                  outcome: _ScenarioOutcome) -> None:
    from stress.profiling import make_profiler

    profiler = make_profiler(kind, out_dir=options.out_dir, scenario=scenario.name,
                             cpu_profiler=options.cpu_profiler)
    # A scenario that hung once will hang again: give its profiled run a short leash, long
    # enough for a profile of the hang. Otherwise allow for the profiler's overhead.
    timeout_s = min(scenario.timeout_s, 20.0) if measured.status == "timeout" \
        else scenario.timeout_s * 3
    log_file.write(f"\n--- profiling run: {kind} (figures below are not judged) ---\n")
    log_file.flush()
    run = run_child(scenario, options, log_file, timeout_s=timeout_s, stop=stop,
                    profiler=profiler, measure_quit=False)
    profile = run.profile
    outcome.artifacts.update(profile.artifacts)
    outcome.notes.extend(profile.notes)
    # No profile, no overhead worth quoting (e.g. perf missing: the run was not profiled).
    if run.status == "ok" and measured_throughput > 0 and profile.artifacts:
        profiled = run.figures["tokens_received"] / max(run.figures["duration_s"], 1e-9)
        outcome.notes.append(
            f"Under the {kind} profiler: {profiled:.0f} tokens/sec, overhead x"
            f"{measured_throughput / max(profiled, 1e-9):.2f} (thresholds use the unprofiled run)")
    elif run.status != "ok":
        outcome.notes.append(f"The {kind} profiling run ended as {run.status}; "
                             "its profile covers the run until then")
    if kind == "memory" and profile.leak_report:
        log_file.write("\n" + profile.leak_report.rstrip() + "\n")
    if kind == "memory" and profile.leaked_mb is not None:
        outcome.leaked_mb = profile.leaked_mb
        limit = scenario.thresholds.max_leaked_mb
        failure = judge.leak_failure(profile.leaked_mb, limit, profile.leak_report) \
            if limit is not None else None
        if failure is not None:
            outcome.failures.append(failure)
            if outcome.status == "passed":
                outcome.status = "failed"


def run_scenarios(scenarios: list[Scenario], options: RunOptions,
                  write_reports: Callable[[list[Result], bool], None]) -> list[Result]:
    """Run each scenario in turn; reports are rewritten after each one and at the end."""
    options.out_dir.mkdir(parents=True, exist_ok=True)
    env = environment(options)
    stop = StopRequest()
    results: list[Result] = []
    with stop.installed():
        try:
            for scenario in scenarios:
                if stop.requested:
                    break
                with group(f"scenario {scenario.name}: {scenario.title}"):
                    results.append(_run_one_safely(scenario, options, env, stop))
                write_reports(results, False)
        finally:
            write_reports(results, True)
    return results


def _run_one_safely(scenario: Scenario, options: RunOptions, env: Environment,
                    stop: StopRequest) -> Result:
    """A bug while handling one scenario is that scenario's crash, not the whole run's."""
    try:
        return run_scenario(scenario, options, env, stop)
    except Exception as exc:
        log.exception("internal error while running scenario %s", scenario.name)
        return Result(
            scenario=scenario, status="crashed", metrics=judge.metrics_from({}, None, 0.0),
            failures=(judge.crash_failure(1, f"an internal error in the runner: "
                                             f"{type(exc).__name__}: {exc}"),),
            environment=env, artifacts={"log": f"stress-test-{scenario.name}.log"},
        )
