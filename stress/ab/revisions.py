"""Git revisions made ready to measure: a worktree each, installed into a folder of its own.

When the revision holds the kit (a ``stress`` package), its own copy runs; otherwise the kit
running the gate does, through a folder holding only that ``stress`` package.

A project's revision is installed as the container run installs it: its dependencies from
that revision's own hashed lock (``stress-kit lock``), the wheels fetched into a folder on the
host first and then installed with ``--no-index --require-hashes``, and the revision itself
built into a wheel with its own build backend (whose wheels are fetched the same way).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import stress
from stress.ab.model import Revision, Side
from stress.errors import ConfigError, RevisionError, StressError
from stress.process import child_environment

log = logging.getLogger("stress.ab")


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=120, check=False)
    except FileNotFoundError as exc:
        raise ConfigError("git is not installed or not on PATH; the ab gate checks out "
                          "revisions with git") from exc


def repo_root(repo: Path) -> Path:
    done = _git(repo, "rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise ConfigError(f"--repo {repo}: not a git repository; run the gate inside the "
                          "repository or pass --repo DIR")
    return Path(done.stdout.strip())


def resolve_commit(repo: Path, ref: str, what: str) -> str:
    done = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if done.returncode != 0 or not done.stdout.strip():
        raise ConfigError(f"{what} {ref!r} is not a commit in {repo}: fetch it first, "
                          "e.g. git fetch origin main")
    return done.stdout.strip()


@dataclass
class Workspace:
    """A temporary folder with the revisions' worktrees; removed (and unregistered) at the end."""

    repo: Path
    root: Path
    worktrees: list[Path] = field(default_factory=list)

    def add_worktree(self, sha: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        done = _git(self.repo, "worktree", "add", "--detach", str(path), sha)
        if done.returncode != 0:
            raise RevisionError(f"git worktree add {sha[:12]} failed: {done.stderr.strip()}")
        self.worktrees.append(path)

    def remove(self) -> None:
        for path in self.worktrees:
            _git(self.repo, "worktree", "remove", "--force", str(path))
        _git(self.repo, "worktree", "prune")
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def workspace(repo: Path, keep: bool) -> Iterator[Workspace]:
    space = Workspace(repo=repo, root=Path(tempfile.mkdtemp(prefix="stress-ab-")))
    try:
        yield space
    finally:
        if keep:
            print(f"kept the revisions in {space.root} (remove with: git -C {repo} worktree "
                  f"remove --force <path>, for each of {', '.join(map(str, space.worktrees))})")
        else:
            space.remove()


def running_kit() -> Path:
    """The folder of the ``stress`` package running this gate."""
    return Path(stress.__file__).resolve().parent


def _has_own_kit(tree: Path) -> bool:
    return any((tree / where / "stress" / "__main__.py").is_file() for where in (".", "src"))


def _child_env(paths: Sequence[Path], sha: str) -> dict[str, str]:
    # No CI output variables: the gate reports once, for all rounds, not each run.
    inherited = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
    return child_environment(quiet_ci=True, extra={
        "PYTHONPATH": os.pathsep.join([*map(str, paths), *inherited]),
        "STRESS_GIT_SHA": sha,  # results.json names the revision measured
    })


def _pip(argv: Sequence[str], setup_log: Path, cwd: Path) -> bool:
    with setup_log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        try:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                  timeout=600, check=False)
        except subprocess.TimeoutExpired:
            out.write("pip did not finish within 600s\n")
            return False
    return done.returncode == 0


def _note(setup_log: Path, text: str) -> None:
    with setup_log.open("a", encoding="utf-8") as out:
        out.write(text + "\n")


def _install_locked(tree: Path, site: Path, setup_log: Path) -> tuple[bool, str]:
    """The revision's dependencies from its own lock, then its wheel built with its own
    backend; both installed with no index. (False, why) when it cannot be done offline."""
    from stress.container import image, project, wheelhouse

    try:
        found = project.find_project(tree, environ={})
    except StressError as exc:
        return False, f"its project config: {exc}"
    if found is None:
        return False, "no [project] table"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    try:
        text = project.requirements_text(found)
        if text.strip():
            lock = site.parent / "lock.txt"
            lock.write_text("\n".join(
                line for line in text.splitlines()
                if project.normalise(line.split("==")[0].strip()) != project.KIT_DISTRIBUTION),
                encoding="utf-8")
            deps = image.cache_dir() / "wheelhouse" / "host" / hashlib.sha256(
                lock.read_bytes()).hexdigest()[:16]
            wheelhouse.prepare_host_deps(lock, deps)
            if not _pip([*pip, "install", "--no-index", "--no-deps", "--require-hashes",
                         "--find-links", str(deps), "--target", str(site), "--requirement",
                         str(lock)], setup_log, site.parent):
                return False, "its lock's wheels did not install"
            _note(setup_log, f"dependencies: from {found.lock.name}, wheels in {deps}")
        wheel = image.project_wheel(found, site.parent / "wheel")
    except StressError as exc:
        _note(setup_log, f"could not install it from its lock: {exc}")
        return False, str(exc).splitlines()[0][:200]
    if not _pip([*pip, "install", "--no-index", "--no-deps", "--target", str(site),
                 "--upgrade", str(wheel)], setup_log, site.parent):
        return False, "its wheel did not install"
    return True, (f"built with its own backend and installed with its dependencies from "
                  f"{found.lock.name}, offline")


def _install(tree: Path, site: Path, setup_log: Path) -> bool:
    """pip install the revision, offline and with this environment's build backend."""
    argv = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
            "--no-index", "--no-input", "--disable-pip-version-check", "--target", str(site),
            str(tree)]
    return _pip(argv, setup_log, site.parent)


def _probe_stress(env: Mapping[str, str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", "import stress; print(stress.__file__)"],
                          env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RevisionError(f"cannot import the kit in that revision's environment: {last}")
    return done.stdout.strip()


def _within(path: Path, *folders: Path) -> bool:
    return any(path.is_relative_to(folder.resolve()) for folder in folders)


def _import_paths(tree: Path, site: Path, setup_log: Path, side: Side, ref: str
                  ) -> tuple[list[Path], str]:
    """Where the revision's code imports from, and how it got there, in words."""
    paths: list[Path] = []
    locked, why = (False, "") if _has_own_kit(tree) else _install_locked(tree, site, setup_log)
    if locked:
        paths.append(site)
        setup = why
    elif (tree / "pyproject.toml").is_file():
        if why:
            _note(setup_log, f"not from a lock ({why}): installing without dependencies")
        if _install(tree, site, setup_log):
            paths.append(site)
            setup = "installed with pip into a folder of its own"
        else:
            # A pure-Python project imports the same from its folder; a compiled one fails
            # in its runs, which are then reported with their logs.
            paths.extend(p for p in (tree / "src",) if p.is_dir())
            setup = (f"pip could not install it offline (see {setup_log.name}); "
                     "imported from its folder")
            log.warning("%s %s: %s", side, ref, setup)
    else:
        setup = "no pyproject.toml: its folder first on PYTHONPATH"
    paths.append(tree)
    return paths, setup


def _kit_shim(space: Workspace) -> Path:
    """A folder holding only the running kit's ``stress``, for revisions without their own."""
    shim = space.root / "kit"
    if not shim.exists():
        shim.mkdir()
        (shim / "stress").symlink_to(running_kit(), target_is_directory=True)
    return shim


def prepare_revision(space: Workspace, *, side: Side, ref: str, sha: str, target: str,
                     out_dir: Path) -> Revision:
    folder = space.root / side
    tree, site, cwd = folder / "tree", folder / "site", folder / "run"
    space.add_worktree(sha, tree)
    cwd.mkdir(parents=True)
    setup_log = out_dir / f"setup-{side}.log"
    setup_log.write_text(f"# {side}: {ref} = {sha}\n", encoding="utf-8")
    paths, setup = _import_paths(tree, site, setup_log, side, ref)
    own_kit = _has_own_kit(tree)
    if not own_kit:
        paths.append(_kit_shim(space))
    env = _child_env(paths, sha)
    stress_file = _probe_stress(env, cwd)
    resolved = Path(stress_file).resolve()
    if own_kit and not _within(resolved, site, tree):
        raise RevisionError(f"{side} {ref} holds its own stress package, but its environment "
                            f"imports {stress_file}; unset PYTHONPATH entries that hold the kit")
    if not own_kit and not _within(resolved, running_kit()):
        raise RevisionError(f"{side} {ref}: expected the kit running the gate "
                            f"({running_kit()}), but its environment imports {stress_file}")
    whose = "its own copy" if own_kit else "the kit running the gate"
    log.info("%s %s (%s): stress from %s (%s); %s", side, ref, sha[:12], resolved, whose,
             setup)
    with setup_log.open("a", encoding="utf-8") as out:
        out.write(f"stress imported from {resolved} ({whose})\n")
    return Revision(side=side, ref=ref, sha=sha, target=target, tree=tree, cwd=cwd, env=env,
                    stress_file=str(resolved), own_kit=own_kit, setup=setup)


def list_scenarios(revision: Revision, scenarios_file: Path | None) -> list[str] | None:
    """The revision's scenario names, or None when its kit cannot list them."""
    argv = [sys.executable, "-m", "stress", "list", "--json"]
    if scenarios_file is not None:
        argv += ["--scenarios", str(scenarios_file)]
    done = subprocess.run(argv, env=dict(revision.env), cwd=revision.cwd, capture_output=True,
                          text=True, timeout=120, check=False)
    try:
        names = json.loads(done.stdout) if done.returncode == 0 else None
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        log.warning("%s: `python -m stress list --json` failed (%s)", revision.side, last)
        return None
    return [str(name) for name in names]
