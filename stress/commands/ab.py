"""``python -m stress ab BASE_REF HEAD_REF [NAME ...]``: the side-by-side regression gate."""

from __future__ import annotations

import argparse
from pathlib import Path

from stress.commands.common import add_scenarios_flag, add_verbose_flag, check_scale, start_logging
from stress.engine.instruction_options import add_instruction_tokens_flag, check_instruction_tokens
from stress.errors import ConfigError
from stress.target import DEFAULT_TARGET

HELP = ("compare two git revisions on this machine: rounds alternate base and head, "
        "judged on the median head/base throughput ratio")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base_ref", metavar="BASE_REF", help="the reference revision, e.g. "
                        "origin/main or the pull request's base commit")
    parser.add_argument("head_ref", metavar="HEAD_REF", help="the revision under test, e.g. HEAD")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="scenarios to compare (default: all of HEAD_REF's)")
    parser.add_argument("--rounds", type=int, default=5, metavar="N",
                        help="base/head pairs per scenario, order alternating (default: 5)")
    parser.add_argument("--confirm", type=int, default=5, metavar="N",
                        help="a scenario whose median is below the limit after --rounds gets N "
                             "more rounds, after the others, and is judged on all of them "
                             "(default: 5; 0: judge on --rounds alone)")
    parser.add_argument("--max-drop", type=float, default=20.0, metavar="PCT",
                        help="wall time: a regression is a median head/base throughput ratio "
                             "below 1 - PCT/100 (default: 20, i.e. below 0.80)")
    parser.add_argument("--measure", default="wall", choices=("wall", "instructions", "auto"),
                        help="wall: tokens/s in alternating rounds (the default); "
                             "instructions: valgrind's instructions per token, one round; "
                             "auto: instructions for the unpaced scenarios (no token or "
                             "consumer delay), wall time for the paced ones (needs valgrind)")
    parser.add_argument("--max-growth", type=float, default=3.0, metavar="PCT",
                        help="instructions: a regression is a head/base instructions per token "
                             "ratio above 1 + PCT/100 (default: 3, i.e. above 1.03)")
    add_instruction_tokens_flag(parser)
    parser.add_argument("--jobs", type=int, default=0, metavar="N",
                        help="instruction counts: N runs at once (default: one per CPU; a "
                             "count does not depend on the load, wall-clock rounds always "
                             "run one at a time)")
    parser.add_argument("--no-explain", action="store_true",
                        help="on a regression, do not rerun both sides to explain it "
                             "(callgrind's table of the functions that grew, py-spy's "
                             "flamegraphs of base and head)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply message counts; aim for runs of a second or more "
                             "(shorter ones are noisier), e.g. 2 with the reference pipeline")
    parser.add_argument("--target", default=DEFAULT_TARGET, metavar="MODULE:ATTR",
                        help=f"the system under test in both revisions (default: "
                             f"{DEFAULT_TARGET})")
    parser.add_argument("--base-target", metavar="MODULE:ATTR",
                        help="the base revision's target, when it differs from --target")
    parser.add_argument("--head-target", metavar="MODULE:ATTR",
                        help="the head revision's target, when it differs from --target")
    add_scenarios_flag(parser)
    parser.add_argument("--out", type=Path, default=Path("stress-ab"),
                        help="where ab.md, ab.json, the setup logs and every run go "
                             "(default: stress-ab/)")
    parser.add_argument("--repo", type=Path, default=Path("."), metavar="DIR",
                        help="the git repository holding both revisions (default: .)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the revisions' worktrees and environments, for debugging")
    add_verbose_flag(parser)


def run(args: argparse.Namespace) -> int:
    from stress.ab import AbOptions, render_text, run_gate

    start_logging(args)
    if args.rounds < 1:
        raise ConfigError(f"--rounds {args.rounds}: expected a whole number >= 1 (5 is usual)")
    if args.confirm < 0:
        raise ConfigError(f"--confirm {args.confirm}: expected a whole number >= 0 "
                          "(0 turns confirmation rounds off)")
    if not 0 < args.max_drop < 100:
        raise ConfigError(f"--max-drop {args.max_drop:g}: expected a percentage between 0 and "
                          "100, e.g. 20 (a regression is then head/base < 0.80)")
    if not 0 < args.max_growth < 100:
        raise ConfigError(f"--max-growth {args.max_growth:g}: expected a percentage between 0 "
                          "and 100, e.g. 3 (a regression is then head/base > 1.03)")
    if args.jobs < 0:
        raise ConfigError(f"--jobs {args.jobs}: expected a whole number >= 0 (0: one per CPU)")
    check_instruction_tokens(args)
    if args.measure != "wall":
        from stress.profiling.instructions import require_valgrind

        require_valgrind()  # one line and exit 2 before any revision is prepared
    check_scale(args.scale, example="0.05")
    scenarios = args.scenarios.resolve() if args.scenarios else None
    if scenarios is not None and not scenarios.is_file():
        raise ConfigError(f"--scenarios {args.scenarios}: no such file")
    options = AbOptions(
        base_ref=args.base_ref, head_ref=args.head_ref, names=tuple(args.names),
        rounds=args.rounds, confirm_rounds=args.confirm, max_drop_pct=args.max_drop,
        scale=args.scale,
        base_target=args.base_target or args.target, head_target=args.head_target or args.target,
        scenarios_file=scenarios, out_dir=args.out, repo=args.repo, keep=args.keep,
        measure=args.measure, max_growth_pct=args.max_growth,
        instruction_tokens=args.instruction_tokens, explain=not args.no_explain,
        jobs=args.jobs,
    )
    report = run_gate(options)
    print(render_text(report), end="")
    print(f"ab.md and ab.json in {args.out}/ (exit {int(report.exit_code)})")
    return int(report.exit_code)
