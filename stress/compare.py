"""Throughput regression check: a current run against a baseline, scenario by scenario.

The data and text of a comparison only; reading the inputs is stress.report.read's job
(``read_results``: a results.json, its folder or a text log), printing and CI annotations are
the compare command's. Scenarios are matched by name, else by title (a log knows only titles).
"""

from __future__ import annotations

from dataclasses import dataclass

from stress.errors import ConfigError, ExitCode
from stress.results import UNFINISHED_STATUSES, Result, find_match, measured_throughput

DEFAULT_MAX_DROP_PCT = 20.0
# Instructions per token (run --measure instructions) on both sides: judged on those instead,
# head over base, at this much growth. Counts agree to a part in a million run to run.
DEFAULT_MAX_GROWTH_PCT = 3.0

@dataclass(frozen=True, kw_only=True)
class ComparisonRow:
    scenario: str
    baseline: float | None
    current: float | None
    ratio: float | None
    verdict: str
    regressed: bool = False
    note: str = ""
    measure: str = "wall"  # "instructions": baseline/current are instructions per token


@dataclass(frozen=True, kw_only=True)
class Comparison:
    max_drop_pct: float
    rows: tuple[ComparisonRow, ...]
    only_in_baseline: tuple[str, ...]
    only_in_current: tuple[str, ...]
    max_growth_pct: float = DEFAULT_MAX_GROWTH_PCT

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
        wall = (f"regression when current/baseline < {self.min_ratio:.2f} "
                f"(a drop of more than {self.max_drop_pct:g}%)")
        if not any(row.measure == "instructions" for row in self.rows):
            return wall
        return (f"{wall}; with instructions per token on both sides: regression when "
                f"current/baseline instructions > {1 + self.max_growth_pct / 100:.2f} "
                f"(more than {self.max_growth_pct:g}% more a token)")


def check_max_drop(max_drop_pct: float) -> None:
    """The one check of a --max-drop percentage (compare, and ab's gate): 0 to below 100."""
    if not 0 <= max_drop_pct < 100:
        raise ConfigError(f"--max-drop {max_drop_pct:g}: expected a percentage from 0 to "
                          "below 100, e.g. 20 to fail on a drop of more than 20%")


def compare(baseline: list[Result], current: list[Result],
            max_drop_pct: float = DEFAULT_MAX_DROP_PCT,
            max_growth_pct: float = DEFAULT_MAX_GROWTH_PCT) -> Comparison:
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
        row = _row(match, result, min_ratio)
        rows.append(_instruction_row(match, result, row, max_growth_pct) or row)
    return Comparison(max_drop_pct=max_drop_pct, rows=tuple(rows),
                      only_in_baseline=tuple(r.scenario.title for r in unmatched),
                      only_in_current=tuple(only_in_current), max_growth_pct=max_growth_pct)


def _instruction_row(baseline: Result, current: Result, row: ComparisonRow,
                     max_growth_pct: float) -> ComparisonRow | None:
    """The row judged on instructions per token, when both sides counted them."""
    before = baseline.metrics.instructions_per_token
    after = current.metrics.instructions_per_token
    if before is None or after is None or before <= 0 or row.ratio is None:
        return None  # (no ratio: a side did not finish, and the wall row says so)
    ratio = after / before
    regressed = ratio > 1 + max_growth_pct / 100
    return ComparisonRow(scenario=row.scenario, baseline=before, current=after, ratio=ratio,
                         verdict="REGRESSION" if regressed else "ok", regressed=regressed,
                         note="; ".join(filter(None, ["instructions per token", row.note])),
                         measure="instructions")


def _row(baseline: Result, current: Result, min_ratio: float) -> ComparisonRow:
    before, after = measured_throughput(baseline), measured_throughput(current)
    notes = [f"{side} run {r.status}" for side, r in (("baseline", baseline), ("current", current))
             if r.status in UNFINISHED_STATUSES]
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


def figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def format_comparison(comparison: Comparison, baseline_label: str, current_label: str) -> str:
    header = ("Scenario", "Baseline", "Current", "Ratio", "Change", "Verdict")
    table = [header]
    for row in comparison.rows:
        change = "-" if row.ratio is None else f"{(row.ratio - 1) * 100:+.1f}%"
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
        if row.measure == "instructions" and row.ratio is not None:
            ratio = f"{row.ratio:.4f}"
        verdict = f"{row.verdict} ({row.note})" if row.note else row.verdict
        table.append((row.scenario, figure(row.baseline), figure(row.current), ratio, change,
                      verdict))
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    lines = [
        f"Throughput (tokens/sec; instructions per token where both sides counted them): "
        f"baseline {baseline_label} -> current {current_label}"
        if any(row.measure == "instructions" for row in comparison.rows) else
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


def format_regression(comparison: Comparison, row: ComparisonRow) -> str:
    """One regressed scenario in a sentence, for a CI annotation."""
    if row.measure == "instructions":
        return (f"{row.scenario}: {row.current or 0:,.1f} instructions per token is "
                f"{row.ratio or 0:.4f}x the baseline's {row.baseline or 0:,.1f}; "
                f"{comparison.rule()}")
    return (f"{row.scenario}: {figure(row.current)} tokens/sec is {row.ratio or 0:.2f}x the "
            f"baseline's {figure(row.baseline)}; {comparison.rule()}")
