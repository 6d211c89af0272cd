"""The kit's image: its inputs (package data), the tag derived from them, the offline build.

The Dockerfile and the hashed lock are package data beside this module, so an installed kit
builds its image from any folder. The build context is assembled in a temporary folder:

    Dockerfile  requirements.txt  deps/*.whl (the lock's pins)  kit/asyncio_stress_kit-*.whl
    project/requirements.txt  project/deps/*.whl  project-wheel/NAME-*.whl

The project's part is empty without a project (the kit alone, or a folder of plain modules).
The tag is `asyncio-stress-kit:VERSION-DIGEST`, or `asyncio-stress-kit-NAME:VERSION-DIGEST`
for a project NAME at VERSION, DIGEST taken over the Dockerfile, the lock, the base image and
what the wheels hold, the project's pins too: two checkouts with different code never share a
tag, and a changed source file gives a new one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stress
from stress import console
from stress.container import engine, wheelhouse
from stress.container.project import Project, image_requirements, normalise
from stress.errors import ConfigError, EngineError

PACKAGE = Path(__file__).resolve().parent
DOCKERFILE = PACKAGE / "Dockerfile"
LOCK = PACKAGE / "requirements.txt"  # written by `nox -s lock`
IMAGE_NAME = "asyncio-stress-kit"
CACHE_ENV = "STRESS_CACHE_DIR"
LOCAL_BASE = "stress-kit-base:trixie"  # what ci/build-base-image.sh tags


def default_base_image(dockerfile: Path = DOCKERFILE) -> str:
    """The Dockerfile's pinned default (its `ARG BASE_IMAGE=...`)."""
    match = re.search(r"^ARG BASE_IMAGE=(\S+)\s*$", dockerfile.read_text(encoding="utf-8"), re.M)
    if match is None:
        raise ConfigError(f"{dockerfile}: no `ARG BASE_IMAGE=...` line to read the base from")
    return match[1]


def cache_dir() -> Path:
    """Where downloaded wheels are kept between builds ($STRESS_CACHE_DIR, else the user's)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stress-kit"


@dataclass(frozen=True, kw_only=True)
class ProjectInputs:
    """The project's wheel (built on the host with its own backend) and its pins for the image."""

    name: str
    version: str
    wheel: Path
    modules: tuple[str, ...]  # the top-level import names its wheel holds
    requirements: str  # hashed pins the kit's image does not already hold ("" for none)


@dataclass(frozen=True, kw_only=True)
class ImageInputs:
    """What decides the image's content, and the tag derived from it."""

    base: str
    kit_wheel: Path
    digest: str
    project: ProjectInputs | None = None

    @property
    def tag(self) -> str:
        if self.project is None:
            return f"{IMAGE_NAME}:{stress.__version__}-{self.digest[:12]}"
        name = re.sub(r"[^a-z0-9]+", "-", normalise(self.project.name)).strip("-") or "project"
        version = re.sub(r"[^A-Za-z0-9_.-]", "_", self.project.version)[:60] or "0"
        return f"{IMAGE_NAME}-{name}:{version}-{self.digest[:12]}"


def gather_project(work: Path, project: Project) -> ProjectInputs:
    """Build the project's wheel in `work` and read the pins its layer installs."""
    wheel = project_wheel(project, work / "project-wheel")
    name, version, modules = wheelhouse.wheel_metadata(wheel)
    return ProjectInputs(name=name, version=version, wheel=wheel, modules=modules,
                         requirements=image_requirements(project, LOCK))


def project_wheel(project: Project, out_dir: Path) -> Path:
    """The project's wheel in out_dir: built with its own backend, or, for sources built before,
    the wheel kept from then (a build in an isolated environment takes seconds)."""
    kept = cache_dir() / "projects" / normalise(project.name) / wheelhouse.source_digest(
        project.root)[:32]
    found = sorted(kept.glob("*.whl")) if kept.is_dir() else []
    if len(found) == 1:
        out_dir.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(found[0], out_dir / found[0].name))
    backend = cache_dir() / "build-backends"
    try:  # the backend's wheels kept on the host, so later builds need no index
        wheelhouse.download_build_backend(project.build_requires, backend)
        links: Path | None = backend
    except wheelhouse.WheelhouseError:
        links = None  # offline: pip's own cache may still have it
    wheel = wheelhouse.build_project_wheel(project.root, out_dir, own_backend=True,
                                           find_links=links)
    if kept.parent.is_dir():
        shutil.rmtree(kept.parent)  # only the newest sources' wheel is kept
    kept.mkdir(parents=True)
    shutil.copy2(wheel, kept / wheel.name)
    return wheel


def gather_inputs(work: Path, base: str | None, project: Project | None = None) -> ImageInputs:
    """Make the kit's (and the project's) wheel in `work` and derive the tag from them and the
    package data."""
    base = base or default_base_image()
    wheel = wheelhouse.kit_wheel(work / "kit")
    parts = [DOCKERFILE.read_bytes(), LOCK.read_bytes(), base.encode(),
             wheelhouse.wheel_digest(wheel).encode()]
    found = gather_project(work, project) if project is not None else None
    if found is not None:
        parts += [found.name.encode(), wheelhouse.wheel_digest(found.wheel).encode(),
                  found.requirements.encode()]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return ImageInputs(base=base, kit_wheel=wheel, digest=digest.hexdigest(), project=found)


@dataclass(frozen=True, kw_only=True)
class Image:
    tag: str
    id: str
    project: ProjectInputs | None = None


def build(client: Any, *, base: str | None = None, extra_tag: str | None = None,
          project: Project | None = None) -> Image:
    """Build the kit's image, with `project`'s layers on top, with no network; tagged by its
    inputs (and `extra_tag`)."""
    arch = wheelhouse.normalise_arch(str(client.info().get("Architecture", "")))
    with tempfile.TemporaryDirectory(prefix="stress-image-") as tmp:
        context = Path(tmp)
        inputs = gather_inputs(context, base, project)
        deps = cache_dir() / "wheelhouse" / "deps"
        wheelhouse.prepare_deps(LOCK, deps, arch=arch)
        _link_tree(deps, context / "deps")
        _project_context(context, inputs.project, arch)
        shutil.copyfile(DOCKERFILE, context / "Dockerfile")
        shutil.copyfile(LOCK, context / "requirements.txt")
        build_args = {"BASE_IMAGE": inputs.base, "VERSION": stress.__version__,
                      **_source_labels()}
        print(f"--- building {inputs.tag} on {inputs.base} (no network)", flush=True)
        started = time.monotonic()
        try:
            with console.quiet_log(f"image build of {inputs.tag}") as log:
                image_id = engine.build(client, context=context, tag=inputs.tag,
                                        build_args=build_args, log=log)
        except EngineError as exc:
            raise EngineError(f"{exc}{_base_hint(client, inputs.base)} (build log above)") \
                from exc
    if extra_tag and extra_tag != inputs.tag:
        engine.add_tag(client, image_id, extra_tag)
    also = f" and {extra_tag}" if extra_tag and extra_tag != inputs.tag else ""
    print(f"--- built {inputs.tag}{also} ({image_id[:19]}) in "
          f"{time.monotonic() - started:.1f}s", flush=True)
    return Image(tag=inputs.tag, id=image_id, project=inputs.project)


def _project_context(context: Path, project: ProjectInputs | None, arch: str) -> None:
    """project/ (its pins and their wheels) and project-wheel/, empty without a project."""
    folder = context / "project"
    (folder / "deps").mkdir(parents=True)
    (context / "project-wheel").mkdir(exist_ok=True)
    for empty in (folder / "deps", context / "project-wheel"):
        (empty / ".keep").touch()  # COPY wants a source with something in it
    requirements = folder / "requirements.txt"
    requirements.write_text(project.requirements if project is not None else "",
                            encoding="utf-8")
    if project is None or not project.requirements:
        return
    deps = cache_dir() / "wheelhouse" / "projects" / normalise(project.name)
    wheelhouse.prepare_deps(requirements, deps, arch=arch)
    _link_tree(deps, folder / "deps")


def existing(client: Any, *, tag: str | None, base: str | None,
             project: Project | None = None) -> Image:
    """The image to run without building: `tag`, else the one the current inputs would tag."""
    found_project = None
    if tag is None:
        with tempfile.TemporaryDirectory(prefix="stress-image-") as tmp:
            inputs = gather_inputs(Path(tmp), base, project)
            tag, found_project = inputs.tag, inputs.project
    found = engine.image_id(client, tag)
    if found is None:
        raise EngineError(f"image {tag} is not on this engine (--no-build): build it with "
                          "`stress-kit image`, or run without --no-build")
    return Image(tag=tag, id=found, project=found_project)


def _link_tree(source: Path, target: Path) -> None:
    """The cached wheels into the context: hard links where the filesystem allows."""
    target.mkdir(parents=True, exist_ok=True)
    for wheel in sorted(source.glob("*.whl")):
        try:
            os.link(wheel, target / wheel.name)
        except OSError:
            shutil.copyfile(wheel, target / wheel.name)


def _base_hint(client: Any, base: str) -> str:
    if engine.image_id(client, base) is not None:
        return ""
    return (f"; the base image {base} is not on this machine and could not be pulled: build "
            f"one with `bash ci/build-base-image.sh` (in the kit's checkout) and pass --base "
            f"{LOCAL_BASE} (or set STRESS_BASE_IMAGE)")


def _git(source: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(source), *args], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _source_labels() -> dict[str, str]:
    """The revision and source URL labels, from the kit's checkout (empty when installed)."""
    source = wheelhouse.kit_checkout()
    if source is None:
        return {}
    labels = {"VCS_REF": _git(source, "rev-parse", "HEAD") or "unknown"}
    remote = _git(source, "remote", "get-url", "origin")
    ssh = re.match(r"^(?:ssh://)?git@([^:/]+)[:/](.+)$", remote)
    url = f"https://{ssh[1]}/{ssh[2]}" if ssh else remote
    labels["SOURCE_URL"] = url.removesuffix(".git") if url.startswith("https://") else ""
    return labels


def pin(client: Any) -> str:
    """Point the Dockerfile's base at its tag's current digest; returns what was done."""
    if wheelhouse.kit_checkout() is None:
        raise ConfigError("pin edits the kit's own Dockerfile: run it in a checkout of the kit")
    current = default_base_image()
    pinned = engine.registry_digest(client, current)
    if pinned == current:
        return f"pin: {current} is current"
    text = DOCKERFILE.read_text(encoding="utf-8")
    DOCKERFILE.write_text(text.replace(f"ARG BASE_IMAGE={current}\n",
                                       f"ARG BASE_IMAGE={pinned}\n"), encoding="utf-8")
    return f"pin: {current} -> {pinned}"
