"""The container path on a real Docker engine: build with no network, run, time out, clean up.

Skipped with the reason when no engine answers or the base image is missing, unless
STRESS_REQUIRE_DOCKER=1 (CI), which turns those into failures. The base is $STRESS_BASE_IMAGE
(CI builds stress-kit-base:trixie with ci/build-base-image.sh) or the Dockerfile's pinned one.
The image is built by the kit's own command, `python -m stress image`, as `nox -s image` does.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from stress import console
from stress.container import driver, engine
from stress.container import image as kit_image
from stress.errors import EngineError, ExitCode
from tests.test_noxfile import session_calls, sessions

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
# Extra tags beside the derived one, removed after; their own per run, so two checkouts testing
# on one engine do not remove each other's.
RUN_ID = uuid.uuid4().hex[:8]
TEST_IMAGE = f"asyncio-stress-kit:test-{RUN_ID}"
PROBE_IMAGE = f"asyncio-stress-kit:test-probe-{RUN_ID}"
REQUIRED = os.environ.get("STRESS_REQUIRE_DOCKER") == "1"


def unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (STRESS_REQUIRE_DOCKER=1 makes this a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def client() -> Any:
    try:
        return engine.connect(engine.EngineConfig(timeout_s=120))
    except EngineError as exc:
        unavailable(str(exc))


@pytest.fixture(scope="module")
def base_image(client: Any) -> str:
    base = os.environ.get("STRESS_BASE_IMAGE") or kit_image.default_base_image()
    try:
        client.images.get(base)
    except Exception:  # any lookup failure means the same: not usable here
        unavailable(f"base image {base} is not on this engine: build one with `bash "
                    "ci/build-base-image.sh` and set STRESS_BASE_IMAGE=stress-kit-base:trixie")
    return base


@pytest.fixture(scope="module")
def image(client: Any, base_image: str) -> Iterator[str]:
    """The kit's image, built as `nox -s image` builds it; removed after, with its layers."""
    before = {found.id for found in client.images.list(all=True)}
    before_tags = {tag for found in client.images.list() for tag in found.tags}
    done = subprocess.run(
        [sys.executable, "-m", "stress", "image", "--base", base_image, "--image", TEST_IMAGE],
        cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    derived = done.stdout.split()[-1]  # the last line is the tag derived from the inputs
    assert derived.startswith("asyncio-stress-kit:")
    assert "Step 1/" not in done.stdout  # the build's log shows only when it fails
    yield TEST_IMAGE
    client.images.remove(TEST_IMAGE, force=True)
    if derived not in before_tags:  # else it was there before this build: keep it
        client.images.remove(derived, force=True)
    remove_new_images(client, before)


def remove_new_images(client: Any, before: set[str]) -> None:
    """Remove the layers this build added (the build stage's too), leaves first."""
    left = {found.id for found in client.images.list(all=True)} - before
    while left:
        removed = set()
        for image_id in left:
            try:
                client.images.remove(image_id)
            except docker.errors.APIError:
                continue  # a parent of another new layer, or shared: try again after its child
            removed.add(image_id)
        if not removed:
            break
        left = {found.id for found in client.images.list(all=True)} - before


def gone(client: Any, name: str) -> bool:
    return not client.containers.list(all=True, filters={"name": f"^{name}$"})


def python_in(image: str, results: Path, code: str, **overrides: Any) -> driver.RunConfig:
    settings: dict[str, Any] = {"results_dir": results, "image": image, "timeout_s": 120.0}
    settings.update(overrides)
    return driver.RunConfig(entrypoint=("python", "-c"), command=(code,), **settings)


def test_image_is_labelled_non_root_and_runs_the_kit(client: Any, image: str) -> None:
    attrs = client.images.get(image).attrs["Config"]
    labels = attrs["Labels"]
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip()
    assert labels["org.opencontainers.image.revision"] == (head or "unknown")
    assert "org.opencontainers.image.source" in labels
    assert attrs["User"] == "10001:10001"
    assert attrs["Entrypoint"] == ["python", "-m", "stress"]


def test_the_image_is_tagged_by_its_inputs_and_found_by_them(client: Any, image: str,
                                                             base_image: str) -> None:
    # `run --no-build` without --image runs the image the current sources would build.
    found = kit_image.existing(client, tag=None, base=base_image)
    assert found.id == client.images.get(image).id
    assert found.tag.startswith("asyncio-stress-kit:")
    assert found.tag in client.images.get(image).tags


def test_scenarios_are_listed_inside_the_container(client: Any, image: str,
                                                   tmp_path: Path) -> None:
    out = io.StringIO()
    config = driver.RunConfig(results_dir=tmp_path, image=image, command=("list",),
                                 timeout_s=120)
    with driver.StressContainer(client, config) as box:
        code = box.run(out)
        name = box.name
    assert code == 0, out.getvalue()
    assert "short" in out.getvalue().split()
    assert gone(client, name)
    assert "short" in (tmp_path / driver.CONTAINER_LOG).read_text(encoding="utf-8")


def test_exit_code_is_passed_through(client: Any, image: str, tmp_path: Path) -> None:
    config = driver.RunConfig(results_dir=tmp_path, image=image,
                                 command=("no-such-command",), timeout_s=120)
    assert driver.run_in_container(client, config) == ExitCode.USAGE_ERROR  # argparse's 2


def test_no_network_no_root_and_ptrace_only_when_asked(client: Any, image: str,
                                                        tmp_path: Path) -> None:
    code = (
        "import os, json\n"
        "caps = [l for l in open('/proc/self/status') if l.startswith('CapBnd')][0].split()[1]\n"
        "open('/results/probe.json', 'w').write(json.dumps({'net': os.listdir('/sys/class/net'),"
        " 'uid': os.getuid(), 'ptrace': bool(int(caps, 16) >> 19 & 1)}))\n"
    )
    # Never root inside: the host user's uid, or the image's user for a root host user.
    inside = int(driver.IMAGE_USER.split(":", maxsplit=1)[0]) if os.getuid() == 0 \
        else os.getuid()
    for cap_add, ptrace in (((), False), (("SYS_PTRACE",), True)):  # only for CPU profiles
        config = python_in(image, tmp_path, code, cap_add=cap_add)
        assert driver.run_in_container(client, config) == 0
        probe = tmp_path / "probe.json"
        seen = json.loads(probe.read_text(encoding="utf-8"))
        assert seen == {"net": ["lo"], "uid": inside, "ptrace": ptrace}
        assert probe.stat().st_uid == os.getuid()  # results come out owned by the host user


def test_output_split_inside_a_character_reaches_the_terminal_whole(
        client: Any, image: str, tmp_path: Path) -> None:
    code = ("import sys\n"
            "for byte in '✅ Test passed!\\n'.encode():\n"
            "    sys.stdout.buffer.write(bytes([byte])); sys.stdout.buffer.flush()\n")
    out = io.StringIO()
    with driver.StressContainer(client, python_in(image, tmp_path, code)) as box:
        assert box.run(out) == 0
    assert "✅ Test passed!" in out.getvalue()
    log = (tmp_path / driver.CONTAINER_LOG).read_text(encoding="utf-8")
    assert "✅ Test passed!" in log


def test_timeout_kills_keeps_the_log_and_removes_the_container(
        client: Any, image: str, tmp_path: Path) -> None:
    code = "import time; print('scenario started', flush=True); time.sleep(600)"
    out = io.StringIO()
    started = time.monotonic()
    with driver.StressContainer(client, python_in(image, tmp_path, code, timeout_s=3)) as box:
        result = box.run(out)
        name = box.name
    assert result == ExitCode.CRASHED_OR_HUNG
    assert time.monotonic() - started < 60
    log = (tmp_path / driver.CONTAINER_LOG).read_text(encoding="utf-8")
    assert "scenario started" in log
    assert "killed after 3s (timeout)" in log
    assert "killed after 3s (timeout)" in out.getvalue()
    assert gone(client, name)


def test_memory_limit_is_enforced_and_reported(client: Any, image: str, tmp_path: Path) -> None:
    code = "x = bytearray(512 * 1024 * 1024); print('not limited')"
    out = io.StringIO()
    config = python_in(image, tmp_path, code, memory_limit="64m")
    with driver.StressContainer(client, config) as box:
        result = box.run(out)
    assert result == ExitCode.CRASHED_OR_HUNG
    assert "not limited" not in out.getvalue()
    assert "exceeded its memory limit (64m)" in out.getvalue()


def test_keep_containers_leaves_it_for_inspection(client: Any, image: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(driver.KEEP_CONTAINERS_ENV, "1")
    with driver.StressContainer(client, python_in(image, tmp_path, "pass")) as box:
        assert box.run(io.StringIO()) == 0
    try:
        assert not gone(client, box.name)
    finally:
        client.containers.get(box.name).remove(force=True)


def test_build_has_no_network_and_a_failed_build_shows_its_log(
        client: Any, base_image: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    context = tmp_path / "context"
    context.mkdir()
    # One RUN step, so the failed build leaves no layer behind.
    (context / "Dockerfile").write_text(
        "ARG BASE_IMAGE=none\nFROM ${BASE_IMAGE}\n"
        "RUN echo interfaces: $(ls /sys/class/net) && echo about to fail && exit 3\n",
        encoding="utf-8")
    with pytest.raises(EngineError) as raised, console.quiet_log("probe build") as log:
        engine.build(client, context=context, tag=PROBE_IMAGE,
                     build_args={"BASE_IMAGE": base_image}, log=log)
    message = str(raised.value)
    assert "\n" not in message
    assert f"image build of {PROBE_IMAGE} failed" in message
    assert "non-zero code: 3" in message
    shown = capsys.readouterr().err
    assert "interfaces: lo\n" in shown  # the build's RUN steps saw only loopback
    assert "about to fail" in shown


@pytest.mark.slow
def test_nox_stress_path_end_to_end_with_profiles(client: Any, image: str,
                                                  tmp_path: Path) -> None:
    """What `nox -s stress -- short --scale ... --engine docker` does, on the image built above."""
    out = tmp_path / "results"
    [command] = session_calls(sessions()["stress"], "run")  # what `nox -s stress` runs
    done = subprocess.run(
        [sys.executable, *command[1:], "short", "--scale", "0.01", "--out", str(out),
         "--engine", "docker", "--no-build", "--image", image],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-4000:]
    assert "--profile memory,cpu" in done.stdout  # the session's default

    assert "Test passed" in (out / "stress-test-short.log").read_text(encoding="utf-8")
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    (entry,) = results["scenarios"]
    assert entry["name"] == "short"
    assert entry["passed"] is True
    assert entry["environment"]["in_container"] is True
    suite = ET.parse(out / "junit.xml").getroot()
    assert [case.get("name") for case in suite.iter("testcase")] == ["short"]

    for flamegraph in ("short-memray-flamegraph.html", "short-leaks-flamegraph.html"):
        text = (out / flamegraph).read_text(encoding="utf-8")
        assert text.lstrip().lower().startswith("<!doctype html"), flamegraph
        assert "memray" in text.lower(), flamegraph
    assert (out / "short-leak-report.txt").read_text(encoding="utf-8").strip()
    svg = ET.parse(out / "short-cpu-flamegraph.svg").getroot()
    assert svg.tag.endswith("svg")
    speedscope = json.loads((out / "short-cpu-speedscope.json").read_text(encoding="utf-8"))
    assert "speedscope" in speedscope["$schema"]
    assert speedscope["profiles"]
    assert all(path.stat().st_uid == os.getuid() for path in out.iterdir())
