"""Verdicts and their wording, from measured figures (no processes involved)."""

from __future__ import annotations

import dataclasses
import signal
from typing import Any

from stress.config.scenarios import load_scenarios
from stress.engine import judge, verdicts
from stress.engine.protocol import QuitFigures, RunFigures, Sample
from stress.results import Metrics, threshold_checks

SCENARIOS = load_scenarios()

QUIT_KEYS = {"quit_latency_ms": "latency_ms", "quit_note": "note",
             "pending_after_quit": "pending"}


def figures(**overrides: Any) -> tuple[RunFigures, QuitFigures]:
    """The child's figures: the measured run's, and quit under load's (keys as in results)."""
    base: dict[str, Any] = {
        "messages_sent": 100_000, "tokens_received": 100_000, "streams_completed": 1,
        "errors": 0, "duration_s": 2.0, "rss_start_mb": 20.0, "rss_end_mb": 30.0,
        "peak_rss_mb": 31.0, "quit_latency_ms": 3.0, "pending_after_quit": (),
    }
    merged = {**base, **overrides}
    quit_ = QuitFigures(**{QUIT_KEYS[k]: v for k, v in merged.items() if k in QUIT_KEYS})
    run = RunFigures(**{k: v for k, v in merged.items() if k not in QUIT_KEYS})
    return run, quit_


def metrics_of(data: tuple[RunFigures, QuitFigures]) -> Metrics:
    return judge.metrics_from(*data)


def kinds(name: str, **overrides: Any) -> list[str]:
    scenario = SCENARIOS[name]
    data = figures(**overrides)
    metrics = metrics_of(data)
    return [f.kind for f in judge.threshold_failures(scenario, metrics, data[1])]


def test_metrics_are_derived_from_counts() -> None:
    metrics = metrics_of(figures(tokens_received=84_570))
    assert metrics.throughput == 84_570 / 2.0
    assert metrics.memory_growth_mb == 10.0
    assert round(metrics.loss_pct, 2) == 15.43


def test_a_clean_run_passes_every_builtin_threshold_it_meets() -> None:
    assert kinds("backpressure") == []
    assert kinds("short") == []


def test_loss_is_worded_as_the_seed() -> None:
    scenario = SCENARIOS["backpressure"]
    data = figures(tokens_received=84_570)
    (failure,) = judge.threshold_failures(scenario, metrics_of(data), data[1])
    assert failure.message == "Message loss too high: 15.43% (sent: 100000, received: 84570)"
    assert failure.headline == "FAILURE: Significant message loss under backpressure"
    assert failure.diagnosis == ("Incorrect channel buffer policy", "Consumer task panicked",
                                 "Race condition in message counting")


def test_a_loss_is_headlined_for_its_own_scenario() -> None:
    """The seed's "under backpressure" belongs to the backpressure scenario; a verified loss
    in another says what that scenario does, or nothing."""
    metrics = Metrics(verified=True, messages_sent=1_000_000, tokens_received=999_990, lost=10,
                      loss_pct=0.001, streams_completed=1)
    (failure,) = verdicts.stream_failures(SCENARIOS["short"], metrics, None, None)
    assert failure.kind == "loss"
    assert failure.message.startswith("Tokens lost: 10 (0.00%, expected none; ")
    assert failure.headline == "FAILURE: Significant message loss"
    assert "backpressure" not in failure.headline
    headlines = {name: verdicts.loss_headline(SCENARIOS[name]) for name in SCENARIOS}
    assert headlines["backpressure"] == "FAILURE: Significant message loss under backpressure"
    assert headlines["concurrent"] == ("FAILURE: Significant message loss across concurrent "
                                       "conversations")
    assert headlines["errors"] == "FAILURE: Significant message loss under error injection"
    assert [name for name, line in headlines.items() if "backpressure" in line] \
        == ["backpressure"]
    # A loss threshold missed is worded the same way.
    data = figures(tokens_received=84_570, messages_sent=100_000, streams_completed=10)
    (missed,) = [f for f in judge.threshold_failures(SCENARIOS["concurrent"], metrics_of(data),
                                                     data[1]) if f.kind == "loss"]
    assert missed.headline == headlines["concurrent"]


def test_memory_growth_is_worded_as_the_seed() -> None:
    scenario = SCENARIOS["medium"]
    data = figures(rss_end_mb=20.0 + 1234.56)
    (failure,) = judge.threshold_failures(scenario, metrics_of(data), data[1])
    assert failure.message == "Memory growth too high: 1234.56 MB (expected < 500MB)"
    assert failure.headline == "FAILURE: Unbounded memory growth detected"


def test_timeout_is_worded_as_the_seed() -> None:
    failure = judge.timeout_failure(SCENARIOS["short"], 62.345, "run")
    assert failure.message == "Test should complete within timeout (60s), took 62.345s"
    assert failure.headline == "FAILURE: Possible deadlock detected"
    assert failure.diagnosis == ("Deadlock in message channel", "Blocking call in async context",
                                 "Channel buffer exhaustion without backpressure")


def test_a_blocked_loop_found_by_the_stack_dump_comes_first_in_the_diagnosis() -> None:
    blocked = "event loop blocked in a synchronous call at /app/ui.py:42 (render)"
    for phase, rest in (("run", judge.DEADLOCK_DIAGNOSIS), ("quit", judge.QUIT_DIAGNOSIS)):
        failure = judge.timeout_failure(SCENARIOS["short"], 62.3, phase, blocked)
        assert failure.diagnosis == (blocked, *rest)


def test_each_threshold_can_fail() -> None:
    assert kinds("short", tokens_received=10_000, messages_sent=10_000, duration_s=2.0) == \
        ["throughput"]
    assert kinds("rapid", quit_latency_ms=1500.0) == ["quit_latency"]
    assert kinds("rapid", quit_latency_ms=None, quit_note="finished early") == ["quit_latency"]
    # A task left behind is its own verdict, not a quit latency one.
    assert kinds("short", pending_after_quit=("<Task pending>",)) == ["leftover"]
    assert kinds("short", streams_completed=0) == ["streams"]


def test_error_streams_count_as_ended() -> None:
    assert kinds("errors", streams_completed=90, errors=10, duration_s=0.1) == []
    assert kinds("errors", streams_completed=80, errors=10, duration_s=0.1) == ["streams"]


def test_killed_child_is_judged_from_its_last_sample() -> None:
    sample = Sample(phase="run", t=61.0, rss_mb=40.0, messages_sent=10, tokens_received=5,
                    streams_completed=0, errors=0)
    metrics = judge.metrics_from(None, None, sample, 62.345)
    assert (metrics.messages_sent, metrics.tokens_received) == (10, 5)
    assert metrics.duration_s == 62.345
    assert metrics.peak_rss_mb == 40.0


def test_crash_names_the_signal_or_the_exception() -> None:
    assert "killed by SIGKILL (9)" in judge.crash_failure(-signal.SIGKILL, None).message
    assert "exited with code 7" in judge.crash_failure(7, None).message
    assert "raised ValueError: x" in judge.crash_failure(3, "ValueError: x").message


def test_leak_threshold_carries_the_leak_report() -> None:
    assert judge.leak_failure(1.0, 5.0, "report") is None
    failure = judge.leak_failure(50.0, 5.0, "Top sites\n  12.0 MB  leak_me (faults.py:10)\n")
    assert failure is not None
    assert failure.message == ("Leaked memory too high: 50.00 MB still allocated at exit "
                               "(expected < 5MB)")
    assert "leak_me (faults.py:10)" in "\n".join(failure.diagnosis)


def test_scenario_scaling_keeps_thresholds_but_scales_memory_limits() -> None:
    # Scaling now scales the MB limits with the run (floor: 20% of the limit or 10 MB).
    scaled = SCENARIOS["short"].scaled(0.01)
    assert scaled.thresholds == dataclasses.replace(SCENARIOS["short"].thresholds,
                                                    max_memory_growth_mb=20.0)
    assert dataclasses.replace(scaled, messages=1_000_000, scale=1.0,
                               thresholds=SCENARIOS["short"].thresholds) == SCENARIOS["short"]
    assert scaled.scaling_note() == (
        "Memory limits scaled with the run (--scale 0.01; never below 20% of the limit or "
        "10 MB): max_memory_growth_mb 20 MB")
    assert SCENARIOS["short"].scaling_note() is None
    medium = SCENARIOS["medium"].scaled(0.5).thresholds  # 500 MB at full size
    assert medium.max_memory_growth_mb == 250.0


def test_every_threshold_gets_a_check_and_the_failures_follow_them() -> None:
    scenario = SCENARIOS["concurrent"]  # throughput, memory growth and loss
    run, quit_ = figures(tokens_received=84_570, streams_completed=10)
    metrics = metrics_of((run, quit_))
    checks = threshold_checks(scenario, metrics, "passed")
    assert [(c.metric, c.label, c.limit, c.better, c.met) for c in checks] == [
        ("loss_pct", "Message loss", 1.0, "lower", False),
        ("memory_growth_mb", "Memory growth", 100.0, "lower", True),
        ("throughput", "Throughput", 10_000.0, "higher", True),
    ]
    assert checks[0].value == metrics.loss_pct
    failed = [c.metric for c in checks if c.met is False]
    assert failed == ["loss_pct"]
    assert [f.kind for f in judge.threshold_failures(scenario, metrics, quit_)] == ["loss"]


def test_an_unfinished_run_or_an_unmeasured_figure_is_not_judged() -> None:
    short = SCENARIOS["short"]
    metrics = metrics_of(figures())
    assert {c.met for c in threshold_checks(short, metrics, "timeout")} == {None}
    leaky = dataclasses.replace(
        short, thresholds=dataclasses.replace(short.thresholds, max_leaked_mb=5.0))
    (leak,) = [c for c in threshold_checks(leaky, metrics, "passed")
               if c.metric == "leaked_mb"]
    assert (leak.value, leak.met) == (None, None)  # no memray run, no leak figure
    measured = dataclasses.replace(metrics, leaked_mb=7.5)
    (leak,) = [c for c in threshold_checks(leaky, measured, "passed")
               if c.metric == "leaked_mb"]
    assert (leak.value, leak.met) == (7.5, False)


def test_the_leak_failure_carries_memray_report_as_evidence() -> None:
    report = "Top sites\n  12.0 MB  leak_me (faults.py:10)\n"
    failure = judge.leak_failure(50.0, 5.0, report)
    assert failure is not None
    assert failure.evidence == report
    generic = judge.leak_failure(50.0, 5.0, None)
    assert generic is not None
    assert generic.evidence is None
    assert generic.diagnosis == judge.MEMORY_DIAGNOSIS
