"""Each wrong verdict the kit once gave, reproduced with a small target and shown right, through
the real runner (``python -m stress run`` in a subprocess)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from stress.engine.verdicts import NOT_VERIFIED_NOTE
from stress.errors import ExitCode
from tests.integration.conftest import run_stress

pytestmark = pytest.mark.slow

T = "tests.verify_targets:"
SCENARIOS = """\
scenarios:
  backpressure:
    title: Backpressure Check
    messages: 5000
    channel_buffer: 100
    consumer_delay_us: 100
    timeout_s: 30
    thresholds: {max_loss_pct: 1.0}
  plain:
    title: Plain Check
    messages: 5000
    timeout_s: 30
  errors:
    title: Error Check
    messages: 1000
    conversations: 10
    error_rate: 0.2
    timeout_s: 30
  zero:
    title: Zero Loss
    messages: 5000
    timeout_s: 30
    thresholds: {max_loss_pct: 0}
  latency:
    title: Latency Check
    messages: 500
    timeout_s: 30
    thresholds: {max_p99_latency_ms: 10}
  grow:
    title: Scaled Growth
    messages: 400000
    timeout_s: 60
    thresholds: {max_memory_growth_mb: 100}
  soak:
    title: Soak Check
    messages: 1000
    token_delay_us: 100
    duration_s: 3
    warmup_s: 1
    timeout_s: 30
    thresholds: {max_memory_slope_mb_per_min: 100}
"""


@pytest.fixture
def scenarios(tmp_path: Path) -> Path:
    path = tmp_path / "verdicts.yaml"
    path.write_text(SCENARIOS, encoding="utf-8")
    return path


def run(scenarios: Path, out: Path, target: str, *names: str,
        scale: float = 1.0) -> tuple[int, dict[str, dict[str, Any]], str]:
    done = run_stress("run", *names, "--scenarios", scenarios, "--target", target, "--out", out,
                      "--no-evidence", "--scale", str(scale), timeout=120)
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return (done.returncode, {r["name"]: r for r in document["scenarios"]},
            done.stdout + done.stderr)


def messages(result: dict[str, Any]) -> list[str]:
    return [f["message"] for f in result["failures"]]


def headlines(result: dict[str, Any]) -> list[str]:
    return [f["headline"] for f in result["failures"]]


def test_a_target_that_moves_nothing_fails(tmp_path: Path, scenarios: Path) -> None:
    code, results, output = run(scenarios, tmp_path / "a", T + "idle", "backpressure")
    assert code == ExitCode.THRESHOLD_FAILED, output
    result = results["backpressure"]
    assert messages(result) == ["Impossible counts: counter messages_sent is 0: nothing was "
                                "sent at all"]
    assert headlines(result) == ["FAILURE: Impossible counts reported by the target"]
    assert NOT_VERIFIED_NOTE in result["notes"]
    assert NOT_VERIFIED_NOTE in output
    assert result["metrics"]["verified"] is False

    code, results, output = run(scenarios, tmp_path / "b", T + "idle_verified", "backpressure")
    assert code == ExitCode.THRESHOLD_FAILED, output
    result = results["backpressure"]
    assert result["metrics"]["verified"] is True
    assert result["metrics"]["lost"] == 5000
    assert messages(result)[0] == "Message loss too high: 100.00% (sent: 0, received: 0)"
    assert messages(result)[1].startswith(
        "Streams ended short: 1 of 1 conversations ended before their last token; first "
        "divergence: conversation 0, token 0: ended short (expected '5000 tokens', "
        "got '0 tokens')")
    assert NOT_VERIFIED_NOTE not in result["notes"]


@pytest.mark.parametrize(("target", "message"), [
    ("inflated", "Impossible counts: counter tokens_received (50000) is more than messages_sent "
                 "(5000): received more than sent"),
    ("negative", "Impossible counts: counter tokens_received is negative: -5000"),
    ("floats", "Impossible counts: counter tokens_received is not a whole number: 4999.5"),
])
def test_impossible_counts_fail_naming_the_counter(tmp_path: Path, scenarios: Path,
                                                   target: str, message: str) -> None:
    code, results, output = run(scenarios, tmp_path / "out", T + target, "plain")
    assert code == ExitCode.THRESHOLD_FAILED, output
    assert messages(results["plain"]) == [message]
    assert NOT_VERIFIED_NOTE in results["plain"]["notes"]


def test_duplicates_on_reconnect_fail_and_name_the_first(tmp_path: Path,
                                                         scenarios: Path) -> None:
    code, results, output = run(scenarios, tmp_path / "out", T + "resume_wrong_id", "plain")
    assert code == ExitCode.THRESHOLD_FAILED, output
    result = results["plain"]
    assert result["metrics"]["duplicated"] == 100
    assert result["metrics"]["tokens_received"] == 5000
    (message,) = messages(result)
    assert re.fullmatch(r"Duplicated tokens: 100 \(expected 0\); first divergence: "
                        r"conversation 0, token 500: duplicated \(expected '0:dw\|[^']*', "
                        r"got '0:dm\|[^']*'\)", message), message
    assert headlines(result) == ["FAILURE: Tokens delivered more than once"]


def test_a_stream_cut_by_a_read_timeout_fails_on_the_error_and_the_loss(
        tmp_path: Path, scenarios: Path) -> None:
    code, results, output = run(scenarios, tmp_path / "out", T + "read_timeout", "plain")
    assert code == ExitCode.THRESHOLD_FAILED, output
    result = results["plain"]
    assert messages(result)[0].startswith("Tokens lost: 2500 (50.00%, expected none; made: "
                                          "2500, received: 2500)")
    assert messages(result)[1] == ("Unexpected errors: 1 conversations failed, but the "
                                   "scenario injects no failure (error_rate 0)")
    assert headlines(result) == ["FAILURE: Significant message loss",
                                 "FAILURE: More errors than injected"]


def test_an_injected_failure_the_target_hides_fails(tmp_path: Path, scenarios: Path) -> None:
    code, results, output = run(scenarios, tmp_path / "out", T + "hidden_failures", "errors")
    assert code == ExitCode.THRESHOLD_FAILED, output
    assert messages(results["errors"]) == [
        "Unreported failures: 2 of 2 injected failures were never reported (stats.fail)"]
    assert headlines(results["errors"]) == ["FAILURE: Injected failures not reported"]


def test_a_correct_verified_target_passes_with_latency_in_the_results(
        tmp_path: Path, scenarios: Path) -> None:
    code, results, output = run(scenarios, tmp_path / "out", T + "verified",
                                "plain", "errors", "zero", "latency")
    assert code == ExitCode.PASSED, output
    for name in ("plain", "errors", "zero", "latency"):
        metrics = results[name]["metrics"]
        assert metrics["verified"] is True
        assert (metrics["lost"], metrics["duplicated"], metrics["reordered"],
                metrics["corrupted"]) == (0, 0, 0, 0)
        assert metrics["latency_p50_ms"] is not None
        assert metrics["latency_p99_ms"] >= metrics["latency_p50_ms"]
        assert metrics["ttft_max_ms"] is not None
        assert metrics["memory_growth_per_1k_tokens_mb"] is not None
        assert sum(n for _ms, n in results[name]["latency_histogram"]) \
            == metrics["tokens_received"]
        assert NOT_VERIFIED_NOTE not in results[name]["notes"]
    assert results["errors"]["metrics"]["errors"] == 2
    zero = results["zero"]["checks"][0]
    assert (zero["metric"], zero["limit"], zero["value"], zero["met"]) == \
        ("loss_pct", 0, 0, True)  # a limit of 0 passes at exactly 0


def test_a_missed_latency_threshold_fails(tmp_path: Path, scenarios: Path) -> None:
    code, results, output = run(scenarios, tmp_path / "out", T + "slow_consumer", "latency")
    assert code == ExitCode.THRESHOLD_FAILED, output
    (message,) = messages(results["latency"])
    assert re.fullmatch(r"Token latency p99 too high: \d+\.\dms \(expected < 10ms\)", message)
    assert headlines(results["latency"]) == ["FAILURE: Token latency too high"]


def test_memory_limits_scale_with_the_run(tmp_path: Path, scenarios: Path) -> None:
    code, results, output = run(scenarios, tmp_path / "a", "stress.pipeline.faults:leak",
                                "grow", scale=0.1)
    assert code == ExitCode.THRESHOLD_FAILED, output
    result = results["grow"]
    assert result["thresholds"]["max_memory_growth_mb"] == 20.0
    assert [f["kind"] for f in result["failures"]] == ["memory"]
    assert ("Memory limits scaled with the run (--scale 0.1; never below 20% of the limit or "
            "10 MB): max_memory_growth_mb 20 MB") in result["notes"]
    assert result["metrics"]["memory_growth_per_1k_tokens_mb"] > 0.5  # ~1.3 KiB a token
    code, results, output = run(scenarios, tmp_path / "b", "stress.pipeline:reference",
                                "grow", scale=0.1)
    assert code == ExitCode.PASSED, output


def test_a_soak_is_judged_on_the_memory_slope_after_the_warm_up(tmp_path: Path,
                                                                scenarios: Path) -> None:
    code, results, output = run(scenarios, tmp_path / "a", "stress.pipeline:reference", "soak")
    assert code == ExitCode.PASSED, output
    metrics = results["soak"]["metrics"]
    assert metrics["duration_s"] >= 3
    assert metrics["tokens_received"] > 5000  # streamed for the time, not for 1,000 tokens
    assert metrics["memory_slope_mb_per_min"] is not None
    assert metrics["memory_slope_mb_per_min"] < 100
    code, results, output = run(scenarios, tmp_path / "b", "stress.pipeline.faults:leak", "soak")
    assert code == ExitCode.THRESHOLD_FAILED, output
    (message,) = messages(results["soak"])
    assert re.fullmatch(r"Memory keeps growing: \d+\.\d\d MB/min after the warm-up "
                        r"\(expected < 100 MB/min\)", message), message


@pytest.mark.parametrize(("knob", "headline"), [
    ("duplicate", "FAILURE: Tokens delivered more than once"),
    ("reorder", "FAILURE: Tokens delivered out of order"),
    ("short", "FAILURE: Streams ended short"),
])
def test_the_stream_fault_knobs_fail_as_named(tmp_path: Path, scenarios: Path, knob: str,
                                              headline: str) -> None:
    code, results, output = run(scenarios, tmp_path / "out", f"stress.pipeline.faults:{knob}",
                                "plain")
    assert code == ExitCode.THRESHOLD_FAILED, output
    assert headline in headlines(results["plain"])
    assert results["plain"]["metrics"]["first_divergence"] is not None
