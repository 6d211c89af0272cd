"""The container path without an engine: option splitting, mounts, config checks, engine errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths  # the SDK's own walk of a build context

from stress import container
from stress.errors import ConfigError, EngineError, ExitCode, StressError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "ci"))
import container_session  # noqa: E402  (ci/container_session.py, what `nox -s stress` runs)


def test_engine_options_are_taken_out_and_run_options_keep_their_order() -> None:
    options, rest = container_session.split_args(
        ["short", "--engine", "docker", "--scale", "0.1", "--memory", "2g", "long",
         "--container-timeout", "90", "--base", "stress-kit-base:trixie", "--no-build"])
    assert rest == ["short", "--scale", "0.1", "long"]
    assert options == container_session.ContainerOptions(
        engine="docker", base="stress-kit-base:trixie", image=container.DEFAULT_IMAGE,
        memory="2g", timeout_s=90.0, build=False)


def test_engine_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRESS_ENGINE", "host")
    monkeypatch.setenv("STRESS_BASE_IMAGE", "local/base:1")
    monkeypatch.delenv("STRESS_IMAGE", raising=False)
    options, rest = container_session.split_args(["--eng", "docker"])
    assert (options.engine, options.base, options.build) == ("host", "local/base:1", True)
    assert rest == ["--eng", "docker"]  # no abbreviations: the runner's options stay whole


def test_unknown_engine_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as raised:
        container_session.split_args(["--engine", "podman"])
    assert raised.value.code == 2


def test_memory_and_cpu_profiles_are_the_default_but_an_explicit_choice_wins() -> None:
    assert container_session.with_default_profile(["short"]) == [
        "short", "--profile", "memory,cpu"]
    assert container_session.with_default_profile(["--profile=cpu"]) == ["--profile=cpu"]
    assert container_session.with_default_profile(["--profile", "memory"]) == [
        "--profile", "memory"]


def test_take_option_takes_the_last_value_in_either_spelling() -> None:
    value, rest = container_session.take_option(["a", "--out", "x", "b", "--out=y"], "--out")
    assert (value, rest) == ("y", ["a", "b"])
    with pytest.raises(StressError, match="--out needs a value"):
        container_session.take_option(["--out"], "--out")


def test_results_folder_is_mounted_and_the_runner_writes_to_the_mount(tmp_path: Path) -> None:
    plan = container_session.plan_container_run(["short", "--out", "res"], cwd=tmp_path)
    assert plan.results_dir == tmp_path / "res"
    assert plan.command == ("run", "short", "--out", container.RESULTS_MOUNT)
    assert plan.mounts == ()
    default = container_session.plan_container_run([], cwd=tmp_path)
    assert default.results_dir == tmp_path / "stress-results"


def test_host_input_files_are_mounted_read_only_and_renamed(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "scenarios.yaml").write_text("scenarios: {}\n", encoding="utf-8")
    (tmp_path / "base.json").write_text("{}", encoding="utf-8")
    plan = container_session.plan_container_run(
        ["--scenarios", "mine/scenarios.yaml", "--baseline", str(tmp_path / "base.json")],
        cwd=tmp_path)
    assert plan.mounts == (
        container.Mount(host=tmp_path / "mine", container="/inputs/0"),
        container.Mount(host=tmp_path, container="/inputs/1"),
    )
    assert plan.command == ("run", "--scenarios", "/inputs/0/scenarios.yaml",
                            "--baseline", "/inputs/1/base.json", "--out", "/results")


def test_a_missing_input_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(StressError, match=r"--scenarios nope\.yaml: no such file"):
        container_session.plan_container_run(["--scenarios", "nope.yaml"], cwd=tmp_path)


def test_a_user_target_gets_the_working_folder_on_its_path(tmp_path: Path) -> None:
    plan = container_session.plan_container_run(["--target", "mine:target"], cwd=tmp_path)
    assert plan.mounts == (container.Mount(host=tmp_path, container="/workspace"),)
    assert plan.environment == {"PYTHONPATH": "/workspace"}
    assert plan.working_dir == "/workspace"


@pytest.mark.parametrize("memory", ["4x", "", "-1g", "1.5g"])
def test_bad_memory_limit_is_one_clear_line(tmp_path: Path, memory: str) -> None:
    with pytest.raises(ConfigError, match=r"memory limit .*: use a number with b, k, m or g"):
        container.RunConfig(results_dir=tmp_path, memory_limit=memory)


def test_timeout_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be a positive number"):
        container.RunConfig(results_dir=tmp_path, timeout_s=0)


def test_dockerfile_base_is_pinned_by_digest() -> None:
    base = container.default_base_image(REPO / "Dockerfile")
    assert re.fullmatch(r"python:3\.13-slim-trixie@sha256:[0-9a-f]{64}", base), base


def test_build_context_holds_only_the_lock_and_the_wheelhouse(tmp_path: Path) -> None:
    patterns = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [p for p in patterns if p.strip() and not p.startswith("#")]
    sent = set(exclude_paths(str(REPO), patterns, dockerfile="Dockerfile"))
    allowed = re.compile(r"Dockerfile|\.dockerignore|ci/requirements\.txt"
                         r"|ci/wheelhouse/(deps|project)/[^/]+\.whl")
    assert {"Dockerfile", "ci/requirements.txt"} <= sent
    assert all(allowed.fullmatch(path) for path in sent), sorted(sent)


def test_no_engine_is_one_line_naming_the_socket_and_the_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    socket = f"unix://{tmp_path}/no-engine.sock"
    monkeypatch.setenv("DOCKER_HOST", socket)
    with pytest.raises(EngineError) as raised:
        container.connect(timeout_s=5)
    message = str(raised.value)
    assert "\n" not in message
    assert socket in message
    assert "DOCKER_HOST" in message
    assert "--engine host" in message


def test_auto_engine_falls_back_to_the_host_with_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    assert container_session.resolve_engine("auto") == "host"
    warning = capsys.readouterr().err
    assert warning.startswith(("WARNING: no container engine answered at unix://",
                               "::warning::no container engine"))
    assert "running the scenarios on the host" in warning
    assert container_session.resolve_engine("docker") == "docker"  # checked when it connects


def test_stress_with_docker_required_and_no_engine_exits_2_with_that_line(tmp_path: Path) -> None:
    socket = f"unix://{tmp_path}/no-engine.sock"
    done = subprocess.run(
        [sys.executable, str(REPO / "ci" / "container_session.py"), "stress",
         "--engine", "docker", "short"],
        env={**os.environ, "DOCKER_HOST": socket}, capture_output=True, text=True, timeout=60,
        check=False)
    assert done.returncode == ExitCode.USAGE_ERROR
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: no container engine answered at {socket}")
