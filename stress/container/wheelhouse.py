"""The wheels the Dockerfile installs, gathered on the host so the image builds with no network.

* the dependencies the kit's lock pins, downloaded for the image's Python and platform (not the
  host's) into a cache folder kept between builds, and checked against the lock's hashes by pip:
  when the folder already holds a wheel matching every pin's hash, nothing is downloaded, so a
  second build works offline;
* a wheel of the kit itself: built from a clean copy of the working tree when the kit runs from
  a checkout, else packed from the installed distribution's own files (no build backend, no
  network).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stress.errors import EngineError
from stress.verifier_build import COMPILE_VARIABLE, EXTENSION_SUFFIXES

DISTRIBUTION = "asyncio-stress-kit"
IMAGE_PYTHON = "3.13"  # the interpreter of the Dockerfile's base (python:3.13, Debian trixie)
# The lock is resolved for manylinux_2_28 (glibc 2.28+); trixie and the official images have
# 2.41. Older pip does not widen a manylinux_2_N platform to lower N itself, so list them all.
GLIBC_MINORS = range(28, 16, -1)
KIT_WHEEL_GLOB = "asyncio_stress_kit-*.whl"
SETUPTOOLS_MAJOR = 77  # pyproject.toml's build-system requirement (PEP 639 license string)
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip file can hold: same bytes each time
_JUNK = (".git", ".nox", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".mypy_cache",
         ".ruff_cache", ".pytest_cache", "stress-results", "wheelhouse", "base-image")


class WheelhouseError(EngineError):
    """The kit could not gather the image's wheels: the message names the file or pin."""


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
            raise WheelhouseError(f"{path}: entry {number}: expected NAME==VERSION --hash=..., "
                                 f"got {line!r}")
        hashes = frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
        if not hashes:
            raise WheelhouseError(f"{path}: {match[1]}=={match[2]} has no --hash; regenerate with "
                                 "`nox -s lock`")
        pins.append(Pin(name=match[1], version=match[2], hashes=hashes))
    if not pins:
        raise WheelhouseError(f"{path}: no pinned requirements; regenerate with `nox -s lock`")
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
        raise WheelhouseError(f"architecture {machine!r}: the lock covers x86_64 and aarch64 only")
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
    _run(command, f"downloading the pinned wheels for CPython {python} linux {arch}")


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
    names = [Path(name) for name in listed.decode().split("\0") if name]
    # Untracked files count (a new module not yet added), but not the kit's own output.
    return [name for name in names if (source / name).is_file() and not _is_junk(name)]


def _is_junk(relative: Path) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in _JUNK)


def source_digest(source: Path) -> str:
    """A digest of the files a wheel is built from (names and bytes): same sources, same wheel."""
    digest = hashlib.sha256()
    for relative in sorted(source_files(source)):
        digest.update(relative.as_posix().encode() + b"\0" + (source / relative).read_bytes())
    return digest.hexdigest()


def build_project_wheel(source: Path, project_dir: Path, *, own_backend: bool = False,
                        find_links: Path | None = None) -> Path:
    """Build from a clean copy: setuptools reuses build/ in a source tree, stale modules and all.

    The kit builds itself with the setuptools at hand when it is new enough; a project
    (`own_backend`) always with its own build backend, in pip's isolated build environment,
    from `find_links` only (no index) when given.
    """
    if project_dir.exists():
        shutil.rmtree(project_dir)
    project_dir.mkdir(parents=True)
    env = dict(os.environ)
    if not own_backend:
        # The image's Python is not this one: its kit is pure Python (compiled on this host,
        # the verifier's extension modules would not load there).
        env.pop(COMPILE_VARIABLE, None)
    # Same bytes for the same sources, so an unchanged project keeps the image's layer cache.
    env.setdefault("SOURCE_DATE_EPOCH", _commit_time(source))
    with tempfile.TemporaryDirectory(prefix="stress-wheel-") as tmp:
        copy = Path(tmp, "src")
        for relative in source_files(source):
            target = copy / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / relative, target)
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
              "--no-deps", *([] if own_backend else _isolation_args()),
              *(["--no-index", "--find-links", str(find_links)] if find_links else []),
              "--wheel-dir", str(project_dir), str(copy)],
             f"building a wheel of {source}", env=env)
    pattern = "*.whl" if own_backend else KIT_WHEEL_GLOB
    wheels = sorted(project_dir.glob(pattern))
    if len(wheels) != 1:
        raise WheelhouseError(f"expected one {pattern} in {project_dir}, found {wheels}")
    return wheels[0]


def wheel_metadata(wheel: Path) -> tuple[str, str, tuple[str, ...]]:
    """A wheel's name, version and top-level import names (from its METADATA and files)."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = next((n for n in names if n.count("/") == 1 and
                     n.endswith(".dist-info/METADATA")), None)
        text = archive.read(meta).decode("utf-8", "replace") if meta else ""
    fields = dict(re.findall(r"^(Name|Version): *(.+?)\s*$", text, re.M))
    tops = {n.split("/", 1)[0].removesuffix(".py") for n in names
            if not n.split("/", 1)[0].endswith((".dist-info", ".data"))
            and (n.endswith(".py") or "/" in n)}
    return fields.get("Name", wheel.name), fields.get("Version", ""), tuple(sorted(tops))


def _isolation_args() -> list[str]:
    """Build with the setuptools already here when it is new enough: no download, no network."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return []
    major = re.match(r"\d+", version)
    return ["--no-build-isolation"] if major and int(major[0]) >= SETUPTOOLS_MAJOR else []


def _commit_time(source: Path) -> str:
    earliest = "315532800"  # 1980-01-01, the earliest time a zip file can hold
    try:
        stamp = subprocess.run(["git", "-C", str(source), "log", "-1", "--format=%ct"],
                               check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return earliest
    return stamp or earliest


def _run(command: Sequence[str], doing: str, env: dict[str, str] | None = None) -> None:
    """Run a pip command quietly; its output becomes the error's tail when it fails."""
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    except FileNotFoundError as exc:
        raise WheelhouseError(f"{doing}: {exc}") from exc
    except subprocess.CalledProcessError as exc:
        tail = " | ".join((exc.stderr or exc.stdout or "").strip().splitlines()[-3:])
        hint = " (pip is needed: install the kit with pip or pipx)" if "No module named pip" in \
            tail else ""
        raise WheelhouseError(f"{doing} failed (exit {exc.returncode}): {tail}{hint}") from exc


def prepare_host_deps(lock: Path, deps_dir: Path) -> tuple[Pin, ...]:
    """Like prepare_deps, for this interpreter and platform (the gate installs revisions here)."""
    pins = parse_lock(lock)
    if missing_pins(pins, deps_dir):
        deps_dir.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
              "--no-deps", "--only-binary=:all:", "--require-hashes", "--requirement",
              str(lock), "--dest", str(deps_dir)], f"downloading the wheels {lock} pins")
    return pins


def download_build_backend(requires: Sequence[str], dest: Path) -> None:
    """The wheels a project's [build-system] requires, so its build needs no index after."""
    if requires:
        dest.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
              "--only-binary=:all:", "--dest", str(dest), *requires],
             f"downloading the build backend ({', '.join(requires)})")


def prepare_deps(lock: Path, deps_dir: Path, *, arch: str) -> tuple[Pin, ...]:
    """Make deps_dir hold a wheel for every pin (downloading only what is missing), no strays."""
    pins = parse_lock(lock)
    missing = missing_pins(pins, deps_dir)
    if missing:
        print(f"wheelhouse: downloading {len(missing)} of {len(pins)} pinned wheels "
              f"for CPython {IMAGE_PYTHON} linux {arch}", flush=True)
        download_deps(lock, deps_dir, arch=arch)
        still = missing_pins(pins, deps_dir)
        if still:
            names = ", ".join(f"{p.name}=={p.version}" for p in still)
            raise WheelhouseError(f"no wheel for {names} matches the lock's hashes for CPython "
                                  f"{IMAGE_PYTHON} linux {arch}")
    prune(pins, deps_dir)
    return pins


def kit_checkout() -> Path | None:
    """The kit's source tree when it runs from one (its pyproject beside the package)."""
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and f'name = "{DISTRIBUTION}"' in pyproject.read_text("utf-8"):
        return root
    return None


def kit_wheel(out_dir: Path) -> Path:
    """A wheel of the kit that runs this code, in out_dir (which is emptied first)."""
    source = kit_checkout()
    if source is not None:
        return build_project_wheel(source, out_dir)
    return pack_installed(out_dir)


def pack_installed(out_dir: Path) -> Path:
    """Pack the installed kit's files back into a wheel: byte for byte what pip installed."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise WheelhouseError(f"the kit is neither a checkout nor an installed {DISTRIBUTION}: "
                              "install it with pip or pipx") from exc
    version = dist.version
    info = f"asyncio_stress_kit-{version}.dist-info"
    members: dict[str, bytes] = {}
    for file in dist.files or ():
        name = file.as_posix()
        # Not the compiled verifier (STRESS_KIT_COMPILE): built for this host's Python, it
        # would not load in the image's, where its source, packed beside it, runs instead.
        if name.startswith("stress/") and "__pycache__" not in name \
                and not name.endswith(EXTENSION_SUFFIXES):
            members[name] = Path(str(dist.locate_file(file))).read_bytes()
    if "stress/__init__.py" not in members:
        raise WheelhouseError(f"the installed {DISTRIBUTION} {version} lists no files of the "
                              "stress package (an editable install?): run from its checkout")
    for meta in ("METADATA", "entry_points.txt"):
        text = dist.read_text(meta)
        if text is not None:
            members[f"{info}/{meta}"] = text.encode()
    members[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: stress-kit\n"
                                b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    record = [f"{name},sha256={_urlsafe_digest(data)},{len(data)}"
              for name, data in sorted(members.items())]
    members[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    wheel = out_dir / f"asyncio_stress_kit-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(members.items()):
            archive.writestr(zipfile.ZipInfo(name, date_time=_ZIP_EPOCH), data)
    return wheel


def _urlsafe_digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel_digest(wheel: Path) -> str:
    """A digest of what a wheel holds (names and bytes), not of the zip: timestamps differ."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            digest.update(name.encode() + b"\0" + archive.read(name) + b"\0")
    return digest.hexdigest()
