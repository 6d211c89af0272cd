"""Faults injected into a real run: signals at each phase, a killed runner, a target that
exits or raises at import, a results folder that is a file, read-only, locked, stale, full or
full of links, a target that floods its log, a profiler that cannot attach. Each test checks
that nothing already measured is lost."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from stress.engine.teardown import WORK_DIR_PREFIX, reap_stale_work_dirs
from stress.errors import ExitCode
from tests.integration.conftest import REPO, stress_env

SLOW_TARGET = REPO / "tests" / "targets" / "slow.py"  # copied beside a container run's inputs

pytestmark = pytest.mark.slow

QUICK = """\
scenarios:
  first:
    title: First Quick
    messages: 2000
    timeout_s: 30
  second:
    title: Second Quick
    messages: 2000
    timeout_s: 30
  third:
    title: Third Quick
    messages: 2000
    timeout_s: 30
"""
STUCK = "tests.user_targets:stuck"


@pytest.fixture
def quick(tmp_path: Path) -> Path:
    path = tmp_path / "quick.yaml"
    path.write_text(QUICK, encoding="utf-8")
    return path


def start(*args: str | Path, extra_path: Path | None = None,
          env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environment = stress_env()
    if extra_path is not None:
        environment["PYTHONPATH"] = f"{extra_path}{os.pathsep}{environment['PYTHONPATH']}"
    environment.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "stress", "run", *map(str, args)], cwd=REPO,
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_for(condition: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def log_says(path: Path, text: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return text in path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return False
    return check


def results(out: Path) -> dict[str, dict[str, object]]:
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return {entry["name"]: entry for entry in data["scenarios"]}


def assert_interrupted_reports(out: Path, stdout: str, not_run: list[str]) -> None:
    summary = (out / "summary.md").read_text(encoding="utf-8")
    first = summary.splitlines()[0]
    assert "interrupted" in first, first
    for name in not_run:
        assert name in first
    assert "not run (interrupted)" in (first if not_run else "not run (interrupted)")
    assert "interrupted" in stdout.strip().splitlines()[-1]
    by_name = results(out)
    for name in not_run:
        assert by_name[name]["status"] == "not_run"
    junit = ET.parse(out / "junit.xml").getroot()
    skipped = [case.get("name") for case in junit.iter("testcase")
               if case.find("skipped") is not None]
    assert skipped == not_run
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "interrupted" in html
    if not_run:
        assert "NOT RUN" in html


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_while_profiling_interrupts_the_run(tmp_path: Path, quick: Path,
                                                         sig: signal.Signals) -> None:
    out = tmp_path / "out"
    proc = start("first", "second", "third", "--scenarios", quick, "--out", out,
                 "--profile", "memory")
    # The first scenario measured and passed; its memray run has started.
    wait_for(log_says(out / "stress-test-first.log", "-m memray run"), what="the profiled run")
    time.sleep(0.3)
    proc.send_signal(sig)
    code, stdout, stderr = finish(proc)
    assert code == ExitCode.CRASHED_OR_HUNG, (stdout, stderr)
    assert "Traceback" not in stderr
    assert_interrupted_reports(out, stdout, ["second", "third"])
    first = results(out)["first"]
    assert first["status"] == "passed", "the measured run keeps its verdict"
    assert first["interrupted"] is True
    assert first["metrics"]["tokens_received"] == 2000  # type: ignore[index]
    assert any("Interrupted during profiling" in n for n in first["notes"])  # type: ignore[attr-defined]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_a_measured_run_lists_the_rest(tmp_path: Path, quick: Path,
                                                           sig: signal.Signals) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(QUICK.replace("timeout_s: 30", "timeout_s: 60"), encoding="utf-8")
    out = tmp_path / "out"
    proc = start("--scenarios", path, "--out", out, "--target", STUCK, "--no-evidence")
    wait_for(log_says(out / "stress-test-first.log", "$ "), what="the first child")
    time.sleep(1.5)
    proc.send_signal(sig)
    code, stdout, stderr = finish(proc)
    assert code == ExitCode.CRASHED_OR_HUNG, (stdout, stderr)
    assert_interrupted_reports(out, stdout, ["second", "third"])
    assert results(out)["first"]["status"] == "interrupted"


def test_an_interrupt_before_the_first_scenario_is_exit_4(tmp_path: Path, quick: Path) -> None:
    (tmp_path / "slowimport.py").write_text(
        "import time\ntime.sleep(30)\ndef make():\n    pass\n", encoding="utf-8")
    proc = start("--scenarios", quick, "--out", tmp_path / "out", "--target", "slowimport:make",
                 extra_path=tmp_path)
    wait_for(lambda: any("check_target" in " ".join(c.cmdline())
                         for c in psutil.Process(proc.pid).children()), what="the target check")
    proc.send_signal(signal.SIGTERM)
    code, _, stderr = finish(proc, timeout=20)
    assert code == ExitCode.CRASHED_OR_HUNG
    assert stderr.strip() == "interrupted"


def test_an_interrupt_before_the_container_runs_lists_every_scenario_not_run(
        tmp_path: Path, quick: Path) -> None:
    """Ctrl-C while the engine is being reached (or the image built): no container ran, and
    the results folder still says so, scenario by scenario."""
    socket_path = tmp_path / "docker.sock"
    connected = threading.Event()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(socket_path))
        server.listen()

        def accept_and_say_nothing() -> None:
            connection, _ = server.accept()  # an engine that never answers
            with connection:
                connected.set()
                while connection.recv(65536):  # until the run is gone
                    pass

        threading.Thread(target=accept_and_say_nothing, daemon=True).start()
        out = tmp_path / "out"
        proc = start("first", "second", "--scenarios", quick, "--out", out, "--engine",
                     "docker", env={"DOCKER_HOST": f"unix://{socket_path}"})
        assert connected.wait(30), "the run reached the engine"
        proc.send_signal(signal.SIGINT)
        code, _, stderr = finish(proc, timeout=30)
    assert code == ExitCode.CRASHED_OR_HUNG, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted"
    assert {name: r["status"] for name, r in results(out).items()} == {
        "first": "not_run", "second": "not_run"}
    assert "interrupted" in (out / "summary.md").read_text(encoding="utf-8").splitlines()[0]


def test_a_killed_runner_takes_its_child_along(tmp_path: Path, quick: Path) -> None:
    out = tmp_path / "out"
    proc = start("first", "--scenarios", quick, "--out", out, "--target", STUCK)
    wait_for(log_says(out / "stress-test-first.log", "$ "), what="the child")
    wait_for(lambda: bool(psutil.Process(proc.pid).children()), what="the child process")
    (child,) = psutil.Process(proc.pid).children()
    work = [p for p in Path(os.environ.get("TMPDIR", "/tmp")).iterdir()
            if p.name.startswith(f"{WORK_DIR_PREFIX}{proc.pid}-")]
    assert work, "the child's work folder carries the runner's pid"
    proc.kill()
    proc.communicate()
    wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE,
             timeout=2, what="the orphaned child to die")
    removed = reap_stale_work_dirs()  # what the next run does first
    assert set(work) <= set(removed)
    assert not any(p.exists() for p in work)


@pytest.mark.parametrize(("body", "words"), [
    ("import sys\nsys.exit(0)\n", "sys.exit(0)"),
    ("raise RuntimeError('no backend configured')\n", "RuntimeError: no backend configured"),
    ("def broken(:\n", "SyntaxError"),
    ("import os\nos._exit(0)\n", "ended the interpreter"),
])
def test_a_target_that_fails_at_import_is_exit_2(tmp_path: Path, quick: Path, body: str,
                                                 words: str) -> None:
    (tmp_path / "badtarget.py").write_text(body + "def make():\n    pass\n", encoding="utf-8")
    out = tmp_path / "out"
    code, stdout, stderr = finish(start("first", "--scenarios", quick, "--out", out,
                                        "--target", "badtarget:make", extra_path=tmp_path))
    assert code == ExitCode.USAGE_ERROR, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert words in lines[0]
    assert "Traceback" not in stderr


def test_out_that_is_a_file_or_unwritable_is_exit_2(tmp_path: Path, quick: Path) -> None:
    file = tmp_path / "a-file"
    file.write_text("x", encoding="utf-8")
    for out in (file, file / "below"):
        code, _, stderr = finish(start("first", "--scenarios", quick, "--out", out))
        assert code == ExitCode.USAGE_ERROR, stderr
        assert len(stderr.strip().splitlines()) == 1, stderr
        assert stderr.startswith(f"error: --out {out}")
    readonly = tmp_path / "ro"
    readonly.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(readonly)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        code, _, stderr = finish(start("first", "--scenarios", quick, "--out", readonly))
        assert code == ExitCode.USAGE_ERROR, stderr
        assert "cannot write there" in stderr
        assert len(stderr.strip().splitlines()) == 1, stderr
    finally:
        subprocess.run(["umount", str(readonly)], check=False)


def test_a_second_run_into_the_same_folder_is_refused(tmp_path: Path, quick: Path) -> None:
    out = tmp_path / "out"
    first = start("first", "--scenarios", quick, "--out", out, "--target", STUCK)
    try:
        wait_for(log_says(out / "stress-test-first.log", "$ "), what="the first run")
        code, _, stderr = finish(start("first", "--scenarios", quick, "--out", out))
        assert code == ExitCode.USAGE_ERROR
        assert f"pid {first.pid}, started at " in stderr
        assert len(stderr.strip().splitlines()) == 1, stderr
    finally:
        first.send_signal(signal.SIGINT)
        finish(first)
    assert results(out)["first"]["status"] == "interrupted", "the first run was not disturbed"
    assert not (out / ".stress-run.lock").exists()


def test_stale_files_go_and_links_are_not_followed(tmp_path: Path, quick: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "first-cpu-flamegraph.svg").write_text("from an earlier run", encoding="utf-8")
    (out / "stress-test-gone.log").write_text("an earlier run's scenario", encoding="utf-8")
    (out / "results.json").write_text(json.dumps({"version": 1, "scenarios": [
        {"name": "gone", "artifacts": {"log": "stress-test-gone.log", "x": "../../etc/passwd"}},
    ]}), encoding="utf-8")
    (out / "mine.txt").write_text("not the kit's", encoding="utf-8")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    for name in ("stress-test-second.log", "summary.md", "report.html", "junit.xml"):
        (out / name).symlink_to(victim)
    code, stdout, stderr = finish(start("first", "second", "--scenarios", quick, "--out", out))
    assert code == ExitCode.PASSED, (stdout, stderr)
    assert victim.read_text(encoding="utf-8") == "precious"
    assert not (out / "first-cpu-flamegraph.svg").exists()
    assert not (out / "stress-test-gone.log").exists()
    assert (out / "mine.txt").exists()
    assert not any((out / n).is_symlink() for n in ("stress-test-second.log", "summary.md"))
    assert set(results(out)) == {"first", "second"}


def test_a_flooding_target_gives_a_capped_log(tmp_path: Path, quick: Path) -> None:
    (tmp_path / "chatty.py").write_text(
        "import sys\nfrom tests.user_targets import EchoPipeline\n"
        "class Chatty(EchoPipeline):\n"
        "    async def run(self, params, stats, quit):\n"
        "        sys.stdout.write('start of output\\n')\n"
        "        for i in range(20000):\n"
        "            sys.stdout.write(f'line {i} ' + 'x' * 1000 + '\\n')\n"
        "        sys.stdout.write('end of output\\n')\n"
        "        await super().run(params, stats, quit)\n"
        "def chatty():\n    return Chatty()\n", encoding="utf-8")
    out = tmp_path / "out"
    code, stdout, stderr = finish(start("first", "--scenarios", quick, "--out", out,
                                        "--target", "chatty:chatty", extra_path=tmp_path))
    assert code == ExitCode.PASSED, (stdout, stderr)
    log = (out / "stress-test-first.log").read_text(encoding="utf-8")
    assert len(log) < 5 * 1024 * 1024 < 2 * 20_000 * 1000
    assert "start of output" in log
    assert "end of output" in log
    assert "bytes of the scenario's output cut here" in log
    assert "✅ Test passed!" in log, "the verdict is still at the end of the log"


def test_cpu_profiles_of_quick_runs_are_taken(tmp_path: Path, quick: Path) -> None:
    """py-spy attaches before the measured run starts: a quick run still gets its profile."""
    out = tmp_path / "out"
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(QUICK.replace("messages: 2000", "messages: 50"), encoding="utf-8")
    code, stdout, stderr = finish(start("--scenarios", tiny, "--out", out, "--profile", "cpu"))
    assert code == ExitCode.PASSED, (stdout, stderr)
    for name, entry in results(out).items():
        assert "cpu_flamegraph" in entry["artifacts"], (name, entry["notes"])  # type: ignore[operator]
        log = (out / f"stress-test-{name}.log").read_text(encoding="utf-8")
        assert "py-spy> Sampling process" in log, "py-spy's own output is in the log"


def test_a_missing_profile_is_a_note_in_every_report(tmp_path: Path, quick: Path) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = finish(start("first", "--scenarios", quick, "--out", out,
                                        "--profile", "cpu", env={"STRESS_PY_SPY": "false"}))
    assert code == ExitCode.PASSED, (stdout, stderr)
    note = "Missing profile: cpu"
    assert note in (out / "summary.md").read_text(encoding="utf-8")
    assert note in (out / "report.html").read_text(encoding="utf-8")
    assert note in (out / "junit.xml").read_text(encoding="utf-8")
    assert any(n.startswith(note) for n in results(out)["first"]["notes"])  # type: ignore[attr-defined]
    assert note in stdout


def test_a_full_disk_drops_the_profiles_and_keeps_the_reports(tmp_path: Path,
                                                              quick: Path) -> None:
    out = tmp_path / "small"
    out.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(out)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (tests/test_results_folder.py injects it)")
    try:
        code, stdout, stderr = finish(start("first", "second", "--scenarios", quick,
                                            "--out", out, "--profile", "memory"))
        assert "Traceback" not in stderr
        assert code in (ExitCode.PASSED, ExitCode.CRASHED_OR_HUNG), (stdout, stderr)
        by_name = results(out)
        assert set(by_name) == {"first", "second"}
        for name in ("junit.xml", "summary.md", "report.html"):
            assert (out / name).stat().st_size > 0
        notes = [n for entry in by_name.values() for n in entry["notes"]]  # type: ignore[attr-defined]
        assert any("disk was full" in n or "No space left" in n for n in notes), notes
    finally:
        subprocess.run(["umount", str(out)], check=False)


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path``: a real full disk, not an injected error."""
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (tests/test_results_folder.py injects it)")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def free_bytes(path: Path) -> int:
    found = os.statvfs(path)
    return found.f_bavail * found.f_frsize


def filling_target(folder: Path, out: Path, leave_bytes: int) -> str:
    """A target whose first run prints until ``out`` has ``leave_bytes`` free: the disk fills
    while the scenario log is written, and the run itself still passes."""
    (folder / "filler.py").write_text(
        "import os, sys\nfrom pathlib import Path\nfrom tests.user_targets import EchoPipeline\n"
        f"OUT, MARK, LEAVE = {str(out)!r}, Path({str(folder / 'filled')!r}), {leave_bytes}\n"
        "class Filler(EchoPipeline):\n"
        "    async def run(self, params, stats, quit):\n"
        "        if not MARK.exists():\n"
        "            MARK.touch()\n"
        "            sys.stdout.write('start of output\\n')\n"
        "            while (lambda s: s.f_bavail * s.f_frsize)(os.statvfs(OUT)) > LEAVE:\n"
        "                sys.stdout.write('x' * 1023 + '\\n')\n"
        "            sys.stdout.write('end of output\\n')\n"
        "        await super().run(params, stats, quit)\n"
        "def filler():\n    return Filler()\n", encoding="utf-8")
    return "filler:filler"


def test_a_disk_filled_by_the_log_cuts_the_log_and_keeps_the_reports(
        tmp_path: Path, quick: Path) -> None:
    with small_disk(tmp_path / "small", "2m") as out:
        target = filling_target(tmp_path, out, leave_bytes=8 * 1024)
        code, stdout, stderr = finish(start("first", "second", "--scenarios", quick,
                                            "--out", out, "--target", target,
                                            extra_path=tmp_path))
        assert "Traceback" not in stderr, stderr
        assert "internal error" not in stderr, stderr
        assert code == ExitCode.PASSED, (stdout, stderr)
        by_name = results(out)
        assert [by_name[n]["status"] for n in ("first", "second")] == ["passed", "passed"]
        assert by_name["first"]["metrics"]["tokens_received"] == 2000  # type: ignore[index]
        for name in ("junit.xml", "summary.md", "report.html"):
            assert (out / name).stat().st_size > 0
        (note,) = [n for n in by_name["first"]["notes"]  # type: ignore[attr-defined]
                   if n.startswith("Dropped:")]
        assert "from the middle of stress-test-first.log" in note
        assert "the disk was full" in note
        summary = (out / "summary.md").read_text(encoding="utf-8")
        assert "## Dropped for a full disk" in summary
        assert note in summary
        log = (out / "stress-test-first.log").read_text(encoding="utf-8")
        assert "start of output" in log
        assert "bytes of this log cut here" in log
        assert len(log) < 100 * 1024
        assert not any(n.startswith("Dropped:") for n in by_name["second"]["notes"])  # type: ignore[attr-defined]


def test_reports_that_do_not_fit_at_all_are_never_green(tmp_path: Path, quick: Path) -> None:
    with small_disk(tmp_path / "small", "1m") as out:
        ballast = out / "ballast.bin"  # not the kit's: it stays, and leaves too little room
        with ballast.open("wb") as fill:
            while free_bytes(out) > 16 * 1024:
                fill.write(b"\0" * 4096)
                fill.flush()
        code, stdout, stderr = finish(start("first", "second", "--scenarios", quick,
                                            "--out", out))
        assert code == ExitCode.CRASHED_OR_HUNG, (stdout, stderr)
        assert "Traceback" not in stderr
        last = stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: --out {out}: the disk is full"), stderr
        assert "Test passed" in stdout, "each verdict is in the output"
        for name in ("results.json", "junit.xml", "summary.md", "report.html"):
            assert not (out / name).exists(), f"{name} of part of the run is left"
        assert ballast.exists()


ARTIFACT_NAMES = ("stress-test-first.log", "first-memray-flamegraph.html",
                  "first-leaks-flamegraph.html", "first-leak-report.txt",
                  "first-memray-stats.txt", "first-memray-stats.json",
                  "first-cpu-flamegraph.svg", "first-cpu-speedscope.json")


def test_links_the_target_plants_while_it_runs_are_not_followed(tmp_path: Path,
                                                                quick: Path) -> None:
    """The code under test can write into the results folder (a container run mounts it):
    links it plants at every artifact's name, mid-run, are replaced, never written through."""
    out = tmp_path / "out"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    (tmp_path / "planter.py").write_text(
        "import contextlib\nfrom pathlib import Path\n"
        "from tests.user_targets import EchoPipeline\n"
        f"OUT, VICTIM, NAMES = Path({str(out)!r}), {str(victim)!r}, {ARTIFACT_NAMES!r}\n"
        f"MARK = Path({str(tmp_path / 'planted')!r})\n"
        "class Planter(EchoPipeline):\n"
        "    async def run(self, params, stats, quit):\n"
        "        if not MARK.exists():  # the measured run, before any profile is written\n"
        "            MARK.touch()\n"
        "            for name in NAMES:  # the open log's name too\n"
        "                with contextlib.suppress(OSError):\n"
        "                    (OUT / name).unlink()\n"
        "                (OUT / name).symlink_to(VICTIM)\n"
        "        await super().run(params, stats, quit)\n"
        "def planter():\n    return Planter()\n", encoding="utf-8")
    code, stdout, stderr = finish(start("first", "--scenarios", quick, "--out", out,
                                        "--target", "planter:planter",
                                        "--profile", "memory,cpu", extra_path=tmp_path))
    assert code == ExitCode.PASSED, (stdout, stderr)
    assert victim.read_text(encoding="utf-8") == "precious"
    artifacts = results(out)["first"]["artifacts"]
    assert isinstance(artifacts, dict)
    assert {"memray_flamegraph", "cpu_flamegraph"} <= set(artifacts), artifacts
    for name in artifacts.values():
        assert not (out / name).is_symlink(), name
        assert (out / name).stat().st_size > 0, name
    log = (out / "stress-test-first.log").read_text(encoding="utf-8")
    assert log.startswith("# scenario first"), "the log is back under its name"
    assert "✅ Test passed!" in log


# -- the container session ------------------------------------------------------------------



@pytest.fixture(scope="module")
def kit_image() -> Iterator[str]:
    """The kit's image from these sources, built once (as `nox -s image` does), removed after
    unless it was there before."""
    from stress.container import engine

    base = os.environ.get("STRESS_BASE_IMAGE") or "stress-kit-base:trixie"
    try:
        client = engine.connect()
        client.images.get(base)
    except Exception as exc:  # no engine or no base image: what the docker tests need
        pytest.skip(f"no container engine with {base} here ({exc})")
    before = {tag for found in client.images.list() for tag in found.tags}
    done = subprocess.run([sys.executable, "-m", "stress", "image", "--base", base], cwd=REPO,
                          env=stress_env(), capture_output=True, text=True, timeout=1200,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tag = done.stdout.split()[-1]
    yield tag
    if tag not in before:
        with contextlib.suppress(Exception):
            client.images.remove(tag)


def labelled_containers() -> set[str]:
    from stress.container import driver, engine

    client = engine.connect()
    return {c.id for c in client.containers.list(all=True, filters={"label": driver.RUN_LABEL})}


def start_session(folder: Path, out: Path, tag: str, *args: str) -> subprocess.Popen[str]:
    """`stress-kit run --engine docker` from a folder holding a plain target module, in a
    process group of its own (so a test can send Ctrl-C to the group, as a terminal does)."""
    shutil.copy(SLOW_TARGET, folder / "slow.py")
    folder.chmod(0o755)  # the container's user (not root) reads the mount as "others"
    return subprocess.Popen(
        [sys.executable, "-m", "stress", "run", *args, "--scenarios", "quick.yaml", "--out",
         str(out), "--target", "slow:Slow", "--no-evidence", "--engine", "docker",
         "--no-build", "--image", tag],
        cwd=folder, env=stress_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)


@pytest.mark.docker
@pytest.mark.parametrize("how", ["SIGINT to the group", "SIGTERM"])
def test_an_interrupted_container_run_is_exit_4_and_keeps_what_finished(
        tmp_path: Path, quick: Path, kit_image: str, how: str) -> None:
    before = labelled_containers()
    out = tmp_path / "out"
    session = start_session(tmp_path, out, kit_image, "first", "second", "third")
    try:
        wait_for(log_says(out / "stress-test-first.log", "$ "), timeout=300,
                 what="the first scenario in the container")
        time.sleep(1.5)
        if how == "SIGTERM":
            session.send_signal(signal.SIGTERM)
        else:
            os.killpg(session.pid, signal.SIGINT)
        code, stdout, stderr = finish(session, timeout=120)
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
    assert code == ExitCode.CRASHED_OR_HUNG, (stdout[-3000:], stderr[-3000:])
    assert "Traceback" not in stderr
    assert "stopping container" in stderr
    runner_output = "\n".join(line for line in stdout.splitlines()
                              if not line.startswith("--- "))  # the session's own lines
    assert_interrupted_reports(out, runner_output, ["second", "third"])
    assert results(out)["first"]["status"] == "interrupted"
    assert labelled_containers() <= before, "no container is left behind"
    for path in (out, *out.rglob("*")):
        assert path.lstat().st_uid == os.getuid(), path  # handed back to the host user
    written = (out / "results.json").stat().st_mtime_ns
    time.sleep(3)
    assert (out / "results.json").stat().st_mtime_ns == written, "nothing rewrites it later"


@pytest.mark.docker
def test_a_killed_session_leaves_a_container_the_next_start_reaps(
        tmp_path: Path, quick: Path, kit_image: str) -> None:
    from stress.container import driver, engine

    before = labelled_containers()
    out = tmp_path / "out"
    session = start_session(tmp_path, out, kit_image, "first")
    try:
        wait_for(log_says(out / "stress-test-first.log", "$ "), timeout=300,
                 what="the scenario in the container")
    finally:
        session.kill()
        session.communicate()
    (orphan,) = labelled_containers() - before  # the fault: it outlives its session
    removed = driver.reap_stale(engine.connect(), log=lambda text: None)  # the next start's
    assert len(removed) >= 1
    assert orphan not in labelled_containers()


@pytest.mark.docker
@pytest.mark.parametrize("how", ["SIGINT to nox alone", "SIGINT to nox's group",
                                 "SIGTERM to nox alone", "SIGKILL to nox alone"])
def test_an_interrupted_nox_stops_the_container_run_cleanly(
        tmp_path: Path, quick: Path, kit_image: str, how: str) -> None:
    """nox's own `stress` session (no virtualenv, nothing installed): nox answers an interrupt
    by escalating to SIGTERM and SIGKILL of the session, after the session got the terminal's
    SIGINT or not; the session must still get the time to stop its container and write the
    interrupted results."""
    before = labelled_containers()
    out = tmp_path / "out"
    shutil.copy(SLOW_TARGET, tmp_path / "slow.py")
    tmp_path.chmod(0o755)  # the container's user (not root) reads the mount as "others"
    env = stress_env()
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    nox = subprocess.Popen(
        [sys.executable, "-m", "nox", "-f", str(REPO / "noxfile.py"), "--no-venv",
         "--no-install", "-s", "stress", "--", "first", "second", "--scenarios", str(quick),
         "--out", str(out), "--target", "slow:Slow", "--no-evidence", "--engine", "docker",
         "--no-build", "--image", kit_image],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        started = log_says(out / "stress-test-first.log", "$ ")
        wait_for(lambda: started() or nox.poll() is not None, timeout=300,
                 what="the first scenario in the container")
        assert nox.poll() is None, nox.communicate()[0][-3000:]  # nox itself failed
        time.sleep(1.5)
        if how == "SIGINT to nox's group":
            os.killpg(nox.pid, signal.SIGINT)
        else:
            nox.send_signal(getattr(signal, how.split(maxsplit=1)[0]))
        output, _ = nox.communicate(timeout=120)
        if how.startswith("SIGKILL"):
            # nox is gone at once; its run was told by the kernel and stops with its grace.
            wait_for(lambda: (out / "results.json").exists()
                     and results(out)["first"]["status"] == "interrupted", timeout=90,
                     what="the run's interrupted results after nox was killed")
            wait_for(lambda: labelled_containers() <= before, timeout=30,
                     what="the container's removal")
    finally:
        if nox.poll() is None:
            nox.kill()
            nox.wait()
    assert nox.returncode != 0, output[-3000:]
    assert results(out)["first"]["status"] == "interrupted", output[-3000:]
    assert results(out)["second"]["status"] == "not_run"
    assert labelled_containers() <= before, "no container outlives the session"
    written = (out / "results.json").stat().st_mtime_ns
    time.sleep(3)
    assert (out / "results.json").stat().st_mtime_ns == written, "nothing rewrites it later"


def test_memray_flamegraphs_leave_the_source_out_when_asked(tmp_path: Path,
                                                            quick: Path) -> None:
    (tmp_path / "allocating.py").write_text(
        "from tests.user_targets import EchoPipeline\n"
        "class Allocating(EchoPipeline):\n"
        "    async def run(self, params, stats, quit):\n"
        "        kept_by_allocating_7f3a = [bytearray(65536) for _ in range(200)]\n"
        "        await super().run(params, stats, quit)\n"
        "        del kept_by_allocating_7f3a\n"
        "def allocating():\n    return Allocating()\n", encoding="utf-8")
    pages = {}
    for flag in ((), ("--no-flamegraph-source",)):
        out = tmp_path / ("without" if flag else "with")
        code, stdout, stderr = finish(start("first", "--scenarios", quick, "--out", out,
                                            "--target", "allocating:allocating", "--profile",
                                            "memory", *flag, extra_path=tmp_path))
        assert code == ExitCode.PASSED, (stdout, stderr)
        artifacts = results(out)["first"]["artifacts"]
        assert isinstance(artifacts, dict)
        pages[bool(flag)] = (out / artifacts["memray_flamegraph"]).read_text(encoding="utf-8")
    assert "kept_by_allocating_7f3a" in pages[False], "the source line, by default"
    assert "kept_by_allocating_7f3a" not in pages[True]
    assert "allocating.py" in pages[True], "the file and function names stay"


@pytest.mark.docker
def test_a_full_disk_costs_a_container_run_its_log_copy_only(tmp_path: Path,
                                                             kit_image: str) -> None:
    """The host copies the container's output into container.log as it comes: a full disk
    there must not stop the output on the terminal nor end the run."""
    from stress.container import driver, engine

    lines = 3000  # 3 MB of output for a 1 MB folder
    code = (f"import sys\nfor i in range({lines}):\n    print(f'line {{i}} ' + 'x' * 1000)\n"
            "print('the end')\nsys.exit(3)\n")
    with small_disk(tmp_path / "small", "1m") as out:
        (out / driver.CONTAINER_LOG).symlink_to(tmp_path / "victim.txt")  # planted earlier
        config = driver.RunConfig(results_dir=out, image=kit_image, timeout_s=120,
                                  entrypoint=("python", "-c"), command=(code,))
        terminal = io.StringIO()
        with driver.StressContainer(engine.connect(), config) as box:
            assert box.run(terminal) == 3
        shown = terminal.getvalue()
        assert shown.count("\nline ") == lines - 1
        assert "the end" in shown
        assert f"bytes of the container's output are not in {driver.CONTAINER_LOG}" in shown
        assert not (out / driver.CONTAINER_LOG).is_symlink()
        assert not (tmp_path / "victim.txt").exists(), "nothing written through the link"
