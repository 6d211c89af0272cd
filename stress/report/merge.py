"""Several results folders (one per CI matrix job) merged into one.

Artifacts are copied into OUT/<folder's name>/ so OUT is complete on its own (upload it as one
artifact); a folder already inside OUT is referenced where it is, without a copy. A folder may
come from a run of untrusted code, so links in it are never followed out of it, and a copy
replaces a link planted in OUT instead of writing through it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections import Counter
from pathlib import Path, PurePosixPath

from stress.errors import ConfigError
from stress.report.files import copy_file_atomically
from stress.report.read import read_results_json
from stress.results import Result


def unique_labels(folders: list[Path]) -> list[str]:
    """Each folder's name, numbered where two folders share one."""
    labels: list[str] = []
    for folder in folders:
        base = folder.resolve().name or "results"
        label, n = base, 1
        while label in labels:
            n += 1
            label = f"{base}-{n}"
        labels.append(label)
    return labels


def _links(folder: str, names: list[str]) -> set[str]:
    """Links inside a copied folder are left behind: they could point anywhere."""
    return {name for name in names if os.path.islink(os.path.join(folder, name))}


def _copy(source: str, target: str) -> None:
    copy_file_atomically(Path(source), Path(target))


def place_artifacts(result: Result, folder: Path, out: Path, label: str,
                    warnings: list[str]) -> dict[str, str]:
    """The result's artifacts as paths relative to OUT, copying those that live outside it."""
    placed: dict[str, str] = {}
    out_resolved = out.resolve()
    for role, relative in result.artifacts.items():
        path = PurePosixPath(relative)
        if path.is_absolute() or ".." in path.parts:
            warnings.append(f"{folder}: {result.scenario.name} {role} {relative!r} points outside "
                            "its folder; left out")
            continue
        source = folder / path
        if not source.resolve().is_relative_to(folder.resolve()):  # a link out of the folder
            warnings.append(f"{folder}: {result.scenario.name} {role} {relative!r} links outside "
                            "its folder; left out")
            continue
        if source.resolve().is_relative_to(out_resolved):
            placed[role] = Path(os.path.relpath(source.resolve(), out_resolved)).as_posix()
            continue
        target = PurePosixPath(label) / path
        placed[role] = str(target)
        if source.is_dir():
            shutil.copytree(source.resolve(), out / target, dirs_exist_ok=True,
                            ignore=_links, copy_function=_copy)
        elif source.is_file():
            (out / target).parent.mkdir(parents=True, exist_ok=True)
            copy_file_atomically(source.resolve(), out / target)
        else:
            warnings.append(f"{source}: {result.scenario.name}'s {role} is missing; "
                            "its link is marked missing")
    return placed


def merge(folders: list[Path], out: Path) -> tuple[list[Result], list[str]]:
    for folder in folders:
        if not folder.is_dir():
            raise ConfigError(f"{folder}: no such folder; pass results folders that each hold "
                              "a results.json")
    loaded = [(folder, read_results_json(folder / "results.json")) for folder in folders]
    out.mkdir(parents=True, exist_ok=True)
    merged: list[Result] = []
    warnings: list[str] = []
    for (folder, results), label in zip(loaded, unique_labels(folders), strict=True):
        for result in results:
            artifacts = place_artifacts(result, folder, out, label, warnings)
            merged.append(dataclasses.replace(result, artifacts=artifacts))
    counts = Counter(r.scenario.name for r in merged)
    warnings += [f"scenario {name} appears {n} times (e.g. one per Python version); all kept"
                 for name, n in counts.items() if n > 1]
    return merged, warnings
