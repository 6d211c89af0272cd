"""Finding a project's stress target for ``stress-kit init``, without importing its code."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

_SKIP_FOLDERS = {"tests", "test", "build", "dist", "node_modules", "site-packages", "venv",
                 "env", "__pycache__"}


def detect_targets(folder: Path) -> Iterator[str]:
    """``module:attr`` for each module named like ``*stress*`` (not the kit's own ``stress``)
    that defines a class with ``async def run`` or a top-level ``target``. Read with ``ast``:
    the project's code is never imported."""
    for root in (folder / "src", folder):
        if not root.is_dir():
            continue
        for path in _modules(root):
            module = _module_name(root, path)
            if module is None or module.split(".")[0] == "stress" or "stress" not in path.stem:
                continue
            try:
                tree = ast.parse(path.read_bytes())
            except (OSError, SyntaxError, ValueError):
                continue
            for name in _target_names(tree):
                yield f"{module}:{name}"
        if root.name == "src":
            return  # a src layout keeps its packages there; the top is tools and tests


def _modules(root: Path) -> Iterator[Path]:
    for here, folders, files in os.walk(root):
        depth = len(Path(here).relative_to(root).parts)
        folders[:] = [] if depth >= 3 else sorted(
            f for f in folders if not f.startswith(".") and f not in _SKIP_FOLDERS
            and not f.endswith(".egg-info") and f != "src")
        yield from (Path(here) / f for f in sorted(files) if f.endswith(".py"))


def _module_name(root: Path, path: Path) -> str | None:
    """The dotted name, when every folder on the way is a package (holds __init__.py)."""
    parts = path.relative_to(root).with_suffix("").parts
    for depth in range(1, len(parts)):
        if not (root.joinpath(*parts[:depth]) / "__init__.py").is_file():
            return None
    if not all(part.isidentifier() for part in parts) or parts[-1] == "__init__":
        return None
    return ".".join(parts)


def _target_names(tree: ast.Module) -> Iterator[str]:
    """A public class with ``async def run`` (the contract), or a top-level ``target``."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            if not node.name.startswith("_") and any(
                    isinstance(item, ast.AsyncFunctionDef) and item.name == "run"
                    for item in node.body):
                yield node.name
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name == "target":
                yield node.name
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "target" for t in node.targets):
            yield "target"
