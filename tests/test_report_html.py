"""report.html's structure, checked with the standard library's HTML parser (no browser)."""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar, get_args

import pytest

from stress.report import write_reports
from stress.report.html import render_html, throughput_series
from stress.report.svg import downsample, nice_ticks, tick_label
from stress.report.tables import STATUS_NAMES
from stress.results import Failure, Result, Sample, Status
from tests.test_report_fixtures import (
    SHORT,
    loss_result,
    memory_result,
    result,
    seed_results,
    timeout_result,
)

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes"'


@dataclasses.dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""  # the element's own text, without its children's
    children: list[Element] = dataclasses.field(default_factory=list)
    content: list[str | Element] = dataclasses.field(default_factory=list)  # in document order

    def find_all(self, tag: str, css: str | None = None) -> list[Element]:
        found = []
        for child in self.children:
            if child.tag == tag and (css is None or css in child.attrs.get("class", "").split()):
                found.append(child)
            found += child.find_all(tag, css)
        return found

    def all_text(self) -> str:
        return "".join(part if isinstance(part, str) else part.all_text()
                       for part in self.content)


class TreeBuilder(HTMLParser):
    """A tree of the page; fails on a closing tag that does not match (malformed markup)."""

    VOID: ClassVar[set[str]] = {"meta", "link", "br", "img", "input", "hr", "col"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        self.stack[-1].content.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        self.stack[-1].content.append(element)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].text += data
        self.stack[-1].content.append(data)


def parse(page: str) -> Element:
    builder = TreeBuilder()
    builder.feed(page)
    builder.close()
    assert [e.tag for e in builder.stack] == ["#document"], "unclosed elements"
    return builder.root


def report(results: list[Result], **kwargs: object) -> tuple[str, Element]:
    page = render_html(results, **kwargs)  # type: ignore[arg-type]
    return page, parse(page)


def test_the_page_is_self_contained() -> None:
    page, tree = report([*seed_results(), timeout_result()])
    assert page.startswith("<!DOCTYPE html>")
    assert tree.find_all("script") == []
    assert len(tree.find_all("style")) == 1
    assert "http:" not in page
    assert "https:" not in page
    assert "//" not in page.replace("://", "")
    (icon,) = tree.find_all("link")
    assert icon.attrs == {"rel": "icon", "href": "data:,"}  # no favicon request either


def test_each_scenario_has_its_verdict_thresholds_and_two_plots() -> None:
    results = [*seed_results(), memory_result()]
    _, tree = report(results)
    sections = tree.find_all("section", "scenario")
    assert [s.attrs["id"] for s in sections] == ["s0-short", "s1-medium", "s2-long", "s3-rapid",
                                                 "s4-backpressure", "s5-medium"]
    for section, run in zip(sections, results, strict=True):
        heading = section.find_all("h2")[0]
        assert heading.all_text().startswith(run.scenario.title)
        (badge,) = heading.find_all("span", "badge")
        assert badge.text == ("PASS" if run.passed else "FAIL")
        charts = section.find_all("svg", "chart")
        assert [c.attrs["class"] for c in charts] == ["chart rss", "chart throughput"]
        for chart in charts:
            (series,) = chart.find_all("polyline", "series")
            assert len(series.attrs["points"].split()) >= 50
    failed = sections[-1]
    (failure,) = failed.find_all("div", "failure")
    assert [p.text for p in failure.find_all("p")] == [
        "Memory growth too high: 1234.56 MB (expected < 500MB)",
        "FAILURE: Unbounded memory growth detected",
        "Diagnosis: Memory leak, likely due to:"]
    assert [li.text for li in failure.find_all("li")] == [
        "Messages not freed after processing", "Accumulating buffer without clearing",
        "Circular reference preventing cleanup"]
    rows = [[td.all_text() for td in tr.find_all("td")] for tr in failed.find_all("tr")][1:]
    assert rows == [["Throughput (medium)", "> 5K", "10K", "+103%", "✓ met"],
                    ["Memory (medium)", "< 500 MB", "1235 MB", "+147%", "✗ missed"]]


def test_the_overview_has_the_seeds_tables() -> None:
    _, tree = report(seed_results())
    (overview,) = [s for s in tree.find_all("section") if s.attrs.get("id") == "overview"]
    perf, limits = overview.find_all("table")
    header = [th.text for th in perf.find_all("th")]
    assert header == ["Test", "Messages", "Duration", "Throughput", "Memory", "Status"]
    first = [td.all_text() for td in perf.find_all("tr")[1].find_all("td")]
    assert first == ["Short (1M)", "1,000,000", "45.2s", "22K msg/s", "45 MB", "PASS"]
    assert perf.find_all("a")[0].attrs["href"] == "#s0-short"
    last = [td.all_text() for td in limits.find_all("tr")[-1].find_all("td")]
    assert last == ["Message loss (backpressure)", "< 1%", "0%", "-100%"]


def test_a_baseline_is_shown_beside_each_throughput() -> None:
    current = seed_results()
    current[0] = dataclasses.replace(current[0], metrics=dataclasses.replace(
        current[0].metrics, throughput=11062))
    _, tree = report(current, baseline=seed_results()[:2])
    perf = tree.find_all("table")[0]
    assert [th.text for th in perf.find_all("th")][4:6] == ["Baseline", "Change"]
    rows = [[td.all_text() for td in tr.find_all("td")] for tr in perf.find_all("tr")[1:]]
    assert rows[0][3:6] == ["11K msg/s", "22K msg/s", "-50%"]
    assert rows[1][4:6] == ["10K msg/s", "+0%"]
    assert rows[2][4:6] == ["not in baseline", "N/A"]
    figures = tree.find_all("section", "scenario")[0].find_all("dl", "figures")[0]
    assert "11,062 tokens/sec (baseline 22,124, -50%)" in figures.all_text()
    guides = tree.find_all("section", "scenario")[0].find_all("text", "baseline")
    assert [g.text for g in guides] == ["baseline 22K"]


def test_user_text_is_escaped_everywhere() -> None:
    hostile = loss_result()
    failure = dataclasses.replace(hostile.failures[0], message=HOSTILE, headline=HOSTILE,
                                  diagnosis=(HOSTILE,))
    hostile = dataclasses.replace(
        hostile, scenario=dataclasses.replace(hostile.scenario, title=HOSTILE),
        failures=(failure,), notes=(HOSTILE,), artifacts={"log": 'a"b<c>.log'})
    page, tree = report([hostile])
    assert "<script>" not in page
    assert "<img" not in page
    assert tree.find_all("script") == []
    assert tree.find_all("img") == []
    assert page.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") >= 5
    assert tree.find_all("ul", "notes")[0].all_text() == HOSTILE
    (link,) = tree.find_all("ul", "artifacts")[0].find_all("a")
    assert link.attrs["href"] == "a%22b%3Cc%3E.log"
    assert link.text == 'a"b<c>.log'


def test_artifact_links_are_relative_labelled_and_flag_missing_files(tmp_path: Path) -> None:
    run = dataclasses.replace(seed_results()[0], artifacts={
        "cpu_speedscope": "short-cpu.speedscope.json", "log": "stress-test-short.log",
        "memray_flamegraph": "memray/short flame.html", "custom_thing": "extra.txt",
        "evil": "javascript:alert(1)"})
    (tmp_path / "stress-test-short.log").write_text("log", encoding="utf-8")
    (tmp_path / "memray").mkdir()
    (tmp_path / "memray" / "short flame.html").write_text("x", encoding="utf-8")
    write_reports([run], tmp_path)
    tree = parse((tmp_path / "report.html").read_text(encoding="utf-8"))
    items = tree.find_all("ul", "artifacts")[0].find_all("li")
    assert [li.all_text() for li in items] == [
        "Log: stress-test-short.log",
        "Memory flamegraph (memray): memray/short flame.html",
        "CPU profile (speedscope JSON): short-cpu.speedscope.json (missing)",
        "Custom thing: extra.txt (missing)",
        "Evil: javascript:alert(1) (missing)",
    ]
    hrefs = [li.find_all("a")[0].attrs["href"] for li in items]
    assert hrefs[1] == "memray/short%20flame.html"
    assert hrefs[4] == "javascript%3Aalert%281%29"  # a relative file name, not a script URL


def test_notes_and_the_text_block_are_on_the_page() -> None:
    run = dataclasses.replace(seed_results()[0], notes=("py-spy could not attach: EPERM",))
    _, tree = report([run])
    assert [li.text for li in tree.find_all("ul", "notes")[0].find_all("li")] == [
        "py-spy could not attach: EPERM"]
    (pre,) = tree.find_all("pre")
    assert pre.text.startswith("=== Stress Test Results: 1M Short Messages ===\n")


def test_a_run_without_samples_says_so_instead_of_plotting() -> None:
    bare = dataclasses.replace(timeout_result(), samples=(Sample(t_s=0, rss_mb=30, tokens=0),))
    _, tree = report([bare])
    assert tree.find_all("svg") == []
    assert [p.text for p in tree.find_all("p", "no-data")][:2] == [
        "RSS over time: not enough samples to plot.",
        "Throughput over time: not enough samples to plot."]


def test_an_in_progress_page_says_so_and_an_empty_run_renders() -> None:
    page, _ = report(seed_results()[:1], final=False)
    assert "Run in progress" in page
    page, tree = report([])
    assert tree.find_all("h1")[0].text == "Stress: no scenario ran"


def test_throughput_over_time_is_tokens_between_samples() -> None:
    samples = [Sample(t_s=0.0, rss_mb=1, tokens=0), Sample(t_s=0.5, rss_mb=1, tokens=100),
               Sample(t_s=0.5, rss_mb=1, tokens=100), Sample(t_s=1.5, rss_mb=1, tokens=400)]
    assert throughput_series(samples) == [(0.5, 200.0), (1.5, 300.0)]


@pytest.mark.parametrize(("low", "high", "ticks"), [
    (0, 95, [0, 20, 40, 60, 80, 100]),
    (0, 22_124, [0, 5000, 10_000, 15_000, 20_000, 25_000]),
    (30, 30, [30, 30.2, 30.4, 30.6, 30.8, 31]),
])
def test_axis_ticks_are_round_and_cover_the_data(low: float, high: float,
                                                 ticks: list[float]) -> None:
    assert nice_ticks(low, high) == pytest.approx(ticks)


def test_long_series_are_thinned_keeping_the_ends() -> None:
    points = [(float(i), float(i)) for i in range(5000)]
    thinned = downsample(points, 800)
    assert len(thinned) <= 801
    assert thinned[0] == points[0]
    assert thinned[-1] == points[-1]


def test_the_rss_plot_shows_the_memory_limit_above_the_start() -> None:
    run = result(SHORT, duration_s=10, throughput=100_000, memory_growth_mb=20)
    _, tree = report([run])
    labels = [t.text for t in tree.find_all("text", "limit")]
    assert labels == ["limit: start + 100 MB", "min 10K"]


def test_tick_labels_stay_distinct_on_short_runs() -> None:
    ticks = nice_ticks(0, 0.132)
    assert [tick_label(t) for t in ticks] == ["0", "0.05", "0.1", "0.15"]
    assert [tick_label(t) for t in (150, 30.2, 22_000)] == ["150", "30.2", "22K"]


def test_a_run_that_measured_nothing_has_no_change_against_the_baseline() -> None:
    crashed = result(SHORT, status="crashed", duration_s=0.0, throughput=0.0)
    _, tree = report([crashed], baseline=seed_results()[:1])
    perf = tree.find_all("table")[0]
    row = [td.all_text() for td in perf.find_all("tr")[1].find_all("td")]
    assert row[4:6] == ["22K msg/s", "N/A"]  # as summary.md says, not "-100%"
    figures = tree.find_all("dl", "figures")[0].all_text()
    assert "0 tokens/sec (baseline 22,124)" in figures


def test_an_unfinished_runs_loss_is_not_measured_on_the_page() -> None:
    hung = dataclasses.replace(loss_result(), status="timeout",
                               failures=timeout_result().failures)
    page, tree = report([hung])
    section = tree.find_all("section", "scenario")[0]
    rows = [[td.all_text() for td in tr.find_all("td")] for tr in section.find_all("tr")][1:]
    assert rows == [["Message loss (backpressure)", "< 1%", "not measured", "N/A",
                     "not measured"]]
    figures = section.find_all("dl", "figures")[0].all_text()
    assert "Message lossnot measured (the run did not finish; 15430 sent" in figures
    assert "15.43%" not in page


def test_a_profilers_evidence_keeps_its_indents() -> None:
    leak = Failure(kind="leak", message="Leaked memory too high", headline="FAILURE: Memory leak "
                   "detected", diagnosis=("Messages not freed after processing",),
                   evidence="  1. 12.0 MB at make_buffer (p.py:40)\n       make_buffer  p.py:40\n")
    run = dataclasses.replace(memory_result(), failures=(leak,))
    _, tree = report([run])
    (failure,) = tree.find_all("div", "failure")
    assert failure.find_all("p")[-1].text == \
        "Diagnosis: Memory leak, still allocated at exit (largest first):"
    (pre,) = failure.find_all("pre", "evidence")
    assert pre.text == "  1. 12.0 MB at make_buffer (p.py:40)\n       make_buffer  p.py:40"
    assert failure.find_all("li") == []


def test_one_status_table_names_every_status_twice() -> None:
    assert set(STATUS_NAMES) == set(get_args(Status))
    assert {s: (n.label, n.word) for s, n in STATUS_NAMES.items()}["timeout"] == \
        ("⏱️ TIMEOUT", "TIMEOUT")
    _, tree = report([timeout_result()])
    assert {b.text for b in tree.find_all("span", "badge")} == {"TIMEOUT"}


def test_an_artifact_name_too_long_for_the_filesystem_is_marked_missing(tmp_path: Path) -> None:
    name = "a" * 300
    run = dataclasses.replace(timeout_result(), scenario=dataclasses.replace(
        timeout_result().scenario, name=name), artifacts={"log": f"stress-test-{name}.log"})
    write_reports([run], tmp_path)  # the runner could not write that log; the reports still are
    tree = parse((tmp_path / "report.html").read_text(encoding="utf-8"))
    (item,) = tree.find_all("ul", "artifacts")[0].find_all("li")
    assert item.all_text() == f"Log: stress-test-{name}.log (missing)"
