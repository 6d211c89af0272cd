"""A project adopts the kit as a user would: the kit's wheel in a fresh venv outside the checkout,
a project of its own (src layout, a real third-party dependency, a `[tool.stress]` table) in a
temporary git repository, and there: `stress-kit lock`, a host run, a container run, a second
(cached) one, a third after a deliberate 2x slowdown, and `stress-kit ab` between the two
commits (exit 3). Then the hardened container, inspected while it runs, and interrupted.

Real Docker (marked `docker`): skipped without an engine or the base image unless
STRESS_REQUIRE_DOCKER=1. The figures go to the test's log (`-s` shows them) and to
$STRESS_FIGURES_FILE when set. Every image these tests build is removed after.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stress.container import driver, engine, leftovers, wheelhouse
from stress.errors import EngineError
from tests.integration.test_container_engine import remove_new_images, unavailable

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
SLOW_TARGET = REPO / "tests" / "targets" / "slow.py"  # copied beside a container run's inputs
BASE = os.environ.get("STRESS_BASE_IMAGE") or "stress-kit-base:trixie"
RUN_ID = uuid.uuid4().hex[:6]
PROJECT = f"counterapp-{RUN_ID}"  # its own name: its images are this test's alone
MODULE = f"counterapp_{RUN_ID}"
FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="module")
def client() -> Any:
    try:
        found = engine.connect(engine.EngineConfig(timeout_s=120))
    except EngineError as exc:
        unavailable(str(exc))
    if engine.image_id(found, BASE) is None:
        unavailable(f"base image {BASE} is not on this engine: bash ci/build-base-image.sh")
    return found


@pytest.fixture(scope="session")
def kit_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kit's wheel installed into a fresh venv outside the checkout (with uv, for lock)."""
    root = tmp_path_factory.mktemp("kit-venv")
    wheel = wheelhouse.kit_wheel(root / "dist")  # as the image build makes it
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=300)
    subprocess.run([str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", f"{wheel}[container]", "uv"],
                   check=True, capture_output=True, timeout=900)
    return root / "venv" / "bin"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c",
                           "user.email=t@example.invalid", *args], check=True,
                          capture_output=True, text=True).stdout.strip()


TARGET = '''
from typing import Any

import anyio

from {module}.work import render


class Target:
    """Producer -> one bounded anyio memory stream -> a consumer that renders each token."""

    async def run(self, params: Any, stats: Any, quit: Any) -> None:
        send, receive = anyio.create_memory_object_stream[Any](max(1, params.channel_buffer))

        async def produce() -> None:
            async with send:
                for i in range(params.messages * params.conversations):
                    await send.send(str(i).ljust(params.message_size, "x"))
                    stats.messages_sent += 1

        async def stop_on_quit() -> None:
            await quit.wait()
            group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(stop_on_quit)
            group.start_soon(produce)
            async with receive:
                async for item in receive:
                    render(item)
                    stats.tokens_received += 1
            stats.streams_completed += params.conversations
            group.cancel_scope.cancel()
'''

WORK = '''
PASSES = 1  # the measured work per token: the test doubles it


def render(text: str) -> str:
    # CPU work that dominates each token's cost (about 0.5 ms a pass), so doubling it shows
    # however busy the machine is: everything else slows down with it.
    total = 0
    for i in range(PASSES * 8_000):
        total += i * i
    return text if total >= 0 else ""
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.3.0"
requires-python = ">=3.11"
dependencies = ["anyio>=4"]

[tool.stress]
target = "{module}.target:Target"
select = ["short"]
scale = 0.002

[tool.stress.scenarios.short.thresholds]
min_throughput = 100
max_memory_growth_mb = 400
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("project") / PROJECT
    package = repo / "src" / MODULE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "work.py").write_text(WORK.lstrip(), encoding="utf-8")
    (package / "target.py").write_text(TARGET.format(module=MODULE).lstrip(), encoding="utf-8")
    (repo / "pyproject.toml").write_text(PYPROJECT.format(name=PROJECT, module=MODULE).lstrip(),
                                         encoding="utf-8")
    (repo / ".gitignore").write_text("stress-results/\nstress-ab/\n", encoding="utf-8")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the project")
    return repo


BUILT: set[str] = set()  # kit-only tags these tests built (absent before them)


@pytest.fixture(scope="module")
def cleanup_images(client: Any) -> Iterator[None]:
    before = {tag for found in client.images.list() for tag in found.tags}
    before_ids = {found.id for found in client.images.list(all=True)}
    yield
    for found in client.images.list():
        for tag in found.tags:
            ours = tag.startswith(f"asyncio-stress-kit-{PROJECT}:") or tag in BUILT
            if ours and tag not in before:
                with contextlib.suppress(Exception):
                    client.images.remove(tag, force=True)
    remove_new_images(client, before_ids)  # the build stages' layers too


def kit(bin_dir: Path, cwd: Path, *args: str, timeout: float = 900,
        env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("PYTHONPATH", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY")}
    environment.update(env or {})
    environment["PATH"] = f"{bin_dir}{os.pathsep}{environment.get('PATH', '')}"
    started = time.monotonic()
    done = subprocess.run([str(bin_dir / "stress-kit"), *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=timeout, check=False)
    return done, time.monotonic() - started


def throughput(results: Path) -> float:
    data = json.loads((results / "results.json").read_text(encoding="utf-8"))
    return float(data["scenarios"][0]["metrics"]["throughput"])


def environment_of(results: Path) -> dict[str, Any]:
    data = json.loads((results / "results.json").read_text(encoding="utf-8"))
    return dict(data["environment"])


def below_the_wheel(history: list[dict[str, Any]]) -> list[str]:
    """The ids of an image's layers under the project's wheel (history is newest first)."""
    wheel = next(i for i, layer in enumerate(history)
                 if "in /opt/project " in layer["CreatedBy"])
    return [layer["Id"] for layer in history[wheel + 1:]]


def built_tag(stdout: str) -> str:
    found = re.search(r"^--- built (\S+)", stdout, re.M)
    assert found is not None, stdout[-3000:]
    return found[1]


def note(name: str, value: Any) -> None:
    FIGURES[name] = value
    print(f"figure: {name} = {value}")
    path = os.environ.get("STRESS_FIGURES_FILE")
    if path:
        Path(path).write_text(json.dumps(FIGURES, indent=2) + "\n", encoding="utf-8")


def test_a_project_runs_on_the_host_in_its_image_and_through_the_gate(
        client: Any, kit_venv: Path, project: Path, cleanup_images: None) -> None:
    docker_run = ("run", "--engine", "docker", "--base", BASE)
    done, _ = kit(kit_venv, project, "lock")
    assert done.returncode == 0, done.stderr
    lock = (project / "stress-requirements.txt").read_text(encoding="utf-8")
    assert "anyio==" in lock
    assert "--hash=sha256:" in lock
    git(project, "add", "-A")
    git(project, "commit", "-qm", "the lock")

    # The host run: the user's venv has the project installed, as `pip install -e .` does.
    subprocess.run([str(kit_venv / "python"), "-m", "pip", "install", "--quiet", "-e",
                    str(project)], check=True, capture_output=True, timeout=600)
    done, _ = kit(kit_venv, project, "run", "--out", "host-results")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert environment_of(project / "host-results")["in_container"] is False

    done, first_s = kit(kit_venv, project, *docker_run)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    env = environment_of(project / "stress-results")
    assert env["in_container"] is True
    assert (env["project_name"], env["project_version"]) == (PROJECT, "0.3.0")
    assert env["git_sha"] == git(project, "rev-parse", "HEAD")
    assert env["kit_version"]
    assert env["image_id"].startswith("sha256:")
    first = throughput(project / "stress-results")
    tag = built_tag(done.stdout)
    note("first container run, image build included (s)", round(first_s, 1))

    done, cached_s = kit(kit_venv, project, *docker_run)
    assert done.returncode == 0, done.stderr
    assert built_tag(done.stdout) == tag  # same sources, same tag
    note("cached container run (s)", round(cached_s, 1))
    history = client.api.history(tag)
    project_layers = [layer for layer in history[:12] if "/opt/project" in layer["CreatedBy"]]
    note("project layers (bytes: wheel, dependencies)",
         [layer["Size"] for layer in project_layers])
    assert len(project_layers) == 2

    (project / "src" / MODULE / "work.py").write_text(
        WORK.lstrip().replace("PASSES = 1", "PASSES = 2"), encoding="utf-8")
    git(project, "commit", "-qam", "render twice")
    done, _ = kit(kit_venv, project, *docker_run)
    assert done.returncode == 0, done.stderr
    new_tag = built_tag(done.stdout)
    assert new_tag != tag
    slower = throughput(project / "stress-results")
    note("throughput after the 2x slowdown / before", round(slower / first, 3))
    assert slower / first < 0.75, (first, slower)
    # Only the project's wheel layer is new: everything below it is the same image layers.
    assert below_the_wheel(client.api.history(new_tag)) == below_the_wheel(history)

    done, gate_s = kit(kit_venv, project, "ab", "HEAD~1", "HEAD", "short", "--target",
                       f"{MODULE}.target:Target", "--scale", "0.002", "--rounds", "3",
                       "--confirm", "0", timeout=1200)
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    setup = (project / "stress-ab" / "setup-head.log").read_text(encoding="utf-8")
    assert "stress-requirements.txt" in setup
    note("gate between the two commits (s)", round(gate_s, 1))


@pytest.mark.parametrize(("old", "new", "message"), [
    ('select = ["short"]', 'select = ["short"]\ncolour = "blue"',
     "unknown key 'tool.stress.colour'"),
    ("scale = 0.002", 'scale = "fast"', "tool.stress.scale' is 'fast'"),
])
def test_a_config_error_is_one_line_and_exit_2(kit_venv: Path, project: Path, old: str,
                                               new: str, message: str) -> None:
    pyproject = project / "pyproject.toml"
    good = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(good.replace(old, new), encoding="utf-8")
    try:
        for command in (("run", "--engine", "docker", "--base", BASE), ("lock",)):
            done, _ = kit(kit_venv, project, *command, timeout=120)
            assert done.returncode == 2, done.stdout + done.stderr
            assert message in done.stderr
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    finally:
        pyproject.write_text(good, encoding="utf-8")




def labelled(client: Any) -> list[Any]:
    return list(client.containers.list(all=True, filters={"label": driver.RUN_LABEL}))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_hardened_container_while_it_runs_and_after_a_signal(
        client: Any, kit_venv: Path, tmp_path: Path, signum: int, cleanup_images: None) -> None:
    # A folder of plain modules (no pyproject): mounted. The scenarios file sits beside the
    # target module, so both mounts come from one host folder.
    tmp_path.chmod(0o755)  # the container's user (not root) reads it as "others"
    shutil.copy(SLOW_TARGET, tmp_path / "slow.py")
    (tmp_path / "scenarios.yaml").write_text(
        "scenarios:\n  slow:\n    title: Slow\n    messages: 2000\n    timeout_s: 300\n",
        encoding="utf-8")
    before = {c.id for c in labelled(client)}
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    session = subprocess.Popen(
        [str(kit_venv / "stress-kit"), "run", "--engine", "docker", "--base", BASE,
         "--target", "slow:Slow", "--scenarios", "scenarios.yaml", "--no-evidence"],
        cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        box = None
        deadline = time.monotonic() + 600
        while box is None and time.monotonic() < deadline and session.poll() is None:
            fresh = [c for c in labelled(client) if c.id not in before]
            box = fresh[0] if fresh and fresh[0].status == "running" else None
            time.sleep(0.5)
        assert box is not None, session.communicate()[0][-3000:]
        time.sleep(3)  # the runner is inside its scenario now
        box.reload()
        host = box.attrs["HostConfig"]
        assert box.attrs["Config"]["User"] == (driver.IMAGE_USER if os.getuid() == 0
                                               else f"{os.getuid()}:{os.getgid()}")
        assert host["CapDrop"] == ["ALL"]
        assert not host["CapAdd"]  # no CPU profile asked for: no SYS_PTRACE either
        assert host["ReadonlyRootfs"] is True
        assert "/tmp" in host["Tmpfs"]
        assert host["PidsLimit"] == driver.RunConfig(results_dir=tmp_path, image="x").pids_limit
        assert any(o.startswith("no-new-privileges") for o in host["SecurityOpt"])
        assert host["LogConfig"]["Config"]["max-size"]
        assert box.exec_run("id -u").output.decode().strip() != "0"
        assert box.exec_run("touch /opt/x").exit_code != 0  # the root filesystem is read-only
        assert box.exec_run("cat /inputs/0/scenarios.yaml").exit_code == 0
        assert box.exec_run("ls /inputs/0").output.decode().split() == ["scenarios.yaml"]
        session.send_signal(signum)
        output, _ = session.communicate(timeout=120)
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
    BUILT.add(built_tag(output))
    note(f"session exit after {signal.Signals(signum).name} while running", session.returncode)
    assert "stopping container" in output
    assert session.returncode not in (0, -signum), output[-3000:]
    assert {c.id for c in labelled(client)} <= before  # nothing left behind
    results = tmp_path / "stress-results"
    for path in (results, *results.rglob("*")):
        assert path.lstat().st_uid == os.getuid(), path  # the host user's again


def test_a_dead_sessions_container_is_reaped_on_the_next_start(client: Any) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True).stdout.strip()
    stale_session = f"{socket.gethostname()}:{gone}:1.00"  # that pid, and no such process now
    stale = client.containers.create(BASE, command=["sleep", "600"], labels={
        driver.RUN_LABEL: "1", driver.SESSION_LABEL: stale_session}, network_mode="none")
    mine = client.containers.create(BASE, command=["sleep", "600"], labels={
        driver.RUN_LABEL: "1", driver.SESSION_LABEL: leftovers.session_id()}, network_mode="none")
    try:
        removed = driver.reap_stale(client, log=lambda text: None)
        assert stale.name in removed
        assert mine.name not in removed  # a live session's container stays
    finally:
        for box in (stale, mine):
            with contextlib.suppress(Exception):  # already removed by the reaper
                box.remove(force=True)
