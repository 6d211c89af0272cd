"""ci/sampling_overhead.py keeps working: a tiny configuration prints every figure it promises.

The figures themselves are not judged here (on a busy machine a run of a few milliseconds
says nothing about a 2% cost); the script is run by hand, with its defaults, for those.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.integration.conftest import REPO, stress_env

SCRIPT = REPO / "ci" / "sampling_overhead.py"
NUMBER = r"[\d,]+"
SIGNED = r"[+-][\d.]+"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sampling_overhead", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, env=stress_env(),
                          capture_output=True, text=True, timeout=180, check=False)


def test_the_median_interval_comes_from_order_statistics() -> None:
    median_interval = load_script().median_interval
    assert median_interval([1.0] * 5) is None  # 5 values cannot give 95%
    low, high, coverage = median_interval([7.0, 1.0, 3.0, 5.0, 2.0, 6.0, 4.0])
    assert (low, high) == (1.0, 7.0)  # 7 values: only the extremes give 95%
    assert coverage == pytest.approx(1 - 2 / 2 ** 7)
    low, high, coverage = median_interval([float(v) for v in range(1, 12)])
    assert (low, high) == (2.0, 10.0)  # 11 values: the second from each end
    assert coverage == pytest.approx(1 - 2 * 12 / 2 ** 11)


@pytest.mark.slow
def test_the_script_prints_each_round_the_median_and_the_verdict() -> None:
    done = run_script("--rounds", "6", "--messages", "20000",
                      "--target", "stress.pipeline:reference")
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 2: a run failed
    lines = done.stdout.splitlines()
    assert lines[0] == ("scenario: 20,000 tokens of 10 characters, unpaced, target "
                        "stress.pipeline:reference; sampling on: every 0.1 s, off: every "
                        "3600 s (only the sample at the run's start)")
    rounds = [line for line in lines if line.startswith("round ")]
    assert len(rounds) == 6
    for number, line in enumerate(rounds, start=1):
        assert re.fullmatch(
            rf"round {number}/6: sampling on {NUMBER} tokens/s \([\d.]+ s, \d+ samples\), "
            rf"off {NUMBER} tokens/s \([\d.]+ s, \d+ samples\); on/off [\d.]+", line), line
    assert re.fullmatch(r"median on/off throughput ratio over 6 round\(s\): [\d.]+ "
                        r"\(rounds [\d.]+\.\.[\d.]+; runs lasted [\d.]+\.\.[\d.]+ s\)", lines[7])
    assert re.fullmatch(rf"sampling every 0\.1 s \([\d.]+ samples/s\) costs {SIGNED}% "
                        r"of throughput end to end", lines[8])
    assert re.fullmatch(rf"96\.9% confidence interval of the cost: {SIGNED}%\.\.{SIGNED}%",
                        lines[9])
    assert re.fullmatch(r"sampler thread beside a GIL-bound main thread, 1000 samples/s: "
                        r"[\d.]+ us of CPU per sample \(at most [\d.]+ us\)", lines[10])
    assert re.fullmatch(rf"at one sample every 0\.1 s that is {SIGNED}% of throughput "
                        rf"\(at most {SIGNED}%\)", lines[11])
    words = {0: "holds", 1: "does NOT hold"}[done.returncode]
    assert re.match(f"bound: sampling must cost under 2% of throughput: {words} ", lines[12])
    assert len(lines) == 13


def cost(target: str, median_pct: float,
         interval_pct: tuple[float, float] | None = None) -> Any:
    return load_script().Cost(target=target, median_pct=median_pct, interval_pct=interval_pct)


CHEAP = (20e-6, 10e-6, 40e-6)  # 40 us per sample at most: +0.04% at 0.1 s


@pytest.mark.parametrize(("medians", "direct", "code"), [
    ((0.4, -0.3), CHEAP, 0),
    ((6.24, 0.4), CHEAP, 1),  # the README's pipeline at +6.24% does not pass any more
    ((0.4, 2.0), CHEAP, 1),  # at the bound is not under it
    ((0.4, 0.3), (2e-3, 1e-3, 3e-3), 1),  # 3 ms per sample at 0.1 s: +3%
])
def test_the_verdict_judges_the_figures_it_prints_on_every_target(
        medians: tuple[float, float], direct: tuple[float, float, float], code: int,
        capsys: pytest.CaptureFixture[str]) -> None:
    script = load_script()
    # A wide interval reaching below the bound no longer excuses a median above it.
    costs = [cost("stress.pipeline:reference", medians[0], (-3.0, medians[0] + 3)),
             cost("tests.user_targets:echo", medians[1], (-3.0, medians[1] + 3))]
    assert script.verdict(costs, direct, 0.1) == code
    last = capsys.readouterr().out.splitlines()[-1]
    words = {0: "holds", 1: "does NOT hold"}[code]
    assert last.startswith(f"bound: sampling must cost under 2% of throughput: {words} (")
    if code == 0:
        assert "stress.pipeline:reference +0.40%; tests.user_targets:echo -0.30%" in last
    elif direct is CHEAP:
        over = [f"{t} {m:+.2f}%" for t, m in zip(
            ("stress.pipeline:reference", "tests.user_targets:echo"), medians, strict=True)
            if m >= 2]
        assert last.endswith("(end to end: " + "; ".join(over) + ")")


def test_both_targets_are_measured_by_default() -> None:
    args = load_script().parse_args([])
    assert args.target is None
    assert load_script().DEFAULT_TARGETS == ("stress.pipeline:reference",
                                             "tests.user_targets:echo")


def test_the_direct_measurement_reads_the_sampler_threads_own_cpu_time(tmp_path: Path) -> None:
    """A sample costs something, and far less than the interval between two samples."""
    median, low, high = load_script().per_sample_cost(tmp_path, 7)
    assert 0 < low <= median <= high < 0.01


@pytest.mark.slow
def test_a_failed_run_exits_2_with_its_reason() -> None:
    done = run_script("--rounds", "1", "--messages", "100",
                      "--target", "tests.user_targets:crashing")
    assert done.returncode == 2, done.stdout + done.stderr
    assert ("round-1-on: the scenario ended as crashed: Scenario crashed: the target raised "
            "RuntimeError: the backend connection was reset") in done.stderr
