"""``stress-kit lock``: pin the project's dependencies with hashes for the stress image."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("pin the project's dependencies and [tool.stress] extra_requirements with hashes "
        "(stress-requirements.txt) for the container run and the ab gate")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--upgrade", action="store_true",
                        help="move every pin to the newest allowed (default: keep the lock's)")


def run(args: argparse.Namespace) -> int:
    from stress.container.image import LOCK
    from stress.container.project import find_project, write_lock
    from stress.errors import ConfigError

    project = find_project(Path.cwd())
    if project is None:
        raise ConfigError("no project here: `stress-kit lock` needs a pyproject.toml with a "
                          "[project] table in this folder or above it (up to the git root)")
    written = write_lock(project, LOCK, upgrade=args.upgrade)
    print(f"lock: wrote {written} for {project.name}; commit it", flush=True)
    return 0
