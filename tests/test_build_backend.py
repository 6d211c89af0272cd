"""The build option (build_backend.py): STRESS_KIT_COMPILE=1 compiles the verifier with mypyc."""

from __future__ import annotations

from pathlib import Path

import pytest
from setuptools import build_meta

import build_backend
from stress.verifier_build import COMPILE_VARIABLE


def test_a_compiled_build_asks_for_mypy_and_a_pure_one_does_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # setuptools' own answer (it runs setup.py in the working folder) is not what is tested.
    for hook in ("get_requires_for_build_wheel", "get_requires_for_build_editable"):
        monkeypatch.setattr(build_meta, hook, lambda settings=None: ["own"])
    monkeypatch.delenv(COMPILE_VARIABLE, raising=False)
    assert build_backend.get_requires_for_build_wheel() == ["own"]
    assert build_backend.get_requires_for_build_editable() == ["own"]
    monkeypatch.setenv(COMPILE_VARIABLE, "1")
    assert build_backend.get_requires_for_build_wheel() == ["own", "mypy>=1.10"]
    assert build_backend.get_requires_for_build_editable() == ["own", "mypy>=1.10"]


def test_asked_to_compile_without_mypy_the_build_refuses_rather_than_build_pure(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(COMPILE_VARIABLE, "1")
    monkeypatch.setattr(build_backend, "mypyc_available", lambda: False)
    with pytest.raises(SystemExit, match="STRESS_KIT_COMPILE=1 needs mypy"):
        build_backend.build_wheel(str(tmp_path))


@pytest.mark.parametrize("value", ["yes", "true", "2"])
def test_a_value_other_than_0_or_1_is_refused_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(COMPILE_VARIABLE, value)
    with pytest.raises(SystemExit, match=f"STRESS_KIT_COMPILE='{value}': set it to 1"):
        build_backend.compile_requested()
