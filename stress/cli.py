"""``python -m stress <command>``: a thin dispatcher over one module per command."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from stress.errors import ExitCode, StressError


class Command(Protocol):
    HELP: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...
    def run(self, args: argparse.Namespace) -> int: ...


# Command name -> module under stress.commands. Each module has HELP, configure(), run().
COMMANDS: dict[str, str] = {
    "list": "list_scenarios",
    "run": "run",
    "compare": "compare",
    "bench": "bench",
    "report": "report",
    "merge": "merge",
    "ab": "ab",
    "image": "image",
    "pin": "pin",
}


def _load(module: str) -> Command:
    return cast(Command, importlib.import_module(f"stress.commands.{module}"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stress",
        description="Stress-test and profile asyncio streaming systems.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        try:
            command = _load(module)
        except ModuleNotFoundError as exc:
            if exc.name != f"stress.commands.{module}":
                raise
            continue  # a command not present in this build
        command_parser = sub.add_parser(name, help=command.HELP, description=command.HELP)
        command.configure(command_parser)
        command_parser.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except StressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.CRASHED_OR_HUNG)
