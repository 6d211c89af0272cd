"""stress-kit init: the files it writes, what it keeps, and that what it writes is accepted by
the settings, by nox's Python, by the workflow schema and by zizmor."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

from stress import __version__, cli
from stress.commands import init, init_pin, init_target
from stress.config.settings import resolve_settings
from stress.target import DEFAULT_TARGET

ROOT = Path(__file__).resolve().parents[1]
SHA = "0123456789abcdef0123456789abcdef01234567"
PYPROJECT = '[project]\nname = "chatapp"\nversion = "1.0"\n'
TARGET_MODULE = '''"""The chat app as a stress target."""


class ChatTarget:
    async def run(self, params, stats, quit):
        await quit.wait()
'''


@pytest.fixture(autouse=True)
def github(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """GitHub, as git reaches it, is a local folder (empty until a test makes repositories in
    it), so init's tag lookups never leave the machine and give the same answer anywhere."""
    folder = tmp_path / "github.com"
    folder.mkdir()
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{folder.as_uri()}/.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "https://github.com/")
    return folder


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c",
                           "user.email=t@example.com", *args],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def repository(folder: Path, *, tag: str | None = None) -> str:
    """A git repository holding a copy of the kit's action.yml; its HEAD commit."""
    folder.mkdir(parents=True)
    git(folder, "init", "-q")
    shutil.copyfile(ROOT / "action.yml", folder / "action.yml")
    git(folder, "add", "action.yml")
    git(folder, "commit", "-q", "-m", "the action")
    if tag is not None:
        git(folder, "tag", "-a", tag, "-m", tag)  # annotated: ls-remote's answer is peeled
    return git(folder, "rev-parse", "HEAD")


def project(tmp_path: Path, *, pyproject: str | None = PYPROJECT) -> Path:
    """A repository's root (a .git folder bounds the settings search) with a pyproject."""
    folder = tmp_path / "app"
    (folder / ".git").mkdir(parents=True)
    if pyproject is not None:
        (folder / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    return folder


def init_in(folder: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    assert cli.main(["init", str(folder), *args]) == 0
    return capsys.readouterr().out.splitlines()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def workflow(folder: Path) -> dict[Any, Any]:
    document = yaml.safe_load((folder / init.WORKFLOW).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def kit_step(document: dict[Any, Any]) -> dict[str, Any]:
    (step,) = [s for s in document["jobs"]["stress"]["steps"]
               if s.get("uses", "").startswith(f"{init.KIT_ACTION}@")]
    assert isinstance(step, dict)
    return step


def test_a_fresh_project_gets_its_table_appended_a_noxfile_and_a_workflow(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = project(tmp_path)
    out = init_in(folder, capsys, "--target", "chatapp.stress_target:ChatTarget")
    assert out[:3] == ["appended to pyproject.toml", "wrote noxfile.py",
                       f"wrote {init.WORKFLOW}"]
    text = (folder / "pyproject.toml").read_text(encoding="utf-8")
    assert text.startswith(PYPROJECT + "\n[tool.stress]\n")
    assert 'target = "chatapp.stress_target:ChatTarget"\n' in text
    assert "# [tool.stress.scenarios.short.thresholds]\n" in text
    settings = resolve_settings({}, folder, {})
    assert settings.config_file == f"{folder.resolve() / 'pyproject.toml'} [tool.stress]"
    assert settings.target.value == "chatapp.stress_target:ChatTarget"
    assert settings.select.value == init.DEFAULT_SELECT
    assert settings.profile.value == ("memory", "cpu")
    assert settings.engine.value == "auto"
    noxfile = (folder / "noxfile.py").read_text(encoding="utf-8")
    compile(noxfile, "noxfile.py", "exec")
    assert f'session.install("{init.DEFAULT_KIT_SPEC}")' in noxfile
    assert 'session.install(".")' in noxfile  # a [project]: installed for a host run
    assert 'session.run("stress-kit", "run", "--engine", "auto", *session.posargs)' in noxfile
    assert kit_step(workflow(folder))["uses"] == f"{init.KIT_ACTION}@v{__version__}"


def test_without_a_pyproject_the_settings_go_to_stress_toml(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = project(tmp_path, pyproject=None)
    out = init_in(folder, capsys, "--target", "pipeline:build")
    assert out[0] == "wrote stress.toml"
    assert not (folder / "pyproject.toml").exists()
    text = (folder / "stress.toml").read_text(encoding="utf-8")
    assert "[tool.stress" not in text
    assert "# [scenarios.short.thresholds]\n" in text
    settings = resolve_settings({}, folder, {})
    assert settings.config_file == str(folder.resolve() / "stress.toml")
    assert settings.target.value == "pipeline:build"
    assert 'session.install(".")' not in (folder / "noxfile.py").read_text(encoding="utf-8")


def test_the_commented_threshold_example_resolves_once_uncommented(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = project(tmp_path)
    init_in(folder, capsys)
    path = folder / "pyproject.toml"
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index("# [tool.stress.scenarios.short.thresholds]")
    lines[start:] = [line.removeprefix("# ") for line in lines[start:]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    short = resolve_settings({}, folder, {}).scenario_map()["short"]
    assert short.thresholds.min_throughput == 2000
    assert short.thresholds.max_memory_growth_mb == 200


def test_without_a_target_a_placeholder_and_a_note_and_the_settings_still_resolve(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = project(tmp_path)
    out = init_in(folder, capsys)
    assert '# target = "MODULE:ATTR"' in (folder / "pyproject.toml").read_text(encoding="utf-8")
    (note,) = [line for line in out if line.startswith("note: target:")]
    assert 'target = "MODULE:ATTR"' in note
    assert "reference pipeline" in note
    assert resolve_settings({}, folder, {}).target.value == DEFAULT_TARGET


def test_a_target_in_a_stress_module_is_found_without_importing_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = project(tmp_path)
    package = folder / "src" / "chatapp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise SystemExit('imported')\n", encoding="utf-8")
    (package / "stress_target.py").write_text(TARGET_MODULE, encoding="utf-8")
    (package / "app.py").write_text(TARGET_MODULE, encoding="utf-8")  # not named *stress*
    (folder / "tests").mkdir()
    (folder / "tests" / "stress_test.py").write_text(TARGET_MODULE, encoding="utf-8")
    out = init_in(folder, capsys)
    assert "note: target: found chatapp.stress_target:ChatTarget; check it, or rerun with " \
        "--target" in out
    assert resolve_settings({}, folder, {}).target.value == "chatapp.stress_target:ChatTarget"


def test_two_candidates_or_a_module_named_stress_give_the_placeholder(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "stress.py").write_text("target = 1\n", encoding="utf-8")  # shadows the kit
    (folder / "stress").mkdir()  # so does a package of that name
    (folder / "stress" / "__init__.py").write_text("", encoding="utf-8")
    (folder / "stress" / "stress_target.py").write_text(TARGET_MODULE, encoding="utf-8")
    assert list(init_target.detect_targets(folder)) == []
    (folder / "stress_a.py").write_text("def target(): ...\n", encoding="utf-8")
    (folder / "stress_b.py").write_text(TARGET_MODULE, encoding="utf-8")
    assert sorted(init_target.detect_targets(folder)) == ["stress_a:target", "stress_b:ChatTarget"]
    plan = init.make_plan(init.Options(folder=folder))
    assert plan.notes[0].startswith("target: none set (found 2: stress_a:target, ")


def test_an_existing_noxfile_gets_the_session_printed_and_appended_only_with_write(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = project(tmp_path)
    old = "import nox\n\n\n@nox.session\ndef tests(session: nox.Session) -> None:\n" \
        "    session.run('pytest')\n"
    (folder / "noxfile.py").write_text(old, encoding="utf-8")
    out = init_in(folder, capsys)
    assert out[1] == "kept noxfile.py: it exists; add this session to it, or rerun with " \
        "--write to append it"
    assert "    def stress(session: nox.Session) -> None:" in out
    assert (folder / "noxfile.py").read_text(encoding="utf-8") == old
    out = init_in(folder, capsys, "--write")
    assert out[:3] == ["kept pyproject.toml: it has a [tool.stress] table already",
                       "appended to noxfile.py", f"kept {init.WORKFLOW}: unchanged"]
    new = (folder / "noxfile.py").read_text(encoding="utf-8")
    assert new.startswith(old)
    assert new.count("import nox") == 1
    compile(new, "noxfile.py", "exec")
    assert init_in(folder, capsys, "--write")[1] == \
        "kept noxfile.py: it has a stress session already"
    assert (folder / "noxfile.py").read_text(encoding="utf-8") == new


def test_a_noxfile_without_import_nox_gets_the_import_with_the_session(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = project(tmp_path)
    (folder / "noxfile.py").write_text("from nox import session", encoding="utf-8")
    init_in(folder, capsys, "--write")
    text = (folder / "noxfile.py").read_text(encoding="utf-8")
    assert text.startswith("from nox import session\n\n\nimport nox\n\n@nox.session\n")
    compile(text, "noxfile.py", "exec")


def test_dry_run_prints_what_it_would_write_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = project(tmp_path)
    before = snapshot(folder)
    out = init_in(folder, capsys, "--dry-run", "--target", "app:target")
    assert snapshot(folder) == before
    assert "would append to pyproject.toml" in out
    assert "would write noxfile.py" in out
    assert f"would write {init.WORKFLOW}" in out
    assert '    target = "app:target"' in out
    assert out[-1] == "dry run: nothing written"


def test_a_second_run_changes_nothing_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for folder in (project(tmp_path / "a"), project(tmp_path / "b", pyproject=None)):
        init_in(folder, capsys, "--target", "app:target")
        before = snapshot(folder)
        out = init_in(folder, capsys, "--target", "app:target", "--write")
        assert snapshot(folder) == before
        assert out[3] == "nothing to change: the project has everything init writes"
        assert all(line.startswith(("kept ", "nothing ", "note: ")) for line in out)


def test_force_replaces_a_differing_workflow_or_stress_toml_but_never_rewrites_pyproject(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = project(tmp_path, pyproject=None)
    init_in(folder, capsys)
    (folder / init.WORKFLOW).write_text("name: mine\n", encoding="utf-8")
    (folder / "stress.toml").write_text('target = "mine:t"\n', encoding="utf-8")
    out = init_in(folder, capsys)
    assert out[0] == "kept stress.toml: it differs from what init writes; --force replaces it"
    assert out[2] == f"kept {init.WORKFLOW}: it differs from what init writes; --force " \
        "replaces it"
    assert (folder / init.WORKFLOW).read_text(encoding="utf-8") == "name: mine\n"
    out = init_in(folder, capsys, "--force", "--target", "app:target")
    assert out[::2][:2] == ["replaced stress.toml", f"replaced {init.WORKFLOW}"]
    assert workflow(folder)["name"] == "stress"
    assert resolve_settings({}, folder, {}).target.value == "app:target"

    folder = project(tmp_path / "with-pyproject", pyproject=PYPROJECT + '[tool.stress]\n'
                     'target = "mine:t"\n')
    before = (folder / "pyproject.toml").read_bytes()
    assert init_in(folder, capsys, "--force")[0] == \
        "kept pyproject.toml: it has a [tool.stress] table already"
    assert (folder / "pyproject.toml").read_bytes() == before


def test_a_project_in_a_sub_folder_gets_the_workflow_at_the_repository_root(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path, pyproject=None)
    folder = root / "services" / "chat"
    folder.mkdir(parents=True)
    out = init_in(folder, capsys)
    assert out[2] == f"wrote {Path('../..') / init.WORKFLOW}"
    assert kit_step(workflow(root))["with"]["working-directory"] == "services/chat"
    assert not (folder / ".github").exists()


def test_the_workflow_is_least_privilege_pinned_and_fetches_the_base_commit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = project(tmp_path)
    init_in(folder, capsys, "--action-ref", SHA)
    text = (folder / init.WORKFLOW).read_text(encoding="utf-8")
    document = workflow(folder)
    assert document[True] == {"push": {"branches": ["main"]}, "pull_request": None}  # 'on'
    assert document["permissions"] == {}
    (job,) = document["jobs"].values()
    assert job["permissions"] == {"contents": "read"}
    assert job["timeout-minutes"] == 15
    checkout = job["steps"][0]
    name, _, sha = checkout["uses"].partition("@")
    assert name == "actions/checkout"
    assert len(sha) == 40
    assert f"{checkout['uses']} # v" in text  # the version beside the pin
    assert checkout["with"] == {"fetch-depth": 0, "persist-credentials": False}
    assert f"uses: {init.KIT_ACTION}@{SHA} # v{__version__}\n" in text
    assert kit_step(document)["with"] == {"engine": "docker", "gate": "true"}


def test_the_workflow_uses_only_inputs_the_kit_action_declares(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    action = ROOT / "action.yml"
    if not action.is_file():
        pytest.skip("no action.yml at the kit's root in this checkout")
    inputs = yaml.safe_load(action.read_text(encoding="utf-8"))["inputs"]
    folder = project(tmp_path)
    root = folder / "sub"
    root.mkdir()
    init_in(root, capsys)
    assert set(kit_step(workflow(folder))["with"]) <= set(inputs)
    commented = (folder / init.WORKFLOW).read_text(encoding="utf-8").split("with:")[-1]
    for line in commented.splitlines():
        key = line.strip().removeprefix("# ").partition(":")[0]
        assert not key or key in inputs, line


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"{name} is not installed here (pip install {name})")
    return found


def test_the_workflow_passes_the_github_workflow_schema(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = project(tmp_path)
    init_in(folder, capsys)
    subprocess.run([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                    str(folder / init.WORKFLOW)], check=True, capture_output=True)


def test_the_workflow_pinned_by_commit_is_zizmor_clean_and_by_tag_only_the_pin_is_flagged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zizmor = _tool("zizmor")
    folder = project(tmp_path)
    init_in(folder, capsys, "--action-ref", SHA)
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run([zizmor, "--offline", str(folder / init.WORKFLOW)],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr

    out = init_in(folder, capsys, "--force")  # no install record, and no such tag on GitHub
    assert any(line.startswith(f"note: workflow: {init.KIT_ACTION} is used at tag "
                               f"v{__version__}, as no commit was found (git ls-remote ")
               and "--action-ref $(git ls-remote" in line for line in out)
    done = subprocess.run([zizmor, "--offline", "--format", "plain",
                           str(folder / init.WORKFLOW)],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode != 0
    assert "unpinned-uses" in done.stdout
    assert f"{init.KIT_ACTION}@v{__version__}" in done.stdout
    assert "1 high" in done.stdout
    assert done.stdout.count("error[") + done.stdout.count("warning[") == 1


def test_by_default_the_version_tag_is_pinned_by_the_commit_it_names_and_passes_zizmor(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], github: Path) -> None:
    commit = repository(github / init.KIT_ACTION, tag=f"v{__version__}")
    folder = project(tmp_path)
    out = init_in(folder, capsys)
    assert f"note: workflow: {init.KIT_ACTION} pinned at {commit[:12]}, the commit tag " \
        f"v{__version__} names in github.com/{init.KIT_ACTION}" in out
    text = (folder / init.WORKFLOW).read_text(encoding="utf-8")
    assert f"      - uses: {init.KIT_ACTION}@{commit} # v{__version__}\n" in text
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run([_tool("zizmor"), "--offline", str(folder / init.WORKFLOW)],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    subprocess.run([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                    str(folder / init.WORKFLOW)], check=True, capture_output=True)
    assert init_in(folder, capsys)[2] == f"kept {init.WORKFLOW}: unchanged"  # idempotent

    git(github / init.KIT_ACTION, "tag", "v9")  # a lightweight tag, given by name
    init_in(folder, capsys, "--force", "--action-ref", "v9")
    assert f"@{commit} # v{__version__}\n" in (folder / init.WORKFLOW).read_text(encoding="utf-8")


def installed(tmp_path: Path, record: dict[str, Any] | None) -> metadata.Distribution:
    """An installed kit's metadata folder, as pip writes it (direct_url.json: PEP 610)."""
    folder = tmp_path / "site" / f"asyncio_stress_kit-{__version__}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.4\nName: asyncio-stress-kit\n"
                                     f"Version: {__version__}\n", encoding="utf-8")
    if record is not None:
        (folder / "direct_url.json").write_text(json.dumps(record), encoding="utf-8")
    return metadata.PathDistribution(folder)


def test_an_install_from_a_git_url_pins_its_commit_in_its_repository(tmp_path: Path) -> None:
    pin = init_pin.resolve(None, distribution=installed(tmp_path, {
        "url": "https://github.com/someone/stress-fork.git",
        "vcs_info": {"vcs": "git", "commit_id": SHA, "requested_revision": "main"}}))
    assert (pin.action, pin.ref, pin.pinned) == ("someone/stress-fork", SHA, True)
    assert pin.uses == f"someone/stress-fork@{SHA} # v{__version__}"
    assert pin.source == "the commit the kit was installed from " \
        "(https://github.com/someone/stress-fork.git)"


def test_an_install_from_a_clean_checkout_pins_its_head_and_a_changed_one_does_not(
        tmp_path: Path) -> None:
    checkout = tmp_path / "asyncio-stress-kit"
    head = repository(checkout)
    record = {"url": checkout.as_uri(), "dir_info": {}}
    pin = init_pin.resolve(None, distribution=installed(tmp_path, record))
    assert (pin.action, pin.ref) == (init.KIT_ACTION, head)
    assert pin.source == f"the commit of the checkout the kit was installed from ({checkout})"

    (checkout / "action.yml").write_text("name: changed\n", encoding="utf-8")
    pin = init_pin.resolve(None, distribution=installed(tmp_path / "again", record))
    assert not pin.pinned  # its files are no commit's: the tag, and why
    assert pin.ref == f"v{__version__}"
    assert pin.source.startswith(f"git ls-remote https://github.com/{init.KIT_ACTION} "
                                 f"v{__version__}: ")


@pytest.mark.parametrize("record", [
    None,  # from an index
    {"url": "file:///dist/asyncio_stress_kit-0.1.0-py3-none-any.whl", "archive_info": {}},
])
def test_a_wheel_names_no_commit_so_the_tag_is_looked_up(
        tmp_path: Path, github: Path, record: dict[str, Any] | None) -> None:
    commit = repository(github / init.KIT_ACTION, tag=f"v{__version__}")
    pin = init_pin.resolve(None, distribution=installed(tmp_path, record))
    assert (pin.action, pin.ref) == (init.KIT_ACTION, commit)


@pytest.mark.parametrize(("args", "message"), [
    (["init", "{missing}"], "{missing}: not a folder; give the project's folder"),
    (["init", "{folder}", "--target", "chatapp"],
     "--target 'chatapp': expected MODULE:ATTR, e.g. chatapp.stress_target:ChatTarget"),
    (["init", "{folder}", "--action-ref", "v1 ; rm"],
     "--action-ref 'v1 ; rm': expected a tag or commit, e.g. v{version}"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str],
                                          message: str) -> None:
    folder = project(tmp_path)
    names = {"missing": str(tmp_path / "nope"), "folder": str(folder),
             "version": __version__}
    done = subprocess.run([sys.executable, "-m", "stress", *(a.format(**names) for a in args)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"error: {message.format(**names)}\n"


@pytest.mark.parametrize(("content", "message"), [
    (b'[project\nname = "x"\n', "is not valid TOML"),
    (b'name = "\xff"\n', "cannot read (not UTF-8)"),
    (b"tool = 1\n", "appending [tool.stress] would not be valid TOML"),
])
def test_an_unreadable_pyproject_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes,
        message: str) -> None:
    folder = project(tmp_path, pyproject=None)
    (folder / "pyproject.toml").write_bytes(content)
    assert cli.main(["init", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder / 'pyproject.toml'}: ")
    assert message in err
    assert err.count("\n") == 1
    assert sorted(p.name for p in folder.iterdir()) == [".git", "pyproject.toml"]


def test_a_pyproject_that_is_a_folder_cannot_be_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = project(tmp_path, pyproject=None)
    (folder / "pyproject.toml").mkdir()
    assert cli.main(["init", str(folder)]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {folder / 'pyproject.toml'}: cannot read (")


def test_the_templates_are_package_data() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"templates/*.tmpl"' in text
    names = {p.name for p in (ROOT / "stress" / "templates").iterdir()}
    assert names == {"tool_stress.toml.tmpl", "nox_session.py.tmpl", "noxfile.py.tmpl",
                     "stress.yml.tmpl"}


def test_a_target_given_where_the_settings_exist_says_where_to_set_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = project(tmp_path)
    out = init_in(folder, capsys, "--target", "app:one")
    assert out[-1].startswith("next: stress-kit config")
    out = init_in(folder, capsys, "--target", "app:one")
    assert not any(line.startswith("note: target:") for line in out)
    out = init_in(folder, capsys, "--target", "app:two")
    assert "note: target: app:two not written, as the settings exist; set target there " \
        "(pyproject.toml)" in out
    assert not any(line.startswith("next:") for line in out)


def test_a_second_run_speaks_of_the_kept_settings_target(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = project(tmp_path)
    init_in(folder, capsys)
    assert "note: target: none set in pyproject.toml; put target = \"MODULE:ATTR\" (the " \
        "callable returning your system under test) in the settings; until then the kit " \
        "measures its own reference pipeline" in init_in(folder, capsys)
    path = folder / "pyproject.toml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        '# target = "MODULE:ATTR"', 'target = "app:t"  #'), encoding="utf-8")
    assert resolve_settings({}, folder, {}).target.value == "app:t"
    assert not any(line.startswith("note: target") for line in init_in(folder, capsys))

    folder = project(tmp_path / "plain", pyproject=None)
    (folder / "stress_target.py").write_text(TARGET_MODULE, encoding="utf-8")
    assert "note: target: found stress_target:ChatTarget; check it, or rerun with --target" \
        in init_in(folder, capsys)
    out = init_in(folder, capsys)
    assert out[0] == "kept stress.toml: unchanged"
    assert not any(line.startswith("note: target") for line in out)


def test_python_m_stress_init_writes_the_three_files(tmp_path: Path) -> None:
    folder = project(tmp_path)
    done = subprocess.run([sys.executable, "-m", "stress", "init", str(folder), "--target",
                           "chatapp.stress_target:ChatTarget"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[:3] == ["appended to pyproject.toml", "wrote noxfile.py",
                                            f"wrote {init.WORKFLOW}"]
    assert {p.name for p in folder.iterdir()} == {".git", ".github", "pyproject.toml",
                                                  "noxfile.py"}


def test_a_project_with_dependencies_gets_its_lock(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """init writes the lock the container run needs (uv resolves anyio from the index)."""
    pytest.importorskip("uv")
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "deps"\nversion = "1"\ndependencies = ["anyio>=4"]\n',
        encoding="utf-8")
    lines = init_in(tmp_path, capsys)
    assert "wrote stress-requirements.txt: the dependencies pinned with hashes (commit it)" \
        in lines
    lock = (tmp_path / "stress-requirements.txt").read_text(encoding="utf-8")
    assert "anyio==" in lock
    assert "--hash=sha256:" in lock
    again = init_in(tmp_path, capsys)
    assert any(line.startswith("kept stress-requirements.txt") for line in again)
