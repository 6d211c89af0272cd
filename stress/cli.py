"""``python -m stress <command>``: a thin dispatcher over one module per command.

The commands are plain imports, so mypy checks each module against ``Command`` and a missing
one fails at import rather than vanishing from ``--help``. Each module keeps its heavy imports
inside ``run()``, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from stress.commands import (
    ab,
    bench,
    compare,
    config,
    image,
    init,
    list_scenarios,
    lock,
    merge,
    pin,
    report,
    run,
)
from stress.console import configure_logging
from stress.errors import ExitCode, StressError

log = logging.getLogger("stress.cli")


class Command(Protocol):
    """What a command module provides: its help line, its flags, and the command itself."""

    HELP: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...
    def run(self, args: argparse.Namespace) -> int: ...


COMMANDS: dict[str, Command] = {
    "list": list_scenarios,
    "run": run,
    "compare": compare,
    "bench": bench,
    "report": report,
    "merge": merge,
    "ab": ab,
    "config": config,
    "image": image,
    "pin": pin,
    "init": init,
    "lock": lock,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        # As the user typed it: the installed script, or `python -m stress`.
        prog="stress-kit" if Path(sys.argv[0]).name == "stress-kit" else "python -m stress",
        description="Stress-test and profile asyncio streaming systems.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
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
    except Exception as exc:  # a bug in the kit: one line, not a traceback
        return internal_error(args.command, exc)


def internal_error(command: str, exc: Exception) -> int:
    """One line naming the error; the traceback only in the debug log (-v, STRESS_LOG=debug)."""
    configure_logging(verbose=False)  # a no-op when the command set logging up already
    log.debug("`%s` failed unexpectedly", command, exc_info=exc)
    hint = "" if log.isEnabledFor(logging.DEBUG) else "; rerun with STRESS_LOG=debug for the " \
        "traceback"
    print(f"error: internal error in `{command}`: {type(exc).__name__}: {exc}{hint}",
          file=sys.stderr)
    return int(ExitCode.INTERNAL_ERROR)
