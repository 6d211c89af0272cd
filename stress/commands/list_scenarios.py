"""``python -m stress list``: the scenario names, one per line (or JSON for a CI matrix)."""

from __future__ import annotations

import argparse
import json

from stress.commands.common import add_scenarios_flag, chosen_scenarios

HELP = "list the scenarios (names one per line; --long for sizes and thresholds)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_scenarios_flag(parser)
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="a JSON list of names")
    form.add_argument("--long", action="store_true", help="a table with sizes and thresholds")


def run(args: argparse.Namespace) -> int:
    scenarios = chosen_scenarios(args, [])
    if args.json:
        print(json.dumps([s.name for s in scenarios]))
    elif args.long:
        for s in scenarios:
            limits = {k: v for k, v in vars(s.thresholds).items() if v is not None}
            print(f"{s.name:<14} {s.title:<26} {s.messages:>9,} x {s.message_size:>5} chars"
                  f"  x{s.conversations:<4} timeout {s.timeout_s:g}s  {limits}")
    else:
        for s in scenarios:
            print(s.name)
    return 0
