"""ci/standalone_ratio.py: the kit's figure against the same target run standalone."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest

from tests.integration.conftest import REPO, stress_env

SCRIPT = REPO / "ci" / "standalone_ratio.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("standalone_ratio", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def figure(target: str, *ratios: float) -> Any:
    return load_script().Figure(target=target, ratios=ratios, kit=tuple(1000 * r for r in ratios),
                                standalone=(1000.0,) * len(ratios))


def test_the_verdict_holds_only_when_every_target_is_within_the_bound() -> None:
    verdict = load_script().verdict
    within = figure("stress.pipeline:reference", 0.99, 0.97, 1.01)  # median 0.99
    assert verdict([within, figure("tests.user_targets:echo", 1.0, 0.985)]) == (
        "bound: the kit's figure is within 2% of standalone: holds", 0)
    below = figure("tests.user_targets:echo", 0.917, 0.864, 1.011)  # the 0.917
    text, code = verdict([within, below])
    assert code == 1
    assert text == ("bound: the kit's figure is within 2% of standalone: does NOT hold "
                    "(tests.user_targets:echo; 8.30% below standalone)")


def test_one_line_per_target_gives_the_median_ratio_its_interval_and_the_rates() -> None:
    line = figure("tests.user_targets:echo", 0.99, 0.97, 1.01, 0.98, 1.0, 0.96, 1.02).line()
    assert line == ("tests.user_targets:echo: kit/standalone 0.990 (95% interval "
                    "0.960..1.020, pairs 0.960..1.020; kit 990 tokens/s, standalone "
                    "1,000 tokens/s, 7 pairs)")


@pytest.mark.slow
def test_the_script_runs_both_targets_and_gives_a_verdict() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--pairs", "2", "--messages", "5000"],
                          cwd=REPO, env=stress_env(), capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for target in ("stress.pipeline:reference", "tests.user_targets:echo"):
        assert f"{target}: 5,000 tokens of 10 characters per run, unpaced" in lines
        assert any(re.fullmatch(rf"{re.escape(target)}: kit/standalone [\d.]+ \(95% interval "
                                r"[\d.]+\.\.[\d.]+, pairs .*, 2 pairs\)", line)
                   for line in lines), lines
    assert lines[-1].startswith("bound: the kit's figure is within 2% of standalone: ")
