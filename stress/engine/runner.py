"""Run scenarios, each in fresh child processes, and turn what they measured into Results.

Per scenario: ``repeat`` measured runs (stopping at the first that fails), the median run,
then the evidence plan's profiled runs (each in a child of its own, never judged except for
memray's leak figure; a passing scenario's on a slice of its tokens). The runner prints
nothing: each Result goes to the caller's ``on_result``, which renders and writes it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from stress.config.scenario import Scenario
from stress.engine import judge, lifecycle
from stress.engine.environment import environment
from stress.engine.options import ProfileKind, RunOptions
from stress.engine.protocol import Sample
from stress.engine.supervise import ChildRun, StopRequest, run_child
from stress.report.files import DROPPED_NOTE, bounded_name, open_new_text_file
from stress.results import (
    MISSING_PROFILE_NOTE,
    Environment,
    Failure,
    Metrics,
    Result,
    Status,
    not_run_result,
    threshold_checks,
)
from stress.results import Sample as SeriesPoint
from stress.stats import median_index, throughput

log = logging.getLogger("stress.engine.runner")

MAX_SAMPLES_KEPT = 1000
# A passing scenario's profiles show where its time and memory go, which its steady state shows
# within seconds; memray slows Python several-fold (x9 on `short`), so profiling the full size
# took minutes a scenario. Its profiled runs stream about this many seconds of the measured run's
# tokens. A failure's evidence, and a memray run that judges a leak, stay at full size.
PROFILE_SLICE_S = 3.0
# A scenario in one of these states gets profiled evidence when the user asked for none.
EVIDENCE_STATUSES: frozenset[Status] = frozenset({"failed", "timeout", "crashed"})


class ProgressLine(Protocol):
    """A live progress line (stress.console.Progress)."""

    def update(self, text: str) -> None: ...
    def clear(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class EvidencePlan:
    """Which profiled runs follow a scenario's measured runs, decided once."""

    kinds: tuple[ProfileKind, ...]
    # A leak is found by the memray run itself, after the plan was made: the CPU evidence
    # every failure gets can only follow it.
    cpu_if_leak_found: bool


def evidence_plan(scenario: Scenario, options: RunOptions, status: Status) -> EvidencePlan:
    kinds = list(options.profile)
    if scenario.thresholds.max_leaked_mb is not None and "memory" not in kinds:
        kinds.insert(0, "memory")  # the leak threshold is judged on a memray capture
    wants_evidence = not options.profile and options.evidence
    if wants_evidence and status in EVIDENCE_STATUSES:
        kinds = ["memory", "cpu"]  # evidence for the failure, from a separate run
    return EvidencePlan(kinds=tuple(kinds),
                        cpu_if_leak_found=wants_evidence and "cpu" not in kinds)


def run_throughput(run: ChildRun) -> float:
    figures = run.figures.run if run.figures is not None else None
    return 0.0 if figures is None else throughput(figures.tokens_received, figures.duration_s)


def median_run(runs: list[ChildRun]) -> ChildRun:
    """The run whose throughput is the median (the first failed run, if any failed)."""
    for run in runs:
        if run.status != "ok":
            return run
    return runs[median_index([run_throughput(run) for run in runs])]


def _progress_text(scenario: Scenario, sample: Sample) -> str:
    t = max(sample.t, 1e-9)
    return (f"{scenario.name}: {sample.tokens_received:,}/{scenario.expected_tokens:,} tokens  "
            f"{sample.tokens_received / t:,.0f}/s  RSS {sample.rss_mb:.0f} MB  {t:.0f}s")


def _series(samples: tuple[Sample, ...]) -> tuple[SeriesPoint, ...]:
    run = [s for s in samples if s.phase == "run"]
    step = max(1, len(run) // MAX_SAMPLES_KEPT)
    return tuple(SeriesPoint(t_s=s.t, rss_mb=s.rss_mb, tokens=s.tokens_received)
                 for s in run[::step])


@dataclass(kw_only=True)
class _ScenarioOutcome:
    """Mutable while a scenario is assembled; frozen into a Result at the end."""

    status: Status
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    leaked_mb: float | None = None
    profiled: list[ProfileKind] = field(default_factory=list)  # the profiled runs done


@dataclass(frozen=True, kw_only=True)
class _Context:
    """What every child run of one scenario shares."""

    scenario: Scenario
    options: RunOptions
    log_file: TextIO
    stop: StopRequest

    def run(self, *, timeout_s: float, measure_quit: bool = True, kind: ProfileKind | None = None,
            progress: ProgressLine | None = None) -> ChildRun:
        profiler = None
        if kind is not None:
            from stress.profiling import make_profiler

            profiler = make_profiler(kind, out_dir=self.options.out_dir,
                                     scenario=self.scenario.name,
                                     cpu_profiler=self.options.cpu_profiler,
                                     source_lines=self.options.flamegraph_source)

        def on_sample(sample: Sample) -> None:
            if progress is not None:
                progress.update(_progress_text(self.scenario, sample))

        return run_child(self.scenario, target=self.options.target, loop=self.options.loop,
                         log_file=self.log_file, deadlines=self.options.deadlines(timeout_s),
                         stop=self.stop, profiler=profiler, measure_quit=measure_quit,
                         sample_interval_s=self.options.sample_interval_s, on_sample=on_sample)


def log_name(scenario_name: str) -> str:
    return bounded_name(f"stress-test-{scenario_name}", ".log")


def run_scenario(scenario: Scenario, options: RunOptions, env: Environment, stop: StopRequest,
                 progress: ProgressLine | None = None) -> Result:
    scenario = lifecycle.with_ignored_tasks(scenario, options.ignore_tasks)
    name = log_name(scenario.name)
    # Created afresh, never through a link planted in the folder.
    with open_new_text_file(options.out_dir / name) as log_file:
        log_file.write(f"# scenario {scenario.name} ({scenario.title}), target {options.target}, "
                       f"started {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        log_file.flush()
        context = _Context(scenario=scenario, options=options, log_file=log_file, stop=stop)
        runs: list[ChildRun] = []
        for _ in range(options.repeat):
            runs.append(context.run(timeout_s=scenario.timeout_s, progress=progress))
            if runs[-1].status != "ok" or stop.requested:
                break
        if progress is not None:
            progress.clear()
        chosen = median_run(runs)
        metrics = _metrics(scenario, chosen)
        verdict = lifecycle.judge_phases(scenario, chosen, metrics)
        outcome = _ScenarioOutcome(status=verdict.status, failures=verdict.failures,
                                   notes=verdict.notes)
        outcome.notes.extend(judge.run_notes(scenario, metrics))
        outcome.artifacts["log"] = name
        if len(runs) > 1:
            figures = ", ".join(f"{run_throughput(r):.0f}" for r in runs if r.status == "ok")
            outcome.notes.append(f"Median of {len(runs)} runs; throughputs: {figures} tokens/sec")
        if options.measure != "wall" and chosen.status == "ok" and not stop.requested:
            from stress.engine.instructions import with_instructions

            metrics = with_instructions(scenario, options, metrics, log_file=log_file, stop=stop,
                                        notes=outcome.notes, artifacts=outcome.artifacts)
        plan = evidence_plan(scenario, options, outcome.status)
        kinds = list(plan.kinds)
        interrupted = stop.requested
        while kinds and not stop.requested:
            _profiled_run(kinds.pop(0), context, measured=chosen,
                          measured_throughput=metrics.throughput, outcome=outcome,
                          passed=verdict.status == "passed")
            if (not kinds and plan.cpu_if_leak_found and outcome.status in EVIDENCE_STATUSES
                    and "cpu" not in outcome.profiled):
                kinds.append("cpu")
        if stop.requested and not interrupted:
            # The measured figures are complete and keep their verdict; the profiles are not.
            left = ", ".join(kinds)
            outcome.notes.append("Interrupted during profiling: the last profile covers the run "
                                 "until then" + (f"; not profiled: {left}" if left else ""))
        interrupted = stop.requested
    if log_file.dropped_bytes:  # a full disk: the measured figures matter more than the log
        outcome.notes.append(f"{DROPPED_NOTE} {log_file.dropped_bytes:,} bytes of the runner's "
                             f"lines in {name}: the disk was full during this scenario (the "
                             "target's own output may be missing too; a crash may be the disk's)")
    if outcome.leaked_mb is not None:
        metrics = dataclasses.replace(metrics, leaked_mb=outcome.leaked_mb)
    # A hang after the measured run (quit, teardown, exit) keeps the measured run's verdicts.
    judged_as: Status = "failed" if verdict.measured else outcome.status
    return Result(
        scenario=verdict.scenario, status=outcome.status, metrics=metrics,
        failures=tuple(outcome.failures), samples=_series(chosen.samples), environment=env,
        artifacts=outcome.artifacts, notes=tuple(outcome.notes), repeats=len(runs),
        checks=threshold_checks(verdict.scenario, metrics, judged_as), interrupted=interrupted,
        latency_histogram=_histogram(chosen),
    )


def _histogram(run: ChildRun) -> tuple[tuple[float, int], ...]:
    streams = run.figures.streams if run.figures is not None else None
    return streams.latency.buckets if streams is not None else ()


def _metrics(scenario: Scenario, run: ChildRun) -> Metrics:
    figures = run.figures
    # Only a sample of the measured run stands for it (not one of setup or quit under load).
    last_run = next((s for s in reversed(run.samples) if s.phase == "run"), None)
    metrics = judge.metrics_from(figures.run if figures else None,
                                 figures.quit if figures else None, last_run,
                                 run.elapsed_s, streams=figures.streams if figures else None)
    return dataclasses.replace(metrics,
                               memory_slope_mb_per_min=judge.memory_slope(scenario, run.samples))


def profile_slice(scenario: Scenario, kind: ProfileKind, measured: ChildRun, *,
                  passed: bool) -> Scenario:
    """The scenario a profiled run streams: about :data:`PROFILE_SLICE_S` seconds of the
    measured run's tokens when the scenario passed, else the scenario itself (a failure's
    evidence must reproduce it; a leak limit is judged on the memray run)."""
    run = measured.figures.run if measured.figures is not None else None
    if (not passed or run is None or run.duration_s <= PROFILE_SLICE_S
            or scenario.duration_s is not None  # a soak streams for a time, not a count
            or (kind == "memory" and scenario.thresholds.max_leaked_mb is not None)):
        return scenario
    return scenario.scaled(PROFILE_SLICE_S / run.duration_s)  # each conversation keeps a token


def _profiled_run(kind: ProfileKind, context: _Context, *, measured: ChildRun,
                  measured_throughput: float, outcome: _ScenarioOutcome, passed: bool) -> None:
    scenario = context.scenario
    # A scenario that hung once will hang again: give its profiled run a short leash, long
    # enough for a profile of the hang. Otherwise allow for the profiler's overhead.
    timeout_s = min(scenario.timeout_s, 20.0) if measured.status == "timeout" \
        else scenario.timeout_s * 3
    sliced = profile_slice(scenario, kind, measured, passed=passed)
    context.log_file.write(f"\n--- profiling run: {kind}, {sliced.expected_tokens:,} tokens "
                           "(figures below are not judged) ---\n")
    context.log_file.flush()
    outcome.profiled.append(kind)
    run = dataclasses.replace(context, scenario=sliced).run(
        timeout_s=timeout_s, measure_quit=False, kind=kind)
    if sliced is not scenario:
        outcome.notes.append(
            f"The {kind} profile is of {sliced.expected_tokens:,} of the "
            f"{scenario.expected_tokens:,} tokens (about {PROFILE_SLICE_S:g}s of the measured "
            "run): a passing scenario's profile needs seconds, not its full size")
    profile = run.profile
    assert profile is not None  # a profiler was attached
    if profile.tool_output.strip():  # the profiler's own words: why a profile is missing
        context.log_file.write(f"--- {kind} profiler output ---\n{profile.tool_output.rstrip()}\n")
    outcome.artifacts.update(profile.artifacts)
    if profile.artifacts:
        outcome.notes.extend(profile.notes)
    else:  # asked for and not there: never silent, in every report
        reason = "; ".join(profile.notes) or "the profiler gave no reason; see the scenario log"
        outcome.notes.append(f"{MISSING_PROFILE_NOTE} {kind}: {reason}")
    # No profile, no overhead worth quoting (e.g. perf missing: the run was not profiled).
    if run.status == "ok" and measured_throughput > 0 and profile.artifacts:
        profiled = run_throughput(run)
        outcome.notes.append(
            f"Under the {kind} profiler: {profiled:.0f} tokens/sec, overhead x"
            f"{measured_throughput / max(profiled, 1e-9):.2f} (thresholds use the unprofiled run)")
    elif run.status != "ok":
        outcome.notes.append(f"The {kind} profiling run ended as {run.status}; "
                             "its profile covers the run until then")
    if kind == "memory" and profile.leak_report:
        context.log_file.write("\n" + profile.leak_report.rstrip() + "\n")
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
                  on_result: Callable[[Result], None], *,
                  section: Callable[[Scenario], AbstractContextManager[object]] | None = None,
                  progress: Callable[[], ProgressLine] | None = None,
                  stop: StopRequest | None = None) -> list[Result]:
    """Run each scenario in turn, handing each Result to ``on_result`` as soon as it is known.

    ``section`` wraps each scenario's run (e.g. a CI log group); ``progress`` makes each
    scenario's progress line. A SIGINT or SIGTERM stops the current child (a profiled one
    too) and the run: every scenario after it gets a "not_run" Result, so none goes missing.
    """
    options.out_dir.mkdir(parents=True, exist_ok=True)
    env = environment(target=options.target, loop=options.loop)
    stop = StopRequest() if stop is None else stop
    results: list[Result] = []
    with stop.installed():
        for scenario in scenarios:
            if stop.requested:
                result = not_run_result(scenario, env)  # listed, so none is dropped silently
            else:
                with section(scenario) if section is not None else nullcontext():
                    result = _run_one_safely(scenario, options, env, stop, progress)
            results.append(result)
            on_result(result)
    return results


def _run_one_safely(scenario: Scenario, options: RunOptions, env: Environment,
                    stop: StopRequest, progress: Callable[[], ProgressLine] | None) -> Result:
    """A bug while handling one scenario is that scenario's crash, not the whole run's."""
    try:
        return run_scenario(scenario, options, env, stop,
                            progress() if progress is not None else None)
    except Exception as exc:
        log.exception("internal error while running scenario %s", scenario.name)
        return Result(
            scenario=scenario, status="crashed", metrics=judge.metrics_from(None),
            failures=(judge.crash_failure(1, f"an internal error in the runner: "
                                             f"{type(exc).__name__}: {exc}"),),
            environment=env, artifacts={"log": log_name(scenario.name)}, interrupted=stop.requested,
        )
