"""The run command's ``--measure`` flags, and the checks made before the first scenario."""

from __future__ import annotations

import argparse

from stress.engine.options import DEFAULT_INSTRUCTION_TOKENS, MEASURES
from stress.errors import ConfigError
from stress.profiling.instructions import require_valgrind


def add_measure_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--measure", default="wall", choices=MEASURES,
                        help="wall: tokens/sec (the default); instructions: also instructions "
                             "per token, counted by valgrind (cachegrind) at two sizes with "
                             "start-up taken out; callgrind: the same under callgrind, with "
                             "each function's share (host only; needs valgrind)")
    add_instruction_tokens_flag(parser)


def add_instruction_tokens_flag(parser: argparse.ArgumentParser) -> None:
    """``--instruction-tokens``, the same for ``run`` and ``ab``."""
    parser.add_argument("--instruction-tokens", type=int, default=DEFAULT_INSTRUCTION_TOKENS,
                        metavar="N", help="instruction counts run each scenario at N and 2N "
                                          f"tokens (default: {DEFAULT_INSTRUCTION_TOKENS:,})")


def check_instruction_tokens(args: argparse.Namespace) -> None:
    if args.instruction_tokens < 1:
        raise ConfigError(f"--instruction-tokens {args.instruction_tokens}: expected a whole "
                          "number >= 1")


def check_measure(args: argparse.Namespace) -> None:
    """Refuse a measure that cannot be taken, before any scenario runs."""
    if args.measure == "wall":
        return
    check_instruction_tokens(args)
    if getattr(args, "engine", "host") == "docker":
        raise ConfigError(f"--measure {args.measure} runs on the host only for now "
                          "(the image carries no valgrind); use --engine host")
    require_valgrind()
    args.engine = "host"  # --engine auto: the count is taken here, where valgrind is
