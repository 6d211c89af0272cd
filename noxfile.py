"""Sessions of the asyncio stress kit: `nox -s stress` is the main entry, `nox` lints and tests.

    nox -s stress                          every scenario, profiled, in the pinned container
    nox -s stress -- NAME ... --scale 0.1  some scenarios, any `python -m stress run` option
    nox -s stress -- --engine host         on this machine instead (auto falls back to it)
    nox -s tests | lint | image | scenarios | merge | compare | ab | lock | pin
    nox -s instructions-names              the function-names test on Python 3.12 (valgrind)
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import tempfile
from pathlib import Path

import nox

nox.needs_version = ">=2024.4.15"
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"

LOCK = "stress/container/requirements.txt"  # package data: an installed kit builds from it
# The lock is for the image: its Python and manylinux platforms, whatever the host runs.
LOCK_PYTHON = "3.13"
LOCK_PLATFORMS = ("x86_64-manylinux_2_28", "aarch64-manylinux_2_28")


@nox.session(tags=["docker"])
def stress(session: nox.Session) -> None:
    """Run every scenario (or `-- NAME ...`) with memory and CPU profiles, in the container.

    `stress-kit run --engine auto --profile memory,cpu`, then your arguments, which win: the
    container where an engine answers, else the host with a warning (`-- --engine host` or
    `-- --engine docker` to choose). Container options: --base IMAGE, --image TAG, --memory
    4g, --cpus N, --container-timeout SECONDS, --no-build. Results land in --out (default
    stress-results/) on the host either way.
    """
    session.install(".[container]")
    # nox dies of a SIGTERM and leaves the run going on alone; taken as Ctrl-C, it stops it.
    signal.signal(signal.SIGTERM, _interrupt)
    # On Ctrl-C nox sends SIGTERM, then SIGKILL 0.2 s later by default; the run needs the
    # container's grace period (30 s) to stop it and write the interrupted results.
    session.run("python", "-m", "stress", "run", "--engine", "auto", "--profile", "memory,cpu",
                *session.posargs, terminate_timeout=45,
                # A SIGKILL to nox interrupts the run too, instead of leaving it going on alone.
                env={"STRESS_STOP_WITH_PID": str(os.getpid())})


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@nox.session(tags=["check"])
def tests(session: nox.Session) -> None:
    """Run the test suite (`-- ARGS` go to pytest, e.g. `-- -m 'not docker'`)."""
    session.install("-e", ".[test,uvloop]")  # uvloop: the loop option is tested too
    session.run("pytest", *session.posargs, env={EXPECT_VERIFIER: "interpreted"})


# The tests of what runs compiled when the kit is built with STRESS_KIT_COMPILE=1 (mypyc): the
# verifier, the pipelines and targets it checks, and the engine around it.
COMPILED_TESTS = ("tests/test_verifier_build.py", "tests/test_streams.py",
                  "tests/test_token_cutter.py", "tests/test_sampler.py", "tests/test_harness.py",
                  "tests/test_pipeline_backend.py", "tests/test_pipeline_channel.py",
                  "tests/test_pipeline_conductor.py", "tests/test_pipeline_consumer.py",
                  "tests/test_pipeline_faults.py", "tests/integration/test_runner_verdicts.py",
                  "tests/integration/test_runner_faults.py",
                  "tests/integration/test_real_targets.py",
                  "tests/integration/test_runner_real_sse.py")
EXPECT_VERIFIER = "STRESS_EXPECT_VERIFIER"  # tests/test_verifier_build.py checks the build
COMPILE = {"STRESS_KIT_COMPILE": "1"}  # build_backend.py: compile the verifier with mypyc


@nox.session(name="tests-compiled", tags=["check"])
def tests_compiled(session: nox.Session) -> None:
    """The verifier's tests against the kit built with its verifier compiled (mypyc).

    Needs a C compiler and the Python headers. The tests run from a copy of tests/, so the
    installed kit, not this checkout's source, is the one imported.
    """
    session.install(".[test,uvloop]", env=COMPILE)
    with tempfile.TemporaryDirectory(prefix="stress-tests-compiled-") as folder:
        shutil.copytree("tests", Path(folder, "tests"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy("pyproject.toml", folder)  # pytest's settings
        tests = [str(Path(folder, name)) for name in COMPILED_TESTS]
        with session.chdir(folder):
            session.run("pytest", "-p", "no:cacheprovider", *tests, *session.posargs,
                        env={EXPECT_VERIFIER: "compiled"})


@nox.session(name="verification-cost")
def verification_cost(session: nox.Session) -> None:
    """What verifying and stamping every token costs the reference pipeline, its verifier
    compiled (ci/verification_cost.py; `-- --rounds 21`); `-- --interpreted` for the pure one.

    A benchmark prints its figure: a median below the goal (the script's exit 1) is a figure
    on a noisy machine, not a failed session; a run that failed (exit 2) is.
    """
    interpreted = "--interpreted" in session.posargs
    session.install(".", env={} if interpreted else COMPILE)
    arguments = [a for a in session.posargs if a != "--interpreted"]
    session.run("python", "ci/verification_cost.py", *arguments, success_codes=[0, 1])


# The test of the gate's table of the functions that grew, named as Python functions: the
# perf trampoline that names them needs 3.12+, so the 3.11 test run skips it.
NAMES_TEST = ("tests/test_gate_instructions.py::"
              "test_callgrind_gives_each_functions_cost_and_names_the_slowed_one")


@nox.session(name="instructions-names", python="3.12")
def instructions_names(session: nox.Session) -> None:
    """The regression table's Python function names under real valgrind, on Python 3.12.

    Fails, rather than skips, without valgrind (`apt-get install valgrind`); `-- ARGS` go to
    pytest.
    """
    if shutil.which("valgrind") is None:
        session.error("the function-names test needs valgrind: apt-get install valgrind")
    session.install("-e", ".", "pytest>=8")
    session.run("pytest", NAMES_TEST, "-q", "-rs", *session.posargs)


@nox.session(tags=["check"])
def lint(session: nox.Session) -> None:
    """ruff, mypy (strict), hadolint on the Dockerfile, and the workflows' schema."""
    session.install("-e", ".[lint,test]")
    session.run("ruff", "check", ".")
    session.run("mypy")
    session.run("hadolint", "Dockerfile")
    workflows = sorted(glob.glob(".github/workflows/*.yml") + glob.glob(".github/workflows/*.yaml"))
    if workflows:
        session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    else:
        session.log("no workflow files under .github/workflows yet: schema check skipped")
    session.run("zizmor", "--offline", "--collect=workflows,actions,dependabot", ".")


@nox.session(tags=["docker"])
def image(session: nox.Session) -> None:
    """Build the pinned image with no network (`-- --base IMAGE`, default $STRESS_BASE_IMAGE
    or the Dockerfile's digest-pinned base; `-- --image TAG`)."""
    session.install(".[container]")
    session.run("python", "-m", "stress", "image", *session.posargs)


@nox.session
def scenarios(session: nox.Session) -> None:
    """List the scenarios: `-- --json` for a CI matrix, `-- --long` for sizes and thresholds."""
    session.install(".")
    session.run("python", "-m", "stress", "list", *session.posargs)


@nox.session
def merge(session: nox.Session) -> None:
    """Merge CI jobs' results folders into one report: `-- DIR ... --out OUT [--baseline FILE]`.

    Appends the merged summary.md to $GITHUB_STEP_SUMMARY on GitHub Actions.
    """
    session.install(".")
    session.run("python", "-m", "stress", "merge", *session.posargs)


@nox.session
def compare(session: nox.Session) -> None:
    """Compare results against a baseline: `-- BASELINE CURRENT [options]`."""
    session.install(".")
    session.run("python", "-m", "stress", "compare", *session.posargs)


@nox.session
def ab(session: nox.Session) -> None:
    """Side-by-side regression gate: `-- BASE_REF HEAD_REF [NAME ...] [options]`.

    Both revisions are measured in alternating rounds on this machine; exit 3 when a
    scenario's median head/base throughput ratio falls below the limit (`--max-drop`).
    """
    # ab pip-installs each revision offline without build isolation: this build backend.
    session.install(".", "setuptools>=77")
    session.run("python", "-m", "stress", "ab", *session.posargs)


@nox.session
def lock(session: nox.Session) -> None:
    """Regenerate stress/container/requirements.txt, the image's dependencies pinned with hashes.

    Existing pins are kept; `-- --upgrade` (or `-- --upgrade-package NAME`) moves them.
    """
    session.install("uv")
    with tempfile.TemporaryDirectory() as tmp:
        outputs = [LOCK, *(f"{tmp}/{platform}.txt" for platform in LOCK_PLATFORMS[1:])]
        for platform, output in zip(LOCK_PLATFORMS, outputs, strict=True):
            if output != LOCK and Path(LOCK).exists():
                shutil.copy(LOCK, output)  # the same preferences for every platform
            session.run(
                "uv", "pip", "compile", "pyproject.toml", "--extra", "uvloop", "--quiet",
                "--generate-hashes", "--python-version", LOCK_PYTHON,
                "--python-platform", platform, "--custom-compile-command", "nox -s lock",
                "--output-file", output, *session.posargs,
            )
        # One file serves every platform while they resolve alike: uv records the hashes of
        # all of a pinned version's wheels, so they already cover each platform.
        first = Path(LOCK).read_text(encoding="utf-8")
        for platform, output in zip(LOCK_PLATFORMS[1:], outputs[1:], strict=True):
            if Path(output).read_text(encoding="utf-8") != first:
                session.error(f"{platform} resolves differently from {LOCK_PLATFORMS[0]}: "
                              "keep a lock file per platform")


@nox.session(tags=["docker"])
def pin(session: nox.Session) -> None:
    """Point the Dockerfile's base at its tag's current digest (needs a reachable registry)."""
    session.install(".[container]")
    session.run("python", "-m", "stress", "pin", *session.posargs)
