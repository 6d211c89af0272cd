"""The hashed lock and the wheelhouse the image is built from, with real files."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

import pytest

from stress.container import wheelhouse
from stress.container.wheelhouse import WheelhouseError

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "stress" / "container" / "requirements.txt"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_committed_lock_pins_every_dependency_exactly_with_hashes() -> None:
    pins = wheelhouse.parse_lock(LOCK)
    names = {canonical(pin.name) for pin in pins}
    assert {"memray", "psutil", "pyyaml", "py-spy", "uvloop"} <= names
    for pin in pins:
        assert re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", pin.version), pin
        assert pin.hashes, pin
        assert all(len(digest) == 64 for digest in pin.hashes), pin


def test_lock_covers_what_the_project_declares() -> None:
    """The image installs the project with --no-deps, so the lock must hold its requirements."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["uvloop"]
    wanted = {canonical(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]) for spec in declared}
    locked = {canonical(pin.name) for pin in wheelhouse.parse_lock(LOCK)}
    assert wanted <= locked, f"missing from {LOCK.name}: {wanted - locked}; run `nox -s lock`"


def write_lock(path: Path, entries: dict[str, list[str]]) -> Path:
    lines = []
    for spec, hashes in entries.items():
        lines.append(f"{spec} \\")
        lines += [f"    --hash=sha256:{digest} \\" for digest in hashes[:-1]]
        lines.append(f"    --hash=sha256:{hashes[-1]}" if hashes else "")
        lines.append("    # via tests")
    path.write_text("# made by a test\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def fake_wheel(folder: Path, name: str, content: bytes) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    return hashlib.sha256(content).hexdigest()


def test_wheels_are_matched_to_pins_by_hash_and_strays_are_pruned(tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    good = fake_wheel(deps, "alpha-1.0-py3-none-any.whl", b"alpha one")
    fake_wheel(deps, "alpha-0.9-py3-none-any.whl", b"alpha nine")
    lock = write_lock(tmp_path / "lock.txt", {
        "alpha==1.0": [good, "0" * 64],
        "beta==2.0": ["1" * 64],
    })
    pins = wheelhouse.parse_lock(lock)
    assert [(p.name, p.version) for p in pins] == [("alpha", "1.0"), ("beta", "2.0")]
    assert [p.name for p in wheelhouse.missing_pins(pins, deps)] == ["beta"]
    assert wheelhouse.missing_pins(pins, tmp_path / "absent") == pins
    assert wheelhouse.prune(pins, deps) == [deps / "alpha-0.9-py3-none-any.whl"]
    assert sorted(p.name for p in deps.iterdir()) == ["alpha-1.0-py3-none-any.whl"]


def test_a_pin_without_hash_names_the_file_and_the_fix(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text("alpha==1.0\n", encoding="utf-8")
    with pytest.raises(WheelhouseError, match=r"lock\.txt: alpha==1\.0 has no --hash.*nox -s lock"):
        wheelhouse.parse_lock(lock)


def test_an_unpinned_line_is_refused(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text(f"alpha>=1.0 --hash=sha256:{'0' * 64}\n", encoding="utf-8")
    with pytest.raises(WheelhouseError, match="expected NAME==VERSION"):
        wheelhouse.parse_lock(lock)


def test_platforms_cover_the_manylinux_range_the_lock_was_made_for() -> None:
    args = wheelhouse.platform_args("aarch64")
    platforms = args[1::2]
    assert set(args[0::2]) == {"--platform"}
    assert platforms[0] == "manylinux_2_28_aarch64"
    assert "manylinux_2_17_aarch64" in platforms
    assert platforms[-1] == "manylinux2014_aarch64"


@pytest.mark.parametrize(("machine", "arch"), [("x86_64", "x86_64"), ("AMD64", "x86_64"),
                                               ("arm64", "aarch64"), ("aarch64", "aarch64")])
def test_architecture_names_are_normalised(machine: str, arch: str) -> None:
    assert wheelhouse.normalise_arch(machine) == arch


def test_an_architecture_without_wheels_is_refused() -> None:
    with pytest.raises(WheelhouseError, match="x86_64 and aarch64 only"):
        wheelhouse.normalise_arch("ppc64le")


def test_project_wheel_is_built_from_sources_only() -> None:
    files = {path.as_posix() for path in wheelhouse.source_files(REPO)}
    assert {"pyproject.toml", "stress/__init__.py", "stress/container/driver.py",
            "stress/container/Dockerfile"} <= files
    assert not any(f.startswith((".git/", ".nox/", "ci/wheelhouse/")) or "__pycache__" in f
                   for f in files)


def test_the_wheels_digest_is_its_content_not_its_timestamps(tmp_path: Path) -> None:
    import zipfile

    def wheel(name: str, stamp: tuple[int, int, int, int, int, int], data: bytes) -> Path:
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(zipfile.ZipInfo("stress/x.py", date_time=stamp), data)
        return path

    one = wheel("a.whl", (2020, 1, 1, 0, 0, 0), b"x = 1")
    same = wheel("b.whl", (2025, 6, 1, 0, 0, 0), b"x = 1")
    other = wheel("c.whl", (2020, 1, 1, 0, 0, 0), b"x = 2")
    assert wheelhouse.wheel_digest(one) == wheelhouse.wheel_digest(same)
    assert wheelhouse.wheel_digest(one) != wheelhouse.wheel_digest(other)


def test_the_kit_knows_its_checkout() -> None:
    assert wheelhouse.kit_checkout() == REPO


def test_an_installed_kit_is_packed_back_into_a_wheel_the_same_each_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata
    import zipfile

    site = tmp_path / "site"
    info = site / "asyncio_stress_kit-9.9.dist-info"
    for name, text in {"stress/__init__.py": "x = 1\n", "stress/container/Dockerfile": "FROM x\n",
                       "stress/__pycache__/junk.pyc": "junk",
                       # the compiled verifier (STRESS_KIT_COMPILE=1), for this host's Python
                       "stress/streams.cpython-311-x86_64-linux-gnu.so": "ELF",
                       "stress_verifier__mypyc.cpython-311-x86_64-linux-gnu.so": "ELF"}.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text, encoding="utf-8")
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.4\nName: asyncio-stress-kit\n"
                                   "Version: 9.9\n", encoding="utf-8")
    (info / "RECORD").write_text(
        "stress/__init__.py,,\nstress/container/Dockerfile,,\nstress/__pycache__/junk.pyc,,\n"
        "stress/streams.cpython-311-x86_64-linux-gnu.so,,\n"
        "stress_verifier__mypyc.cpython-311-x86_64-linux-gnu.so,,\n"
        "../../bin/stress-kit,,\n", encoding="utf-8")
    installed = importlib.metadata.PathDistribution(info)
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: installed)

    first = wheelhouse.pack_installed(tmp_path / "one")
    second = wheelhouse.pack_installed(tmp_path / "two")
    assert first.name == "asyncio_stress_kit-9.9-py3-none-any.whl"
    assert first.read_bytes() == second.read_bytes()
    names = zipfile.ZipFile(first).namelist()
    assert {"stress/__init__.py", "stress/container/Dockerfile",
            "asyncio_stress_kit-9.9.dist-info/METADATA", "asyncio_stress_kit-9.9.dist-info/WHEEL",
            "asyncio_stress_kit-9.9.dist-info/RECORD"} == set(names)
