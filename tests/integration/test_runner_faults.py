"""Every failure the kit claims to detect, injected and caught through the real runner.

Each test runs ``python -m stress run`` in a subprocess against one of the broken pipelines in
stress.pipeline.faults, on small scenarios that the reference pipeline passes (the last test
proves it), so a failure here is the fault's doing and not the scenario's.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from stress.engine.verdicts import NOT_VERIFIED_NOTE
from stress.errors import ExitCode
from stress.pipeline import faults
from tests.integration.conftest import log_of, results_of, run_stress

pytestmark = pytest.mark.slow

REFERENCE = "stress.pipeline:reference"

# Sized so that each run takes about a second, with wide margins both ways (measured on a
# loaded 2-core machine): the reference streams these 20,000 tokens in ~0.01 s, grows its RSS
# by ~0.3 MB and leaks ~0.1 MB over 50,000 tokens; the leak fault grows by ~66 MB and keeps
# ~64 MB alive there; the blocking fault cannot exceed 1,000 tokens/sec (1 ms sleep each).
SCENARIOS = """\
scenarios:
  hang:
    title: Hang Check
    messages: 20000
    timeout_s: 2
  slow:
    title: Throughput Check
    messages: 1000
    timeout_s: 30
    thresholds: {min_throughput: 5000}
  loss:
    title: Loss Check
    messages: 20000
    channel_buffer: 100
    timeout_s: 30
    thresholds: {max_loss_pct: 1.0}
  growth:
    title: Growth Check
    messages: 50000
    timeout_s: 30
    thresholds: {max_memory_growth_mb: 20, max_leaked_mb: 10}
  leaked:
    title: Leak Check
    messages: 50000
    timeout_s: 30
    thresholds: {max_leaked_mb: 10}
"""

# The seed's diagnosis bullets, per failure ("Failure Scenarios" in the seed document).
SEED_DEADLOCK = ("Deadlock in message channel", "Blocking call in async context",
                 "Channel buffer exhaustion without backpressure")
SEED_LOSS = ("Incorrect channel buffer policy", "Consumer task panicked",
             "Race condition in message counting")
SEED_MEMORY = ("Messages not freed after processing", "Accumulating buffer without clearing",
               "Circular reference preventing cleanup")

PROFILE_FILE = re.compile(r"-(memray|leaks|cpu)[-.]")


@pytest.fixture
def scenarios(tmp_path: Path) -> Path:
    path = tmp_path / "faults.yaml"
    path.write_text(SCENARIOS, encoding="utf-8")
    return path


def run(scenarios: Path, out: Path, target: str, *names: str,
        evidence: bool = False) -> tuple[int, str]:
    flags = [] if evidence else ["--no-evidence"]
    done = run_stress("run", *names, "--scenarios", scenarios, "--target", target,
                      "--out", out, *flags, timeout=120)
    return done.returncode, done.stdout + done.stderr


def failure_of(result: dict[str, Any], kind: str) -> dict[str, Any]:
    matching: list[dict[str, Any]] = [f for f in result["failures"] if f["kind"] == kind]
    assert len(matching) == 1, result["failures"]
    return matching[0]


def task_dumps(log: str) -> dict[str, str]:
    """The child's asyncio task dump: task name -> its repr and await chain."""
    assert "=== asyncio tasks ===" in log, log
    section = log.split("=== asyncio tasks ===", 1)[1].split("=== end of stacks ===", 1)[0]
    tasks = {}
    for block in section.split("\n<Task ")[1:]:
        name = re.match(r"\w+ name='([^']+)'", block)
        assert name is not None, block
        tasks[name.group(1)] = block
    return tasks


def profile_files(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if PROFILE_FILE.search(p.name))


def line_of(source: str, function: Any) -> int:
    """The line number of ``source`` inside ``function``'s body."""
    lines, first = inspect.getsourcelines(function)
    (index,) = [i for i, line in enumerate(lines) if source in line]
    return first + index


def test_reference_passes_the_scenarios_the_faults_fail(tmp_path: Path,
                                                        scenarios: Path) -> None:
    out = tmp_path / "out"
    code, output = run(scenarios, out, REFERENCE)
    assert code == ExitCode.PASSED, output
    results = results_of(out)
    assert {name: r["status"] for name, r in results.items()} == {
        "hang": "passed", "slow": "passed", "loss": "passed", "growth": "passed",
        "leaked": "passed"}
    assert results["loss"]["metrics"]["loss_pct"] == 0.0
    growth = results["growth"]["metrics"]
    # Far from the limits the leak test's fault crosses, so that test is not tautological.
    assert growth["memory_growth_mb"] < 20 / 4
    assert growth["leaked_mb"] is not None
    assert growth["leaked_mb"] < 10 / 4


def test_deadlock_is_a_timeout_with_the_stalled_tasks_named(tmp_path: Path,
                                                            scenarios: Path) -> None:
    out = tmp_path / "out"
    code, output = run(scenarios, out, "stress.pipeline.faults:deadlock", "hang")
    assert code == ExitCode.CRASHED_OR_HUNG, output
    result = results_of(out)["hang"]
    assert result["status"] == "timeout"
    failure = failure_of(result, "timeout")
    assert failure["message"].startswith("Test should complete within timeout (2s), took 2.")
    assert failure["headline"] == "FAILURE: Possible deadlock detected"
    assert tuple(failure["diagnosis"]) == SEED_DEADLOCK
    # The sampler kept counting while the loop sat idle: the consumer stopped where it stalls.
    assert result["metrics"]["tokens_received"] == faults.DEADLOCK_AFTER_MAX
    assert result["metrics"]["streams_completed"] == 0
    # Its tokens went through the harness until it hung: the counts are the verifier's.
    assert result["metrics"]["verified"] is True
    assert NOT_VERIFIED_NOTE not in result["notes"]
    assert NOT_VERIFIED_NOTE not in output

    log = log_of(out, "hang")
    assert "FAILURE: Possible deadlock detected\nDiagnosis: System blocked, likely due to:\n" \
           + "".join(f"- {line}\n" for line in SEED_DEADLOCK) in log
    assert "=== Stacks of every thread (SIGUSR1) ===" in log
    tasks = task_dumps(log)
    # The consumer waits for an ack nobody sends; the producer waits on the full channel.
    assert "StallingConsumer.run()" in tasks["consumer"]
    assert re.search(r'faults\.py", line \d+, in _wait_for_ack', tasks["consumer"])
    assert re.search(r'channel\.py", line \d+, in wait_writable', tasks["backend-0"])
    assert profile_files(out) == []


def test_blocking_consumer_is_a_timeout_at_scale_and_slow_below_it(tmp_path: Path,
                                                                   scenarios: Path) -> None:
    """time.sleep in the consumer: what the kit says depends on whether the run can finish.

    The seed names "Blocking call in async context" for both: as a cause of a timeout (the
    hang scenario cannot finish in time) and, below the timeout, as a cause of throughput
    below baseline.
    """
    out = tmp_path / "out"
    code, output = run(scenarios, out, "stress.pipeline.faults:blocking", "hang", "slow")
    assert code == ExitCode.CRASHED_OR_HUNG, output  # a hang outranks a missed threshold
    results = results_of(out)

    hang = results["hang"]
    assert hang["status"] == "timeout"
    timeout = failure_of(hang, "timeout")
    assert timeout["headline"] == "FAILURE: Possible deadlock detected"
    assert "Blocking call in async context" in timeout["diagnosis"]
    assert 0 < hang["metrics"]["tokens_received"] < 20000
    # The stack dump catches the event loop's thread inside the blocking call itself.
    log = log_of(out, "hang")
    threads = log.split("=== Stacks of every thread (SIGUSR1) ===", 1)[1].split(
        "=== asyncio tasks ===", 1)[0]
    sleep_line = line_of("time.sleep(", faults.BlockingConsumer.render)
    assert re.search(rf'faults\.py", line {sleep_line} in render', threads), threads
    # ...and the timeout's diagnosis names that call first.
    assert timeout["diagnosis"][0].startswith(
        f"event loop blocked in a synchronous call at {faults.__file__}:{sleep_line} (render)")

    slow = results["slow"]
    assert slow["status"] == "failed"
    throughput = failure_of(slow, "throughput")
    assert throughput["headline"] == "FAILURE: Throughput below baseline"
    assert "Blocking call in async context" in throughput["diagnosis"]
    assert throughput["message"].startswith("Throughput too low: ")
    assert throughput["message"].endswith(" tokens/sec (expected > 5000)")
    # 1,000 sleeps of at least 1 ms each: the run cannot beat 1,000 tokens/sec.
    assert slow["metrics"]["tokens_received"] == 1000
    assert slow["metrics"]["throughput"] <= 1000
    assert [f["kind"] for f in slow["failures"]] == ["throughput"]
    assert profile_files(out) == []


def test_lossy_channel_is_a_loss_failure_in_the_seed_words(tmp_path: Path,
                                                           scenarios: Path) -> None:
    out = tmp_path / "out"
    code, output = run(scenarios, out, "stress.pipeline.faults:lossy", "loss")
    assert code == ExitCode.THRESHOLD_FAILED, output
    result = results_of(out)["loss"]
    assert result["status"] == "failed"
    metrics = result["metrics"]
    assert metrics["messages_sent"] == 20000
    assert metrics["loss_pct"] > result["thresholds"]["max_loss_pct"]
    assert metrics["loss_pct"] == pytest.approx(
        (20000 - metrics["tokens_received"]) / 20000 * 100)
    failure = failure_of(result, "loss")
    assert failure["message"] == (f"Message loss too high: {metrics['loss_pct']:.2f}% "
                                  f"(sent: 20000, received: {metrics['tokens_received']})")
    # The seed's message and diagnosis; the headline fits the scenario (no consumer pacing,
    # so no "under backpressure").
    assert failure["headline"] == "FAILURE: Significant message loss"
    assert tuple(failure["diagnosis"]) == SEED_LOSS
    log = log_of(out, "loss")
    assert failure["message"] in log
    assert "FAILURE: Significant message loss\n" \
           "Diagnosis: Messages dropped, likely due to:\n" \
           + "".join(f"- {line}\n" for line in SEED_LOSS) in log
    assert f"  Message loss: {metrics['loss_pct']:.2f}%" in log
    # --no-evidence: no profiled rerun, no profile files.
    assert "--- profiling run" not in log
    assert profile_files(out) == []


def test_leak_fails_memory_growth_and_memray_names_the_leaking_line(tmp_path: Path,
                                                                    scenarios: Path) -> None:
    out = tmp_path / "out"
    code, output = run(scenarios, out, "stress.pipeline.faults:leak", "growth")
    assert code == ExitCode.THRESHOLD_FAILED, output
    result = results_of(out)["growth"]
    assert result["status"] == "failed"
    assert result["metrics"]["memory_growth_mb"] > 20
    assert result["metrics"]["leaked_mb"] > 10

    growth = failure_of(result, "memory")
    assert re.fullmatch(r"Memory growth too high: \d+\.\d\d MB \(expected < 20MB\)",
                        growth["message"])
    assert growth["headline"] == "FAILURE: Unbounded memory growth detected"
    assert tuple(growth["diagnosis"]) == SEED_MEMORY

    leak = failure_of(result, "leak")
    assert re.fullmatch(r"Leaked memory too high: \d+\.\d\d MB still allocated at exit "
                        r"\(expected < 10MB\)", leak["message"])
    assert leak["headline"] == "FAILURE: Memory leak detected"
    # memray's report: the largest site still alive at exit is the fault's own bookkeeping.
    top_site = next(line for line in leak["diagnosis"] if line.lstrip().startswith("1. "))
    assert "at render (stress/pipeline/faults.py:" in top_site

    log = log_of(out, "growth")
    assert "FAILURE: Unbounded memory growth detected\n" \
           "Diagnosis: Memory leak, likely due to:\n" \
           + "".join(f"- {line}\n" for line in SEED_MEMORY) in log
    assert "FAILURE: Memory leak detected\n" \
           "Diagnosis: Memory leak, still allocated at exit (largest first):\n" in log
    # The leak threshold is judged on a memray run even with --no-evidence; no CPU rerun.
    assert "--- profiling run: memory" in log
    assert "--- profiling run: cpu" not in log
    assert (out / "growth-memray-flamegraph.html").is_file()
    assert not (out / "growth-cpu-flamegraph.svg").exists()


def test_a_leak_found_by_memray_alone_still_gets_cpu_evidence(tmp_path: Path,
                                                              scenarios: Path) -> None:
    out = tmp_path / "out"
    code, output = run(scenarios, out, "stress.pipeline.faults:leak", "leaked", evidence=True)
    assert code == ExitCode.THRESHOLD_FAILED, output
    result = results_of(out)["leaked"]
    assert [f["kind"] for f in result["failures"]] == ["leak"]  # no other threshold is set
    log = log_of(out, "leaked")
    # memray judged the leak first; the CPU rerun for the evidence came after it, once.
    assert log.count("--- profiling run: memory") == 1
    assert log.count("--- profiling run: cpu") == 1
    assert log.index("--- profiling run: memory") < log.index("--- profiling run: cpu")
    if not any("ptrace not permitted" in note for note in result["notes"]):
        assert (out / result["artifacts"]["cpu_flamegraph"]).is_file()


def test_a_failure_gets_profiled_evidence_linked_from_the_reports(tmp_path: Path,
                                                                  scenarios: Path) -> None:
    out = tmp_path / "out"
    code, output = run(scenarios, out, "stress.pipeline.faults:lossy", "loss", evidence=True)
    assert code == ExitCode.THRESHOLD_FAILED, output
    result = results_of(out)["loss"]
    assert result["status"] == "failed"
    assert [f["kind"] for f in result["failures"]] == ["loss"]  # the reruns are not judged
    artifacts = result["artifacts"]
    log = log_of(out, "loss")
    report = (out / "report.html").read_text(encoding="utf-8")
    summary = (out / "summary.md").read_text(encoding="utf-8")
    # The failure and its profiles in summary.md, and in report.html.
    assert "Message loss too high" in summary
    assert "report.html" in summary

    assert "--- profiling run: memory" in log
    memray = artifacts["memray_flamegraph"]
    assert memray == "loss-memray-flamegraph.html"
    assert "<title>memray - flamegraph report</title>" in (out / memray).read_text(
        encoding="utf-8")
    assert f'href="{memray}"' in report
    assert f"[{memray}]({memray})" in summary
    assert memray in _artifacts_line(output)

    assert "--- profiling run: cpu" in log
    ptrace = [note for note in result["notes"] if "ptrace not permitted" in note]
    if ptrace:
        assert "cpu_flamegraph" not in artifacts
        pytest.skip(f"this machine forbids ptrace, so only the memray evidence was checked: "
                    f"{ptrace[0]}")
    cpu = artifacts["cpu_flamegraph"]
    assert cpu == "loss-cpu-flamegraph.svg"
    svg = (out / cpu).read_text(encoding="utf-8")
    assert svg.startswith("<svg ")
    assert f"[{cpu}]({cpu})" in summary
    assert "(stress/engine/child.py:" in svg  # sampled stacks of the scenario child itself
    assert f'href="{cpu}"' in report
    assert cpu in _artifacts_line(output)
    assert '<span class="missing">' not in report


def _artifacts_line(output: str) -> str:
    """The text block's list of the scenario's files (stdout, and the scenario log)."""
    (line,) = [line for line in output.splitlines() if line.startswith("Artifacts: ")]
    return line
