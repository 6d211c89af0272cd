"""`stress-kit run --engine docker|auto`: the same run, in the pinned image.

The run command's own parser reads the command line once. Here its parsed options become the
container's mounts (the results folder, each input file on its own, the folder of a target
module that is not in the image) and the same options, rewritten for those mounts, go to
`python -m stress run` inside. Run from a project's folder (a pyproject with a `[project]`
table), the image gets the project's layers (its locked dependencies, then its wheel) and the
target is imported from there. `--engine auto` takes the container where an engine answers
and otherwise the host, with a warning.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import sys
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import stress
from stress import console
from stress.container.driver import RESULTS_MOUNT, Mount  # the SDK is imported only when used
from stress.errors import ConfigError

Engine = Literal["auto", "docker", "host"]
INPUTS_MOUNT = "/inputs"  # where the host files the runner reads appear, one each, read-only
WORKSPACE_MOUNT = "/workspace"  # the folder a user's --target module is imported from
FILE_OPTIONS = ("scenarios", "baseline")  # the run options that name a host file
# The container options; everything else the run parser defines goes into the container.
CONTAINER_DESTS = frozenset({"engine", "base", "image", "memory", "cpus", "container_timeout",
                             "build"})
DEFAULT_MEMORY = "4g"
DEFAULT_TIMEOUT_S = 3600.0


def add_options(parser: argparse.ArgumentParser) -> None:
    """The container options, beside the run command's own. The engine, memory and CPU limits
    are settings (STRESS_ENGINE, the project's [tool.stress] ...) resolved by the run command;
    the image options read their variables here."""
    from stress.commands.common import GivenFlag

    env = os.environ.get
    group = parser.add_argument_group("container")
    group.add_argument("--engine", choices=("auto", "docker", "host"),
                       default="host", action=GivenFlag,
                       help="docker: in the pinned image; auto: there if an engine answers, "
                            "else here with a warning (default: host, or $STRESS_ENGINE)")
    group.add_argument("--base", default=env("STRESS_BASE_IMAGE") or None, metavar="IMAGE",
                       help="base image (default: $STRESS_BASE_IMAGE or the Dockerfile's pin)")
    group.add_argument("--image", default=env("STRESS_IMAGE") or None, metavar="TAG",
                       help="also tag the image so (default: a tag derived from its inputs)")
    group.add_argument("--memory", default=DEFAULT_MEMORY, action=GivenFlag,
                       help=f"the container's memory limit (default: {DEFAULT_MEMORY})")
    group.add_argument("--cpus", type=float, default=None, action=GivenFlag,
                       help="the container's CPU limit (default: no limit)")
    group.add_argument("--container-timeout", type=float, metavar="SECONDS",
                       default=_float(env("STRESS_CONTAINER_TIMEOUT")) or DEFAULT_TIMEOUT_S,
                       help="kill the container after this long (default: 3600)")
    group.add_argument("--no-build", dest="build", action="store_false",
                       help="run the image already built (--image, or the derived tag)")


def _float(text: str | None) -> float | None:
    return float(text) if text else None


@dataclass(frozen=True, kw_only=True)
class ContainerOptions:
    engine: Engine
    base: str | None
    image: str | None
    memory: str
    cpus: float | None
    timeout_s: float
    build: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ContainerOptions:
        return cls(engine=args.engine, base=args.base, image=args.image, memory=args.memory,
                   cpus=args.cpus, timeout_s=args.container_timeout, build=args.build)


@dataclass(frozen=True, kw_only=True)
class ContainerPlan:
    """The run's options rewritten for the container, and what to mount for them."""

    results_dir: Path
    command: tuple[str, ...]
    mounts: tuple[Mount, ...]
    environment: dict[str, str]
    working_dir: str | None


def run_parser() -> argparse.ArgumentParser:
    from stress.commands import run

    parser = argparse.ArgumentParser(add_help=False)
    run.configure(parser)
    return parser


def input_files(args: argparse.Namespace, cwd: Path) -> dict[str, Path]:
    """The host files the run options name, checked to exist (before any build)."""
    found: dict[str, Path] = {}
    for dest in FILE_OPTIONS:
        value = getattr(args, dest, None)
        if value is None:
            continue
        path = (cwd / value).resolve()
        if not path.is_file():
            raise ConfigError(f"--{dest} {value}: no such file")
        found[dest] = path
    return found


def plan(args: argparse.Namespace, *, cwd: Path,
         image_modules: Collection[str] = ()) -> ContainerPlan:
    """Host paths in the parsed options become mounts: results rw, each input file read-only
    on its own (never its folder: `--scenarios ~/s.yaml` must not show all of ~). A target
    whose module the image holds (`image_modules`, the project's) is imported from there."""
    mounts: list[Mount] = []
    rewritten: dict[str, Any] = {}
    for dest, path in input_files(args, cwd).items():
        inside = f"{INPUTS_MOUNT}/{len(mounts)}/{path.name}"
        mounts.append(Mount(host=path, container=inside))
        rewritten[dest] = inside
    environment: dict[str, str] = {}
    if getattr(args, "settings_resolved", False):
        environment["STRESS_NO_PROJECT_CONFIG"] = "1"  # the overrides are in --scenarios
    working_dir = None
    top = args.target.partition(":")[0].split(".")[0]
    workspace = None if top in image_modules else target_folder(args.target, cwd)
    if workspace is not None:  # a user's target module lives in their project, not the image
        mounts.append(Mount(host=workspace, container=WORKSPACE_MOUNT))
        environment["PYTHONPATH"] = WORKSPACE_MOUNT
        working_dir = WORKSPACE_MOUNT
    rewritten["out"] = RESULTS_MOUNT
    command = ("run", *run_arguments(args, rewritten), "--engine", "host")
    return ContainerPlan(results_dir=(cwd / args.out).resolve(), command=command,
                         mounts=tuple(mounts), environment=environment, working_dir=working_dir)


def target_folder(target: str, cwd: Path) -> Path | None:
    """The folder the target's top-level module is imported from; None for the kit's own."""
    top = target.partition(":")[0].split(".")[0]
    if top == "stress":
        return None
    # Looked for as the run imports it: from the folder the command runs in too (the
    # `stress-kit` script does not put it on the path by itself).
    added = str(cwd) not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, str(cwd))
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    finally:
        if added:
            sys.path.remove(str(cwd))
    if spec is None or spec.origin is None:
        raise ConfigError(f"--target {target!r}: cannot find module {top!r} here; run from the "
                          "folder it is imported from, or put that folder on PYTHONPATH")
    origin = Path(spec.origin).resolve()
    # A package's origin is its __init__.py; its folder's parent is what goes on the path.
    return origin.parent.parent if origin.name == "__init__.py" else origin.parent


def run_arguments(args: argparse.Namespace, rewritten: dict[str, Any]) -> list[str]:
    """The run options of `args` as a command line (defaults left out), container ones dropped."""
    argv: list[str] = []
    names: list[str] = []
    for action in run_parser()._actions:
        dest = action.dest
        if dest in CONTAINER_DESTS or dest == "help":
            continue
        value = rewritten.get(dest, getattr(args, dest, action.default))
        if not action.option_strings:
            names = [str(v) for v in value] if isinstance(value, list) else []
            continue
        if value == action.default and dest not in rewritten:
            continue
        flag = max(action.option_strings, key=len)
        if action.nargs == 0:  # store_true / store_false: the flag is the value
            argv.append(flag)
        elif isinstance(value, list):
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    return [*names, *argv]


def run(args: argparse.Namespace) -> int | None:
    """Run in the container; None when `--engine auto` found no engine (run on the host)."""
    with _sigterm_interrupts():
        return _run(args)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends the session as Ctrl-C does (cleanly: temporary folders, the container);
    while the container runs, the driver forwards both to it instead."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def wants_ptrace(args: argparse.Namespace) -> bool:
    """py-spy attaches with ptrace: for a CPU profile, asked for or as a failure's evidence."""
    from stress.profiling import parse_profile_kinds

    kinds = parse_profile_kinds(getattr(args, "profile", "") or "")
    return "cpu" in kinds or (not kinds and not getattr(args, "no_evidence", False))


def _run(args: argparse.Namespace) -> int | None:
    from stress.container import driver, engine, image
    from stress.container.project import find_project, git_commit

    options = ContainerOptions.from_args(args)
    try:
        client = engine.connect()
    except engine.NoEngineError as exc:
        if options.engine != "auto":
            raise
        console.warning(f"no container engine answered at {exc.url} ({exc.reason}): running "
                        "the scenarios on the host, not in the pinned container. Start Docker or "
                        "set DOCKER_HOST to use the container; --engine docker makes this an "
                        "error.")
        return None
    cwd = Path.cwd()
    input_files(args, cwd)  # a missing file is said before the build, not after
    project = find_project(cwd)
    if options.build:
        built = image.build(client, base=options.base, extra_tag=options.image, project=project)
    else:
        built = image.existing(client, tag=options.image, base=options.base, project=project)
    container_plan = plan(args, cwd=cwd,
                          image_modules=built.project.modules if built.project else ())
    environment = {name: os.environ[name] for name in ("CI", "GITHUB_ACTIONS", "GITHUB_SHA",
                                                       "STRESS_CI_OUTPUT", "STRESS_LOG")
                   if name in os.environ}
    # What results.json records about where it ran (the environment capture reads these).
    commit = git_commit(project.root if project is not None else cwd)
    environment["STRESS_GIT_SHA"] = commit
    environment["STRESS_KIT_VERSION"] = stress.__version__
    environment["STRESS_IMAGE_ID"] = built.id
    if built.project is not None:
        environment["STRESS_PROJECT_NAME"] = built.project.name
        environment["STRESS_PROJECT_VERSION"] = built.project.version
    environment.update(container_plan.environment)
    config = driver.RunConfig(
        results_dir=container_plan.results_dir, image=built.tag, command=container_plan.command,
        memory_limit=options.memory, cpus=options.cpus, timeout_s=options.timeout_s,
        mounts=container_plan.mounts, cap_add=("SYS_PTRACE",) if wants_ptrace(args) else (),
        environment=environment, working_dir=container_plan.working_dir,
    )
    print(f"--- in {built.tag}: python -m stress {' '.join(container_plan.command)}"
          f" (results: {container_plan.results_dir})", flush=True)
    started = time.monotonic()
    code = driver.run_in_container(client, config)
    print(f"--- container exited {code} after {time.monotonic() - started:.1f}s; "
          f"results on the host in {container_plan.results_dir}", flush=True)
    return code
