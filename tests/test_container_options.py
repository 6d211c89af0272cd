"""The container path without an engine: the run parser's options, mounts, config, engine errors."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

import stress
from stress.cli import build_parser
from stress.container import driver, engine, image, session, wheelhouse
from stress.container.driver import Mount
from stress.errors import ConfigError, EngineError, ExitCode

REPO = Path(__file__).resolve().parents[1]


def parse_run(*argv: str) -> argparse.Namespace:
    """The command line as `stress-kit run` parses it (defaults read from the environment now)."""
    return build_parser().parse_args(["run", *argv])


def test_container_options_sit_beside_the_run_options_in_one_parser() -> None:
    args = parse_run("short", "long", "--engine", "docker", "--scale", "0.1", "--memory", "2g",
                     "--container-timeout", "90", "--base", "stress-kit-base:trixie",
                     "--no-build", "--cpus", "1.5")
    assert args.names == ["short", "long"]
    assert args.scale == 0.1
    assert session.ContainerOptions.from_args(args) == session.ContainerOptions(
        engine="docker", base="stress-kit-base:trixie", image=None, memory="2g", cpus=1.5,
        timeout_s=90.0, build=False)


def test_engine_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    from stress.commands.run import apply_settings

    monkeypatch.chdir(tmp_path)  # no project config here

    def resolved(*argv: str) -> argparse.Namespace:
        args = parse_run(*argv)
        apply_settings(args)
        return args

    assert resolved().engine == "host"  # `python -m stress run` runs here unless asked
    monkeypatch.setenv("STRESS_ENGINE", "auto")
    monkeypatch.setenv("STRESS_BASE_IMAGE", "local/base:1")
    monkeypatch.setenv("STRESS_IMAGE", "mine:1")
    options = session.ContainerOptions.from_args(resolved())
    assert (options.engine, options.base, options.image, options.build) == (
        "auto", "local/base:1", "mine:1", True)
    assert resolved("--engine", "docker").engine == "docker"  # the flag wins


def test_unknown_engine_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as raised:
        parse_run("--engine", "podman")
    assert raised.value.code == 2


def test_the_sessions_profiles_are_the_default_but_an_explicit_choice_wins() -> None:
    from tests.test_noxfile import session_calls, sessions

    [command] = session_calls(sessions()["stress"], "run")
    assert command[:4] == ["python", "-m", "stress", "run"]
    assert parse_run(*command[4:], "short").profile == "memory,cpu"
    assert parse_run(*command[4:], "--profile=cpu").profile == "cpu"
    assert parse_run(*command[4:], "--engine", "host").engine == "host"


def test_any_spelling_of_an_option_gives_the_same_mounts(tmp_path: Path) -> None:
    # argparse resolved the spelling (`--out=x`, `--ou x`), so no spelling bypasses a mount.
    for argv in (["--out", "res"], ["--out=res"], ["--ou", "res"], ["--out", "x", "--out=res"]):
        assert session.plan(parse_run(*argv), cwd=tmp_path).results_dir == tmp_path / "res"


def test_results_folder_is_mounted_and_the_runner_writes_to_the_mount(tmp_path: Path) -> None:
    plan = session.plan(parse_run("short", "--out", "res"), cwd=tmp_path)
    assert plan.results_dir == tmp_path / "res"
    assert plan.command == ("run", "short", "--out", driver.RESULTS_MOUNT, "--engine", "host")
    assert plan.mounts == ()
    default = session.plan(parse_run(), cwd=tmp_path)
    assert default.results_dir == tmp_path / "stress-results"


def test_host_input_files_are_mounted_one_by_one_and_renamed(tmp_path: Path) -> None:
    # Each file on its own, never its folder: `--scenarios ~/s.yaml` must not show all of ~.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "scenarios.yaml").write_text("scenarios: {}\n", encoding="utf-8")
    (tmp_path / "base.json").write_text("{}", encoding="utf-8")
    plan = session.plan(
        parse_run("--scenarios", "mine/scenarios.yaml", "--baseline", str(tmp_path / "base.json")),
        cwd=tmp_path)
    assert plan.mounts == (
        Mount(host=tmp_path / "mine" / "scenarios.yaml", container="/inputs/0/scenarios.yaml"),
        Mount(host=tmp_path / "base.json", container="/inputs/1/base.json"),
    )
    assert plan.command == ("run", "--out", "/results", "--scenarios", "/inputs/0/scenarios.yaml",
                            "--baseline", "/inputs/1/base.json", "--engine", "host")


def test_the_container_gets_the_same_run_options(tmp_path: Path) -> None:
    argv = ("short", "long", "--scale", "0.5", "--repeat", "3", "--profile", "memory",
            "--cpu-profiler", "perf", "--loop", "uvloop", "--no-evidence",
            "--sample-interval", "0.5", "-v", "--engine", "docker", "--memory", "1g")
    outside = parse_run(*argv)
    inside = parse_run(*session.plan(outside, cwd=tmp_path).command[1:])
    for name in ("names", "scale", "repeat", "profile", "cpu_profiler", "loop", "no_evidence",
                 "sample_interval", "verbose", "target"):
        assert getattr(inside, name) == getattr(outside, name), name
    assert (inside.out, inside.engine) == (Path("/results"), "host")


def test_a_missing_input_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--scenarios nope\.yaml: no such file"):
        session.plan(parse_run("--scenarios", "nope.yaml"), cwd=tmp_path)


def test_a_user_target_gets_its_folder_on_the_path(tmp_path: Path) -> None:
    plan = session.plan(parse_run("--target", "tests.user_targets:picky"), cwd=tmp_path)
    assert plan.mounts == (Mount(host=REPO, container="/workspace"),)
    assert plan.environment == {"PYTHONPATH": "/workspace"}
    assert plan.working_dir == "/workspace"
    assert session.plan(parse_run("--target", "stress.pipeline:reference"),
                        cwd=tmp_path).mounts == ()  # the kit's own targets are in the image
    with pytest.raises(ConfigError, match="cannot find module 'no_such_module_here'"):
        session.plan(parse_run("--target", "no_such_module_here:x"), cwd=tmp_path)


def test_a_scenarios_file_beside_the_target_module_gets_a_mount_of_its_own(
        tmp_path: Path) -> None:
    # Both live in the repository's tests/ folder: two mounts, two container paths.
    scenarios = REPO / "tests" / "user_targets.py"  # any file in the target's own folder
    plan = session.plan(parse_run("--target", "tests.user_targets:picky", "--scenarios",
                                  str(scenarios)), cwd=tmp_path)
    assert {m.container for m in plan.mounts} == {"/inputs/0/user_targets.py", "/workspace"}
    assert len({m.host for m in plan.mounts}) == 2


def test_a_target_the_image_holds_is_not_mounted(tmp_path: Path) -> None:
    plan = session.plan(parse_run("--target", "chatapp.stress_target:ChatTarget"),
                        cwd=tmp_path, image_modules=("chatapp",))
    assert plan.mounts == ()
    assert plan.environment == {}


@pytest.mark.parametrize(("argv", "ptrace"), [
    ((), True),  # a failure's evidence includes a CPU profile
    (("--no-evidence",), False),
    (("--profile", "memory"), False),
    (("--profile", "memory,cpu"), True),
])
def test_sys_ptrace_only_for_a_cpu_profile(argv: tuple[str, ...], ptrace: bool) -> None:
    assert session.wants_ptrace(parse_run(*argv)) is ptrace


@pytest.mark.parametrize("memory", ["4x", "", "-1g", "1.5g"])
def test_bad_memory_limit_is_one_clear_line(tmp_path: Path, memory: str) -> None:
    with pytest.raises(ConfigError, match=r"memory limit .*: use a number with b, k, m or g"):
        driver.RunConfig(results_dir=tmp_path, image="x", memory_limit=memory)


def test_timeout_and_cpus_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be a positive number"):
        driver.RunConfig(results_dir=tmp_path, image="x", timeout_s=0)
    with pytest.raises(ConfigError, match="--cpus 0"):
        driver.RunConfig(results_dir=tmp_path, image="x", cpus=0)


def test_dockerfile_base_is_pinned_by_digest() -> None:
    base = image.default_base_image()
    assert re.fullmatch(r"python:3\.13-slim-trixie@sha256:[0-9a-f]{64}", base), base


def test_the_wheel_carries_the_dockerfile_and_the_lock_and_the_root_file_is_theirs() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    data = pyproject["tool"]["setuptools"]["package-data"]["stress.container"]
    assert {image.DOCKERFILE.name, image.LOCK.name} <= set(data)
    assert image.DOCKERFILE.parent == image.LOCK.parent == REPO / "stress" / "container"
    # hadolint and the README read the root Dockerfile: it is the package's, not a copy.
    assert (REPO / "Dockerfile").resolve() == image.DOCKERFILE
    assert pyproject["project"]["scripts"] == {"stress-kit": "stress.cli:main"}


def fake_wheel(path: Path, files: dict[str, bytes], stamp: tuple[int, ...]) -> Path:
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=stamp), data)  # type: ignore[arg-type]
    return path


def test_the_tag_follows_the_inputs_content(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    contents = {"stress/__init__.py": b"v1"}
    stamps = iter([(2020, 1, 1, 0, 0, 0), (2024, 5, 5, 0, 0, 0), (2024, 5, 5, 0, 0, 0)])

    def kit_wheel(out: Path) -> Path:
        return fake_wheel(out / "kit.whl", contents, next(stamps))

    monkeypatch.setattr(wheelhouse, "kit_wheel", kit_wheel)
    first = image.gather_inputs(tmp_path / "a", "base:1")
    again = image.gather_inputs(tmp_path / "b", "base:1")  # same files, other timestamps
    assert first.tag == again.tag
    assert re.fullmatch(rf"asyncio-stress-kit:{re.escape(stress.__version__)}-[0-9a-f]{{12}}",
                        first.tag)
    contents["stress/__init__.py"] = b"v2"
    assert image.gather_inputs(tmp_path / "c", "base:1").tag != first.tag
    monkeypatch.setattr(wheelhouse, "kit_wheel", lambda out: fake_wheel(
        out / "kit.whl", {"stress/__init__.py": b"v1"}, (2020, 1, 1, 0, 0, 0)))
    assert image.gather_inputs(tmp_path / "d", "base:2").tag != first.tag


def test_the_container_is_told_the_kits_version_and_the_image_id(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(engine, "connect", lambda config=None: "client")
    monkeypatch.setattr(image, "build", lambda client, base, extra_tag, project=None: image.Image(
        tag="asyncio-stress-kit:0-abc", id="sha256:" + "1" * 64))

    def run_in_container(client: Any, config: driver.RunConfig) -> int:
        seen["config"] = config
        return 3

    monkeypatch.setattr(driver, "run_in_container", run_in_container)
    monkeypatch.chdir(tmp_path)
    args = parse_run("short", "--engine", "docker", "--cpus", "2", "--out", "res")
    assert session.run(args) == 3
    config: driver.RunConfig = seen["config"]
    assert config.image == "asyncio-stress-kit:0-abc"
    assert config.environment["STRESS_KIT_VERSION"] == stress.__version__
    assert config.environment["STRESS_IMAGE_ID"] == "sha256:" + "1" * 64
    assert (config.cpus, config.results_dir) == (2.0, tmp_path / "res")
    assert config.command == ("run", "short", "--out", "/results", "--engine", "host")


def test_no_engine_is_one_line_naming_the_socket_and_the_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    socket = f"unix://{tmp_path}/no-engine.sock"
    monkeypatch.setenv("DOCKER_HOST", socket)
    with pytest.raises(EngineError) as raised:
        engine.connect(engine.EngineConfig(timeout_s=5))
    message = str(raised.value)
    assert "\n" not in message
    assert socket in message
    assert "DOCKER_HOST" in message
    assert "--engine host" in message
    assert raised.value.exit_code == ExitCode.ENGINE_ERROR


def test_an_old_engine_is_refused_with_the_fix() -> None:
    with pytest.raises(EngineError, match=r"Docker 19\.03.*needs API 1\.41.*--engine host"):
        engine.check_version("unix:///x.sock", "1.40", "19.03")
    engine.check_version("unix:///x.sock", "1.41", "20.10")


def test_auto_engine_falls_back_to_the_host_with_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    assert session.run(parse_run("--engine", "auto")) is None
    warning = capsys.readouterr().err
    assert warning.startswith("WARNING: no container engine answered at unix://")
    assert "running the scenarios on the host" in warning
    with pytest.raises(engine.NoEngineError):
        session.run(parse_run("--engine", "docker"))


def test_run_with_docker_required_and_no_engine_exits_5_with_that_line(tmp_path: Path) -> None:
    socket = f"unix://{tmp_path}/no-engine.sock"
    done = subprocess.run(
        [sys.executable, "-m", "stress", "run", "--engine", "docker", "short"],
        env={**os.environ, "DOCKER_HOST": socket}, capture_output=True, text=True, timeout=60,
        check=False, cwd=REPO)
    assert done.returncode == ExitCode.ENGINE_ERROR
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: no container engine answered at {socket}")


HARDENING_KEYS = {"cap_drop", "security_opt", "read_only", "tmpfs", "pids_limit", "log_config"}


def test_container_options_are_hardened_unless_measuring_the_cost(tmp_path: Path) -> None:
    config = driver.RunConfig(results_dir=tmp_path, image="x", cap_add=("SYS_PTRACE",),
                              mounts=(Mount(host=tmp_path, container="/inputs/0/s.yaml"),))
    hardened = driver.container_options(config, user=driver.IMAGE_USER)
    assert hardened == driver.container_options(config, user=driver.IMAGE_USER, hardened=True)
    assert set(hardened) >= HARDENING_KEYS
    assert hardened["cap_drop"] == ["ALL"]
    assert hardened["cap_add"] == ["SYS_PTRACE"]
    assert hardened["read_only"] is True
    assert hardened["security_opt"] == ["no-new-privileges:true"]
    plain = driver.container_options(config, user=driver.IMAGE_USER, hardened=False)
    assert not HARDENING_KEYS & set(plain)
    assert {k: v for k, v in hardened.items() if k not in HARDENING_KEYS} == plain, \
        "the plain run differs by the hardening only (same mounts, limits, no network)"
    assert plain["network_mode"] == "none"
    assert [m["Target"] for m in plain["mounts"]] == [driver.RESULTS_MOUNT, "/inputs/0/s.yaml"]


def test_a_second_signal_ends_the_grace_only_when_it_repeats_the_first(tmp_path: Path) -> None:
    import signal
    import time

    box = driver.StressContainer(None, driver.RunConfig(results_dir=tmp_path, image="x"))
    box.stop(signal.SIGINT)  # a terminal's Ctrl-C reaches the session...
    graced = box._stop_deadline
    assert graced > time.monotonic() + box.config.stop_grace_s - 5
    box.stop(signal.SIGTERM)  # ...and its parent (nox) then sends SIGTERM: the grace stays
    assert box._stop_deadline == graced
    box.stop(signal.SIGINT)  # Ctrl-C twice: now
    assert box._stop_deadline <= time.monotonic()
