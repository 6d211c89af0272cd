"""Benchmark: a target on the seed's workloads against the bare asyncio.Queue ceiling.

For every workload, in the same invocation and through the measuring engine
(stress.engine.supervise.run_child, each run a fresh interpreter with its own memory
baseline): the target (by default the reference pipeline, ``stress.pipeline:reference``)
for tokens/s, duration against the ideal paced duration, RSS growth, loss, and for paced
workloads the quit latency under load; and the ceiling (``stress.bench.ceiling:bare_queue``,
same sizes, unpaced). The ratio target/ceiling compares like with like on whatever (noisy)
machine runs them. Workloads whose measured run is a few milliseconds are repeated in fresh
interpreters and their median run is reported.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from stress.bench.workloads import Workload, ideal_duration_s, payload_mb
from stress.config.scenario import Scenario
from stress.engine.options import Deadlines
from stress.engine.protocol import ChildFigures, Loop, QuitFigures, RunFigures
from stress.engine.supervise import StopRequest, run_child
from stress.errors import ExitCode, StressError
from stress.stats import median_index, throughput
from stress.target import DEFAULT_TARGET

CEILING_TARGET = "stress.bench.ceiling:bare_queue"


class BenchError(StressError):
    """A benchmark child crashed, timed out or was interrupted."""

    exit_code = ExitCode.CRASHED_OR_HUNG


@dataclass(frozen=True, kw_only=True)
class Measured:
    """One finished child run: its measured run and, when asked, quit under load."""

    run: RunFigures
    quit: QuitFigures | None

    @property
    def throughput(self) -> float:
        return throughput(self.run.tokens_received, self.run.duration_s)

    @property
    def memory_growth_mb(self) -> float:
        return self.run.rss_end_mb - self.run.rss_start_mb


def run_target(target: str, scenario: Scenario, loop: Loop, *, measure_quit: bool = False,
               timeout_s: float = 600.0, stop: StopRequest | None = None) -> Measured:
    """One measured run of ``target`` in a fresh interpreter; BenchError if it did not finish."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as log_file:
        run = run_child(scenario, target=target, loop=loop, log_file=log_file,
                        deadlines=Deadlines(run_s=timeout_s), stop=stop,
                        measure_quit=measure_quit)
        figures: ChildFigures | None = run.figures
        if run.status == "ok" and figures is not None and figures.run is not None:
            return Measured(run=figures.run, quit=figures.quit)
        log_file.seek(0)
        tail = " | ".join(log_file.read().strip().splitlines()[-3:])
    how = {"timeout": f"no result within its {run.phase} deadline (killed)",
           "interrupted": "interrupted"}.get(run.status, f"child exited {run.returncode}")
    raise BenchError(f"{scenario.name} {target} on {loop}: {how}: {tail}")


@dataclass(frozen=True, kw_only=True)
class BenchCheck:
    name: str  # e.g. "throughput"
    value: float | None
    limit: float
    ok: bool
    text: str  # e.g. "throughput 812,345 >= 500,000 tokens/s"


@dataclass(frozen=True, kw_only=True)
class BenchRow:
    name: str
    title: str
    loop: str
    runs: int
    throughput: float  # tokens received per second of the measured run
    ceiling: float  # the bare asyncio.Queue's tokens/s, same sizes, same loop
    ratio: float
    duration_s: float
    ideal_duration_s: float | None
    memory_growth_mb: float
    ceiling_memory_growth_mb: float
    payload_mb: float
    quit_latency_ms: float | None
    pending_after_quit: int | None
    loss_pct: float
    messages_sent: int
    tokens_received: int
    streams_completed: int
    errors: int
    checks: tuple[BenchCheck, ...]

    @property
    def target_ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["target_ok"] = self.target_ok
        return data


def _check(name: str, value: float | None, limit: float, *, at_most: bool,
           text: str) -> BenchCheck:
    ok = value is not None and (value <= limit if at_most else value >= limit)
    return BenchCheck(name=name, value=value, limit=limit, ok=ok, text=text)


def _duration_check(workload: Workload, row: BenchRow) -> list[BenchCheck]:
    if workload.max_duration_error is None or not row.ideal_duration_s:
        return []
    error = abs(row.duration_s - row.ideal_duration_s) / row.ideal_duration_s
    return [_check("duration", error, workload.max_duration_error, at_most=True,
                   text=f"duration {row.duration_s:.3f}s within "
                   f"{workload.max_duration_error:.0%} of ideal "
                   f"{row.ideal_duration_s:.3f}s (off by {error:.1%})")]


def _quit_checks(workload: Workload, row: BenchRow) -> list[BenchCheck]:
    found: list[BenchCheck] = []
    if workload.max_quit_latency_ms is not None:
        shown = "n/a" if row.quit_latency_ms is None else f"{row.quit_latency_ms:.2f}"
        found.append(_check("quit_latency", row.quit_latency_ms, workload.max_quit_latency_ms,
                            at_most=True, text=f"quit latency {shown} ms <= "
                            f"{workload.max_quit_latency_ms:g} ms"))
    if workload.measure_quit:
        found.append(_check("pending_after_quit", row.pending_after_quit, 0, at_most=True,
                            text=f"tasks left pending after quit: {row.pending_after_quit}"))
    return found


def checks(workload: Workload, row: BenchRow) -> tuple[BenchCheck, ...]:
    """Each of the workload's targets against the row's figures."""
    found: list[BenchCheck] = []
    if workload.min_throughput is not None:
        found.append(_check("throughput", row.throughput, workload.min_throughput,
                            at_most=False, text=f"throughput {row.throughput:,.0f} >= "
                            f"{workload.min_throughput:,.0f} tokens/s"))
    if workload.min_ratio is not None:
        found.append(_check("ratio", row.ratio, workload.min_ratio, at_most=False,
                            text=f"pipeline/ceiling {row.ratio:.2f} >= {workload.min_ratio}"))
    memory_limit = workload.max_memory_growth_mb
    if workload.max_memory_payload_factor is not None:
        memory_limit = workload.max_memory_payload_factor * row.payload_mb
    if memory_limit is not None:
        found.append(_check("memory_growth", row.memory_growth_mb, memory_limit, at_most=True,
                            text=f"memory growth {row.memory_growth_mb:.1f} MB <= "
                            f"{memory_limit:.1f} MB"))
    found += _duration_check(workload, row)
    found += _quit_checks(workload, row)
    if workload.max_loss_pct is not None:
        found.append(_check("loss", row.loss_pct, workload.max_loss_pct, at_most=True,
                            text=f"loss {row.loss_pct:.2f}% <= {workload.max_loss_pct:g}%"))
    return tuple(found)


def _median(runs: list[Measured]) -> Measured:
    return runs[median_index([r.throughput for r in runs])]


@dataclass(frozen=True, kw_only=True)
class BenchPlan:
    """What one bench invocation measures: which target, on which loops, at what scale."""

    target: str = DEFAULT_TARGET
    loops: tuple[Loop, ...] = ("asyncio",)
    scale: float = 1.0


def measure(workload: Workload, loop: Loop, scale: float,
            ceilings: dict[tuple[Any, ...], Measured] | None = None, *,
            target: str = DEFAULT_TARGET, stop: StopRequest | None = None) -> BenchRow:
    """Run the target (``workload.repeat`` children) and its ceiling; build the row."""
    scenario = workload.scenario.scaled(scale)
    ideal = ideal_duration_s(scenario)
    timeout_s = 300.0 + 3 * (ideal or 0.0)
    runs = [run_target(target, scenario, loop, measure_quit=workload.measure_quit,
                       timeout_s=timeout_s, stop=stop) for _ in range(workload.repeat)]
    chosen = _median(runs)
    key = (scenario.messages, scenario.message_size, scenario.channel_buffer,
           scenario.conversations, loop)
    cache = ceilings if ceilings is not None else {}
    if key not in cache:
        cache[key] = _median([run_target(CEILING_TARGET, scenario, loop, timeout_s=timeout_s,
                                         stop=stop) for _ in range(workload.repeat)])
    ceiling = cache[key]
    figures = chosen.run
    sent = figures.messages_sent
    quit_ = chosen.quit
    row = BenchRow(
        name=workload.name, title=scenario.title, loop=loop, runs=len(runs),
        throughput=chosen.throughput, ceiling=ceiling.throughput,
        ratio=chosen.throughput / ceiling.throughput if ceiling.throughput else 0.0,
        duration_s=figures.duration_s, ideal_duration_s=ideal,
        memory_growth_mb=max(r.memory_growth_mb for r in runs),
        ceiling_memory_growth_mb=ceiling.memory_growth_mb,
        payload_mb=payload_mb(scenario),
        quit_latency_ms=quit_.latency_ms if quit_ is not None else None,
        pending_after_quit=len(quit_.pending) if quit_ is not None else None,
        loss_pct=100.0 * (sent - figures.tokens_received) / sent if sent else 0.0,
        messages_sent=sent, tokens_received=figures.tokens_received,
        streams_completed=figures.streams_completed, errors=figures.errors,
        checks=(),
    )
    return dataclasses.replace(row, checks=checks(workload, row))


def run_bench(workloads: Iterable[Workload], plan: BenchPlan,
              progress: Callable[[str], None] = lambda _: None) -> list[BenchRow]:
    """Every workload on every loop; a SIGINT or SIGTERM stops the child and the bench."""
    rows: list[BenchRow] = []
    ceilings: dict[tuple[Any, ...], Measured] = {}
    stop = StopRequest()
    with stop.installed():
        for workload in workloads:
            for loop in plan.loops:
                progress(f"bench: {workload.name} on {loop} ...")
                row = measure(workload, loop, plan.scale, ceilings, target=plan.target,
                              stop=stop)
                progress(f"bench: {workload.name} on {loop}: {row.throughput:,.0f} tokens/s, "
                         f"ceiling {row.ceiling:,.0f}, ratio {row.ratio:.2f}")
                rows.append(row)
    return rows


def environment_line(loops: Sequence[str], scale: float) -> str:
    parts = [f"Python {platform.python_version()}", f"{os.cpu_count()} CPUs",
             platform.machine()]
    if "uvloop" in loops:
        from importlib.metadata import version

        parts.append(f"uvloop {version('uvloop')}")
    parts.append(f"--scale {scale:g}")
    return ", ".join(parts)


def format_table(rows: Sequence[BenchRow]) -> str:
    header = (f"{'workload':<13}{'loop':<9}{'tokens/s':>11}{'ceiling':>11}{'ratio':>7}"
              f"{'duration':>10}{'ideal':>9}{'memory':>10}{'quit':>9}{'loss':>8}  targets")
    lines = [header, "-" * len(header)]
    for r in rows:
        ideal = f"{r.ideal_duration_s:.2f}s" if r.ideal_duration_s else "-"
        quit_ms = f"{r.quit_latency_ms:.2f}ms" if r.quit_latency_ms is not None else "-"
        verdict = ("met" if r.target_ok else "MISSED") if r.checks else "-"
        # A paced workload's rate is set by its pacing; the ceiling is unpaced.
        ratio = f"({r.ratio:.2f})" if r.ideal_duration_s else f"{r.ratio:.2f}"
        lines.append(
            f"{r.name:<13}{r.loop:<9}{r.throughput:>11,.0f}{r.ceiling:>11,.0f}{ratio:>7}"
            f"{r.duration_s:>9.3f}s{ideal:>9}{r.memory_growth_mb:>7.1f} MB{quit_ms:>9}"
            f"{r.loss_pct:>7.2f}%  {verdict}")
    if any(r.ideal_duration_s for r in rows):
        lines.append("(ratio): a paced workload; its rate is set by pacing, the ceiling is not.")
    lines.append("")
    lines.append("Targets:")
    for r in rows:
        for check in r.checks:
            mark = "met   " if check.ok else "MISSED"
            lines.append(f"  {mark} {r.name}/{r.loop}: {check.text}")
    lines += _loop_comparison(rows)
    return "\n".join(lines)


def _loop_comparison(rows: Sequence[BenchRow]) -> list[str]:
    if len({r.loop for r in rows}) <= 1:
        return []
    lines = ["", "uvloop vs asyncio (tokens/s):"]
    by_key = {(r.name, r.loop): r for r in rows}
    for r in rows:
        other = by_key.get((r.name, "uvloop"))
        if r.loop == "asyncio" and other is not None and r.throughput:
            lines.append(f"  {r.name:<13} {r.throughput:>11,.0f} -> {other.throughput:>11,.0f}"
                         f"  ({other.throughput / r.throughput:.2f}x)")
    return lines
