"""The profiling API the runner calls, and the pieces that need no profiler run."""

from __future__ import annotations

import html
import json
import re
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from stress.errors import ConfigError
from stress.process import stop_in_stages
from stress.profiling import (
    CPU_PROFILERS,
    PROFILE_KINDS,
    ProfileOutcome,
    make_profiler,
    parse_profile_kinds,
)
from stress.profiling.base import READY_ENV, finish_safely, short_path
from stress.profiling.cpu_profiler import PySpyProfiler
from stress.profiling.flamegraph_svg import render_flamegraph_svg
from stress.profiling.memray_profiler import MemrayProfiler
from stress.profiling.offline_html import (
    inline_remote_assets,
    memray_vendor_dir,
    remote_assets,
)
from stress.profiling.perf_profiler import PerfProfiler, parse_perf_script
from stress.profiling.stacks import Frame, SampledStacks, from_speedscope, to_speedscope

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(("text", "kinds"), [
    ("memory,cpu", ("memory", "cpu")),
    ("", ()),
    (" cpu , memory ", ("cpu", "memory")),
    ("memory,memory", ("memory",)),
    ("CPU", ("cpu",)),
])
def test_parse_profile_kinds(text: str, kinds: tuple[str, ...]) -> None:
    assert parse_profile_kinds(text) == kinds


def test_parse_profile_kinds_rejects_unknown_kind_in_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_profile_kinds("memory,gpu")
    message = str(caught.value)
    assert "\n" not in message
    assert "--profile" in message
    assert "'gpu'" in message
    assert all(kind in message for kind in PROFILE_KINDS)


def test_make_profiler_picks_the_profiler(tmp_path: Path) -> None:
    assert PROFILE_KINDS == ("memory", "cpu")
    assert CPU_PROFILERS == ("py-spy", "perf")
    assert isinstance(make_profiler("memory", out_dir=tmp_path, scenario="s"), MemrayProfiler)
    assert isinstance(make_profiler("cpu", out_dir=tmp_path, scenario="s"), PySpyProfiler)
    perf = make_profiler("cpu", out_dir=tmp_path, scenario="s", cpu_profiler="perf")
    assert isinstance(perf, PerfProfiler)
    assert {p.kind for p in (perf, make_profiler("memory", out_dir=tmp_path, scenario="s"))} \
        == {"cpu", "memory"}
    with pytest.raises(ConfigError, match="--cpu-profiler 'vtune'"):
        make_profiler("cpu", out_dir=tmp_path, scenario="s", cpu_profiler="vtune")
    with pytest.raises(ConfigError, match="--profile"):
        make_profiler("gpu", out_dir=tmp_path, scenario="s")


def test_memray_wraps_module_and_script_runs(tmp_path: Path) -> None:
    profiler = MemrayProfiler(out_dir=tmp_path, scenario="short")
    stale = tmp_path / "short-memray.bin"
    stale.write_bytes(b"from an earlier run")
    argv, env = profiler.wrap([sys.executable, "-m", "stress.engine.child", "spec.json"],
                              {"A": "1"})
    # memray writes to a fresh hidden name beside the capture's (renamed into place after the
    # run), never through a link that may be planted at the capture's own name.
    scratch = argv[8]
    assert argv == [sys.executable, "-m", "memray", "run", "--aggregate", "--quiet", "--force",
                    "--output", scratch, "-m", "stress.engine.child", "spec.json"]
    assert Path(scratch).parent == tmp_path
    assert Path(scratch).name.startswith(".short-memray.bin.")
    assert env == {"A": "1", "PYTHONMALLOC": "malloc"}
    assert not stale.exists(), "a stale capture must not pass for this run's"
    argv, _ = profiler.wrap([sys.executable, "script.py", "--flag"], {})
    assert argv[-2:] == ["script.py", "--flag"]
    assert argv[-3] == scratch


def test_py_spy_leaves_the_command_alone_and_makes_the_child_wait(tmp_path: Path) -> None:
    profiler = PySpyProfiler(out_dir=tmp_path, scenario="s")
    argv = [sys.executable, "-m", "stress.engine.child", "x"]
    wrapped, env = profiler.wrap(argv, {"A": "1"})
    assert wrapped == argv
    assert env["A"] == "1"
    assert env[READY_ENV], "the child waits until py-spy samples it"
    profiler.finish(timed_out=False)


def test_missing_py_spy_is_a_note_not_an_error(tmp_path: Path) -> None:
    profiler = PySpyProfiler(out_dir=tmp_path, scenario="s", command=None)
    profiler.command = None  # as when py-spy is on neither the venv nor PATH
    profiler.attach(12345)
    outcome = profiler.finish(timed_out=False)
    assert outcome == ProfileOutcome(kind="cpu", artifacts={}, notes=(
        "py-spy is not installed, so no CPU profile was taken: pip install py-spy",))


def _svg_frames(svg: str) -> dict[str, float]:
    """Frame name -> drawn width, from the SVG's tooltips and rects."""
    root = ET.fromstring(svg)
    frames = {}
    for group in root.iter(f"{SVG}g"):
        title = group.find(f"{SVG}title")
        rect = group.find(f"{SVG}rect")
        assert title is not None
        assert rect is not None
        assert title.text
        frames[title.text.split("\n")[0]] = float(rect.attrib["width"])
    return frames


def test_flamegraph_widths_follow_the_samples() -> None:
    counts: dict[tuple[str, ...], float] = {
        ("main (app.py:1)", "produce (app.py:5)"): 3.0,
        ("main (app.py:1)", "consume (app.py:9)"): 1.0,
        ("main (app.py:1)", "tiny <&> (app.py:12)"): 0.00001,
    }
    svg = render_flamegraph_svg(counts, title="CPU <demo>", subtitle="py-spy")
    frames = _svg_frames(svg)  # also proves the SVG is well-formed XML
    assert frames["produce (app.py:5)"] == pytest.approx(3 * frames["consume (app.py:9)"], rel=1e-3)
    assert frames["all"] == pytest.approx(frames["main (app.py:1)"], rel=1e-3)
    assert "tiny <&> (app.py:12)" not in frames, "sub-pixel frames are dropped"
    assert "CPU &lt;demo&gt;" in svg


def test_speedscope_round_trip_keeps_stacks_and_time_order() -> None:
    stacks = SampledStacks()
    main, work, idle = (stacks.frame_id(Frame(n, "/src/app.py", i))
                        for i, n in enumerate(("main", "work", "idle"), 1))
    thread = stacks.thread("MainThread")
    for stack in [(main, work), (main, work), (main, idle), (main, work)]:
        thread.add(stack, 0.01)
    assert thread.stacks == [(main, work), (main, idle), (main, work)], "neighbours merged"
    assert thread.taken == 4
    again = from_speedscope(to_speedscope(stacks, name="demo"))
    assert again.threads[0].stacks == thread.stacks
    assert again.collapsed() == pytest.approx(stacks.collapsed())
    assert stacks.collapsed()[("main (/src/app.py:1)", "work (/src/app.py:2)")] \
        == pytest.approx(0.03)


PERF_SCRIPT = """\
python3.13 4242/4242   10101010
\t          1035ff StopIteration_dealloc (/usr/lib/libpython3.13.so.1.0)
\t              85 py::Consumer.run:/srv/app/consumer.py (/tmp/jitted-4242-918.so)
\t          2bc5f0 py_trampoline_evaluator (/usr/lib/libpython3.13.so.1.0)
\t              85 py::<module>:/srv/app/main.py (/tmp/jitted-4242-204.so)
\t           27249 __libc_start_call_main (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t            1080 _start (/usr/bin/python3.13)

python3.13 4242/4242   10101010
\t              85 py::produce:/srv/app/backend.py (/tmp/perf-4242.map)
\t               0 [unknown] ([unknown])

python3.13 4242/4250   20202020
\t          123456 __memmove_avx_unaligned (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t            1080 start_thread (/usr/lib/x86_64-linux-gnu/libc.so.6)
"""


def test_perf_script_becomes_python_stacks() -> None:
    stacks, summary = parse_perf_script(PERF_SCRIPT.splitlines(keepends=True))
    assert (summary.samples, summary.with_python, summary.whole) == (3, 2, 1)
    assert summary.pids == frozenset({4242})
    collapsed = stacks.collapsed()
    assert collapsed[("<module> (/srv/app/main.py)", "Consumer.run (/srv/app/consumer.py)")] \
        == pytest.approx(0.0101, rel=1e-3)
    assert collapsed[("produce (/srv/app/backend.py)",)] == pytest.approx(0.0101, rel=1e-3)
    assert collapsed[("[no Python frame]",)] == pytest.approx(0.0202, rel=1e-3)
    assert [t.name for t in stacks.threads] == ["python3.13 4242", "python3.13 4250"]


def test_remote_assets_are_found_and_links_are_not() -> None:
    html = """<html><head>
      <link rel="stylesheet" href="https://cdn.example/bootstrap.min.css">
      <style>@import url("https://fonts.example/x.css"); body { color: red }</style>
      <script src="//cdn.example/d3.min.js"></script>
      <script>const s = "<script src=https://not-a-tag>";</script>
    </head><body><a href="https://docs.example/">docs</a><img src="data:image/png;base64,AA"></body>
    </html>"""
    found = remote_assets(html)
    assert "https://cdn.example/bootstrap.min.css" in found
    assert "//cdn.example/d3.min.js" in found
    assert any("fonts.example" in url for url in found)
    assert not any("docs.example" in url or "not-a-tag" in url for url in found)


def test_cdn_assets_are_inlined_from_a_vendor_folder(tmp_path: Path) -> None:
    (tmp_path / "d3.min.js").write_text("window.d3 = {};", encoding="utf-8")
    (tmp_path / "bootstrap.min.css").write_text("body{margin:0}", encoding="utf-8")
    html = ('<link rel="stylesheet" href="https://cdn.example/npm/bootstrap.min.css">'
            '<script src="https://cdn.example/npm/d3@7/dist/d3.min.js"></script>'
            '<script src="https://cdn.example/plotly.min.js"></script>')
    fixed, remote = inline_remote_assets(html, tmp_path)
    assert "<style>body{margin:0}</style>" in fixed
    assert '<script type="text/javascript">window.d3 = {};</script>' in fixed
    assert remote == ["https://cdn.example/plotly.min.js"], "what cannot be inlined is reported"


def test_memray_ships_the_assets_its_offline_reports_need() -> None:
    vendor = memray_vendor_dir()
    assert vendor is not None
    names = {p.name for p in vendor.iterdir()}
    assert {"d3.min.js", "d3-flamegraph.min.js", "plotly.min.js", "jquery.min.js"} <= names


def test_short_path_reads_like_an_import_path() -> None:
    import asyncio.events

    import stress.profiling.base

    assert short_path(asyncio.events.__file__) == "asyncio/events.py"
    assert short_path(stress.profiling.base.__file__) == "stress/profiling/base.py"
    assert short_path("/opt/py/lib/python3.13/site-packages/pkg/mod.py") == "pkg/mod.py"
    assert short_path("<frozen runpy>") == "<frozen runpy>"


def test_staged_stop_escalates_past_a_recorder_that_ignores_sigint() -> None:
    ignores_int = subprocess.Popen([sys.executable, "-c", (
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)")], stdout=subprocess.PIPE)
    assert ignores_int.stdout is not None
    assert ignores_int.stdout.readline() == b"ready\n"
    stop_in_stages(ignores_int, exit_wait_s=0.1, interrupt_wait_s=0.3, terminate_wait_s=5)
    assert ignores_int.returncode == -signal.SIGTERM
    ignores_int.stdout.close()


def test_staged_stop_lets_a_recorder_finish_on_sigint() -> None:
    writes_on_int = subprocess.Popen([sys.executable, "-c", (
        "import time\ntry:\n    print('ready', flush=True); time.sleep(60)\n"
        "except KeyboardInterrupt:\n    raise SystemExit(7)")], stdout=subprocess.PIPE)
    assert writes_on_int.stdout is not None
    assert writes_on_int.stdout.readline() == b"ready\n"
    stop_in_stages(writes_on_int, exit_wait_s=0.1, interrupt_wait_s=10)
    assert writes_on_int.returncode == 7
    writes_on_int.stdout.close()


def test_an_unreadable_capture_is_a_note(tmp_path: Path) -> None:
    profiler = MemrayProfiler(out_dir=tmp_path, scenario="s")
    argv, _ = profiler.wrap([sys.executable, "-m", "stress.engine.child", "spec.json"], {})
    Path(argv[argv.index("--output") + 1]).write_bytes(b"not a memray capture" * 100)
    outcome = profiler.finish(timed_out=True)
    assert outcome.artifacts == {"memray_capture": "s-memray.bin"}
    assert outcome.leaked_mb is None
    (note,) = outcome.notes
    assert note.startswith("memray's capture s-memray.bin could not be read (")


def test_a_profiler_bug_while_finishing_is_a_note(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> ProfileOutcome:
        raise OSError("disk full")

    outcome = finish_safely("cpu", "py-spy", ["earlier note"], broken)
    assert outcome == ProfileOutcome(kind="cpu", artifacts={}, notes=(
        "earlier note", "py-spy could not finish its profile: OSError: disk full"))
    assert "py-spy could not finish its profile" in caplog.text


@pytest.mark.browser
def test_clicking_a_frame_zooms_into_it(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed")
    counts: dict[tuple[str, ...], float] = {
        ("main (app.py:1)", "produce (app.py:5)", "encode (app.py:7)"): 1.0,
        ("main (app.py:1)", "consume (app.py:9)"): 9.0,
    }
    svg = render_flamegraph_svg(counts, title="zoom", subtitle="test")
    probe = """<script>
      const frames = [...document.querySelectorAll('g.f')];
      const named = (n) => frames.find(g => g.querySelector('title').textContent.startsWith(n));
      const width = (n) => Math.round(+named(n).querySelector('rect').getAttribute('width'));
      named('produce').dispatchEvent(new MouseEvent('click', {bubbles: true}));
      const zoomed = [width('produce'), width('encode'), width('main'),
                      named('consume').style.display];
      named('all').dispatchEvent(new MouseEvent('click', {bubbles: true}));
      document.body.dataset.result = JSON.stringify(
        [...zoomed, width('produce'), named('consume').style.display]);
    </script>"""
    page = tmp_path / "zoom.html"
    page.write_text(f"<html><body>{svg}{probe}</body></html>", encoding="utf-8")
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    match = re.search(r'data-result="([^"]*)"', done.stdout)
    assert match is not None, done.stderr[-2000:]
    result = json.loads(html.unescape(match.group(1)))
    # Zoomed into produce: it and its callee fill the width, its caller spans it, the
    # sibling is hidden. Clicking the root restores the 10% width.
    assert result == [1180, 1180, 1180, "none", 118, ""]
