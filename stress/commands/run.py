"""``python -m stress run``: run scenarios against a target and write the reports."""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from stress.commands.common import (
    GivenFlag,
    add_scenarios_flag,
    add_verbose_flag,
    check_loops,
    check_scale,
    resolve_run_settings,
    start_logging,
)
from stress.config.scenario import Scenario
from stress.console import Progress, annotate_error, group
from stress.container import session as container_session
from stress.engine.instruction_options import add_measure_flags, check_measure
from stress.engine.options import RunOptions
from stress.engine.teardown import stop_with_launcher
from stress.errors import ConfigError
from stress.results import (
    NOT_RUN_MESSAGE,
    Result,
    not_run_result,
    overall_exit_code,
    was_interrupted,
)
from stress.target import DEFAULT_TARGET

if TYPE_CHECKING:
    from stress.config.settings import Settings
    from stress.engine.supervise import StopRequest

log = logging.getLogger("stress.commands.run")

HELP = "run stress scenarios and write logs, results.json, junit.xml, summary.md, report.html"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="scenarios to run (default: all)")
    # A flag left out falls back on STRESS_*, then the project's [tool.stress], then these.
    parser.add_argument("--out", type=Path, default=Path("stress-results"), action=GivenFlag,
                        help="results folder (default: stress-results/)")
    parser.add_argument("--scale", type=float, default=1.0, action=GivenFlag,
                        help="multiply message counts, e.g. 0.01 for a quick run")
    parser.add_argument("--target", default=DEFAULT_TARGET, metavar="MODULE:ATTR",
                        action=GivenFlag,
                        help=f"the system under test (default: {DEFAULT_TARGET})")
    add_scenarios_flag(parser)
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run each scenario N times and report the median")
    parser.add_argument("--profile", default="", metavar="KINDS", action=GivenFlag,
                        help="profile each scenario in a separate run: memory, cpu or memory,cpu")
    parser.add_argument("--cpu-profiler", default="py-spy", choices=("py-spy", "perf"),
                        help="the sampling CPU profiler (perf needs Linux perf and Python 3.12+)")
    parser.add_argument("--loop", default="asyncio", choices=("asyncio", "uvloop"),
                        help="the event loop the target runs on")
    parser.add_argument("--no-evidence", action="store_true",
                        help="do not rerun a failed scenario under the profilers")
    parser.add_argument("--baseline", type=Path, metavar="FILE",
                        help="results.json or log whose throughputs report.html shows beside")
    parser.add_argument("--sample-interval", type=float, default=0.1, metavar="SECONDS",
                        help="how often RSS and counts are sampled (default: 0.1)")
    parser.add_argument("--no-flamegraph-source", action="store_true",
                        help="leave source lines out of memray's flamegraphs "
                             "(memray --confidential-files all)")
    # The phases around the measured run (stress.engine.lifecycle), each with its deadline.
    for phase, default in (("setup", 30.0), ("quit", 10.0), ("teardown", 10.0)):
        parser.add_argument(f"--{phase}-budget", type=float, default=default, metavar="SECONDS",
                            help=f"how long the target's {phase} may take (default: {default:g})")
    parser.add_argument("--ignore-task", action="append", default=[], metavar="PATTERN",
                        help="accept leftover tasks whose coroutine's module.qualname matches "
                             "(fnmatch, e.g. 'sse_starlette.*'), in every scenario; repeatable")
    add_measure_flags(parser)
    add_verbose_flag(parser)
    container_session.add_options(parser)


def run(args: argparse.Namespace) -> int:
    stop_with_launcher()
    start_logging(args)
    settings = apply_settings(args)
    check_scale(args.scale)
    if args.repeat < 1:
        raise ConfigError(f"--repeat {args.repeat}: expected a whole number >= 1")
    if args.sample_interval <= 0:
        raise ConfigError(f"--sample-interval {args.sample_interval}: expected seconds > 0")
    for phase in ("setup", "quit", "teardown"):
        if not getattr(args, f"{phase}_budget") > 0:
            raise ConfigError(f"--{phase}-budget {getattr(args, f'{phase}_budget')}: "
                              "expected seconds > 0")
    check_measure(args)  # before any run: no valgrind is one line and exit 2, no fallback
    if args.engine != "host":
        started = time.time()
        try:
            code = container_session.run(args)
        except KeyboardInterrupt:
            _record_not_run(args, settings, since=started)
            raise
        if code is not None:
            return code  # None: --engine auto found no engine, so the run goes on here
    # A SIGTERM before the runner installs its own handler ends the run as a Ctrl-C does:
    # one line and exit 4 (stress.cli), never the default silent death.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return _run_here(args, settings)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _record_not_run(args: argparse.Namespace, settings: Settings, *, since: float) -> None:
    """An interrupt before the container wrote any result (while the engine was reached or
    the image built): the results folder still lists every scenario, not run."""
    from stress.report.folder import claim, remove_stale_files, write_reports_safely

    written = args.out / "results.json"
    if written.exists() and written.stat().st_mtime >= since:
        return  # the run in the container got far enough to write its own
    scenarios = settings.chosen_scenarios()
    with claim(args.out):
        remove_stale_files(args.out, [s.name for s in scenarios])
        write_reports_safely([not_run_result(s, None) for s in scenarios], args.out)


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run_here(args: argparse.Namespace, settings: Settings) -> int:
    from stress.engine.check_target import check_target
    from stress.engine.runner import run_scenarios
    from stress.engine.supervise import StopRequest
    from stress.engine.teardown import reap_stale_work_dirs
    from stress.profiling import parse_profile_kinds
    from stress.report import load_baseline
    from stress.report.folder import claim, remove_stale_files

    check_loops([args.loop])
    scenarios = settings.chosen_scenarios()
    baseline = load_baseline(args.baseline) if args.baseline else None
    options = RunOptions(
        out_dir=args.out, target=args.target,
        loop="uvloop" if args.loop == "uvloop" else "asyncio", repeat=args.repeat,
        profile=parse_profile_kinds(args.profile),
        cpu_profiler="perf" if args.cpu_profiler == "perf" else "py-spy",
        evidence=not args.no_evidence, sample_interval_s=args.sample_interval,
        flamegraph_source=not args.no_flamegraph_source,
        setup_budget_s=args.setup_budget, quit_budget_s=args.quit_budget,
        teardown_budget_s=args.teardown_budget, ignore_tasks=tuple(args.ignore_task),
        measure=args.measure, instruction_tokens=args.instruction_tokens,
    )
    # Imported in a throwaway child: the target's code runs at import, and whatever it does
    # there (raise, sys.exit) is a one-line error rather than the runner's end.
    check_target(args.target)
    with claim(args.out):  # writable, and no other run writing into it
        remove_stale_files(args.out, [s.name for s in scenarios])
        reap_stale_work_dirs()
        return _run_claimed(args, scenarios, options, baseline=baseline, stop=StopRequest(),
                            run_scenarios=run_scenarios)


def _run_claimed(args: argparse.Namespace, scenarios: list[Scenario], options: RunOptions, *,
                 baseline: list[Result] | None, stop: StopRequest,
                 run_scenarios: Callable[..., list[Result]]) -> int:
    from stress.report.folder import write_reports_safely
    from stress.report.summary import verdict_line
    from stress.report.text import format_block

    results: list[Result] = []

    def on_result(result: Result) -> None:
        """Print and log the scenario's block, annotate its failures, rewrite the reports."""
        if result.status == "not_run":
            print(f"scenario {result.scenario.name}: {NOT_RUN_MESSAGE}", flush=True)
        else:
            block = format_block(result)
            _append_to_log(args.out, result, block)
            print(block, flush=True)
            for failure in result.failures:
                annotate_error(f"stress: {result.scenario.name}",
                               f"{failure.message} — {failure.headline}")
        results.append(result)
        results[:] = write_reports_safely(results, args.out, baseline=baseline, final=False)

    def section(scenario: Scenario) -> AbstractContextManager[None]:
        return group(f"scenario {scenario.name}: {scenario.title}")

    try:
        run_scenarios(scenarios, options, on_result, section=section, progress=Progress,
                      stop=stop)
    except KeyboardInterrupt:
        stop.requested = True  # between two scenarios, outside the runner's own handler
    finally:
        if stop.requested:  # every scenario is listed: those not reached as not run
            done = {r.scenario.name for r in results}
            results += [not_run_result(s, next((r.environment for r in results), None))
                        for s in scenarios if s.name not in done]
        # Also after an error: the scenarios that finished keep their reports.
        results[:] = write_reports_safely(results, args.out, baseline=baseline, final=True)
    code = overall_exit_code(results)
    counts = (f"{sum(r.passed for r in results)} passed, "
              f"{sum(not r.passed and r.status != 'not_run' for r in results)} failed")
    if was_interrupted(results):
        print(f"{verdict_line(results).removeprefix('# ')}; {counts}; results in {args.out}/",
              flush=True)
    else:
        print(f"{len(results)} scenario(s): {counts}; results in {args.out}/ (exit {int(code)})")
    return int(code)


def _append_to_log(out: Path, result: Result, block: str) -> None:
    """The scenario's text block at the end of its log (not through a link planted there)."""
    name = result.artifacts.get("log")
    if not name:
        return
    path = out / name
    try:
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(path, flags), "a", encoding="utf-8") as log_file:
            log_file.write("\n" + block + "\n")
    except OSError as exc:  # the block is in every report as well
        log.warning("could not append the result to %s: %s", path, exc)


def apply_settings(args: argparse.Namespace) -> Settings:
    """Resolve the settings once and put each resolved value back on ``args``, so the host
    run and the container's command line see the same options."""
    settings = resolve_run_settings(args)
    args.target = settings.target.value
    args.out = settings.out.value
    args.scale = settings.scale.value
    args.profile = ",".join(settings.profile.value)
    args.engine = settings.engine.value
    args.memory = settings.container.memory.value
    args.cpus = settings.container.cpus.value
    args.names = list(settings.select.value)
    if settings.scenarios_file.value is not None:
        args.scenarios = settings.scenarios_file.value
    if settings.config_file is not None and settings.engine.value != "host":
        # The project's threshold overrides must reach the container's run: hand it the
        # resolved scenario set as a file, and keep it from reading the project config again.
        args.scenarios = write_resolved_scenarios(settings)
        args.settings_resolved = True  # the container's run gets STRESS_NO_PROJECT_CONFIG=1
    return settings


def write_resolved_scenarios(settings: Settings) -> Path:
    from stress.config.scenarios import scenarios_yaml

    folder = Path(tempfile.mkdtemp(prefix="stress-scenarios-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "scenarios.yaml"
    path.write_text(scenarios_yaml(settings.scenarios), encoding="utf-8")
    return path
