"""The gate's report: ab.md (also the job's step summary), the console text, ab.json.

Everything here renders an ``AbReport``; the verdicts come from the model, never from the text.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from stress.ab.model import (
    AbReport,
    Measurement,
    Revision,
    ScenarioRounds,
    Verdict,
    instruction_rule_text,
    measured_text,
    ratio_text,
    rule_text,
)
from stress.console import annotate_error

log = logging.getLogger("stress.ab")

AB_VERSION = 1

_MARK: dict[Verdict, str] = {"ok": "✅ ok", "regression": "❌ regression", "failed": "💥 failed",
                             "not compared": "➖ not compared"}
_COLUMNS = ("Scenario", "Measure", "Rounds", "Base median", "Head median", "Median head/base",
            "Spread (min..max)", "IQR", "Verdict")
_MEASURE = {"wall": "wall time", "instructions": "instructions"}
_UNIT = {"wall": "tokens/s", "instructions": "instr/token"}


def headline(report: AbReport) -> str:
    versus = f"head {report.revisions['head'].label} vs base {report.revisions['base'].label}"
    regressed = report.with_verdict("regression")
    failed = [c.name for c in report.with_verdict("failed")]
    if regressed:
        figures = ", ".join(
            f"{c.name} {_ratio(s.median, c)}"
            + (" (instructions per token)" if c.measure == "instructions" else "")
            for c in regressed if (s := c.ratio_spread()) is not None)
        failed_text = f"; no figures for {', '.join(failed)}" if failed else ""
        # A regression found before the interrupt stands; say what it rests on.
        cut_short = " (interrupted: on the rounds measured before)" if report.interrupted else ""
        return f"❌ Regression: median head/base {figures}{failed_text} — {versus}{cut_short}"
    if report.interrupted:
        return f"💥 Interrupted before a verdict — {versus}"
    if failed:
        return f"💥 No verdict: {', '.join(failed)} failed to run — {versus}"
    compared = report.with_verdict("ok")
    if not compared:
        return f"➖ Nothing compared — {versus}"
    return f"✅ No regression in {len(compared)} scenario(s) — {versus}"


def _figure(value: float | None, c: ScenarioRounds) -> str:
    if value is None:
        return "-"
    number = f"{value:,.1f}" if c.measure == "instructions" else f"{value:,.0f}"
    return f"{number} {_UNIT[c.measure]}"


def _ratio(value: float, c: ScenarioRounds) -> str:
    # Counts agree to a part in a million: four decimals show a 0.01% change.
    return f"{value:.4f}" if c.measure == "instructions" else measured_text(value)


def _columns(report: AbReport) -> tuple[str, ...]:
    """The table's columns: a Measure column when the gate was asked for another than wall."""
    if report.options.measure == "wall":
        return tuple(c for c in _COLUMNS if c != "Measure")
    return _COLUMNS


def table_rows(report: AbReport) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for c in report.comparisons:
        s = c.ratio_spread()
        measure = _MEASURE[c.measure] if c.not_compared is None else "-"
        rows.append((
            c.name, *((measure,) if report.options.measure != "wall" else ()),
            str(len(c.ratios)),
            _figure(c.side_median("base"), c), _figure(c.side_median("head"), c),
            _ratio(s.median, c) if s else "-",
            f"{_ratio(s.low, c)}..{_ratio(s.high, c)}" if s else "-",
            f"{_ratio(s.q1, c)}..{_ratio(s.q3, c)}" if s else "-",
            _MARK[report.verdict(c)],
        ))
    return rows


def rules_text(report: AbReport) -> str:
    """The rule of each measure the report used, in ratio terms."""
    used = {c.measure for c in report.comparisons if c.not_compared is None} or {"wall"}
    options = report.options
    if options.measure == "wall":
        return rule_text(options.max_drop_pct)
    parts = []
    if "wall" in used:
        parts.append(f"wall time: {rule_text(options.max_drop_pct)}")
    if "instructions" in used:
        parts.append(f"instructions: {instruction_rule_text(options.max_growth_pct)}")
    return "; ".join(parts)


def growth_sections(report: AbReport) -> list[str]:
    """The functions that grew, for each instruction regression."""
    lines: list[str] = []
    for c in report.comparisons:
        if c.growth_table is None and not c.growth_notes:
            continue
        lines += ["", f"### {c.name}: the functions whose instructions per token grew most", ""]
        if c.growth_table:
            lines += [("Inclusive instructions per token under callgrind (start-up taken out), "
                       "the likeliest culprit first:"), "", c.growth_table, ""]
        lines += [f"- {note}" for note in c.growth_notes]
    return lines


def flamegraph_lines(report: AbReport) -> list[str]:
    """Where each regression's flamegraphs are (a page in the gate's folder), or why none."""
    lines: list[str] = []
    for c in report.comparisons:
        if c.flamegraphs:
            lines.append(f"- {c.name}: CPU flamegraphs of base and head side by side (py-spy, "
                         f"one run each): [{c.flamegraphs}]({c.flamegraphs}) in the gate's "
                         "folder (the artifact)")
        elif c.flamegraph_note:
            lines.append(f"- {c.name}: {c.flamegraph_note}")
    return ["", "### Flamegraphs", "", *lines] if lines else []


def _details(report: AbReport) -> list[str]:
    lines = []
    for c in report.comparisons:
        if c.not_compared:
            lines.append(f"- {c.name}: {c.not_compared}")
        if c.ratios:
            lines.append(f"- {c.name}: head/base per round "
                         f"{', '.join(_ratio(r, c) for r in c.ratios)}")
        if c.suspect_median is not None:
            lines.append(f"- {c.name}: median {measured_text(c.suspect_median)} after "
                         f"{c.confirm_after} rounds was below the limit; the verdict is on all "
                         f"{len(c.ratios)} rounds, confirmation rounds included")
        lines.extend(f"- {c.name}: {problem}" for problem in c.problems)
    lines.extend(f"- {note}" for note in report.notes)
    for revision in report.revisions.values():
        whose = "its own copy of the kit" if revision.own_kit else "the kit running the gate"
        lines.append(f"- {revision.side}: {revision.label}, target "
                     f"`{revision.target}`, {whose}; {revision.setup}")
    return lines


def render_markdown(report: AbReport) -> str:
    rows = table_rows(report)
    confirm = report.options.confirm_rounds
    counted = any(c.measure == "instructions" for c in report.comparisons)
    timed = any(c.measure == "wall" for c in report.comparisons) or not counted
    lines = [headline(report), "",
             f"Rule: {rules_text(report)}."
             + (" Rounds alternate base/head order on this machine; each round's ratio is "
                "head/base throughput"
                + (f"; a scenario below the limit gets {confirm} more rounds, later, and is "
                   "judged on all of them." if confirm else ".") if timed else "")
             + (" An instruction-measured scenario (valgrind, start-up taken out) gets one "
                "round: its ratio is head/base instructions per token, and a count does not "
                "vary from run to run." if counted else ""), ""]
    if rows:
        columns = _columns(report)
        aligns = ["---" if c in ("Scenario", "Measure", "Verdict") else "--:" for c in columns]
        lines += ["| " + " | ".join(columns) + " |", "|" + "|".join(aligns) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    lines += _details(report)
    lines += growth_sections(report)
    lines += flamegraph_lines(report)
    return "\n".join(lines) + "\n"


def render_text(report: AbReport) -> str:
    columns = _columns(report)
    rows = [columns, *table_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    return "\n".join([headline(report), f"Rule: {rules_text(report)}",
                      *table, *_details(report), *growth_sections(report),
                      *flamegraph_lines(report)]) + "\n"


def _revision_document(r: Revision) -> dict[str, Any]:
    return {"ref": r.ref, "sha": r.sha, "target": r.target, "stress_file": r.stress_file,
            "own_kit": r.own_kit, "setup": r.setup}


def _measurement_document(m: Measurement) -> dict[str, Any]:
    return {"throughput": m.throughput, "instructions_per_token": m.instructions_per_token,
            "problem": m.problem, "log": m.log}


def _scenario_document(c: ScenarioRounds, verdict: Verdict) -> dict[str, Any]:
    s = c.ratio_spread()
    return {
        "name": c.name, "verdict": verdict, "not_compared": c.not_compared,
        "measure": c.measure, "growth_table": c.growth_table,
        "growth_notes": list(c.growth_notes),
        "flamegraphs": c.flamegraphs, "flamegraph_note": c.flamegraph_note,
        "ratios": c.ratios, "median_ratio": s.median if s else None,
        "min_ratio": s.low if s else None, "max_ratio": s.high if s else None,
        "q1_ratio": s.q1 if s else None, "q3_ratio": s.q3 if s else None,
        "base_median": c.side_median("base"), "head_median": c.side_median("head"),
        "problems": c.problems,
        "confirmation": None if c.suspect_median is None else {
            "after_rounds": c.confirm_after, "median_before": c.suspect_median},
        "rounds": [{"round": r.number, "order": list(r.order), "ratio": r.ratio,
                    "base": _measurement_document(r.base),
                    "head": _measurement_document(r.head)}
                   for r in c.rounds],
    }


def report_document(report: AbReport) -> dict[str, Any]:
    options = report.options
    verdicts = report.verdicts()
    return {
        "version": AB_VERSION,
        "headline": headline(report),
        "exit_code": int(report.exit_code),
        "rule": {"max_drop_pct": options.max_drop_pct, "min_ratio": options.min_ratio,
                 "text": rule_text(options.max_drop_pct)},
        "instruction_rule": {"max_growth_pct": options.max_growth_pct,
                             "max_ratio": options.max_instruction_ratio,
                             "text": instruction_rule_text(options.max_growth_pct)},
        "measure": options.measure, "instruction_tokens": options.instruction_tokens,
        "rounds": options.rounds, "confirm_rounds": options.confirm_rounds,
        "interrupted": report.interrupted, "scale": options.scale, "notes": list(report.notes),
        "scenarios_file": str(options.scenarios_file) if options.scenarios_file else None,
        "base": _revision_document(report.revisions["base"]),
        "head": _revision_document(report.revisions["head"]),
        "scenarios": [_scenario_document(c, verdicts[c.name]) for c in report.comparisons],
    }


def _append_step_summary(markdown: str) -> None:
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not step_summary:
        return
    try:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")
    except OSError as exc:  # a courtesy; ab.md is written
        log.warning("could not append to $GITHUB_STEP_SUMMARY (%s): %s", step_summary, exc)


def _annotate(report: AbReport) -> None:
    """One CI error annotation per scenario that regressed or gave no figures."""
    options = report.options
    verdicts = report.verdicts()
    for c in report.comparisons:
        s = c.ratio_spread()
        if verdicts[c.name] == "regression" and s is not None and c.measure == "instructions":
            annotate_error(f"stress ab: {c.name}",
                           f"head/base instructions per token {_ratio(s.median, c)} > "
                           f"{ratio_text(options.max_instruction_ratio)}: "
                           f"{(s.median - 1) * 100:.1f}% more instructions a token "
                           f"(limit {options.max_growth_pct:g}%)")
        elif verdicts[c.name] == "regression" and s is not None:
            annotate_error(f"stress ab: {c.name}",
                           f"median head/base {measured_text(s.median)} < "
                           f"{ratio_text(options.min_ratio)}: throughput dropped "
                           f"{(1 - s.median) * 100:.0f}% (limit {options.max_drop_pct:g}%)")
        elif verdicts[c.name] == "failed":
            annotate_error(f"stress ab: {c.name}", "; ".join(c.problems) or "no figures")


def write_outputs(report: AbReport, out_dir: Path) -> None:
    markdown = render_markdown(report)
    (out_dir / "ab.json").write_text(json.dumps(report_document(report), indent=2,
                                                ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "ab.md").write_text(markdown, encoding="utf-8")
    _append_step_summary(markdown)
    _annotate(report)
