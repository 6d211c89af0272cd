"""``stress-kit init``: write what a project needs to run the kit, and nothing else.

Three things, each one line of output: the settings (a ``[tool.stress]`` table appended to
``pyproject.toml``, or a ``stress.toml`` when there is none), a ``stress`` nox session (a new
``noxfile.py``; an existing one gets the session printed, appended only with ``--write``) and
``.github/workflows/stress.yml`` calling the kit's action, pinned by commit (see
:mod:`stress.commands.init_pin`). A file that exists is kept unless
``--force`` (``pyproject.toml`` is only ever appended to), so a second run changes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Literal

from stress import __version__
from stress.commands import init_pin
from stress.commands.init_target import detect_targets
from stress.errors import ConfigError

HELP = ("write what a project needs to use the kit: its settings ([tool.stress] or stress.toml), "
        "a stress nox session and a GitHub workflow")

DISTRIBUTION = init_pin.DISTRIBUTION
KIT_ACTION = init_pin.KIT_ACTION
# The container engine needs the docker SDK, which is the kit's `container` extra.
DEFAULT_KIT_SPEC = f"{DISTRIBUTION}[container]=={__version__}"
DEFAULT_ACTION_REF = init_pin.VERSION_TAG
# Quick built-ins that cover throughput, backpressure, concurrency and failures in one job.
DEFAULT_SELECT = ("short", "backpressure", "concurrent", "errors")
WORKFLOW = Path(".github/workflows/stress.yml")

_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_GIT_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_STRESS_SESSION = re.compile(r"^\s*def stress\s*\(|name\s*=\s*[\"']stress[\"']", re.MULTILINE)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", nargs="?", type=Path, default=Path("."),
                        help="the project's folder (default: the current one)")
    parser.add_argument("--target", metavar="MODULE:ATTR",
                        help="the system under test (default: a module named like "
                             "*stress* defining one, else a placeholder to fill in)")
    parser.add_argument("--kit-spec", default=DEFAULT_KIT_SPEC, metavar="SPEC",
                        help="what the nox session installs (default: %(default)s)")
    parser.add_argument("--action-ref", metavar="REF",
                        help="the commit (full SHA) or tag of the kit's action the workflow "
                             "uses, pinned by commit either way (default: the commit the kit "
                             f"was installed from, else the one tag {DEFAULT_ACTION_REF} names)")
    parser.add_argument("--write", action="store_true",
                        help="append the stress session to an existing noxfile.py")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing stress.toml or workflow that differs")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be written, write nothing")


@dataclass(frozen=True, kw_only=True)
class Options:
    folder: Path
    target: str | None = None
    kit_spec: str = DEFAULT_KIT_SPEC
    action_ref: str | None = None  # None: the installed kit's commit, else its version tag's
    write: bool = False
    force: bool = False


Action = Literal["write", "append", "replace", "keep", "show"]


@dataclass(frozen=True)
class Change:
    """One file's fate. ``text`` is the whole new file (write, replace), the part added
    (append) or the part to add by hand (show); ``note`` says why a file is kept or shown."""

    path: Path
    action: Action
    text: str = ""
    note: str = ""


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    notes: tuple[str, ...]  # what the user still has to do


def run(args: argparse.Namespace) -> int:
    options = Options(folder=args.folder, target=args.target, kit_spec=args.kit_spec,
                      action_ref=args.action_ref, write=args.write, force=args.force)
    plan = make_plan(options)
    lock_line = _lock_line(options.folder, dry_run=args.dry_run)
    if lock_line:
        print(lock_line, flush=True)
    print(apply(plan, options.folder, dry_run=args.dry_run), end="")
    return 0


def _lock_line(folder: Path, *, dry_run: bool) -> str | None:
    """The project's dependencies pinned with hashes for the image, when it has some and no
    lock yet (what `stress-kit lock` writes): the container run needs it."""
    from stress.container.image import LOCK
    from stress.container.project import find_project, write_lock
    from stress.errors import StressError

    project = find_project(folder.resolve())
    if project is None or not project.needs_lock:
        return None  # nothing to pin: the image needs no lock
    if project.lock.exists():
        return f"kept {project.lock.name}: it exists (`stress-kit lock --upgrade` moves its pins)"
    if dry_run:
        return f"would write {project.lock.name}: the dependencies pinned with hashes"
    try:
        written = write_lock(project, LOCK)
    except StressError as exc:
        return f"note: no lock written ({exc}); run `stress-kit lock` once that is fixed"
    return f"wrote {written.name}: the dependencies pinned with hashes (commit it)"


def make_plan(options: Options) -> Plan:
    """What init would do in ``options.folder``; reads files, writes nothing."""
    folder = options.folder
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder; give the project's folder")
    if options.target is not None and not _TARGET.fullmatch(options.target):
        raise ConfigError(f"--target {options.target!r}: expected MODULE:ATTR, "
                          "e.g. chatapp.stress_target:ChatTarget")
    if options.action_ref is not None and not _GIT_REF.fullmatch(options.action_ref):
        raise ConfigError(f"--action-ref {options.action_ref!r}: expected a tag or commit, "
                          f"e.g. {DEFAULT_ACTION_REF}")
    if not options.kit_spec.strip():
        raise ConfigError(f"--kit-spec is empty; expected e.g. {DEFAULT_KIT_SPEC}")
    pyproject = _read_pyproject(folder / "pyproject.toml")
    target, notes = _choose_target(folder, pyproject, options)
    settings_change = _settings(folder, pyproject, target, options.force)
    settings_name = "pyproject.toml [tool.stress]" if settings_change.path.name == \
        "pyproject.toml" else "stress.toml"
    workflow_change, workflow_notes = _workflow(folder, options, settings_name)
    return Plan(changes=(settings_change, _noxfile(folder, pyproject, options, settings_name),
                         workflow_change), notes=(*notes, *workflow_notes))


def _choose_target(folder: Path, pyproject: dict[str, object] | None,
                   options: Options) -> tuple[str | None, list[str]]:
    """The target to write, and what to tell about it. Settings that exist are kept, so the
    note then speaks of theirs; else a module named like *stress* may offer one."""
    kept = _kept_settings(folder, pyproject, options.force)
    if kept is not None:
        current = _existing_target(kept)
        if options.target is not None and current != options.target:
            return options.target, [f"target: {options.target} not written, as the settings "
                                    f"exist; set target there ({kept.name})"]
        if current is None:
            return options.target, [f"target: none set in {kept.name}; {_FILL_IN}"]
        return options.target or str(current), []
    if options.target is not None:
        return options.target, []
    found = sorted(detect_targets(folder))
    if len(found) == 1:
        return found[0], [f"target: found {found[0]}; check it, or rerun with --target"]
    seen = f" (found {len(found)}: {', '.join(found[:3])})" if found else ""
    return None, [f"target: none set{seen}; {_FILL_IN}"]


_FILL_IN = ('put target = "MODULE:ATTR" (the callable returning your system under test) in '
            "the settings; until then the kit measures its own reference pipeline")


# -- the settings --------------------------------------------------------------------------

def _read_pyproject(path: Path) -> dict[str, object] | None:
    if not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ConfigError(f"{path}: cannot read ({reason})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: is not valid TOML ({exc}); fix it, then rerun") from None


def settings_text(target: str | None, *, in_pyproject: bool) -> str:
    """The settings table: ``[tool.stress]`` for a pyproject.toml, top-level for stress.toml."""
    from stress.config.scenarios import load_scenarios  # YAML: only when init runs, not for --help

    builtin = list(load_scenarios())
    chosen = [name for name in DEFAULT_SELECT if name in builtin]
    others = [name for name in builtin if name not in chosen]
    if target is None:
        line = ("# TODO: your system under test, the callable returning it, as MODULE:ATTR;\n"
                "# until it is set, the kit measures its own reference pipeline.\n"
                '# target = "MODULE:ATTR"')
    else:
        line = f'target = "{target}"'
    return _template("tool_stress.toml").substitute(
        header="[tool.stress]\n" if in_pyproject else "", target=line,
        select=json.dumps(chosen), others=", ".join(others) or "none",
        prefix="tool.stress." if in_pyproject else "")


def _has_table(pyproject: dict[str, object] | None) -> bool:
    tool = pyproject.get("tool", {}) if pyproject is not None else {}
    return isinstance(tool, dict) and "stress" in tool


def _kept_settings(folder: Path, pyproject: dict[str, object] | None,
                   force: bool) -> Path | None:
    """The settings file init leaves as it is, if any."""
    if _has_table(pyproject):
        return folder / "pyproject.toml"
    own = folder / "stress.toml"
    return own if own.exists() and not force else None


def _settings(folder: Path, pyproject: dict[str, object] | None, target: str | None,
              force: bool) -> Change:
    own = folder / "stress.toml"
    if _has_table(pyproject):
        return Change(folder / "pyproject.toml", "keep",
                      note="it has a [tool.stress] table already")
    if pyproject is None or own.exists():
        return _whole_file(own, settings_text(target, in_pyproject=False), force)
    path = folder / "pyproject.toml"
    old = path.read_text(encoding="utf-8")
    added = ("" if not old or old.endswith("\n") else "\n") + "\n" + \
        settings_text(target, in_pyproject=True)
    try:  # a [tool] table of another shape would make the result invalid: say so, write nothing
        tomllib.loads(old + added)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: appending [tool.stress] would not be valid TOML ({exc}); "
                          "add the table by hand (stress-kit init --dry-run shows it)") from None
    return Change(path, "append", added)


def _existing_target(path: Path) -> object:
    """The target the kept settings name (None when unreadable or unset)."""
    try:
        table: object = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    for key in ("tool", "stress") if path.name == "pyproject.toml" else ():
        table = table.get(key, {}) if isinstance(table, dict) else {}
    return table.get("target") if isinstance(table, dict) else None


def _whole_file(path: Path, text: str, force: bool) -> Change:
    if not path.exists():
        return Change(path, "write", text)
    try:
        same = path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        same = False
    if same:
        return Change(path, "keep", note="unchanged")
    if force:
        return Change(path, "replace", text)
    return Change(path, "keep", note="it differs from what init writes; --force replaces it")


# -- the nox session -----------------------------------------------------------------------

def session_text(pyproject: dict[str, object] | None, kit_spec: str, settings: str) -> str:
    install = '    session.install(".")  # the project and its dependencies, for a run on ' \
        "this host\n" if pyproject is not None and "project" in pyproject else ""
    return _template("nox_session.py").substitute(
        kit_spec=json.dumps(kit_spec), install_project=install, settings=settings)


def _noxfile(folder: Path, pyproject: dict[str, object] | None, options: Options,
             settings: str) -> Change:
    path = folder / "noxfile.py"
    session = session_text(pyproject, options.kit_spec, settings)
    if not path.exists():
        return Change(path, "write", _template("noxfile.py").substitute(session=session))
    try:
        old = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    if _STRESS_SESSION.search(old):
        return Change(path, "keep", note="it has a stress session already")
    imports = "" if re.search(r"^import nox\b", old, re.MULTILINE) else "import nox\n\n"
    added = ("" if not old or old.endswith("\n") else "\n") + "\n\n" + imports + session
    if options.write:
        return Change(path, "append", added)
    return Change(path, "show", added,
                  note="it exists; add this session to it, or rerun with --write to append it")


# -- the workflow --------------------------------------------------------------------------

def _git_root(folder: Path) -> Path | None:
    folder = folder.resolve()
    return next((f for f in (folder, *folder.parents) if (f / ".git").exists()), None)


def workflow_text(pin: init_pin.ActionPin, working_directory: str, settings: str) -> str:
    line = f"          working-directory: {json.dumps(working_directory)}\n" \
        if working_directory != "." else ""
    return _template("stress.yml").substitute(uses=pin.uses, working_directory=line,
                                              settings=settings)


def _workflow(folder: Path, options: Options, settings: str) -> tuple[Change, list[str]]:
    # GitHub reads workflows at the repository's root only; a project in a sub-folder runs there.
    root = _git_root(folder) or folder.resolve()
    where = Path(os.path.relpath(folder.resolve(), root)).as_posix()
    pin = init_pin.resolve(options.action_ref)
    text = workflow_text(pin, where, settings)
    if pin.pinned:
        notes = [f"workflow: {pin.action} pinned at {pin.ref[:12]}, {pin.source}"]
    else:
        url = f"https://github.com/{pin.action}"
        notes = [f"workflow: {pin.action} is used at tag {pin.ref}, as no commit was found "
                 f"({pin.source}); zizmor asks for a commit: --force --action-ref "
                 f"$(git ls-remote {url} '{pin.ref}^{{}}' {pin.ref} | tail -n 1 | cut -f 1)"]
    return _whole_file(root / WORKFLOW, text, options.force), notes


# -- writing -------------------------------------------------------------------------------

_DONE = {"write": "wrote", "append": "appended to", "replace": "replaced"}
_WOULD = {"write": "would write", "append": "would append to", "replace": "would replace"}


def apply(plan: Plan, folder: Path, *, dry_run: bool) -> str:
    """Carry the plan out (or, with ``dry_run``, only describe it); the report to print."""
    lines: list[str] = []
    for change in plan.changes:
        shown = os.path.relpath(change.path, folder)
        if change.action in ("keep", "show"):
            lines.append(f"kept {shown}: {change.note}")
            if change.action == "show":
                lines.append(_indent(change.text))
            continue
        lines.append(f"{(_WOULD if dry_run else _DONE)[change.action]} {shown}")
        if dry_run:
            lines.append(_indent(change.text))
        else:
            _write(change)
    if all(change.action == "keep" for change in plan.changes):
        lines.append("nothing to change: the project has everything init writes")
    lines += [f"note: {note}" for note in plan.notes]
    if not dry_run and any(change.action != "keep" for change in plan.changes):
        lines.append("next: stress-kit config (the settings in effect), nox -s stress (a run "
                     "here), then commit and push")
    if dry_run:
        lines.append("dry run: nothing written")
    return "\n".join(lines) + "\n"


def _write(change: Change) -> None:
    try:
        change.path.parent.mkdir(parents=True, exist_ok=True)
        mode = "a" if change.action == "append" else "w"
        with change.path.open(mode, encoding="utf-8") as file:
            file.write(change.text)
    except OSError as exc:
        raise ConfigError(f"{change.path}: cannot write ({exc.strerror})") from None


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" if line else "" for line in text.strip("\n").splitlines())


def _template(name: str) -> Template:
    return Template(resources.files("stress").joinpath("templates", f"{name}.tmpl")
                    .read_text(encoding="utf-8"))

