"""The verifier's two builds: pure Python, or compiled with mypyc (STRESS_KIT_COMPILE=1)."""

from __future__ import annotations

import dataclasses
import os

import pytest

from stress.engine.environment import environment
from stress.report.summary import environment_text
from stress.verifier_build import verifier_build
from tests.test_report_fixtures import SHORT, result


@pytest.mark.skipif("STRESS_EXPECT_VERIFIER" not in os.environ,
                    reason="the nox sessions say which build they installed")
def test_the_session_runs_the_build_it_installed() -> None:
    # `nox -s tests` runs the checkout's source, `nox -s tests-compiled` the compiled kit: a
    # compiled session that imported the source would test nothing it claims to.
    assert verifier_build() == os.environ["STRESS_EXPECT_VERIFIER"]


def test_a_runs_environment_says_which_verifier_measured_it() -> None:
    env = environment(target="stress.pipeline:reference", loop="asyncio")
    assert env.verifier == verifier_build()
    one = dataclasses.replace(result(SHORT), environment=env)
    assert f"verifier {verifier_build()}," in (environment_text([one]) or "")
