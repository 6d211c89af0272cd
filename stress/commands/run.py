"""``python -m stress run``: run scenarios against a target and write the reports."""

from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path
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
from stress.console import Progress, annotate_error, group
from stress.container import session as container_session
from stress.engine.options import RunOptions
from stress.errors import ConfigError
from stress.results import Result, overall_exit_code
from stress.scenario import Scenario
from stress.target import DEFAULT_TARGET, load_target

if TYPE_CHECKING:
    from stress.settings import Settings

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
    # The phases around the measured run (stress.engine.lifecycle), each with its deadline.
    for phase, default in (("setup", 30.0), ("quit", 10.0), ("teardown", 10.0)):
        parser.add_argument(f"--{phase}-budget", type=float, default=default, metavar="SECONDS",
                            help=f"how long the target's {phase} may take (default: {default:g})")
    parser.add_argument("--ignore-task", action="append", default=[], metavar="PATTERN",
                        help="accept leftover tasks whose coroutine's module.qualname matches "
                             "(fnmatch, e.g. 'sse_starlette.*'), in every scenario; repeatable")
    add_verbose_flag(parser)
    container_session.add_options(parser)


def run(args: argparse.Namespace) -> int:
    from stress.engine.runner import run_scenarios
    from stress.profiling import parse_profile_kinds
    from stress.report import load_baseline, write_reports
    from stress.report.text import format_block

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
    if args.engine != "host" and (code := container_session.run(args)) is not None:
        return code  # None: --engine auto found no engine, so the run goes on here
    check_loops([args.loop])
    load_target(args.target)  # fail here, once, rather than in every child
    scenarios = settings.chosen_scenarios()
    baseline = load_baseline(args.baseline) if args.baseline else None
    options = RunOptions(
        out_dir=args.out, target=args.target,
        loop="uvloop" if args.loop == "uvloop" else "asyncio", repeat=args.repeat,
        profile=parse_profile_kinds(args.profile),
        cpu_profiler="perf" if args.cpu_profiler == "perf" else "py-spy",
        evidence=not args.no_evidence, sample_interval_s=args.sample_interval,
        setup_budget_s=args.setup_budget, quit_budget_s=args.quit_budget,
        teardown_budget_s=args.teardown_budget, ignore_tasks=tuple(args.ignore_task),
    )
    results: list[Result] = []

    def on_result(result: Result) -> None:
        """Print and log the scenario's block, annotate its failures, rewrite the reports."""
        block = format_block(result)
        with (args.out / result.artifacts["log"]).open("a", encoding="utf-8") as log_file:
            log_file.write("\n" + block + "\n")
        print(block, flush=True)
        for failure in result.failures:
            annotate_error(f"stress: {result.scenario.name}",
                           f"{failure.message} — {failure.headline}")
        results.append(result)
        write_reports(results, args.out, baseline=baseline, final=False)

    def section(scenario: Scenario) -> AbstractContextManager[None]:
        return group(f"scenario {scenario.name}: {scenario.title}")

    try:
        run_scenarios(scenarios, options, on_result, section=section, progress=Progress)
    finally:
        # Also after an error: the scenarios that finished keep their reports.
        write_reports(results, args.out, baseline=baseline, final=True)
    code = overall_exit_code(results)
    print(f"{len(results)} scenario(s): "
          f"{sum(r.passed for r in results)} passed, {sum(not r.passed for r in results)} failed; "
          f"results in {args.out}/ (exit {int(code)})")
    return int(code)


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
    from stress.config import scenarios_yaml

    folder = Path(tempfile.mkdtemp(prefix="stress-scenarios-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "scenarios.yaml"
    path.write_text(scenarios_yaml(settings.scenarios), encoding="utf-8")
    return path
