"""Benchmark: the reference pipeline on the seed's workloads against a bare asyncio.Queue.

For every workload, in the same invocation:

* the pipeline (``stress.pipeline:reference``) runs in a fresh interpreter (its own memory
  baseline): tokens/s, duration against the ideal paced duration, RSS growth, loss, and
  for paced workloads the quit latency under load;
* the ceiling runs in another fresh interpreter: a bare ``asyncio.Queue`` of the same
  capacity, one producer per conversation doing ``await queue.put(token)`` per token of
  the same size and a consumer doing ``await queue.get()`` per token, unpaced;

and the ratio pipeline/ceiling is reported, so the figures compare like with like on
whatever (noisy) machine runs them. Workloads whose measured run is a few milliseconds
are repeated in fresh interpreters and their median is reported.

``python -m stress.bench JOB_JSON`` is the child entry point; the parent is
``python -m stress bench`` (stress.commands.bench).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psutil

from stress.errors import ConfigError
from stress.scenario import Scenario
from stress.target import Stats

_MB = 1024 * 1024
LOOPS = ("asyncio", "uvloop")


@dataclass(frozen=True, kw_only=True)
class Workload:
    """A seed workload and the targets the reference pipeline is held to on it."""

    scenario: Scenario
    min_throughput: float | None = None  # tokens/s
    min_ratio: float | None = None  # pipeline / bare-queue ceiling
    max_memory_growth_mb: float | None = None
    max_memory_payload_factor: float | None = None  # growth <= factor x payload
    max_duration_error: float | None = None  # |duration - ideal| / ideal
    max_quit_latency_ms: float | None = None
    max_loss_pct: float | None = None
    measure_quit: bool = False
    repeat: int = 1  # fresh interpreters whose median is reported

    @property
    def name(self) -> str:
        return self.scenario.name


def _scenario(name: str, title: str, **fields: Any) -> Scenario:
    return Scenario(name=name, title=title, **fields)


WORKLOADS: tuple[Workload, ...] = (
    Workload(scenario=_scenario("short", "1M Short Messages", messages=1_000_000,
                                message_size=10),
             min_throughput=500_000, min_ratio=0.30, max_memory_growth_mb=30),
    Workload(scenario=_scenario("medium", "1M Medium Messages", messages=1_000_000,
                                message_size=100),
             min_throughput=400_000, max_memory_payload_factor=1.3),
    Workload(scenario=_scenario("long", "1K Long Messages", messages=1000,
                                message_size=10_000),
             min_throughput=50_000, repeat=5),
    Workload(scenario=_scenario("rapid", "Rapid Token Streaming", messages=1_000_000,
                                token_delay_us=10),
             max_duration_error=0.10, max_quit_latency_ms=20, measure_quit=True),
    Workload(scenario=_scenario("backpressure", "Backpressure Handling", messages=100_000,
                                channel_buffer=100, consumer_delay_us=100),
             max_loss_pct=0.0, max_duration_error=0.10, measure_quit=True),
    # The seed's next steps: figures only, beside the five.
    Workload(scenario=_scenario("concurrent", "Concurrent Conversations", messages=100_000,
                                conversations=10),
             max_loss_pct=0.0),
    Workload(scenario=_scenario("errors", "Error Injection", messages=10_000,
                                conversations=100, error_rate=0.1),
             max_loss_pct=0.0),
)


def workload_names() -> list[str]:
    return [w.name for w in WORKLOADS]


def select(names: Sequence[str]) -> list[Workload]:
    by_name = {w.name: w for w in WORKLOADS}
    for name in names:
        if name not in by_name:
            raise ConfigError(f"bench: unknown workload {name!r}; "
                              f"choose from {', '.join(by_name)}")
    return [w for w in WORKLOADS if not names or w.name in names]


def ideal_duration_s(scenario: Scenario) -> float | None:
    """How long pacing alone makes the run last (None when unpaced)."""
    producer = max(scenario.messages - 1, 0) * scenario.token_delay_us / 1e6
    consumer = scenario.expected_tokens * scenario.consumer_delay_us / 1e6
    ideal = max(producer, consumer)
    return ideal if ideal > 0 else None


def payload_mb(scenario: Scenario) -> float:
    return scenario.expected_tokens * scenario.message_size / _MB


# -- the child: one measured run in a fresh interpreter ----------------------------------


async def bare_queue(scenario: Scenario, stats: Stats) -> None:
    """The ceiling: per-token put/get on a bounded asyncio.Queue, no batching, no pacing."""
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=scenario.channel_buffer)
    size = scenario.message_size
    pattern = ("bare queue ceiling " * (size // 19 + 5))[: size + 64]

    async def produce() -> None:
        for index in range(scenario.messages):
            offset = index % 64
            await queue.put(pattern[offset : offset + size])  # a new str per token
            stats.messages_sent += 1
        await queue.put(None)

    async def consume() -> None:
        ended = 0
        while ended < scenario.conversations:
            token = await queue.get()
            if token is None:
                ended += 1
                stats.streams_completed += 1
            else:
                stats.tokens_received += 1

    async with asyncio.TaskGroup() as group:
        for _ in range(scenario.conversations):
            group.create_task(produce())
        group.create_task(consume())


async def _quit_under_load(target: Any, scenario: Scenario) -> dict[str, Any]:
    """Run again, set quit once tokens flow, time how long run() takes to return."""
    stats, quit_event = Stats(), asyncio.Event()
    task = asyncio.create_task(target.run(scenario, stats, quit_event))
    under_load = max(1, min(scenario.expected_tokens // 10, 10_000))
    while stats.tokens_received < under_load and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    if task.done():
        await task
        return {"quit_latency_ms": None}
    requested = time.perf_counter()
    quit_event.set()
    await task
    latency_ms = (time.perf_counter() - requested) * 1000
    current = asyncio.current_task()
    pending = [repr(t) for t in asyncio.all_tasks() if t is not current and not t.done()]
    return {"quit_latency_ms": latency_ms, "pending_after_quit": pending}


async def _measure(job: dict[str, Any]) -> dict[str, Any]:
    from stress.pipeline import reference

    scenario = Scenario.from_dict(job["scenario"])
    target = reference()
    process = psutil.Process()
    stats = Stats()
    gc.collect()
    rss_start = process.memory_info().rss
    started = time.perf_counter()
    if job["kind"] == "ceiling":
        await bare_queue(scenario, stats)
    else:
        await target.run(scenario, stats, asyncio.Event())
    duration = time.perf_counter() - started
    rss_end = process.memory_info().rss
    figures: dict[str, Any] = {
        "duration_s": duration,
        "memory_growth_mb": (rss_end - rss_start) / _MB,
        **dataclasses.asdict(stats),
    }
    if job["kind"] == "pipeline" and job.get("measure_quit"):
        figures.update(await _quit_under_load(target, scenario))
    return figures


def child_main(argv: list[str]) -> int:
    job = json.loads(argv[0])
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if job["loop"] == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        figures = runner.run(_measure(job))
    print(json.dumps(figures))
    return 0


# -- the parent: children, figures, targets ------------------------------------------------


class BenchError(Exception):
    """A benchmark child crashed or timed out."""


def run_child(kind: str, scenario: Scenario, loop: str, *, measure_quit: bool = False,
              timeout_s: float = 600.0) -> dict[str, Any]:
    job = {"kind": kind, "scenario": scenario.to_dict(), "loop": loop,
           "measure_quit": measure_quit}
    argv = [sys.executable, "-m", "stress.bench", json.dumps(job)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{scenario.name} {kind} on {loop}: no result within "
                         f"{timeout_s:g}s (killed)") from exc
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise BenchError(f"{scenario.name} {kind} on {loop}: child exited "
                         f"{done.returncode}: {tail}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@dataclass(frozen=True, kw_only=True)
class Check:
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
    checks: tuple[Check, ...]

    @property
    def target_ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["target_ok"] = self.target_ok
        return data


def _check(name: str, value: float | None, limit: float, *, at_most: bool,
           text: str) -> Check:
    ok = value is not None and (value <= limit if at_most else value >= limit)
    return Check(name=name, value=value, limit=limit, ok=ok, text=text)


def judge(workload: Workload, row: BenchRow) -> tuple[Check, ...]:
    checks: list[Check] = []
    if workload.min_throughput is not None:
        checks.append(_check("throughput", row.throughput, workload.min_throughput,
                             at_most=False, text=f"throughput {row.throughput:,.0f} >= "
                             f"{workload.min_throughput:,.0f} tokens/s"))
    if workload.min_ratio is not None:
        checks.append(_check("ratio", row.ratio, workload.min_ratio, at_most=False,
                             text=f"pipeline/ceiling {row.ratio:.2f} >= {workload.min_ratio}"))
    memory_limit = workload.max_memory_growth_mb
    if workload.max_memory_payload_factor is not None:
        memory_limit = workload.max_memory_payload_factor * row.payload_mb
    if memory_limit is not None:
        checks.append(_check("memory_growth", row.memory_growth_mb, memory_limit, at_most=True,
                             text=f"memory growth {row.memory_growth_mb:.1f} MB <= "
                             f"{memory_limit:.1f} MB"))
    if workload.max_duration_error is not None and row.ideal_duration_s:
        error = abs(row.duration_s - row.ideal_duration_s) / row.ideal_duration_s
        checks.append(_check("duration", error, workload.max_duration_error, at_most=True,
                             text=f"duration {row.duration_s:.3f}s within "
                             f"{workload.max_duration_error:.0%} of ideal "
                             f"{row.ideal_duration_s:.3f}s (off by {error:.1%})"))
    if workload.max_quit_latency_ms is not None:
        shown = "n/a" if row.quit_latency_ms is None else f"{row.quit_latency_ms:.2f}"
        checks.append(_check("quit_latency", row.quit_latency_ms, workload.max_quit_latency_ms,
                             at_most=True, text=f"quit latency {shown} ms <= "
                             f"{workload.max_quit_latency_ms:g} ms"))
    if workload.measure_quit:
        checks.append(_check("pending_after_quit", row.pending_after_quit, 0, at_most=True,
                             text=f"tasks left pending after quit: {row.pending_after_quit}"))
    if workload.max_loss_pct is not None:
        checks.append(_check("loss", row.loss_pct, workload.max_loss_pct, at_most=True,
                             text=f"loss {row.loss_pct:.2f}% <= {workload.max_loss_pct:g}%"))
    return tuple(checks)


def measure(workload: Workload, loop: str, scale: float,
            ceilings: dict[tuple[Any, ...], dict[str, Any]] | None = None) -> BenchRow:
    """Run the pipeline (``workload.repeat`` children) and its ceiling; build the row."""
    scenario = workload.scenario.scaled(scale)
    ideal = ideal_duration_s(scenario)
    timeout_s = 300.0 + 3 * (ideal or 0.0)
    runs = [run_child("pipeline", scenario, loop, measure_quit=workload.measure_quit,
                      timeout_s=timeout_s) for _ in range(workload.repeat)]
    runs.sort(key=lambda f: f["tokens_received"] / max(f["duration_s"], 1e-9))
    median = runs[len(runs) // 2]
    key = (scenario.messages, scenario.message_size, scenario.channel_buffer,
           scenario.conversations, loop)
    cache = ceilings if ceilings is not None else {}
    if key not in cache:
        ceiling_runs = [run_child("ceiling", scenario, loop, timeout_s=timeout_s)
                        for _ in range(workload.repeat)]
        ceiling_runs.sort(key=lambda f: f["tokens_received"] / max(f["duration_s"], 1e-9))
        cache[key] = ceiling_runs[len(ceiling_runs) // 2]
    ceiling = cache[key]
    throughput = median["tokens_received"] / max(median["duration_s"], 1e-9)
    ceiling_throughput = ceiling["tokens_received"] / max(ceiling["duration_s"], 1e-9)
    sent = median["messages_sent"]
    pending = median.get("pending_after_quit")
    row = BenchRow(
        name=workload.name, title=scenario.title, loop=loop, runs=len(runs),
        throughput=throughput, ceiling=ceiling_throughput,
        ratio=throughput / ceiling_throughput if ceiling_throughput else 0.0,
        duration_s=median["duration_s"], ideal_duration_s=ideal,
        memory_growth_mb=max(r["memory_growth_mb"] for r in runs),
        ceiling_memory_growth_mb=ceiling["memory_growth_mb"],
        payload_mb=payload_mb(scenario),
        quit_latency_ms=median.get("quit_latency_ms"),
        pending_after_quit=None if pending is None else len(pending),
        loss_pct=100.0 * (sent - median["tokens_received"]) / sent if sent else 0.0,
        messages_sent=sent, tokens_received=median["tokens_received"],
        streams_completed=median["streams_completed"], errors=median["errors"],
        checks=(),
    )
    return dataclasses.replace(row, checks=judge(workload, row))


def run_bench(workloads: Iterable[Workload], loops: Sequence[str], scale: float,
              progress: Callable[[str], None] = lambda _: None) -> list[BenchRow]:
    rows: list[BenchRow] = []
    ceilings: dict[tuple[Any, ...], dict[str, Any]] = {}
    for workload in workloads:
        for loop in loops:
            progress(f"bench: {workload.name} on {loop} ...")
            row = measure(workload, loop, scale, ceilings)
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
    if len({r.loop for r in rows}) > 1:
        lines.append("")
        lines.append("uvloop vs asyncio (tokens/s):")
        by_key = {(r.name, r.loop): r for r in rows}
        for r in rows:
            other = by_key.get((r.name, "uvloop"))
            if r.loop == "asyncio" and other is not None and r.throughput:
                lines.append(f"  {r.name:<13} {r.throughput:>11,.0f} -> {other.throughput:>11,.0f}"
                             f"  ({other.throughput / r.throughput:.2f}x)")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(child_main(sys.argv[1:]))
