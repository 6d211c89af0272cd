"""The run command's ``--measure`` flags, and the checks made before the first scenario."""

from __future__ import annotations

import argparse

from stress.engine.instructions import DEFAULT_TOKENS
from stress.engine.options import MEASURES
from stress.errors import ConfigError
from stress.profiling.instructions import require_valgrind


def add_measure_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--measure", default="wall", choices=MEASURES,
                        help="wall: tokens/sec (the default); instructions: also instructions "
                             "per token, counted by valgrind (cachegrind) at two sizes with "
                             "start-up taken out; callgrind: the same under callgrind, with "
                             "each function's share (host only; needs valgrind)")
    parser.add_argument("--instruction-tokens", type=int, default=DEFAULT_TOKENS, metavar="N",
                        help="the instruction count runs each scenario at N and 2N tokens "
                             f"(default: {DEFAULT_TOKENS:,})")


def check_measure(args: argparse.Namespace) -> None:
    """Refuse a measure that cannot be taken, before any scenario runs."""
    if args.measure == "wall":
        return
    if args.instruction_tokens < 1:
        raise ConfigError(f"--instruction-tokens {args.instruction_tokens}: expected a whole "
                          "number >= 1")
    if getattr(args, "engine", "host") == "docker":
        raise ConfigError(f"--measure {args.measure} runs on the host only for now "
                          "(the image carries no valgrind); use --engine host")
    require_valgrind()
    args.engine = "host"  # --engine auto: the count is taken here, where valgrind is
