"""The noxfile's shape, read without importing nox: sessions, docstrings, defaults, tags."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

NOXFILE = Path(__file__).resolve().parents[1] / "noxfile.py"


def sessions() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(NOXFILE.read_text(encoding="utf-8"))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any(
                "nox.session" in ast.unparse(d) for d in node.decorator_list):
            found[session_name(node)] = node
    return found


def session_name(node: ast.FunctionDef) -> str:
    """The name nox knows it by: the decorator's ``name=``, else the function's."""
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Call):
            for keyword in decorator.keywords:
                if keyword.arg == "name":
                    return str(ast.literal_eval(keyword.value))
    return node.name


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
    assert {"stress", "tests", "lint", "image", "scenarios", "merge", "compare", "ab", "lock",
            "pin"} <= set(found)
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
    for name in ("stress", "tests", "image", "scenarios", "merge", "compare", "ab", "lock", "pin"):
        assert "*session.posargs" in ast.unparse(found[name]), name


def session_calls(node: ast.FunctionDef, method: str) -> list[list[str]]:
    """The literal string arguments of each `session.<method>(...)` call in a session."""
    calls = []
    for call in ast.walk(node):
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr == method and ast.unparse(call.func.value) == "session"):
            calls.append([arg.value for arg in call.args
                          if isinstance(arg, ast.Constant) and isinstance(arg.value, str)])
    return calls


def test_kit_sessions_run_the_kit_command_of_their_name() -> None:
    found = sessions()
    expected = {"scenarios": "list", "merge": "merge", "compare": "compare", "ab": "ab",
                "image": "image", "pin": "pin"}
    for name, command in expected.items():
        assert session_calls(found[name], "run") == [["python", "-m", "stress", command]], name


def test_stress_session_is_the_run_command_in_the_container_where_one_answers() -> None:
    # The package is the only front door: no script under ci/ between nox and the kit.
    assert session_calls(sessions()["stress"], "run") == [
        ["python", "-m", "stress", "run", "--engine", "auto", "--profile", "memory,cpu"]]


def test_lock_session_writes_the_lock_the_package_reads() -> None:
    from stress.container import image

    tree = ast.parse(NOXFILE.read_text(encoding="utf-8"))
    lock = next(ast.literal_eval(node.value) for node in tree.body
                if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "LOCK")
    assert (NOXFILE.parent / lock).resolve() == image.LOCK
    ci_run = (NOXFILE.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert f"git diff --quiet -- {lock}" in ci_run  # the stale-lock check reads that file


def test_ab_session_has_the_build_backend_the_revisions_are_installed_with() -> None:
    # ab pip-installs each revision with --no-build-isolation: the session's environment must
    # hold what pyproject.toml's build-system requires, or a revision cannot be installed.
    pyproject = tomllib.loads((NOXFILE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    installed = [arg for call in session_calls(sessions()["ab"], "install") for arg in call]
    for requirement in pyproject["build-system"]["requires"]:
        assert requirement in installed, requirement
