"""A project found from its folder, its lock read (hashed requirements or pylock.toml) and
checked against the kit's pins, and the container's bookkeeping (owners, sessions)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from stress.container import leftovers, project
from stress.errors import ConfigError

HASH_A, HASH_B, HASH_C = "a" * 64, "b" * 64, "c" * 64


def write_project(root: Path, *, extra: str = "", deps: str = '["anyio>=4"]') -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / ".git").mkdir(exist_ok=True)  # the search stops here
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "demo"\nversion = "1.0"\ndependencies = {deps}\n'
        f"[tool.stress]\n{extra}", encoding="utf-8")
    return root


def test_a_project_is_found_with_its_default_lock_and_extras(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", extra='extra_requirements = ["uvloop>=0.19"]\n')
    (root / "src").mkdir()
    found = project.find_project(root / "src", environ={})
    assert found is not None
    assert (found.name, found.lock) == ("demo", root / project.LOCK_NAME)
    assert found.extra_requirements == ("uvloop>=0.19",)
    assert found.build_requires == ("setuptools>=40.8.0",)  # pip's default without [build-system]


def test_plain_modules_and_the_kit_itself_are_no_project(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    assert project.find_project(tmp_path, environ={}) is None
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "asyncio-stress-kit"\n',
                                             encoding="utf-8")
    assert project.find_project(tmp_path, environ={}) is None


def test_a_project_with_dependencies_and_no_lock_is_told_to_lock(tmp_path: Path) -> None:
    found = project.find_project(write_project(tmp_path / "p"), environ={})
    assert found is not None
    with pytest.raises(ConfigError, match="run `stress-kit lock`"):
        project.requirements_text(found)


def test_a_stale_lock_is_refused(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    (root / project.LOCK_NAME).write_text(
        f"{project.INPUTS_LINE}0000\nanyio==4.0 --hash=sha256:{HASH_A}\n", encoding="utf-8")
    found = project.find_project(root, environ={})
    assert found is not None
    with pytest.raises(ConfigError, match="is stale"):
        project.requirements_text(found)


def test_a_named_pylock_is_read_as_hashed_requirements(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", extra='lock = "pylock.toml"\n')
    (root / "pylock.toml").write_text(
        'lock-version = "1.0"\n'
        '[[packages]]\nname = "anyio"\nversion = "4.16.0"\n'
        f'wheels = [{{ name = "anyio.whl", hashes = {{ sha256 = "{HASH_A}" }} }}]\n'
        '[[packages]]\nname = "demo"\ndirectory = { path = "." }\n', encoding="utf-8")
    found = project.find_project(root, environ={})
    assert found is not None
    assert project.requirements_text(found).splitlines()[1:] == [
        f"anyio==4.16.0 --hash=sha256:{HASH_A}"]


def test_the_image_gets_only_the_pins_the_kit_lacks_and_none_that_disagree(
        tmp_path: Path) -> None:
    kit = tmp_path / "kit.txt"
    kit.write_text(f"psutil==7.0 --hash=sha256:{HASH_B}\n", encoding="utf-8")
    root = write_project(tmp_path / "p")
    lock = root / project.LOCK_NAME
    lock.write_text(f"anyio==4.16.0 --hash=sha256:{HASH_A}\n"
                    f"psutil==7.0 --hash=sha256:{HASH_B}\n", encoding="utf-8")
    found = project.find_project(root, environ={})
    assert found is not None
    assert project.image_requirements(found, kit) == f"anyio==4.16.0 --hash=sha256:{HASH_A}\n"
    lock.write_text(f"psutil==6.0 --hash=sha256:{HASH_C}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pins psutil==6\.0 but the kit's image has 7\.0"):
        project.image_requirements(found, kit)


def test_a_config_error_in_the_project_is_one_line(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", extra="extra_requirements = 3\n")
    with pytest.raises(ConfigError, match=r"extra_requirements.*expected a list of requirements"):
        project.find_project(root, environ={})


def test_a_session_is_alive_only_while_its_process_is(tmp_path: Path) -> None:
    assert leftovers.alive(leftovers.session_id())
    host = socket.gethostname()
    assert not leftovers.alive(f"{host}:{os.getpid()}:1.00")  # same pid, another start time
    assert leftovers.alive("another-host:1:1.00")  # not ours to judge


def test_the_results_go_back_without_following_links(tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "sub").mkdir(parents=True)
    (results / "sub" / "a.log").write_text("x", encoding="utf-8")
    outside = tmp_path / "outside"
    outside.write_text("y", encoding="utf-8")
    (results / "link").symlink_to(outside)
    uid, gid = os.getuid(), os.getgid()
    leftovers.give_tree(results, uid, gid)  # as itself: allowed without privileges
    assert leftovers.results_owner(results) == (uid, gid)
    assert outside.read_text(encoding="utf-8") == "y"
