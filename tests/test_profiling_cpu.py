"""CPU profiles of real processes: py-spy attached to a scenario child, perf with perf support."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stress.profiling import make_profiler
from stress.profiling.cpu_profiler import PySpyProfiler, py_spy_command
from stress.profiling.perf_profiler import PerfProfiler, inspect_interpreter
from tests.test_profiling_memray import run_profiled, small

PTRACE_NOTE = re.compile(
    r"^py-spy could not attach to pid \d+ \(ptrace not permitted\): run the container with "
    r"--cap-add SYS_PTRACE .*or use --profile memory only$")


def _svg_titles(svg: str) -> set[str]:
    return {html.unescape(m).split("\n")[0] for m in re.findall(r"<title>([^<]*)</title>", svg)}


@pytest.mark.slow
def test_py_spy_flamegraph_names_the_pipeline_functions(tmp_path: Path) -> None:
    profiler = make_profiler("cpu", out_dir=tmp_path, scenario="short")
    # Long enough for py-spy's samples (100 a second at most) to find each function: on a
    # fast machine 2 million tokens took 0.2 s, and the samples were mostly the child's
    # imports. The functions asserted are where the pipeline spends its time; the backend's
    # stream, which only cuts runs of tokens, was in 1 to 4 samples of about 200 there.
    run = run_profiled(profiler, small("short", 30_000_000), "stress.pipeline:reference",
                       tmp_path / "work")
    assert run.returncode == 0, run.log
    outcome = run.outcome
    if outcome.notes and "ptrace not permitted" in outcome.notes[0]:
        pytest.skip(f"this machine forbids ptrace: {outcome.notes[0]}")
    assert outcome.notes == ()
    assert outcome.artifacts == {"cpu_flamegraph": "short-cpu-flamegraph.svg",
                                 "cpu_speedscope": "short-cpu-speedscope.json"}
    svg = (tmp_path / outcome.artifacts["cpu_flamegraph"]).read_text(encoding="utf-8")
    names = " ".join(_svg_titles(svg))
    for function in ("Consumer.run (stress/pipeline/consumer.py:", "forward (stress/pipeline/",
                     "Channel.receive (stress/pipeline/channel.py:"):
        assert function in names
    speedscope = json.loads(
        (tmp_path / outcome.artifacts["cpu_speedscope"]).read_text(encoding="utf-8"))
    assert speedscope["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    frames = {f["name"] for f in speedscope["shared"]["frames"]}
    assert {"Consumer.run", "forward"} <= frames
    profile = speedscope["profiles"][0]
    assert profile["type"] == "sampled"
    assert len(profile["samples"]) == len(profile["weights"]) > 0
    assert profile["endValue"] == pytest.approx(sum(profile["weights"]), abs=1e-3)


def _no_ptrace_commands() -> list[tuple[str, list[str]]]:
    """py-spy launched without the right to ptrace a root-owned child, two real ways."""
    py_spy = py_spy_command()
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None or py_spy is None:
        return []
    return [
        # Root without CAP_SYS_PTRACE: what a container without --cap-add SYS_PTRACE gives.
        ("no-cap", [setpriv, "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace", *py_spy]),
        # Another user: the kernel refuses to let it trace root's process.
        ("nobody", [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *py_spy]),
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("how", "command"), _no_ptrace_commands() or [
    pytest.param("none", [], marks=pytest.mark.skip(reason="needs root, setpriv and py-spy"))])
def test_py_spy_without_ptrace_says_how_to_fix_it(tmp_path: Path, how: str,
                                                  command: list[str]) -> None:
    profiler = PySpyProfiler(out_dir=tmp_path, scenario="short", command=command)
    # Long enough (about a second) that py-spy tries to attach while the child is alive.
    run = run_profiled(profiler, small("short", 3_000_000), "stress.pipeline:reference",
                       tmp_path / "work")
    assert run.returncode == 0, "the scenario still runs"
    assert run.figures is not None
    assert run.figures.run is not None
    assert run.figures.run.tokens_received == 3_000_000, "and is judged on what it measured"
    assert run.outcome.artifacts == {}
    assert len(run.outcome.notes) == 1
    assert PTRACE_NOTE.match(run.outcome.notes[0]), run.outcome.notes[0]
    assert [p.name for p in tmp_path.iterdir()] == ["work"], "no half-written artifacts"


def test_perf_not_installed_says_so(tmp_path: Path) -> None:
    profiler = PerfProfiler(out_dir=tmp_path, scenario="s")
    profiler.perf = None
    argv = [sys.executable, "-m", "stress.engine.child", "spec.json"]
    assert profiler.wrap(argv, {}) == (argv, {}), "the child still runs, unprofiled"
    outcome = profiler.finish(timed_out=False)
    assert outcome.artifacts == {}
    assert outcome.notes == ("--cpu-profiler perf: perf is not installed (Debian/Ubuntu: "
                             "apt-get install linux-perf); use --cpu-profiler py-spy",)


def test_perf_that_cannot_record_says_so(tmp_path: Path) -> None:
    false = shutil.which("false")
    assert false is not None
    profiler = PerfProfiler(out_dir=tmp_path, scenario="s", perf=false)
    argv = [sys.executable, "-m", "stress.engine.child", "spec.json"]
    assert profiler.wrap(argv, {}) == (argv, {})
    (note,) = profiler.finish(timed_out=False).notes
    assert note.startswith("--cpu-profiler perf: perf cannot record here")
    assert "kernel.perf_event_paranoid is" in note
    assert note.endswith("or use --cpu-profiler py-spy")


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="this interpreter has perf support")
def test_perf_on_python_before_312_says_so(tmp_path: Path) -> None:
    profiler = PerfProfiler(out_dir=tmp_path, scenario="s")
    if profiler.perf is None:
        pytest.skip("perf is not installed")
    argv = [sys.executable, "-m", "stress.engine.child", "spec.json"]
    assert profiler.wrap(argv, {}) == (argv, {})
    (note,) = profiler.finish(timed_out=False).notes
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if "cannot record here" in note:
        pytest.skip(f"perf cannot record on this machine: {note}")
    assert note == (f"--cpu-profiler perf: Python's perf support needs Python 3.12+ and the "
                    f"scenario child runs Python {version}; use --cpu-profiler py-spy")


def _python_with_perf_support() -> str | None:
    """A Python 3.12+ to run a workload under perf: $STRESS_PERF_PYTHON, PATH, or pyenv."""
    candidates = [os.environ.get("STRESS_PERF_PYTHON"), sys.executable]
    candidates += [shutil.which(f"python3.{minor}") for minor in (14, 13, 12)]
    pyenv = shutil.which("pyenv")
    if pyenv:
        listed = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True,
                                check=False).stdout.split()
        for version in sorted((v for v in listed if re.fullmatch(r"3\.1[2-9]\.\d+", v)),
                              key=lambda v: [int(p) for p in v.split(".")], reverse=True):
            prefix = subprocess.run([pyenv, "prefix", version], capture_output=True, text=True,
                                    check=False).stdout.strip()
            candidates.append(str(Path(prefix) / "bin" / "python3") if prefix else None)
    found = [(info.version, c) for c in candidates if c
             for info in [inspect_interpreter(c)] if info and info.version >= (3, 12)]
    return max(found)[1] if found else None


WORKLOAD = textwrap.dedent("""\
    import asyncio, sys

    async def produce_tokens(queue, n):
        for i in range(n):
            await queue.put(str(i) * 3)
        await queue.put(None)

    async def consume_tokens(queue):
        count = 0
        while (token := await queue.get()) is not None:
            count += len(token)
        return count

    async def main(n):
        queue = asyncio.Queue(100)
        async with asyncio.TaskGroup() as group:
            group.create_task(produce_tokens(queue, n))
            consumer = group.create_task(consume_tokens(queue))
        print("consumed", consumer.result())

    asyncio.run(main(int(sys.argv[1])))
""")


@pytest.mark.slow
def test_perf_flamegraph_from_python_perf_support(tmp_path: Path) -> None:
    python = _python_with_perf_support()
    if python is None:
        pytest.skip("no Python 3.12+ found (set STRESS_PERF_PYTHON)")
    profiler = PerfProfiler(out_dir=tmp_path, scenario="perfdemo")
    script = tmp_path / "workload.py"
    script.write_text(WORKLOAD, encoding="utf-8")
    jit_files_before = set(Path("/tmp").glob("jit-*.dump")) | set(Path("/tmp").glob("perf-*.map"))
    argv, env = profiler.wrap([python, str(script), "300000"], dict(os.environ))
    if argv[0] == python:
        (note,) = profiler.finish(timed_out=False).notes
        pytest.skip(f"perf cannot be used here: {note}")
    assert argv[0] == profiler.perf
    assert "record" in argv
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "consumed" in done.stdout
    outcome = profiler.finish(timed_out=False)
    assert outcome.artifacts == {"cpu_flamegraph": "perfdemo-cpu-flamegraph.svg",
                                 "cpu_speedscope": "perfdemo-cpu-speedscope.json"}
    svg = (tmp_path / outcome.artifacts["cpu_flamegraph"]).read_text(encoding="utf-8")
    names = " ".join(_svg_titles(svg))
    assert "perf 99 Hz" in svg
    version = inspect_interpreter(python)
    assert version is not None
    if version.version >= (3, 13):  # -X perf_jit: whole Python stacks, callers included
        assert outcome.notes == ()
        assert "produce_tokens (workload.py)" in names
        assert "consume_tokens (workload.py)" in names
        assert "<module> (workload.py)" in names
    else:  # 3.12: whole stacks only with frame pointers; otherwise a note says why not
        assert "produce_tokens (workload.py)" in names or outcome.notes
    jit_files_after = set(Path("/tmp").glob("jit-*.dump")) | set(Path("/tmp").glob("perf-*.map"))
    assert jit_files_after <= jit_files_before, "perf support files are cleaned up"
    speedscope = json.loads(
        (tmp_path / outcome.artifacts["cpu_speedscope"]).read_text(encoding="utf-8"))
    pids = {p["name"].rsplit(" ", 1)[-1] for p in speedscope["profiles"]}
    cached = [p for pid in pids for p in (Path.home() / ".debug").glob(f"**/jitted-{pid}-*")]
    assert cached == [], "perf's build-id cache stays in the work folder"
