"""``stress-kit pin``: point the Dockerfile's base at its tag's current digest."""

from __future__ import annotations

import argparse

HELP = "re-pin the Dockerfile's base image to its tag's current digest (needs a registry)"


def configure(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    del args
    from stress.container import engine, image

    print(image.pin(engine.connect()), flush=True)
    return 0
