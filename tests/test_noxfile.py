"""The noxfile's shape, read without importing nox: sessions, docstrings, defaults, tags."""

from __future__ import annotations

import ast
from pathlib import Path

NOXFILE = Path(__file__).resolve().parents[1] / "noxfile.py"


def sessions() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(NOXFILE.read_text(encoding="utf-8"))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any(
                "nox.session" in ast.unparse(d) for d in node.decorator_list):
            found[node.name] = node
    return found


def tags_of(node: ast.FunctionDef) -> set[str]:
    tags: set[str] = set()
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Call):
            for keyword in decorator.keywords:
                if keyword.arg == "tags":
                    tags |= set(ast.literal_eval(keyword.value))
    return tags


def test_every_session_the_kit_documents_exists_with_a_docstring() -> None:
    found = sessions()
    assert {"stress", "tests", "lint", "image", "compare", "lock", "pin"} <= set(found)
    for name, node in found.items():
        assert ast.get_docstring(node), f"session {name} has no docstring"


def test_default_sessions_are_the_quick_checks_and_exist() -> None:
    tree = ast.parse(NOXFILE.read_text(encoding="utf-8"))
    defaults = next(
        ast.literal_eval(node.value) for node in tree.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "nox.options.sessions")
    assert defaults == ["lint", "tests"]
    assert set(defaults) <= set(sessions())


def test_sessions_that_need_an_engine_are_tagged_docker() -> None:
    found = sessions()
    assert {name for name, node in found.items() if "docker" in tags_of(node)} == {
        "stress", "image", "pin"}


def test_sessions_pass_their_arguments_through() -> None:
    found = sessions()
    for name in ("stress", "tests", "image", "compare", "lock", "pin"):
        assert "*session.posargs" in ast.unparse(found[name]), name
