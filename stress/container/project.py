"""The project under test: found from the working folder, its hashed lock, and `stress-kit lock`.

A project is a folder whose ``pyproject.toml`` has a ``[project]`` table. Its dependencies,
and the extra packages its ``[tool.stress] extra_requirements`` names for stress runs only,
are pinned with hashes in a lock kept in its repository (``stress-requirements.txt`` unless
``[tool.stress] lock`` names another hashed requirements file or a ``pylock.toml``). The lock
is resolved for the image's interpreter and platform, against the kit's own pins, so the
project's layer never replaces a package the kit was tested with.

A folder of plain modules without a pyproject is no project: it is mounted, as before.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stress.container import wheelhouse
from stress.errors import ConfigError

LOCK_NAME = "stress-requirements.txt"  # the default lock, at the project's root
LOCK_PLATFORM = "x86_64-manylinux_2_28"  # uv records every wheel's hash: aarch64 is covered
INPUTS_LINE = "# stress-kit lock inputs: "  # the digest of what the lock was made from
KIT_DISTRIBUTION = wheelhouse.DISTRIBUTION


@dataclass(frozen=True, kw_only=True)
class Project:
    """An installable project: where it is, what it needs, and the lock that pins it."""

    root: Path
    name: str  # as its pyproject spells it
    dependencies: tuple[str, ...]  # () also when they are dynamic (see `dynamic_deps`)
    dynamic_deps: bool
    extra_requirements: tuple[str, ...]
    build_requires: tuple[str, ...]  # its [build-system] requires
    lock: Path  # may not exist yet: `stress-kit lock` writes it
    lock_origin: str  # "default" or where the config named it

    @property
    def needs_lock(self) -> bool:
        return bool(self.dependencies or self.extra_requirements or self.dynamic_deps)

    def inputs_digest(self) -> str:
        """What the lock is made from; a lock recording another digest is stale."""
        text = "\n".join([*sorted(self.dependencies), "--", *sorted(self.extra_requirements)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def find_project(cwd: Path, environ: Mapping[str, str] | None = None) -> Project | None:
    """The project whose pyproject is nearest `cwd` (upwards, not past the git root), or None."""
    cwd = cwd.resolve()
    for folder in (cwd, *cwd.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            data = _read(pyproject)
            table = data.get("project")
            if not isinstance(table, dict) or normalise(str(table.get("name", ""))) == \
                    KIT_DISTRIBUTION:
                return None  # plain modules, or the kit's own checkout (already in the image)
            return _project(folder, table, environ, data.get("build-system"))
        if (folder / ".git").exists():
            return None
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it as TOML ({exc})") from None


def _project(root: Path, table: dict[str, Any], environ: Mapping[str, str] | None,
             build_system: object) -> Project:
    from stress.config.settings import resolve_settings

    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{root / 'pyproject.toml'}: [project] has no name")
    deps = table.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise ConfigError(f"{root / 'pyproject.toml'}: [project] dependencies must be a list "
                          "of requirement strings")
    dynamic = table.get("dynamic", [])
    # The project's config, resolved as every command resolves it (errors are one line, exit 2).
    settings = resolve_settings({}, root, os.environ if environ is None else environ)
    lock = settings.lock.value
    requires = build_system.get("requires", []) if isinstance(build_system, dict) else []
    if not isinstance(build_system, dict):
        requires = ["setuptools>=40.8.0"]  # pip's default backend for a pyproject without one
    return Project(
        root=root, name=name, dependencies=tuple(deps),
        dynamic_deps=isinstance(dynamic, list) and "dependencies" in dynamic,
        extra_requirements=settings.extra_requirements.value,
        build_requires=tuple(r for r in requires if isinstance(r, str)),
        lock=lock if lock is not None else root / LOCK_NAME,
        lock_origin=settings.lock.origin,
    )


# -- reading the lock -----------------------------------------------------------------------


def requirements_text(project: Project) -> str:
    """The lock as hashed requirements (a pylock.toml is converted), checked to be current."""
    lock = project.lock
    if not lock.is_file():
        if not project.needs_lock:
            return ""
        raise ConfigError(f"{project.name} has dependencies but no lock {lock}: run "
                          "`stress-kit lock` in its folder and commit the file")
    text = pylock_requirements(lock) if lock.suffix == ".toml" else \
        lock.read_text(encoding="utf-8")
    recorded = re.search(rf"^{re.escape(INPUTS_LINE)}(\w+)", text, re.M)
    if recorded and recorded[1] != project.inputs_digest():
        raise ConfigError(f"{lock} is stale: {project.name}'s dependencies or "
                          "extra_requirements changed since it was written; run "
                          "`stress-kit lock` and commit it")
    return text


def pylock_requirements(path: Path) -> str:
    """A PEP 751 lock's wheels as `name==version --hash=...` lines (the wheels only: no sdists,
    since the image's build installs binaries only)."""
    data = _read(path)
    lines = [f"# from {path.name}"]
    packages = data.get("packages", [])
    if not isinstance(packages, list):
        raise ConfigError(f"{path}: expected [[packages]] entries")
    for entry in packages:
        name, version = entry.get("name"), entry.get("version")
        hashes = [w.get("hashes", {}).get("sha256") for w in entry.get("wheels", [])]
        hashes = [h for h in hashes if isinstance(h, str)]
        if not (isinstance(name, str) and isinstance(version, str) and hashes):
            if isinstance(name, str) and "directory" in entry:
                continue  # the project itself, as a local folder
            raise ConfigError(f"{path}: package {name!r} needs a version and wheels with "
                              "sha256 hashes")
        lines.append(f"{name}=={version} " + " ".join(f"--hash=sha256:{h}" for h in hashes))
    return "\n".join(lines) + "\n"


def image_requirements(project: Project, kit_lock: Path) -> str:
    """The project's pins the kit's image does not already hold; a pin that disagrees with the
    kit's is an error (the kit's would win on the path and the project would not get it)."""
    text = requirements_text(project)
    if not text.strip():
        return ""
    with tempfile.TemporaryDirectory(prefix="stress-lock-") as tmp:
        path = Path(tmp, "lock.txt")
        path.write_text(text, encoding="utf-8")
        pins = wheelhouse.parse_lock(path)
    kit = {normalise(pin.name): pin for pin in wheelhouse.parse_lock(kit_lock)}
    lines: list[str] = []
    for pin in pins:
        key = normalise(pin.name)
        if key == KIT_DISTRIBUTION:
            continue
        if key in kit:
            if kit[key].version != pin.version:
                raise ConfigError(f"{project.lock}: pins {pin.name}=={pin.version} but the kit's "
                                  f"image has {kit[key].version}; rerun `stress-kit lock` "
                                  "(it resolves against the kit's pins)")
            continue
        lines.append(f"{pin.name}=={pin.version} " +
                     " ".join(f"--hash=sha256:{h}" for h in sorted(pin.hashes)))
    return "\n".join(lines) + "\n" if lines else ""


# -- writing the lock -----------------------------------------------------------------------


def uv_command() -> list[str]:
    """How to call uv: on PATH, or as a module of this interpreter."""
    found = shutil.which("uv")
    if found:
        return [found]
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    raise ConfigError("`stress-kit lock` resolves with uv, which is not installed: "
                      "pip install uv (or pipx install uv)")


def write_lock(project: Project, kit_lock: Path, *, python: str = wheelhouse.IMAGE_PYTHON,
               upgrade: bool = False, extra_args: Sequence[str] = ()) -> Path:
    """`uv pip compile` the project's dependencies and extras, with hashes, for the image's
    Python and platform, constrained to the kit's pins; returns the lock written."""
    if project.lock.suffix == ".toml":
        raise ConfigError(f"{project.lock}: the kit writes requirements files; make the "
                          "pylock.toml with the tool that owns it, or drop `lock` from the config")
    kit_pins = wheelhouse.parse_lock(kit_lock)
    with tempfile.TemporaryDirectory(prefix="stress-lock-") as tmp:
        constraints = Path(tmp, "kit-constraints.txt")
        constraints.write_text("".join(f"{p.name}=={p.version}\n" for p in kit_pins),
                               encoding="utf-8")
        extras = Path(tmp, "extra-requirements.in")
        extras.write_text("".join(f"{r}\n" for r in project.extra_requirements),
                          encoding="utf-8")
        output = Path(tmp, "lock.txt")
        if project.lock.is_file() and not upgrade:
            shutil.copyfile(project.lock, output)  # keep the existing pins where they fit
        command = [*uv_command(), "pip", "compile", "--quiet", "--generate-hashes",
                   "--python-version", python, "--python-platform", LOCK_PLATFORM,
                   "--no-emit-package", KIT_DISTRIBUTION, "--constraint", str(constraints),
                   "--no-header", "--no-annotate",
                   "--output-file", str(output), *(["--upgrade"] if upgrade else []),
                   *extra_args, str(project.root / "pyproject.toml"), str(extras)]
        done = subprocess.run(command, cwd=project.root, capture_output=True, text=True,
                              check=False, timeout=600)
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise ConfigError(f"uv pip compile for {project.name} failed: {tail}")
        body = output.read_text(encoding="utf-8")
    header = (f"# The dependencies of {project.name} and its [tool.stress] extra_requirements,\n"
              f"# pinned with hashes for the stress image (CPython {python}, manylinux) against\n"
              f"# the kit's own pins. Written by `stress-kit lock`; commit it.\n"
              f"{INPUTS_LINE}{project.inputs_digest()}\n")
    project.lock.write_text(header + body, encoding="utf-8")
    return project.lock


def git_commit(folder: Path) -> str:
    """The commit checked out in `folder` ("" outside git)."""
    try:
        return subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
