"""Throughput regression check: a current run against a baseline, scenario by scenario.

Either side can be a results.json (or the folder holding one) or captured text: a
stress-test-<name>.log, or stdout of a run, with the seed's blocks headed
``=== Stress Test Results: TITLE ===`` and a ``Throughput: N tokens/sec`` line. Scenarios are
matched by name, else by title (a log knows only titles).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from stress.console import annotate_error
from stress.errors import ConfigError, ExitCode
from stress.results import Metrics, Result, Status, parse_results_document
from stress.scenario import Scenario

DEFAULT_MAX_DROP_PCT = 20.0

_HEADER = re.compile(r"^\s*=== Stress Test Results: (?P<title>.+?) ===\s*$")
_LOG_HEADER = re.compile(r"^# scenario (?P<name>\S+) \(")  # first line of the runner's logs
_FIELD = re.compile(r"^\s+(?P<key>[A-Za-z][A-Za-z ]*?):\s*(?P<value>\S.*?)\s*$")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")

# Block line -> (where it goes, field). "scenario" fields build the Scenario, "metric" ones
# the Metrics; the seed's "Total messages received" has no counterpart and is ignored.
_FIELDS: dict[str, tuple[str, str]] = {
    "messages": ("scenario", "messages"),
    "message size": ("scenario", "message_size"),
    "token delay": ("scenario", "token_delay_us"),
    "channel buffer": ("scenario", "channel_buffer"),
    "consumer delay": ("scenario", "consumer_delay_us"),
    "conversations": ("scenario", "conversations"),
    "error rate": ("scenario", "error_rate"),
    "total tokens received": ("metric", "tokens_received"),
    "tokens received by consumer": ("metric", "tokens_received"),
    "messages sent by backend": ("metric", "messages_sent"),
    "streams completed": ("metric", "streams_completed"),
    "errors": ("metric", "errors"),
    "duration": ("metric", "duration_s"),
    "throughput": ("metric", "throughput"),
    "memory growth": ("metric", "memory_growth_mb"),
    "quit latency": ("metric", "quit_latency_ms"),
    "message loss": ("metric", "loss_pct"),
    "leaked at exit": ("metric", "leaked_mb"),
}
_INTEGER_FIELDS = {"messages", "message_size", "channel_buffer", "conversations",
                   "tokens_received", "messages_sent", "streams_completed", "errors"}
_STATUS_BY_HEADLINE: dict[str, Status] = {
    "FAILURE: Possible deadlock detected": "timeout",
    "FAILURE: Scenario crashed": "crashed",
    "FAILURE: Scenario interrupted": "interrupted",
}


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "scenario"


@dataclass
class _Block:
    title: str
    name: str | None
    scenario: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    passed: bool = False
    headlines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        stripped = line.strip()
        if stripped.startswith("✅ Test passed!"):
            self.passed = True
        elif stripped.startswith("FAILURE:"):
            self.headlines.append(stripped)
        match = _FIELD.match(line)
        if not match or match["key"].lower() not in _FIELDS:
            return
        figure = _NUMBER.search(match["value"])
        if figure is None:  # e.g. "Quit latency: not measured"
            return
        where, name = _FIELDS[match["key"].lower()]
        value: float | int = float(figure[0].replace(",", ""))
        if name == "error_rate":
            value /= 100
        if name in _INTEGER_FIELDS:
            value = round(value)
        (self.scenario if where == "scenario" else self.metrics)[name] = value

    def result(self) -> Result:
        metrics = dict(self.metrics)
        duration = float(metrics.get("duration_s", 0.0))
        if "throughput" not in metrics and duration > 0:
            # A backpressure block shows counts and duration but no throughput line.
            metrics["throughput"] = metrics.get("tokens_received", 0) / duration
        status: Status = "passed" if self.passed and not self.headlines else "failed"
        for headline in self.headlines:
            status = _STATUS_BY_HEADLINE.get(headline, status)
        scenario = Scenario(name=self.name or slug(self.title), title=self.title,
                            **{"messages": 0, **self.scenario})
        return Result(scenario=scenario, status=status, metrics=Metrics(**metrics))


def parse_blocks(text: str) -> list[Result]:
    """Every seed-format block in captured text, as Results holding what the blocks show."""
    blocks: list[_Block] = []
    pending_name: str | None = None
    for line in text.splitlines():
        if header := _LOG_HEADER.match(line):
            pending_name = header["name"]
        elif header := _HEADER.match(line):
            blocks.append(_Block(title=header["title"], name=pending_name))
            pending_name = None
        elif blocks:
            blocks[-1].add(line)
    return [block.result() for block in blocks]


def _read_text(source: Path) -> str:
    try:
        return source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file; expected a results.json or the text log "
                          "of a stress run") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot be read ({exc}); expected a results.json or "
                          "the text log of a stress run") from None


def read_results(path: Path) -> list[Result]:
    """Results from a results.json, a folder holding one, or a text log; ConfigError if not."""
    source = path / "results.json" if path.is_dir() else path
    text = _read_text(source)
    if text.lstrip().startswith("{"):
        return _results_from_json(source, text)
    results = parse_blocks(text)
    if not results:
        raise ConfigError(f"{source}: no '=== Stress Test Results: TITLE ===' block found; "
                          "expected a results.json or the text log of a stress run")
    # A log appended to by several runs (`tee -a`) holds a scenario more than once: the
    # latest block is the one that counts.
    latest = {(r.scenario.name, r.scenario.title): r for r in results}
    return list(latest.values())


def read_results_json(path: Path) -> list[Result]:
    """Results from a results.json only (what report and merge rebuild everything from)."""
    return _results_from_json(path, _read_text(path))


def _results_from_json(source: Path, text: str) -> list[Result]:
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or "scenarios" not in data:
            raise ValueError("no 'scenarios' key")
        return parse_results_document(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{source}: not a stress results.json ({exc}); pass the "
                          "results.json a `python -m stress run` wrote") from None


def find_match(result: Result, candidates: list[Result]) -> Result | None:
    """The candidate for the same scenario: same name, else same title (case-insensitive)."""
    for candidate in candidates:
        if candidate.scenario.name == result.scenario.name:
            return candidate
    title = result.scenario.title.casefold()
    for candidate in candidates:
        if candidate.scenario.title.casefold() == title:
            return candidate
    return None


def measured_throughput(result: Result) -> float | None:
    """None when the run measured nothing (no duration): there is no figure to compare."""
    m = result.metrics
    if m.duration_s <= 0 and m.throughput <= 0:
        return None
    return m.throughput


@dataclass(frozen=True, kw_only=True)
class ComparisonRow:
    scenario: str
    baseline: float | None
    current: float | None
    ratio: float | None
    verdict: str
    regressed: bool = False
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class Comparison:
    max_drop_pct: float
    rows: tuple[ComparisonRow, ...]
    only_in_baseline: tuple[str, ...]
    only_in_current: tuple[str, ...]

    @property
    def min_ratio(self) -> float:
        return 1 - self.max_drop_pct / 100

    @property
    def regressions(self) -> tuple[ComparisonRow, ...]:
        return tuple(row for row in self.rows if row.regressed)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.REGRESSION if self.regressions else ExitCode.PASSED

    def rule(self) -> str:
        return (f"regression when current/baseline < {self.min_ratio:.2f} "
                f"(a drop of more than {self.max_drop_pct:g}%)")


def check_max_drop(max_drop_pct: float) -> None:
    if not 0 <= max_drop_pct < 100:
        raise ConfigError(f"--max-drop {max_drop_pct:g}: expected a percentage from 0 to "
                          "below 100, e.g. 20 to fail on a drop of more than 20%")


def compare(baseline: list[Result], current: list[Result],
            max_drop_pct: float = DEFAULT_MAX_DROP_PCT) -> Comparison:
    check_max_drop(max_drop_pct)
    min_ratio = 1 - max_drop_pct / 100
    unmatched = list(baseline)
    rows: list[ComparisonRow] = []
    only_in_current: list[str] = []
    for result in current:
        match = find_match(result, unmatched)
        if match is None:
            only_in_current.append(result.scenario.title)
            continue
        unmatched.remove(match)
        rows.append(_row(match, result, min_ratio))
    return Comparison(max_drop_pct=max_drop_pct, rows=tuple(rows),
                      only_in_baseline=tuple(r.scenario.title for r in unmatched),
                      only_in_current=tuple(only_in_current))


def _row(baseline: Result, current: Result, min_ratio: float) -> ComparisonRow:
    before, after = measured_throughput(baseline), measured_throughput(current)
    notes = [f"{side} run {r.status}" for side, r in (("baseline", baseline), ("current", current))
             if r.status in ("timeout", "crashed", "interrupted")]
    sizes = baseline.scenario.messages, current.scenario.messages
    if all(sizes) and sizes[0] != sizes[1]:
        notes.append(f"messages differ: {sizes[0]} vs {sizes[1]}")
    note = "; ".join(notes)
    title = current.scenario.title
    if before is None or after is None:
        side = "baseline" if before is None else "current"
        return ComparisonRow(scenario=title, baseline=before, current=after, ratio=None,
                             verdict=f"not judged: no {side} throughput", note=note)
    if before <= 0:
        return ComparisonRow(scenario=title, baseline=before, current=after, ratio=None,
                             verdict="not judged: baseline throughput is 0", note=note)
    ratio = after / before
    regressed = ratio < min_ratio
    return ComparisonRow(scenario=title, baseline=before, current=after, ratio=ratio,
                         verdict="REGRESSION" if regressed else "ok", regressed=regressed,
                         note=note)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def format_comparison(comparison: Comparison, baseline_label: str, current_label: str) -> str:
    header = ("Scenario", "Baseline", "Current", "Ratio", "Change", "Verdict")
    table = [header]
    for row in comparison.rows:
        change = "-" if row.ratio is None else f"{(row.ratio - 1) * 100:+.1f}%"
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
        verdict = f"{row.verdict} ({row.note})" if row.note else row.verdict
        table.append((row.scenario, _figure(row.baseline), _figure(row.current), ratio, change,
                      verdict))
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    lines = [
        f"Throughput (tokens/sec): baseline {baseline_label} -> current {current_label}",
        f"Rule: {comparison.rule()}",
        "",
    ]
    for line in table:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:-1], widths[1:], strict=True)]
        lines.append("  ".join([*cells, line[-1]]).rstrip())
    if comparison.only_in_baseline:
        lines.append(f"Only in the baseline (not judged): {', '.join(comparison.only_in_baseline)}")
    if comparison.only_in_current:
        lines.append(f"Only in the current run (not judged): "
                     f"{', '.join(comparison.only_in_current)}")
    lines.append("")
    judged = sum(row.ratio is not None for row in comparison.rows)
    if comparison.regressions:
        names = ", ".join(f"{row.scenario} ({row.ratio:.2f})" for row in comparison.regressions)
        lines.append(f"REGRESSION: {names}; exit {int(comparison.exit_code)}")
    else:
        lines.append(f"No regression in {judged} judged scenario(s); exit 0")
    return "\n".join(lines)


def run_comparison(baseline_path: Path, current_path: Path,
                   max_drop_pct: float = DEFAULT_MAX_DROP_PCT, out: TextIO | None = None) -> int:
    """Read both sides, print the table, return 3 (regression) or 0."""
    check_max_drop(max_drop_pct)
    comparison = compare(read_results(baseline_path), read_results(current_path), max_drop_pct)
    print(format_comparison(comparison, str(baseline_path), str(current_path)),
          file=out or sys.stdout, flush=True)
    if not comparison.rows:
        raise ConfigError(f"{current_path}: no scenario in common with {baseline_path} "
                          "(matched by name or title); compare runs of the same scenarios")
    for row in comparison.regressions:
        annotate_error("stress: throughput regression",
                       f"{row.scenario}: {_figure(row.current)} tokens/sec is "
                       f"{row.ratio or 0:.2f}x the baseline's {_figure(row.baseline)}; "
                       f"{comparison.rule()}")
    return int(comparison.exit_code)
