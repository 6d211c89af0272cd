"""The benchmark: workloads and targets, the bare-queue ceiling, child runs, the command."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from stress.bench import bench, ceiling, workloads
from stress.config.scenarios import load_scenarios
from stress.engine.harness import harness_for
from stress.errors import ConfigError, ExitCode, StressError
from stress.target import Stats

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = {w.name: w for w in workloads.workloads()}


def row(workload: str, **overrides: object) -> bench.BenchRow:
    base = bench.BenchRow(
        name=workload, title=workload, loop="asyncio", runs=1, throughput=600_000.0,
        ceiling=500_000.0, ratio=1.2, duration_s=1.0, ideal_duration_s=None,
        memory_growth_mb=10.0, ceiling_memory_growth_mb=0.0, payload_mb=9.5,
        quit_latency_ms=None, pending_after_quit=None, loss_pct=0.0, messages_sent=1000,
        tokens_received=1000, streams_completed=1, errors=0, checks=(),
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def test_the_seed_workloads_and_their_sizes() -> None:
    assert list(WORKLOADS)[:5] == ["short", "medium", "long", "rapid", "backpressure"]
    short, medium = WORKLOADS["short"].scenario, WORKLOADS["medium"].scenario
    assert (short.messages, short.message_size) == (1_000_000, 10)
    assert (medium.messages, medium.message_size) == (1_000_000, 100)
    assert workloads.ideal_duration_s(WORKLOADS["rapid"].scenario) == pytest.approx(10.0,
                                                                                    rel=1e-5)
    assert workloads.ideal_duration_s(WORKLOADS["backpressure"].scenario) == pytest.approx(10.0)
    assert workloads.ideal_duration_s(short) is None
    assert workloads.payload_mb(medium) == pytest.approx(95.37, abs=0.01)


def test_workload_sizes_are_the_builtin_scenarios() -> None:
    builtin = load_scenarios()
    for name, workload in WORKLOADS.items():
        assert dataclasses.replace(workload.scenario, thresholds=builtin[name].thresholds) == \
            builtin[name]


def test_unknown_workload_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown workload 'shrot'; choose from short"):
        workloads.select(["shrot"])
    assert [w.name for w in workloads.select(["rapid", "short"])] == ["short", "rapid"]


def test_targets_met_and_missed() -> None:
    short = WORKLOADS["short"]
    good = row("short")
    assert all(c.ok for c in bench.checks(short, good))
    slow = row("short", throughput=450_000.0, ratio=0.25, memory_growth_mb=31.0)
    missed = {c.name for c in bench.checks(short, slow) if not c.ok}
    assert missed == {"throughput", "ratio", "memory_growth"}


def test_memory_target_scales_with_the_payload() -> None:
    medium = WORKLOADS["medium"]
    checks = bench.checks(medium, row("medium", payload_mb=100.0, memory_growth_mb=129.0))
    assert [c.ok for c in checks if c.name == "memory_growth"] == [True]
    checks = bench.checks(medium, row("medium", payload_mb=100.0, memory_growth_mb=131.0))
    assert [c.ok for c in checks if c.name == "memory_growth"] == [False]


def test_paced_targets_duration_quit_and_loss() -> None:
    rapid, backpressure = WORKLOADS["rapid"], WORKLOADS["backpressure"]
    on_time = row("rapid", duration_s=10.5, ideal_duration_s=10.0, quit_latency_ms=3.0,
                  pending_after_quit=0)
    assert all(c.ok for c in bench.checks(rapid, on_time))
    late = row("rapid", duration_s=11.5, ideal_duration_s=10.0, quit_latency_ms=25.0,
               pending_after_quit=2)
    assert {c.name for c in bench.checks(rapid, late) if not c.ok} == {
        "duration", "quit_latency", "pending_after_quit"}
    never_quit = row("rapid", duration_s=10.0, ideal_duration_s=10.0)
    assert {c.name for c in bench.checks(rapid, never_quit) if not c.ok} == {
        "quit_latency", "pending_after_quit"}
    lossy = row("backpressure", duration_s=10.0, ideal_duration_s=10.0, loss_pct=0.5,
                quit_latency_ms=1.0, pending_after_quit=0)
    assert {c.name for c in bench.checks(backpressure, lossy) if not c.ok} == {"loss"}


def test_table_shows_figures_ratio_and_verdicts() -> None:
    short = WORKLOADS["short"]
    rows = [
        dataclasses.replace(r, checks=bench.checks(short, r))
        for r in (row("short"), row("short", loop="uvloop", throughput=300_000.0))
    ]
    table = bench.format_table(rows)
    assert "600,000" in table
    assert "1.20" in table
    assert "MISSED short/uvloop: throughput 300,000 >= 500,000 tokens/s" in table
    assert "met    short/asyncio: throughput 600,000 >= 500,000 tokens/s" in table
    assert "(0.50x)" in table  # uvloop beside asyncio


def test_bare_queue_ceiling_moves_every_token() -> None:
    scenario = dataclasses.replace(WORKLOADS["concurrent"].scenario, messages=2000)
    params, _ = harness_for(scenario)
    stats = Stats()
    asyncio.run(ceiling.bare_queue().run(params, stats, asyncio.Event()))
    assert stats == Stats(messages_sent=20_000, tokens_received=20_000,
                          streams_completed=10, errors=0)


def test_bare_queue_ceiling_honours_quit() -> None:
    scenario = dataclasses.replace(WORKLOADS["short"].scenario, messages=10_000_000)

    async def quit_soon() -> Stats:
        stats, quit_event = Stats(), asyncio.Event()
        params, _ = harness_for(scenario)
        task = asyncio.create_task(ceiling.bare_queue().run(params, stats, quit_event))
        while stats.tokens_received < 1000:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        quit_event.set()
        await asyncio.wait_for(task, 5)
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
        return stats

    assert asyncio.run(quit_soon()).tokens_received < 10_000_000


def test_bench_error_is_a_stress_error_with_the_crash_code() -> None:
    assert issubclass(bench.BenchError, StressError)
    assert bench.BenchError("x").exit_code == ExitCode.CRASHED_OR_HUNG


@pytest.mark.slow
def test_child_measures_in_a_fresh_interpreter() -> None:
    scenario = WORKLOADS["rapid"].scenario.scaled(0.01)
    figures = bench.run_target("stress.pipeline:reference", scenario, "asyncio",
                               measure_quit=True, timeout_s=60)
    assert figures.run.tokens_received == figures.run.messages_sent == 10_000
    assert figures.run.duration_s >= 9_999 * 10e-6
    assert figures.quit is not None
    assert figures.quit.latency_ms is not None
    assert figures.quit.pending == ()
    assert isinstance(figures.memory_growth_mb, float)


CEILING = "stress.bench.ceiling:bare_queue"


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stress", "bench", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_command_prints_json_rows_with_the_documented_keys() -> None:
    done = run_bench("short", "backpressure", "--scale", "0.01", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["name"] for r in rows] == ["short", "backpressure"]
    for r in rows:
        assert {"name", "throughput", "ceiling", "ratio", "memory_growth_mb",
                "duration_s", "quit_latency_ms", "loss_pct", "loop", "target_ok"} <= set(r)
        assert r["ratio"] == pytest.approx(r["throughput"] / r["ceiling"])
        assert r["loss_pct"] == 0.0
    assert rows[1]["quit_latency_ms"] is not None


@pytest.mark.slow
def test_command_measures_the_target_it_is_given() -> None:
    done = run_bench("long", "--scale", "0.1", "--json", "--target", CEILING)
    assert done.returncode == 0, done.stderr
    (only,) = json.loads(done.stdout)
    assert only["tokens_received"] == 100
    # The ceiling against itself: the same code in two fresh interpreters.
    assert 0.2 < only["ratio"] < 5


@pytest.mark.slow
def test_command_table_with_both_loops() -> None:
    pytest.importorskip("uvloop")
    done = run_bench("long", "--scale", "0.1", "--loop", "both")
    assert done.returncode == 0, done.stderr
    assert "long         asyncio" in done.stdout
    assert "long         uvloop" in done.stdout
    assert "uvloop vs asyncio" in done.stdout


def test_command_rejects_bad_input_in_one_line() -> None:
    done = run_bench("nope")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: bench: unknown workload 'nope'; "
        "choose from short, medium, long, rapid, backpressure, concurrent, errors")
    done = run_bench("--scale", "0")
    assert done.returncode == 2
    assert "--scale 0.0: expected a factor > 0" in done.stderr
