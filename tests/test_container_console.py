"""The one CI-aware console: timed groups, annotations, the step summary, the off switch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stress import console


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv(console.CI_OUTPUT_SWITCH, raising=False)
    return summary


def test_a_group_folds_on_github_and_prints_its_time(
        github: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with console.group("Build the image"):
        print("inside")
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["::group::Build the image", "inside", "::endgroup::"]
    assert re.fullmatch(r"--- Build the image: \d+\.\ds", lines[3])


def test_a_group_is_a_plain_timed_step_elsewhere(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    with console.group("Build the image"):
        pass
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "--- Build the image"
    assert re.fullmatch(r"--- Build the image: \d+\.\ds", lines[1])


def test_annotations_escape_newlines_and_appear_only_on_github(
        github: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    console.annotate("warning", "slow", "line one\nline two 100%")
    console.annotate_error("short", "failed")
    assert capsys.readouterr().out.splitlines() == [
        "::warning title=slow::line one%0Aline two 100%25", "::error title=short::failed"]
    monkeypatch.delenv("GITHUB_ACTIONS")
    console.annotate("error", "short", "failed")
    assert capsys.readouterr().out == ""


def test_a_warning_is_an_annotation_on_github_and_a_line_elsewhere(
        github: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    console.warning("no engine")
    assert capsys.readouterr().err == "::warning::no engine\n"
    monkeypatch.delenv("GITHUB_ACTIONS")
    console.warning("no engine")
    assert capsys.readouterr().err == "WARNING: no engine\n"


def test_the_step_summary_is_appended_to(github: Path) -> None:
    assert console.append_step_summary("# one")
    assert console.append_step_summary("two\n")
    assert github.read_text(encoding="utf-8") == "# one\ntwo\n"


def test_the_switch_turns_all_github_output_off(
        github: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(console.CI_OUTPUT_SWITCH, "0")
    assert not console.on_github_actions()
    with console.group("step"):
        console.annotate_error("t", "m")
    assert not console.append_step_summary("# not here")
    assert not github.exists()
    assert "::" not in capsys.readouterr().out


def test_a_quiet_log_shows_only_when_it_fails(
        github: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with console.quiet_log("build") as log:
        log.append("Step 1/9\n")
    assert capsys.readouterr().err == ""

    def failing_build() -> None:
        with console.quiet_log("build") as log:
            log.append("Step 1/9\n")
            raise RuntimeError("failed")

    with pytest.raises(RuntimeError):
        failing_build()
    assert capsys.readouterr().err.splitlines() == ["::group::build (log)", "Step 1/9",
                                                    "::endgroup::"]

    def interrupted_build() -> None:
        with console.quiet_log("build") as log:
            log.append("Step 1/9\n")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_build()
    assert capsys.readouterr().err == "", "an interrupt is no failure to show the log for"
