"""The seed's two tables as rows of text, shared by summary.md and report.html.

Performance Comparison: | Test | Messages | Duration | Throughput | Memory | Status |
Baseline Comparison:    | Metric | Target | Achieved | Delta |  (delta = achieved vs target)

The Baseline Comparison renders the judge's checks (``Result.checks``); it never judges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stress.report.labels import NOT_MEASURED
from stress.report.text import shows_memory
from stress.results import Check, Result, checks_of

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


@dataclass(frozen=True)
class StatusName:
    label: str  # summary.md and text tables: "✅ PASS"
    word: str  # report.html's badge, whose colour carries the verdict: "PASS"


# Emoji fonts are not everywhere, so the page uses the plain word.
STATUS_NAMES: dict[str, StatusName] = {  # every Status (tests check it)
    "passed": StatusName("✅ PASS", "PASS"),
    "failed": StatusName("❌ FAIL", "FAIL"),
    "timeout": StatusName("⏱️ TIMEOUT", "TIMEOUT"),
    "crashed": StatusName("💥 CRASH", "CRASH"),
    "interrupted": StatusName("⚠️ INTERRUPTED", "INTERRUPTED"),
    "not_run": StatusName("⏭️ not run (interrupted)", "NOT RUN"),
}


def status_name(status: str) -> StatusName:
    """A status's two names; one not in the table (a newer kit's) is shown as it is."""
    return STATUS_NAMES.get(status) or StatusName(status.upper(), status.upper())


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


# A check's metric -> the seed's name for it and how its figures are written.
CHECK_FORMATS: dict[str, tuple[str, Callable[[float], str]]] = {
    "throughput": ("Throughput", abbreviate),
    "memory_growth_mb": ("Memory", megabytes),
    "quit_latency_ms": ("Quit latency", milliseconds),
    "loss_pct": ("Message loss", percent),
    "leaked_mb": ("Leaked at exit", megabytes),
}


def threshold_row(check: Check, scenario_name: str) -> ThresholdRow:
    label, written = CHECK_FORMATS.get(check.metric, (check.label, "{:g}".format))
    sign = ">" if check.better == "higher" else "<"
    value = check.value
    return ThresholdRow(
        metric=f"{label} ({scenario_name})", target=f"{sign} {written(check.limit)}",
        achieved=NOT_MEASURED if value is None else written(value),
        delta="N/A" if value is None else delta(value, check.limit),
        met=check.met)


def threshold_rows(result: Result) -> list[ThresholdRow]:
    """One row per check, in the seed's table order whatever order the judge found them in."""
    order = list(CHECK_FORMATS)
    checks = sorted(checks_of(result), key=lambda check: order.index(check.metric)
                    if check.metric in order else len(order))
    return [threshold_row(check, result.scenario.name) for check in checks]


def performance_row(result: Result) -> PerformanceRow:
    m = result.metrics
    return PerformanceRow(
        test=scenario_label(result),
        messages=f"{result.scenario.expected_tokens:,}",
        duration=f"{m.duration_s:.1f}s",
        throughput=f"{abbreviate(m.throughput)} msg/s",
        memory=megabytes(m.memory_growth_mb) if shows_memory(result.scenario) else "N/A",
        status=status_name(result.status).label,
        passed=result.passed,
    )


def change_pct(current: float, baseline: float) -> float | None:
    """Current against baseline in percent; None when the baseline is zero."""
    if baseline <= 0:
        return None
    return (current / baseline - 1) * 100
