"""Fill ci/wheelhouse/ with what the Dockerfile installs, so the image builds with no network.

deps/     the wheels ci/requirements.txt pins, downloaded for the image's Python and platform
          (not the host's) and checked against the lock's hashes by pip;
project/  a wheel of this project, built from a clean copy of the working tree.

    python ci/wheelhouse.py [--lock ci/requirements.txt] [--out ci/wheelhouse] [--arch x86_64]

When deps/ already holds a wheel matching every pin's hash, nothing is downloaded, so a second
build works offline.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGE_PYTHON = "3.13"  # the interpreter of the Dockerfile's base (python:3.13, Debian trixie)
# The lock is resolved for manylinux_2_28 (glibc 2.28+); trixie and the official images have
# 2.41. Older pip does not widen a manylinux_2_N platform to lower N itself, so list them all.
GLIBC_MINORS = range(28, 16, -1)
PROJECT_WHEEL_GLOB = "asyncio_stress_kit-*.whl"
_JUNK = (".git", ".nox", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".mypy_cache",
         ".ruff_cache", ".pytest_cache", "stress-results", "wheelhouse", "base-image")


@dataclass(frozen=True, kw_only=True)
class Pin:
    """One `name==version` line of a hashed lock file with its allowed sha256 digests."""

    name: str
    version: str
    hashes: frozenset[str]


def parse_lock(path: Path) -> tuple[Pin, ...]:
    """The pins of a `--generate-hashes` lock; a pin without a hash is an error (pip's rule too)."""
    text = path.read_text(encoding="utf-8")
    # Join continuation lines, then drop comments.
    logical = re.sub(r"\\\n", " ", text)
    pins: list[Pin] = []
    for number, raw in enumerate(logical.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line or line.startswith("-"):  # blank, comment, or an option such as --index-url
            continue
        match = re.match(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;]+)", line)
        if match is None:
            raise ValueError(f"{path}: entry {number}: expected NAME==VERSION --hash=..., "
                             f"got {line!r}")
        hashes = frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
        if not hashes:
            raise ValueError(f"{path}: {match[1]}=={match[2]} has no --hash; regenerate with "
                             "`nox -s lock`")
        pins.append(Pin(name=match[1], version=match[2], hashes=hashes))
    if not pins:
        raise ValueError(f"{path}: no pinned requirements; regenerate with `nox -s lock`")
    return tuple(pins)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def missing_pins(pins: Sequence[Pin], deps_dir: Path) -> tuple[Pin, ...]:
    """The pins no wheel in deps_dir matches by hash (all of them if the folder is absent)."""
    present = {sha256_of(wheel) for wheel in deps_dir.glob("*.whl")} if deps_dir.is_dir() else set()
    return tuple(pin for pin in pins if not pin.hashes & present)


def prune(pins: Sequence[Pin], deps_dir: Path) -> list[Path]:
    """Remove wheels no pin allows (older versions), to keep the build context small."""
    allowed = frozenset().union(*(pin.hashes for pin in pins))
    removed = [wheel for wheel in deps_dir.glob("*.whl") if sha256_of(wheel) not in allowed]
    for wheel in removed:
        wheel.unlink()
    return removed


def normalise_arch(machine: str) -> str:
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine.lower())
    if arch not in ("x86_64", "aarch64"):
        raise ValueError(f"architecture {machine!r}: the lock covers x86_64 and aarch64 only")
    return arch


def platform_args(arch: str) -> list[str]:
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in GLIBC_MINORS]
    platforms.append(f"manylinux2014_{arch}")  # pip widens this one to manylinux2010/manylinux1
    return [arg for name in platforms for arg in ("--platform", name)]


def download_deps(lock: Path, deps_dir: Path, *, arch: str, python: str = IMAGE_PYTHON) -> None:
    """pip download the pinned wheels for the image's interpreter; pip checks every hash."""
    deps_dir.mkdir(parents=True, exist_ok=True)
    abi = "cp" + python.replace(".", "")
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--only-binary=:all:", "--require-hashes",
        "--python-version", python, "--implementation", "cp", "--abi", abi,
        *platform_args(arch), "--requirement", str(lock), "--dest", str(deps_dir),
    ]
    subprocess.run(command, check=True)


def source_files(source: Path) -> list[Path]:
    """The files to build from: git's view (tracked and new, not ignored) where there is one."""
    git_ls = ["git", "-C", str(source), "ls-files", "-z", "--cached", "--others",
              "--exclude-standard"]
    try:
        listed = subprocess.run(git_ls, check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        ignore = shutil.ignore_patterns(*_JUNK)
        found: list[Path] = []
        for root, dirs, files in os.walk(source):
            dirs[:] = [d for d in dirs if d not in ignore(root, dirs)]
            skipped = ignore(root, files)
            found += [Path(root, f).relative_to(source) for f in files if f not in skipped]
        return found
    names = listed.decode().split("\0")
    return [Path(name) for name in names if name and (source / name).is_file()]


def build_project_wheel(source: Path, project_dir: Path) -> Path:
    """Build from a clean copy: setuptools reuses build/ in a source tree, stale modules and all."""
    if project_dir.exists():
        shutil.rmtree(project_dir)
    project_dir.mkdir(parents=True)
    env = dict(os.environ)
    # Same bytes for the same sources, so an unchanged project keeps the image's layer cache.
    env.setdefault("SOURCE_DATE_EPOCH", _commit_time(source))
    with tempfile.TemporaryDirectory(prefix="stress-wheel-") as tmp:
        copy = Path(tmp, "src")
        for relative in source_files(source):
            target = copy / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / relative, target)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--wheel-dir", str(project_dir), str(copy)],
            check=True, env=env,
        )
    wheels = sorted(project_dir.glob(PROJECT_WHEEL_GLOB))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one {PROJECT_WHEEL_GLOB} in {project_dir}, found {wheels}")
    return wheels[0]


def _commit_time(source: Path) -> str:
    earliest = "315532800"  # 1980-01-01, the earliest time a zip file can hold
    try:
        stamp = subprocess.run(["git", "-C", str(source), "log", "-1", "--format=%ct"],
                               check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return earliest
    return stamp or earliest


def prepare(*, lock: Path, out: Path, arch: str, source: Path = REPO) -> Path:
    """Make `out` ready for the Dockerfile; returns the project wheel."""
    pins = parse_lock(lock)
    deps_dir = out / "deps"
    missing = missing_pins(pins, deps_dir)
    if missing:
        print(f"wheelhouse: downloading {len(missing)} of {len(pins)} pinned wheels "
              f"for CPython {IMAGE_PYTHON} linux {arch}", flush=True)
        download_deps(lock, deps_dir, arch=arch)
        still = missing_pins(pins, deps_dir)
        if still:
            names = ", ".join(f"{p.name}=={p.version}" for p in still)
            raise RuntimeError(f"no wheel for {names} matches the lock's hashes for CPython "
                               f"{IMAGE_PYTHON} linux {arch}")
    prune(pins, deps_dir)
    return build_project_wheel(source, out / "project")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--lock", type=Path, default=REPO / "ci" / "requirements.txt")
    parser.add_argument("--out", type=Path, default=REPO / "ci" / "wheelhouse")
    parser.add_argument("--arch", default=platform.machine(),
                        help="image architecture: x86_64 or aarch64 (default: this machine's)")
    args = parser.parse_args(argv)
    try:
        wheel = prepare(lock=args.lock, out=args.out, arch=normalise_arch(args.arch))
    except (ValueError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"wheelhouse: {exc}", file=sys.stderr)
        return 2
    print(f"wheelhouse: ready in {args.out} (project wheel {wheel.name})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
