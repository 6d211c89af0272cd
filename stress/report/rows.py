"""The seed's two tables as rows of text, shared by summary.md and report.html.

Performance Comparison: | Test | Messages | Duration | Throughput | Memory | Status |
Baseline Comparison:    | Metric | Target | Achieved | Delta |  (delta = achieved vs target)
"""

from __future__ import annotations

from dataclasses import dataclass

from stress.report.text import shows_memory
from stress.results import Result

ARTIFACT_LABELS: dict[str, str] = {
    "log": "Log",
    "memray_flamegraph": "Memory flamegraph (memray)",
    "memray_leaks_flamegraph": "Leaks flamegraph (memray --leaks)",
    "leak_report": "Leak report",
    "memray_stats_txt": "Memory statistics (text)",
    "memray_stats_json": "Memory statistics (JSON)",
    "memray_capture": "memray capture (open with `memray`)",
    "cpu_flamegraph": "CPU flamegraph",
    "cpu_speedscope": "CPU profile (speedscope JSON)",
}


def labelled_artifacts(result: Result, *, leave_out: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """A scenario's files as (label, path): the log first, then memory, then CPU profiles."""
    order = list(ARTIFACT_LABELS)
    kept = [(role, path) for role, path in result.artifacts.items() if role not in leave_out]
    ordered = sorted(kept,
                     key=lambda item: (order.index(item[0]) if item[0] in order else len(order),
                                       item[0]))
    return [(ARTIFACT_LABELS.get(role, role.replace("_", " ").capitalize()), path)
            for role, path in ordered]

STATUS_LABEL = {
    "passed": "✅ PASS",
    "failed": "❌ FAIL",
    "timeout": "⏱️ TIMEOUT",
    "crashed": "💥 CRASH",
    "interrupted": "⚠️ INTERRUPTED",
}


def abbreviate(value: float) -> str:
    """22124 -> "22K", 289 -> "289", 1_500_000 -> "1.5M": the seed's compact figures."""
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:.1f}".removesuffix(".0") + "M"
    if size >= 1e3:
        return f"{value / 1e3:.0f}K"
    return f"{value:.0f}"


def percent(value: float) -> str:
    """0.0 -> "0%", 15.43 -> "15.43%", 1.5 -> "1.5%"."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{'0' if text == '-0' else text}%"


def megabytes(value: float) -> str:
    return f"{value:.0f} MB" if abs(value) >= 10 else f"{value:.1f} MB"


def milliseconds(value: float) -> str:
    """1000 -> "1s", 234 -> "234ms": the seed writes whole seconds as seconds."""
    if value >= 1000 and value % 1000 == 0:
        return f"{value / 1000:.0f}s"
    return f"{value:.0f}ms"


def signed_percent(change_pct: float) -> str:
    return f"{change_pct:+.0f}%"


def delta(achieved: float, target: float) -> str:
    if target == 0:
        return "N/A"
    return signed_percent((achieved - target) / target * 100)


def scenario_label(result: Result) -> str:
    """"Short (1M)": the scenario name and its size, as the seed's first column."""
    name = result.scenario.name
    return f"{name[:1].upper()}{name[1:]} ({abbreviate(result.scenario.expected_tokens)})"


@dataclass(frozen=True, kw_only=True)
class ThresholdRow:
    metric: str  # "Throughput (short)"
    target: str  # "> 10K"
    achieved: str  # "22K"
    delta: str  # "+121%"
    met: bool | None  # None: the metric was not measured


@dataclass(frozen=True, kw_only=True)
class PerformanceRow:
    test: str
    messages: str
    duration: str
    throughput: str
    memory: str
    status: str
    passed: bool


def threshold_rows(result: Result) -> list[ThresholdRow]:
    limits, m, name = result.scenario.thresholds, result.metrics, result.scenario.name
    rows: list[ThresholdRow] = []
    if limits.min_throughput is not None:
        rows.append(ThresholdRow(
            metric=f"Throughput ({name})", target=f"> {abbreviate(limits.min_throughput)}",
            achieved=abbreviate(m.throughput), delta=delta(m.throughput, limits.min_throughput),
            met=m.throughput > limits.min_throughput))
    if limits.max_memory_growth_mb is not None:
        rows.append(ThresholdRow(
            metric=f"Memory ({name})", target=f"< {megabytes(limits.max_memory_growth_mb)}",
            achieved=megabytes(m.memory_growth_mb),
            delta=delta(m.memory_growth_mb, limits.max_memory_growth_mb),
            met=m.memory_growth_mb < limits.max_memory_growth_mb))
    if limits.max_quit_latency_ms is not None:
        latency = m.quit_latency_ms
        rows.append(ThresholdRow(
            metric=f"Quit latency ({name})", target=f"< {milliseconds(limits.max_quit_latency_ms)}",
            achieved="N/A" if latency is None else milliseconds(latency),
            delta="N/A" if latency is None else delta(latency, limits.max_quit_latency_ms),
            met=None if latency is None else latency < limits.max_quit_latency_ms))
    if limits.max_loss_pct is not None:
        rows.append(ThresholdRow(
            metric=f"Message loss ({name})", target=f"< {percent(limits.max_loss_pct)}",
            achieved=percent(m.loss_pct), delta=delta(m.loss_pct, limits.max_loss_pct),
            met=m.loss_pct < limits.max_loss_pct))
    if limits.max_leaked_mb is not None:
        leaked = m.leaked_mb
        rows.append(ThresholdRow(
            metric=f"Leaked at exit ({name})", target=f"< {megabytes(limits.max_leaked_mb)}",
            achieved="N/A" if leaked is None else megabytes(leaked),
            delta="N/A" if leaked is None else delta(leaked, limits.max_leaked_mb),
            met=None if leaked is None else leaked < limits.max_leaked_mb))
    return rows


def performance_row(result: Result) -> PerformanceRow:
    m = result.metrics
    return PerformanceRow(
        test=scenario_label(result),
        messages=f"{result.scenario.expected_tokens:,}",
        duration=f"{m.duration_s:.1f}s",
        throughput=f"{abbreviate(m.throughput)} msg/s",
        memory=megabytes(m.memory_growth_mb) if shows_memory(result.scenario) else "N/A",
        status=STATUS_LABEL.get(result.status, result.status.upper()),
        passed=result.passed,
    )


def change_pct(current: float, baseline: float) -> float | None:
    """Current against baseline in percent; None when the baseline is zero."""
    if baseline <= 0:
        return None
    return (current / baseline - 1) * 100
