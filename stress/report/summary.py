"""summary.md: the verdict on its first line, then the seed's two tables ($GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import re
from urllib.parse import quote

from stress.errors import ExitCode
from stress.report.files import DROPPED_NOTE
from stress.report.tables import (
    ThresholdRow,
    change_pct,
    labelled_artifacts,
    performance_row,
    scenario_label,
    signed_percent,
    threshold_rows,
)
from stress.report.text import format_failure_lines
from stress.results import (
    MISSING_PROFILE_NOTE,
    NOT_RUN_MESSAGE,
    UNFINISHED_STATUSES,
    Result,
    find_match,
    measured_throughput,
    overall_exit_code,
    was_interrupted,
)


def verdict_line(results: list[Result]) -> str:
    """The overall verdict in words, with the exit code the run returns."""
    code = overall_exit_code(results)
    if not results:
        return "# Stress: no scenario ran"
    if was_interrupted(results):
        not_run = [r.scenario.name for r in results if r.status == "not_run"]
        done = len(results) - len(not_run)
        rest = f"; {NOT_RUN_MESSAGE}: {', '.join(not_run)}" if not_run else ""
        return (f"# Stress: interrupted after {done} of {len(results)} scenario(s){rest} "
                f"(exit {int(code)})")
    if code == ExitCode.PASSED:
        if len(results) == 1:
            return f"# Stress: the 1 scenario passed ({results[0].scenario.name})"
        return f"# Stress: all {len(results)} scenarios passed"
    broken = [r.scenario.name for r in results if r.status in UNFINISHED_STATUSES]
    failed = [r.scenario.name for r in results if r.status == "failed"]
    parts = []
    if broken:
        parts.append(f"crashed or hung: {', '.join(broken)}")
    if failed:
        parts.append(f"threshold failed in {', '.join(failed)}")
    return f"# Stress: {'; '.join(parts)} (exit {int(code)})"


def md_cell(text: str) -> str:
    """Text from a run on one line of markdown: a pipe would split a table cell, a line break
    end it, a tag or an entity be rendered as HTML."""
    text = text.replace("&", "&amp;").replace("\\", "\\\\").replace("|", "\\|")
    text = re.sub(r"\r\n|[\r\n\u2028\u2029]", " ", text)
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)


# A line that starts with "::" is a workflow command to GitHub when the summary is printed in a
# step's log (::add-mask::, ::stop-commands::, ::error::); a zero-width space in front makes it
# plain text and shows nothing.
_WORKFLOW_COMMAND = re.compile(r"^(\s*)::", re.MULTILINE)


def no_workflow_commands(text: str) -> str:
    return _WORKFLOW_COMMAND.sub("\\1\u200b::", text)


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("-" * (len(cell) + 2) for cell in header) + "|"]
    lines += ["| " + " | ".join(md_cell(cell) for cell in row) + " |" for row in rows]
    return lines


def fenced(text: str) -> list[str]:
    """A code block whose fence no backtick run inside can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, text, fence]


def environment_text(results: list[Result]) -> str | None:
    env = next((r.environment for r in results if r.environment), None)
    if env is None:
        return None
    sha = f", git {env.git_sha[:12]}" if env.git_sha else ""
    where = "in a container" if env.in_container else "on the host"
    verifier = f", verifier {env.verifier}" if env.verifier else ""
    return (f"{env.implementation} {env.python} on {env.platform}, {env.cpu_count} CPUs, "
            f"{where}, loop {env.loop}{verifier}, target {env.target}{sha}")


def baseline_rows(results: list[Result], baseline: list[Result]) -> list[list[str]]:
    rows = []
    for result in results:
        match = find_match(result, baseline)
        before = measured_throughput(match) if match else None
        after = measured_throughput(result)
        change = change_pct(after, before) if before is not None and after is not None else None
        rows.append([
            scenario_label(result),
            "not in baseline" if before is None else f"{before:.0f}",
            "N/A" if after is None else f"{after:.0f}",
            "N/A" if change is None else signed_percent(change),
        ])
    return rows


def thresholds_verdict(results: list[Result], rows: list[ThresholdRow]) -> str:
    """The line under the Baseline Comparison: green only when every threshold was measured and
    met and every scenario passed."""
    missed = [row.metric for row in rows if row.met is False]
    unmeasured = [row.metric for row in rows if row.met is None]
    not_passed = [r.scenario.name for r in results if not r.passed]
    if missed or unmeasured:
        parts = [f"Missed: {', '.join(missed)}"] if missed else []
        parts += [f"Not measured: {', '.join(unmeasured)}"] if unmeasured else []
        return f"**{md_cell('; '.join(parts))}** ❌"
    if not_passed:  # e.g. streams unaccounted for, with every figure within its limit
        return f"**No threshold missed, but not passed: {md_cell(', '.join(not_passed))}** ❌"
    return "**All baselines exceeded** ✅"


def _notes_section(results: list[Result], heading: str, prefix: str) -> list[str]:
    noted = [(r, note) for r in results for note in r.notes if note.startswith(prefix)]
    if not noted:
        return []
    return ["", f"## {heading}", "",
            *(f"- {md_cell(r.scenario.name)}: {md_cell(note)}" for r, note in noted)]


def render_summary(results: list[Result], *, baseline: list[Result] | None = None,
                   final: bool = True) -> str:
    passed = sum(r.passed for r in results)
    lines = ["# " + md_cell(verdict_line(results).removeprefix("# ")), ""]
    lines.append(f"{passed} of {len(results)} scenario(s) passed." if results else
                 "No results were recorded.")
    if not final:
        lines.append("_Run in progress: this summary is rewritten after each scenario._")
    if env := environment_text(results):
        lines += ["", f"_{md_cell(env)}_"]

    lines += ["", "## Performance Comparison", ""]
    perf = [performance_row(r) for r in results]
    lines += md_table(["Test", "Messages", "Duration", "Throughput", "Memory", "Status"],
                      [[p.test, p.messages, p.duration, p.throughput, p.memory, p.status]
                       for p in perf])
    counted = [r for r in results if r.metrics.instructions_per_token is not None]
    if counted:  # run --measure instructions: valgrind's count beside the wall-clock figure
        lines += ["", "Instructions per token (valgrind, start-up taken out): " + ", ".join(
            f"{md_cell(r.scenario.name)} {r.metrics.instructions_per_token:,.1f}"
            for r in counted)]

    lines += ["", "## Baseline Comparison", ""]
    targets = [row for r in results for row in threshold_rows(r)]
    if targets:
        lines += md_table(["Metric", "Target", "Achieved", "Delta"],
                          [[t.metric, t.target, t.achieved, t.delta] for t in targets])
        lines += ["", thresholds_verdict(results, targets)]
    else:
        lines.append("_No scenario sets a threshold._")

    if baseline is not None:
        lines += ["", "## Throughput against the baseline run", ""]
        lines += md_table(["Test", "Baseline (tokens/sec)", "Current (tokens/sec)", "Change"],
                          baseline_rows(results, baseline))

    failed = [r for r in results if not r.passed and r.failures]
    if failed:
        lines += ["", "## Failures"]
        for result in failed:
            body: list[str] = []
            for failure in result.failures:
                body += [*format_failure_lines(failure), ""]
            scenario = result.scenario
            lines += ["", f"### {md_cell(scenario.title)} ({md_cell(scenario.name)})", ""]
            lines += fenced("\n".join(body).rstrip())
            evidence = labelled_artifacts(result, leave_out=("log",))
            if evidence:  # the profiles of the failure, from the evidence rerun or --profile
                lines += ["", "Profiles of this failure (in the results folder):", ""]
                lines += [f"- {md_cell(label)}: [{md_cell(path)}]({quote(path)})"
                          for label, path in evidence]
    # A profile asked for and not written is never silent; nor is what a full disk cost.
    lines += _notes_section(results, "Missing profiles", MISSING_PROFILE_NOTE)
    lines += _notes_section(results, "Dropped for a full disk", DROPPED_NOTE)
    if results:
        lines += ["", "_Plots, flamegraphs, leak reports and logs: report.html in the results "
                      "folder._"]
    return no_workflow_commands("\n".join(lines)) + "\n"
