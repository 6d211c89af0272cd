"""The kit's extension modules: the verifier compiled with mypyc, when build_backend.py says so.

Everything else about the build is in pyproject.toml.
"""

from __future__ import annotations

from setuptools import setup

from build_backend import compile_requested, mypyc_available
from stress.verifier_build import COMPILED_MODULES


def compiled_extensions() -> list[object]:
    # Without mypyc here the build is only asking what it requires (mypy, among others);
    # build_backend.py refuses to build the wheel without it.
    if not (compile_requested() and mypyc_available()):
        return []
    from mypyc.build import mypycify

    paths = [name.replace(".", "/") + ".py" for name in COMPILED_MODULES]
    return list(mypycify(paths, opt_level="3", group_name="stress_verifier"))


setup(ext_modules=compiled_extensions())
