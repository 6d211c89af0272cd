"""The dispatcher: every command registered, and each kind of error one line with its code."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import math
import os

import pytest

from stress import cli
from stress.commands import common, list_scenarios
from stress.errors import ConfigError, EngineError, ExitCode


def test_every_command_is_registered_with_its_help() -> None:
    assert list(cli.COMMANDS) == ["list", "run", "compare", "bench", "report", "merge", "ab",
                                  "config", "image", "pin", "init", "lock"]
    needs = {"compare": ["a", "b"], "ab": ["a", "b"], "report": ["d"],
             "merge": ["d", "--out", "o"]}
    parser = cli.build_parser()
    for name, command in cli.COMMANDS.items():
        args = parser.parse_args([name, *needs.get(name, [])])
        assert args.handler == command.run
        assert command.HELP


def failing(exc: BaseException) -> object:
    def run(_args: argparse.Namespace) -> int:
        raise exc
    return run


@pytest.mark.parametrize(("exc", "code"), [
    (ConfigError("--scenarios x.yaml: no such file"), ExitCode.USAGE_ERROR),
    (EngineError("no container engine answers; start Docker"), ExitCode.ENGINE_ERROR),
])
def test_a_stress_error_is_one_line_and_its_exit_code(
        exc: Exception, code: ExitCode, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(list_scenarios, "run", failing(exc))
    assert cli.main(["list"]) == code
    assert capsys.readouterr().err == f"error: {exc}\n"


def test_an_engine_error_exits_5() -> None:
    assert int(EngineError("x").exit_code) == 5


def test_an_unexpected_exception_is_one_line_exit_4_and_the_traceback_goes_to_the_debug_log(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(list_scenarios, "run", failing(ValueError("bad figure")))
    with caplog.at_level(logging.INFO, logger="stress"):
        assert cli.main(["list"]) == ExitCode.INTERNAL_ERROR
    err = capsys.readouterr().err
    assert err == ("error: internal error in `list`: ValueError: bad figure; rerun with "
                   "STRESS_LOG=debug for the traceback\n")
    assert not caplog.records
    with caplog.at_level(logging.DEBUG, logger="stress"):
        assert cli.main(["list"]) == 4  # the code of a crash: no verdict
    assert capsys.readouterr().err == "error: internal error in `list`: ValueError: bad figure\n"
    (record,) = caplog.records
    assert record.exc_info is not None
    assert record.exc_info[0] is ValueError


def test_an_interrupt_exits_4(monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(list_scenarios, "run", failing(KeyboardInterrupt()))
    assert cli.main(["list"]) == ExitCode.CRASHED_OR_HUNG
    assert capsys.readouterr().err == "interrupted\n"


@pytest.mark.parametrize(("text", "message"), [
    ("0", "--scale 0.0: expected a factor > 0, e.g. 0.05"),
    ("-1", "--scale -1.0: expected a factor > 0, e.g. 0.05"),
    ("nan", "--scale nan: expected a finite factor > 0, e.g. 0.05"),
    ("inf", "--scale inf: expected a finite factor > 0, e.g. 0.05"),
])
def test_a_bad_scale_is_one_line_and_exit_2(text: str, message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["ab", "HEAD", "HEAD", "--scale", text]) == ExitCode.USAGE_ERROR
    assert capsys.readouterr().err == f"error: {message}\n"


def test_check_scale_passes_a_finite_positive_factor() -> None:
    assert common.check_scale(0.05) == 0.05
    for bad in (0.0, -0.5, math.nan, math.inf, -math.inf):
        with pytest.raises(ConfigError):
            common.check_scale(bad)


def test_uvloop_missing_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    common.check_loops(["asyncio"])
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        common.check_loops(["asyncio", "uvloop"])


def test_verbose_flag_turns_on_debug_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRESS_LOG", "info")  # restored after the test
    parser = argparse.ArgumentParser()
    common.add_verbose_flag(parser)
    common.start_logging(parser.parse_args(["-v"]))
    assert os.environ["STRESS_LOG"] == "debug"
