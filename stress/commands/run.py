"""``python -m stress run``: run scenarios against a target and write the reports."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from stress.commands.options import add_scenarios_flag, chosen_scenarios
from stress.console import configure_logging
from stress.container import session as container_session
from stress.errors import ConfigError
from stress.results import Result, overall_exit_code
from stress.runner import RunOptions, run_scenarios
from stress.target import DEFAULT_TARGET, load_target

HELP = "run stress scenarios and write logs, results.json, junit.xml, summary.md, report.html"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="scenarios to run (default: all)")
    parser.add_argument("--out", type=Path, default=Path("stress-results"),
                        help="results folder (default: stress-results/)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply message counts, e.g. 0.01 for a quick run")
    parser.add_argument("--target", default=DEFAULT_TARGET, metavar="MODULE:ATTR",
                        help=f"the system under test (default: {DEFAULT_TARGET})")
    add_scenarios_flag(parser)
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run each scenario N times and report the median")
    parser.add_argument("--profile", default="", metavar="KINDS",
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
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging (same as STRESS_LOG=debug)")
    container_session.add_options(parser)


def run(args: argparse.Namespace) -> int:
    from stress.profiling import parse_profile_kinds
    from stress.report import load_baseline, write_reports

    configure_logging(args.verbose)
    if args.scale <= 0:
        raise ConfigError(f"--scale {args.scale}: expected a factor > 0, e.g. 0.01")
    if args.repeat < 1:
        raise ConfigError(f"--repeat {args.repeat}: expected a whole number >= 1")
    if args.sample_interval <= 0:
        raise ConfigError(f"--sample-interval {args.sample_interval}: expected seconds > 0")
    if args.engine != "host" and (code := container_session.run(args)) is not None:
        return code  # None: --engine auto found no engine, so the run goes on here
    if args.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise ConfigError("--loop uvloop: uvloop is not installed; "
                          "pip install 'asyncio-stress-kit[uvloop]' or use --loop asyncio")
    load_target(args.target)  # fail here, once, rather than in every child
    scenarios = [s.scaled(args.scale) for s in chosen_scenarios(args, args.names)]
    baseline = load_baseline(args.baseline) if args.baseline else None
    options = RunOptions(
        out_dir=args.out, target=args.target, loop=args.loop, repeat=args.repeat,
        profile=parse_profile_kinds(args.profile), cpu_profiler=args.cpu_profiler,
        evidence=not args.no_evidence, sample_interval_s=args.sample_interval,
    )

    def write(results: list[Result], final: bool) -> None:
        write_reports(results, args.out, baseline=baseline, final=final)

    results = run_scenarios(scenarios, options, write)
    code = overall_exit_code(results)
    print(f"{len(results)} scenario(s): "
          f"{sum(r.passed for r in results)} passed, {sum(not r.passed for r in results)} failed; "
          f"results in {args.out}/ (exit {int(code)})")
    return int(code)
