"""What several commands share: the scenarios flag, ``-v``, and the checks of --scale and --loop.

One copy each, so every command words the same mistake the same way.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from stress.console import configure_logging
from stress.errors import ConfigError

if TYPE_CHECKING:
    from stress.scenario import Scenario


def add_scenarios_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenarios", type=Path, metavar="FILE",
                        help="a scenarios YAML file instead of the built-in one")


def chosen_scenarios(args: argparse.Namespace, names: list[str]) -> list[Scenario]:
    # Imported here: loading YAML is only needed by the commands that run, not by `--help`.
    from stress.config import BUILTIN_NAME, load_scenarios, select

    source = str(args.scenarios) if args.scenarios else BUILTIN_NAME
    return select(load_scenarios(args.scenarios), names, source)


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging (same as STRESS_LOG=debug)")


def start_logging(args: argparse.Namespace) -> None:
    """Logging as ``-v`` (or STRESS_LOG) asks; children inherit STRESS_LOG."""
    configure_logging(bool(getattr(args, "verbose", False)))


def check_scale(scale: float, example: str = "0.01") -> float:
    """``--scale`` must be a finite factor above 0: nan or inf would size no run at all."""
    if not math.isfinite(scale):
        raise ConfigError(f"--scale {scale}: expected a finite factor > 0, e.g. {example}")
    if scale <= 0:
        raise ConfigError(f"--scale {scale}: expected a factor > 0, e.g. {example}")
    return scale


def check_loops(loops: Iterable[str]) -> None:
    """uvloop is an optional extra: say how to get it before any child needs it."""
    if "uvloop" in loops and importlib.util.find_spec("uvloop") is None:
        raise ConfigError("--loop uvloop: uvloop is not installed; "
                          "pip install 'asyncio-stress-kit[uvloop]' or use --loop asyncio")
