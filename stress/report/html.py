"""report.html: one self-contained page (inline CSS and SVG, no script, no network).

Made to be opened from a downloaded artifact folder: links to flamegraphs, leak reports and logs
are relative to the page, and every piece of text from a run is escaped.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from urllib.parse import quote

from stress.report.summary import environment_text, verdict_line
from stress.report.svg import Guide, line_chart
from stress.report.tables import (
    abbreviate,
    change_pct,
    labelled_artifacts,
    performance_row,
    signed_percent,
    status_name,
    threshold_rows,
)
from stress.report.text import (
    diagnosis_bullets,
    diagnosis_intro,
    evidence_lines,
    format_block,
    loss_text,
)
from stress.results import (
    UNFINISHED_STATUSES,
    Result,
    Sample,
    find_match,
    measured_throughput,
    was_interrupted,
)

CSS = """
:root { --ok: #15803d; --bad: #b91c1c; --warn: #b45309; --ink: #1f2937; --soft: #6b7280;
        --line: #e5e7eb; --accent: #2563eb; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1100px; padding: 1.5rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; border-bottom: 1px solid var(--line);
     padding-bottom: .25rem; }
h3 { font-size: 1rem; margin: 1.25rem 0 .4rem; }
.meta, .no-data, figcaption { color: var(--soft); }
table { border-collapse: collapse; margin: .25rem 0; }
th, td { border: 1px solid var(--line); padding: .3rem .6rem; text-align: left; }
th { background: #f9fafb; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: .75rem; font-size: .85rem;
         font-weight: 600; color: #fff; vertical-align: middle; }
.badge.passed { background: var(--ok); } .badge.failed { background: var(--bad); }
.badge.timeout, .badge.crashed, .badge.interrupted, .badge.not_run { background: var(--warn); }
.verdict.passed { color: var(--ok); } .verdict.failed, .verdict.broken { color: var(--bad); }
.met { color: var(--ok); } .missed { color: var(--bad); }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .4rem 1rem; }
section.scenario { margin-top: 2.5rem; }
dl.figures { display: grid; grid-template-columns: max-content auto; gap: .15rem 1rem; }
dl.figures dt { color: var(--soft); } dl.figures dd { margin: 0; }
.failure { border-left: 4px solid var(--bad); background: #fef2f2; padding: .5rem .8rem;
           margin: .5rem 0; }
.failure p { margin: .2rem 0; } .failure .headline { font-weight: 700; color: var(--bad); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 1rem; }
figure { margin: 0; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart .grid line { stroke: var(--line); }
svg.chart .axis { stroke: var(--soft); }
svg.chart text { font-size: 12px; fill: var(--soft); }
svg.chart .series { fill: none; stroke: var(--accent); stroke-width: 1.6; }
svg.chart .guide { stroke-dasharray: 6 4; stroke-width: 1.2; }
svg.chart .guide.limit { stroke: var(--bad); } svg.chart text.limit { fill: var(--bad); }
svg.chart .guide.mean { stroke: var(--ok); } svg.chart text.mean { fill: var(--ok); }
svg.chart .guide.baseline { stroke: var(--warn); } svg.chart text.baseline { fill: var(--warn); }
.missing { color: var(--bad); }
pre { background: #f9fafb; border: 1px solid var(--line); padding: .6rem; overflow-x: auto;
      font-size: 13px; }
"""


def _id(index: int, result: Result) -> str:
    return f"s{index}-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", result.scenario.name).strip("-")
                           or "scenario")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: set[int],
           row_classes: Sequence[str] = ()) -> str:
    """A table from already escaped cells."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = []
    for index, row in enumerate(rows):
        css = f' class="{row_classes[index]}"' if index < len(row_classes) else ""
        cells = "".join(f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
                        for i, cell in enumerate(row))
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _badge(status: str) -> str:
    return f'<span class="badge {escape(status)}">{escape(status_name(status).word)}</span>'


def _change(result: Result, before: float | None) -> float | None:
    """Throughput against the baseline's, as summary.md has it: none for a run that measured
    nothing (a crash before the first token is not a -100% change)."""
    after = measured_throughput(result)
    return None if before is None or after is None else change_pct(after, before)


def _baseline_throughput(result: Result, baseline: list[Result] | None) -> float | None:
    if baseline is None:
        return None
    match = find_match(result, baseline)
    return measured_throughput(match) if match else None


def _performance_table(results: list[Result], baseline: list[Result] | None) -> str:
    """The seed's table; with a baseline, its throughput and the change sit after ours."""
    compared = ["Baseline", "Change"] if baseline is not None else []
    header = ["Test", "Messages", "Duration", "Throughput", *compared, "Memory", "Status"]
    rows = []
    for index, result in enumerate(results):
        perf = performance_row(result)
        cells = {
            "Test": f'<a href="#{_id(index, result)}">{escape(perf.test)}</a>',
            "Messages": perf.messages,
            "Duration": perf.duration,
            "Throughput": escape(perf.throughput),
        }
        if baseline is not None:
            before = _baseline_throughput(result, baseline)
            change = _change(result, before)
            cells["Baseline"] = ("not in baseline" if before is None
                                 else f"{abbreviate(before)} msg/s")
            cells["Change"] = "N/A" if change is None else signed_percent(change)
        cells["Memory"] = escape(perf.memory)
        cells["Status"] = _badge(result.status)
        rows.append([cells[name] for name in header])
    numeric = {i for i, name in enumerate(header) if name in _NUMERIC_COLUMNS}
    return _table(header, rows, numeric=numeric)


_NUMERIC_COLUMNS = frozenset({"Messages", "Duration", "Throughput", "Baseline", "Change"})


def _thresholds_table(result: Result) -> str:
    rows = threshold_rows(result)
    if not rows:
        return '<p class="no-data">This scenario sets no threshold; its figures are below.</p>'
    marks = {True: '<span class="met">✓ met</span>',
             False: '<span class="missed">✗ missed</span>',
             None: '<span class="missed">not measured</span>'}
    return _table(["Metric", "Target", "Achieved", "Delta", ""],
                  [[escape(r.metric), escape(r.target), escape(r.achieved), escape(r.delta),
                    marks[r.met]] for r in rows], numeric={2, 3})


def _figures(result: Result, baseline_throughput: float | None) -> str:
    m = result.metrics
    throughput = f"{m.throughput:,.0f} tokens/sec"
    if baseline_throughput is not None:
        change = _change(result, baseline_throughput)
        throughput += (f" (baseline {baseline_throughput:,.0f}"
                       + (f", {signed_percent(change)})" if change is not None else ")"))
    items = [
        ("Tokens received", f"{m.tokens_received:,} of {result.scenario.expected_tokens:,}"),
        ("Messages sent by backend", f"{m.messages_sent:,}"),
        ("Streams completed", f"{m.streams_completed:,} of {result.scenario.conversations:,}"),
        ("Errors", f"{m.errors:,}"),
        ("Duration", f"{m.duration_s:.3f}s"),
        ("Throughput", throughput),
        ("Memory growth", f"{m.memory_growth_mb:.2f} MB"),
        ("Peak RSS", f"{m.peak_rss_mb:.2f} MB"),
        ("Quit latency", "not measured" if m.quit_latency_ms is None
         else f"{m.quit_latency_ms:.0f}ms"),
        ("Message loss", loss_text(result)),
        ("Leaked at exit", "not measured (no memray run)" if m.leaked_mb is None
         else f"{m.leaked_mb:.2f} MB"),
    ]
    if m.instructions_per_token is not None:
        items.append(("Instructions per token", f"{m.instructions_per_token:,.1f} (valgrind)"))
    if result.repeats > 1:
        items.append(("Runs", f"{result.repeats} (median shown)"))
    body = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return f'<dl class="figures">{body}</dl>'


def _failures(result: Result) -> str:
    parts = []
    for failure in result.failures:
        diagnosis = ""
        if failure.evidence is not None:  # a profiler's report: its indents carry its stacks
            evidence = "\n".join(evidence_lines(failure))
            diagnosis = (f"<p>Diagnosis: {escape(diagnosis_intro(failure))}</p>"
                         f'<pre class="evidence">{escape(evidence)}</pre>')
        elif bullets := diagnosis_bullets(failure):
            items = "".join(f"<li>{escape(b)}</li>" for b in bullets)
            diagnosis = (f"<p>Diagnosis: {escape(diagnosis_intro(failure))}</p>"
                         f"<ul>{items}</ul>")
        parts.append(f'<div class="failure {escape(failure.kind)}">'
                     f'<p class="message">{escape(failure.message)}</p>'
                     f'<p class="headline">{escape(failure.headline)}</p>{diagnosis}</div>')
    return "".join(parts)


def throughput_series(samples: Sequence[Sample]) -> list[tuple[float, float]]:
    """Tokens per second between consecutive samples, at the later sample's time."""
    return [(b.t_s, (b.tokens - a.tokens) / (b.t_s - a.t_s))
            for a, b in itertools.pairwise(samples) if b.t_s > a.t_s]


def _charts(result: Result, baseline_throughput: float | None) -> str:
    samples = result.samples
    limits = result.scenario.thresholds
    rss_guides = []
    if samples and limits.max_memory_growth_mb is not None:
        rss_guides.append(Guide(value=samples[0].rss_mb + limits.max_memory_growth_mb,
                                label=f"limit: start + {limits.max_memory_growth_mb:g} MB",
                                kind="limit"))
    rss = line_chart([(s.t_s, s.rss_mb) for s in samples], title="RSS over time",
                     y_label="RSS (MB)", guides=rss_guides, kind="rss")
    rates = throughput_series(samples)
    rate_guides = []
    if result.metrics.throughput > 0:
        rate_guides.append(Guide(value=result.metrics.throughput,
                                 label=f"mean {abbreviate(result.metrics.throughput)}",
                                 kind="mean"))
    if limits.min_throughput is not None:
        rate_guides.append(Guide(value=limits.min_throughput,
                                 label=f"min {abbreviate(limits.min_throughput)}", kind="limit"))
    if baseline_throughput is not None:
        rate_guides.append(Guide(value=baseline_throughput,
                                 label=f"baseline {abbreviate(baseline_throughput)}",
                                 kind="baseline"))
    rate = line_chart(rates, title="Throughput over time", y_label="tokens/sec",
                      guides=rate_guides, kind="throughput")
    figures = [chart if chart.startswith("<p") else
               f"<figure>{chart}<figcaption>{caption}</figcaption></figure>"
               for chart, caption in ((rss, "RSS over time (MB)"),
                                      (rate, "Throughput over time (tokens/sec, between "
                                             "samples)"))]
    return f'<div class="charts">{"".join(figures)}</div>'


def _exists(path: Path) -> bool:
    """False, not an error, for a name the filesystem cannot hold (a run that failed to write
    it still gets its report)."""
    try:
        return path.exists()
    except OSError:
        return False


def _artifacts(result: Result, out_dir: Path | None) -> str:
    if not result.artifacts:
        return '<p class="no-data">No files were recorded for this scenario.</p>'
    items = []
    for label, path in labelled_artifacts(result):
        missing = out_dir is not None and not _exists(out_dir / path)
        flag = ' <span class="missing">(missing)</span>' if missing else ""
        # quote() keeps "/" but escapes ":" so no path can become a javascript: URL.
        items.append(f'<li>{escape(label)}: <a href="{escape(quote(path))}">{escape(path)}</a>'
                     f"{flag}</li>")
    return f'<ul class="artifacts">{"".join(items)}</ul>'


def _scenario_section(index: int, result: Result, baseline: list[Result] | None,
                      out_dir: Path | None) -> str:
    s = result.scenario
    before = _baseline_throughput(result, baseline)
    shape = f"{s.messages:,} messages × {s.message_size} chars"
    if s.conversations > 1:
        shape += f" × {s.conversations} conversations"
    if s.token_delay_us:
        shape += f", token delay {s.token_delay_us:g} μs"
    if s.consumer_delay_us:
        shape += f", consumer delay {s.consumer_delay_us:g} μs/message"
    if s.error_rate:
        shape += f", error rate {s.error_rate * 100:g}%"
    shape += f", channel buffer {s.channel_buffer}, timeout {s.timeout_s:g}s"
    notes = ("<h3>Notes</h3><ul class=\"notes\">"
             + "".join(f"<li>{escape(note)}</li>" for note in result.notes) + "</ul>"
             if result.notes else "")
    return (
        f'<section class="scenario {escape(result.status)}" id="{_id(index, result)}">'
        f"<h2>{escape(s.title)} {_badge(result.status)}</h2>"
        f'<p class="meta"><code>{escape(s.name)}</code>: {escape(shape)}</p>'
        f"{_failures(result)}"
        f"<h3>Thresholds</h3>{_thresholds_table(result)}"
        f"<h3>Figures</h3>{_figures(result, before)}"
        f"{_charts(result, before)}"
        f"<h3>Files</h3>{_artifacts(result, out_dir)}"
        f"{notes}"
        f"<details><summary>Text report</summary><pre>{escape(format_block(result))}</pre>"
        f"</details></section>"
    )


def render_html(results: list[Result], *, baseline: list[Result] | None = None,
                out_dir: Path | None = None, final: bool = True,
                generated_at: datetime | None = None) -> str:
    headline = verdict_line(results).removeprefix("# ")
    verdict_class = ("passed" if all(r.passed for r in results) and not was_interrupted(results)
                     else
                     "broken" if any(r.status in UNFINISHED_STATUSES for r in results)
                     else "failed")
    when = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    env = environment_text(results)
    progress = "" if final else \
        '<p class="meta">Run in progress: this page is rewritten after each scenario.</p>'
    nav = "".join(
        f'<li><a href="#{_id(i, r)}">{escape(r.scenario.name)}</a> {_badge(r.status)}</li>'
        for i, r in enumerate(results))
    sections = "".join(_scenario_section(i, r, baseline, out_dir) for i, r in enumerate(results))
    baseline_note = ("<p class=\"meta\">Baseline and Change: throughput of the same scenario in "
                     "the baseline run.</p>" if baseline is not None else "")
    all_limits = [row for r in results for row in threshold_rows(r)]
    limits_table = _table(
        ["Metric", "Target", "Achieved", "Delta"],
        [[escape(t.metric), escape(t.target), escape(t.achieved), escape(t.delta)]
         for t in all_limits], numeric={2, 3},
        row_classes=["met" if t.met else "missed" for t in all_limits],
    ) if all_limits else '<p class="no-data">No scenario sets a threshold.</p>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(headline)}</title>
<link rel="icon" href="data:,">
<style>{CSS}</style>
</head>
<body>
<header>
<h1 class="verdict {verdict_class}">{escape(headline)}</h1>
<p class="meta">Generated {escape(when)}{(" · " + escape(env)) if env else ""}</p>
{progress}
<nav><ul>{nav}</ul></nav>
</header>
<main>
<section id="overview">
<h2>Performance Comparison</h2>
{_performance_table(results, baseline)}
{baseline_note}
<h2>Baseline Comparison</h2>
{limits_table}
</section>
{sections}
</main>
</body>
</html>
"""
