"""A small CPU-bound asyncio pipeline for checking the instruction-count measure.

    python instruction_workload.py TOKENS [--work 20] [--slow FUNCTION=FACTOR]

A producer puts TOKENS short strings on a bounded queue, a stage upper-cases them onto a
second queue, and a consumer renders each one (``render``: --work steps of arithmetic) and
checks it (``checksum``: a fixed number of steps). ``--slow render=1.1`` gives ``render``
10% more steps, so a known per-token slowdown lands in one named function.

Standard library only and run as a file, so any interpreter (3.11, 3.12, 3.13) can run it
under valgrind without the kit installed.
"""

from __future__ import annotations

import argparse
import asyncio

CHECK_STEPS = 20


def render(token: str, steps: int) -> int:
    total = len(token)
    for i in range(steps):
        total += i * i
    return total


def checksum(token: str, steps: int) -> int:
    total = 0
    for i in range(steps):
        total ^= i + len(token)
    return total


async def produce(out: asyncio.Queue[str | None], tokens: int) -> None:
    for i in range(tokens):
        await out.put(f"t{i}".ljust(16, "x"))
    await out.put(None)


async def transform(source: asyncio.Queue[str | None], out: asyncio.Queue[str | None]) -> None:
    while (token := await source.get()) is not None:
        await out.put(token.upper())
    await out.put(None)


async def consume(source: asyncio.Queue[str | None], render_steps: int,
                  check_steps: int) -> int:
    received = 0
    while (token := await source.get()) is not None:
        render(token, render_steps)
        checksum(token, check_steps)
        received += 1
    return received


async def pipeline(tokens: int, render_steps: int, check_steps: int) -> int:
    first: asyncio.Queue[str | None] = asyncio.Queue(maxsize=32)
    second: asyncio.Queue[str | None] = asyncio.Queue(maxsize=32)
    _, _, received = await asyncio.gather(produce(first, tokens), transform(first, second),
                                          consume(second, render_steps, check_steps))
    return received


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tokens", type=int)
    parser.add_argument("--work", type=int, default=20, help="render's steps per token")
    parser.add_argument("--slow", action="append", default=[], metavar="FUNCTION=FACTOR",
                        help="more steps per token in render or checksum")
    args = parser.parse_args(argv)
    factors = {"render": 1.0, "checksum": 1.0}
    for item in args.slow:
        name, _, factor = item.partition("=")
        if name not in factors:
            parser.error(f"--slow {item!r}: the function is render or checksum")
        factors[name] = float(factor)
    received = asyncio.run(pipeline(args.tokens, round(args.work * factors["render"]),
                                    round(CHECK_STEPS * factors["checksum"])))
    if received != args.tokens:
        print(f"received {received} of {args.tokens} tokens")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
