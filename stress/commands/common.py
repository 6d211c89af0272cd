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
    from stress.config.scenario import Scenario
    from stress.config.settings import Settings


def add_scenarios_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenarios", type=Path, metavar="FILE", action=GivenFlag,
                        help="a scenarios YAML file instead of the built-in one")


def chosen_scenarios(args: argparse.Namespace, names: list[str]) -> list[Scenario]:
    # Imported here: loading YAML is only needed by the commands that run, not by `--help`.
    from stress.config.scenarios import BUILTIN_NAME, load_scenarios, select

    source = str(args.scenarios) if args.scenarios else BUILTIN_NAME
    return select(load_scenarios(args.scenarios), names, source)


class GivenFlag(argparse.Action):
    """Stores the value and remembers that it was typed: only a typed flag outranks the
    project config and the STRESS_* variables; the parser's default does not."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.given_flags = {*getattr(namespace, "given_flags", ()), self.dest}


def resolve_run_settings(args: argparse.Namespace) -> Settings:
    """The run's settings: the flags typed over STRESS_* over the project's ``[tool.stress]``
    (or ``stress.toml``) over the built-in defaults. Resolved once, here."""
    import os

    from stress.config.settings import resolve_settings

    typed: set[str] = getattr(args, "given_flags", set())

    def given(name: str) -> object:
        return getattr(args, name, None) if name in typed else None

    return resolve_settings({
        "target": given("target"), "scenarios_file": given("scenarios"),
        "select": list(args.names) or None, "profile": given("profile"),
        "engine": given("engine"), "out": given("out"), "scale": given("scale"),
        "container.memory": given("memory"), "container.cpus": given("cpus"),
    }, Path.cwd(), os.environ)


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
