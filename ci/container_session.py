"""What the nox sessions `stress`, `image` and `pin` run, in the session's virtualenv.

    python ci/container_session.py stress [--engine auto|docker|host] [container options]
                                          [NAME ...] [run options]
    python ci/container_session.py image  [--base IMAGE] [--image TAG]
    python ci/container_session.py pin

`stress` runs `python -m stress run ...` in the pinned image (built first, with no network, from
the wheelhouse) or, with --engine host, right here. --engine auto takes the container where an
engine answers and otherwise the host, with a warning. The exit code is the runner's.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wheelhouse  # ci/wheelhouse.py, beside this file

from stress import container
from stress.errors import ExitCode, StressError

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
DEFAULT_PROFILE = "memory,cpu"
DEFAULT_OUT = "stress-results"  # the runner's default --out
INPUTS_MOUNT = "/inputs"  # where the folders of host files the runner reads appear, read-only
FILE_OPTIONS = ("--scenarios", "--baseline")  # the runner's options that name a host file
WORKSPACE_MOUNT = "/workspace"  # the host's working folder, for a user's --target module
ON_GITHUB = os.environ.get("GITHUB_ACTIONS") == "true"


@dataclass(frozen=True, kw_only=True)
class ContainerOptions:
    """Options for the engine, taken out of the session's arguments before the runner's."""

    engine: str
    base: str | None
    image: str
    memory: str
    timeout_s: float
    build: bool


def engine_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--engine", choices=("auto", "docker", "host"),
                        default=env("STRESS_ENGINE", "auto"))
    parser.add_argument("--base", default=env("STRESS_BASE_IMAGE") or None,
                        help="base image (default: the Dockerfile's pinned one)")
    parser.add_argument("--image", default=env("STRESS_IMAGE", container.DEFAULT_IMAGE))
    parser.add_argument("--memory", default=env("STRESS_CONTAINER_MEMORY", "4g"))
    parser.add_argument("--container-timeout", dest="timeout_s", type=float,
                        default=float(env("STRESS_CONTAINER_TIMEOUT", "3600")))
    parser.add_argument("--no-build", dest="build", action="store_false",
                        help="run the image already tagged --image")
    return parser


def split_args(argv: Sequence[str]) -> tuple[ContainerOptions, list[str]]:
    """(engine options, the runner's arguments in their order)."""
    known, rest = engine_parser().parse_known_args(list(argv))
    return ContainerOptions(**vars(known)), rest


def take_option(args: Sequence[str], name: str) -> tuple[str | None, list[str]]:
    """The last value of `name VALUE` / `name=VALUE` in args, and args without it."""
    value: str | None = None
    rest: list[str] = []
    items = iter(args)
    for arg in items:
        if arg == name:
            value = next(items, None)
            if value is None:
                raise StressError(f"{name} needs a value")
        elif arg.startswith(name + "="):
            value = arg.partition("=")[2]
        else:
            rest.append(arg)
    return value, rest


def with_default_profile(run_args: list[str]) -> list[str]:
    if any(arg == "--profile" or arg.startswith("--profile=") for arg in run_args):
        return run_args
    return [*run_args, "--profile", DEFAULT_PROFILE]


@dataclass(frozen=True, kw_only=True)
class ContainerPlan:
    """The runner's arguments rewritten for the container, and what to mount for them."""

    results_dir: Path
    command: tuple[str, ...]
    mounts: tuple[container.Mount, ...]
    environment: dict[str, str]
    working_dir: str | None


def plan_container_run(run_args: Sequence[str], *, cwd: Path) -> ContainerPlan:
    """Host paths in the runner's arguments become mounts: results rw, input files read-only."""
    out, args = take_option(run_args, "--out")
    mounts: list[container.Mount] = []
    environment: dict[str, str] = {}
    working_dir = None
    for option in FILE_OPTIONS:
        value, args = take_option(args, option)
        if value is None:
            continue
        path = (cwd / value).resolve()
        if not path.is_file():
            raise StressError(f"{option} {value}: no such file")
        folder = f"{INPUTS_MOUNT}/{len(mounts)}"
        mounts.append(container.Mount(host=path.parent, container=folder))
        args += [option, f"{folder}/{path.name}"]
    if any(arg == "--target" or arg.startswith("--target=") for arg in args):
        # A user's target module lives in their project, not in the image.
        mounts.append(container.Mount(host=cwd, container=WORKSPACE_MOUNT))
        environment["PYTHONPATH"] = WORKSPACE_MOUNT
        working_dir = WORKSPACE_MOUNT
    return ContainerPlan(
        results_dir=(cwd / (out or DEFAULT_OUT)).resolve(),
        command=("run", *args, "--out", container.RESULTS_MOUNT),
        mounts=tuple(mounts), environment=environment, working_dir=working_dir,
    )


# -- output ---------------------------------------------------------------------------------


@contextmanager
def step(title: str) -> Iterator[None]:
    """A timed step, folded into a log group on GitHub Actions."""
    print(f"::group::{title}" if ON_GITHUB else f"--- {title}", flush=True)
    start = time.monotonic()
    try:
        yield
    finally:
        if ON_GITHUB:
            print("::endgroup::", flush=True)
        print(f"--- {title}: {time.monotonic() - start:.1f}s", flush=True)


def warn(message: str) -> None:
    print(f"::warning::{message}" if ON_GITHUB else f"WARNING: {message}", file=sys.stderr,
          flush=True)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True,
                              text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def source_url() -> str:
    """The origin remote as a browsable https URL, for the image's source label."""
    remote = _git("remote", "get-url", "origin")
    ssh = re.match(r"^(?:ssh://)?git@([^:/]+)[:/](.+)$", remote)
    url = f"https://{ssh[1]}/{ssh[2]}" if ssh else remote
    return url.removesuffix(".git") if url.startswith("https://") else ""


# -- commands -------------------------------------------------------------------------------


def build(options: ContainerOptions, client: Any) -> None:
    with step("Prepare the wheelhouse (ci/wheelhouse)"):
        wheelhouse.prepare(lock=REPO / "ci" / "requirements.txt", out=REPO / "ci" / "wheelhouse",
                           arch=wheelhouse.normalise_arch(client.info().get("Architecture", "")))
    revision = _git("rev-parse", "HEAD") or "unknown"
    config = container.BuildConfig(
        context=REPO, tag=options.image, base_image=options.base,
        build_args={"VCS_REF": revision, "SOURCE_URL": source_url()},
    )
    base = options.base or container.default_base_image(DOCKERFILE)
    with step(f"Build {options.image} on {base} (no network)"):
        container.build_image(client, config, echo=sys.stdout)


def resolve_engine(requested: str) -> str:
    if requested != "auto":
        return requested
    try:
        container.connect(timeout_s=10).close()
    except container.NoEngineError as exc:
        warn(f"no container engine answered at {exc.url} ({exc.reason}): running the scenarios "
             "on the host, not in the pinned container. Start Docker or set DOCKER_HOST to use "
             "the container; --engine docker makes this an error.")
        return "host"
    return "docker"


def run_on_host(run_args: list[str]) -> int:
    command = [sys.executable, "-m", "stress", "run", *run_args]
    print(f"--- on the host: python {' '.join(command[1:])}", flush=True)
    start = time.monotonic()
    code = subprocess.run(command, check=False).returncode
    print(f"--- host run exited {code} after {time.monotonic() - start:.1f}s", flush=True)
    return code


def run_in_container(options: ContainerOptions, run_args: list[str]) -> int:
    client = container.connect()
    plan = plan_container_run(run_args, cwd=Path.cwd())
    if options.build:
        build(options, client)
    environment = {name: os.environ[name] for name in ("CI", "GITHUB_ACTIONS", "GITHUB_SHA")
                   if name in os.environ}
    environment["STRESS_GIT_SHA"] = _git("rev-parse", "HEAD")
    environment.update(plan.environment)
    config = container.RunConfig(
        results_dir=plan.results_dir, image=options.image, command=plan.command,
        memory_limit=options.memory, timeout_s=options.timeout_s, mounts=plan.mounts,
        environment=environment, working_dir=plan.working_dir,
    )
    print(f"--- in {options.image}: python -m stress {' '.join(plan.command)}"
          f" (results: {plan.results_dir})", flush=True)
    start = time.monotonic()
    code = container.run_in_container(client, config)
    print(f"--- container exited {code} after {time.monotonic() - start:.1f}s; "
          f"results on the host in {plan.results_dir}", flush=True)
    return code


def cmd_stress(argv: Sequence[str]) -> int:
    options, run_args = split_args(argv)
    run_args = with_default_profile(run_args)
    if resolve_engine(options.engine) == "host":
        return run_on_host(run_args)
    return run_in_container(options, run_args)


def cmd_image(argv: Sequence[str]) -> int:
    options, rest = split_args(argv)
    if rest:
        raise StressError(f"image: unexpected arguments {' '.join(rest)} (use --base, --image)")
    build(options, container.connect())
    print(f"built {options.image}", flush=True)
    return 0


def cmd_pin(argv: Sequence[str]) -> int:
    if argv:
        raise StressError(f"pin: takes no arguments, got {' '.join(argv)}")
    current = container.default_base_image(DOCKERFILE)
    pinned = container.registry_digest(container.connect(), current)
    if pinned == current:
        print(f"pin: {current} is current", flush=True)
        return 0
    text = DOCKERFILE.read_text(encoding="utf-8")
    DOCKERFILE.write_text(text.replace(f"ARG BASE_IMAGE={current}\n",
                                       f"ARG BASE_IMAGE={pinned}\n"), encoding="utf-8")
    print(f"pin: {current} -> {pinned}", flush=True)
    return 0


COMMANDS = {"stress": cmd_stress, "image": cmd_image, "pin": cmd_pin}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return int(ExitCode.USAGE_ERROR)
    try:
        return COMMANDS[args[0]](args[1:])
    except StressError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return int(exc.exit_code)
    except (subprocess.CalledProcessError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return int(ExitCode.USAGE_ERROR)


if __name__ == "__main__":
    raise SystemExit(main())
