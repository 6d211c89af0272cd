"""Which build of the verifier runs: compiled with mypyc, or the same source interpreted.

``STRESS_KIT_COMPILE=1`` when the kit is built (build_backend.py) compiles the modules named
here to C extensions: at short tokens the per-token checking and stamping is a large part of
a fast pipeline's cost, and compiled it costs less (how much less depends on the machine; the
README gives figures). Verdicts are the same either way; throughput is not, so a run's
environment records which build verified it.
"""

from __future__ import annotations

from typing import Literal

VerifierBuild = Literal["compiled", "interpreted"]

COMPILE_VARIABLE = "STRESS_KIT_COMPILE"
COMPILED_MODULES = ("stress.streams", "stress.token_cutter")  # the per-token work of a run
EXTENSION_SUFFIXES = (".so", ".pyd")  # what a compiled module's file ends with


def verifier_build() -> VerifierBuild:
    """``"compiled"`` or ``"interpreted"``: how the verifier of this process runs."""
    import stress.streams

    compiled = (stress.streams.__file__ or "").endswith(EXTENSION_SUFFIXES)
    return "compiled" if compiled else "interpreted"
