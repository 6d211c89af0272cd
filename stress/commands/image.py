"""``stress-kit image``: build the kit's pinned image alone, with no network."""

from __future__ import annotations

import argparse
import os

HELP = "build the pinned image the container runs use (offline, from the kit's lock)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", default=os.environ.get("STRESS_BASE_IMAGE") or None,
                        metavar="IMAGE",
                        help="base image (default: $STRESS_BASE_IMAGE or the Dockerfile's pin)")
    parser.add_argument("--image", default=os.environ.get("STRESS_IMAGE") or None, metavar="TAG",
                        help="also tag the image so (default: only the tag derived from its "
                             "inputs)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from stress.container import engine, image
    from stress.container.project import find_project

    # In a project's folder, the image the container run would use: the project on top.
    built = image.build(engine.connect(), base=args.base, extra_tag=args.image,
                        project=find_project(Path.cwd()))
    print(built.tag, flush=True)
    return 0
