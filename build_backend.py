"""setuptools' build backend, plus the kit's one build option: compiling the verifier.

``STRESS_KIT_COMPILE=1`` compiles the verifier's modules (stress.verifier_build says which
and why) with mypyc, in setup.py. Only then does the build install mypy, so a pure build
downloads nothing more; it needs a C compiler and the Python headers too. Without the
variable the wheel is pure Python and runs anywhere.
"""

from __future__ import annotations

import importlib.util
import os

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403  (the rest of the backend, unchanged)

from stress.verifier_build import COMPILE_VARIABLE

MYPYC = "mypy>=1.10"  # mypyc ships with mypy

ConfigSettings = dict[str, "str | list[str]"] | None


def compile_requested() -> bool:
    value = os.environ.get(COMPILE_VARIABLE, "")
    if value not in ("", "0", "1"):
        raise SystemExit(f"build: {COMPILE_VARIABLE}={value!r}: set it to 1 (compile the "
                         "verifier with mypyc), or to 0 or unset (pure Python)")
    return value == "1"


def mypyc_available() -> bool:
    return importlib.util.find_spec("mypyc") is not None


def _compile_requirements() -> list[str]:
    return [MYPYC] if compile_requested() else []


def _refuse_a_pure_build() -> None:
    """Asked to compile, never hand back a pure wheel: say what is missing instead."""
    if compile_requested() and not mypyc_available():
        raise SystemExit(f"build: {COMPILE_VARIABLE}=1 needs mypy in the build environment: "
                         "build with pip's build isolation, or pip install mypy first")


def get_requires_for_build_wheel(config_settings: ConfigSettings = None) -> list[str]:
    return [*build_meta.get_requires_for_build_wheel(config_settings), *_compile_requirements()]


def get_requires_for_build_editable(config_settings: ConfigSettings = None) -> list[str]:
    return [*build_meta.get_requires_for_build_editable(config_settings),
            *_compile_requirements()]


def build_wheel(wheel_directory: str, config_settings: ConfigSettings = None,
                metadata_directory: str | None = None) -> str:
    _refuse_a_pure_build()
    return str(build_meta.build_wheel(wheel_directory, config_settings, metadata_directory))


def build_editable(wheel_directory: str, config_settings: ConfigSettings = None,
                   metadata_directory: str | None = None) -> str:
    _refuse_a_pure_build()
    return str(build_meta.build_editable(wheel_directory, config_settings,
                                         metadata_directory))
