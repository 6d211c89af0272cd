"""Flags shared by the commands that load scenarios."""

from __future__ import annotations

import argparse
from pathlib import Path

from stress.config import BUILTIN_NAME, load_scenarios, select
from stress.scenario import Scenario


def add_scenarios_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenarios", type=Path, metavar="FILE",
                        help="a scenarios YAML file instead of the built-in one")


def chosen_scenarios(args: argparse.Namespace, names: list[str]) -> list[Scenario]:
    source = str(args.scenarios) if args.scenarios else BUILTIN_NAME
    return select(load_scenarios(args.scenarios), names, source)
