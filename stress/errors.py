"""The kit's error types and its documented exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """One code per outcome, so CI can tell what failed without reading logs."""

    PASSED = 0
    THRESHOLD_FAILED = 1
    USAGE_ERROR = 2
    REGRESSION = 3
    CRASHED_OR_HUNG = 4  # also: interrupted
    # The same code: an unexpected exception in the kit ends the run without a verdict, as a
    # crash does; the one-line message says so and the traceback goes to the debug log.
    INTERNAL_ERROR = 4
    ENGINE_ERROR = 5  # the container engine or the kit itself failed, not the target


class StressError(Exception):
    """Base of the errors ``main`` turns into one line and an exit code."""

    exit_code: ExitCode = ExitCode.USAGE_ERROR


class ConfigError(StressError):
    """Bad scenarios file, flag or target: the message names the file, key and fix."""


class EngineError(StressError):
    """The container engine is missing or failed; the message says how to fix it."""

    exit_code = ExitCode.ENGINE_ERROR


class RevisionError(StressError):
    """A git revision (of the ab gate) could not be prepared or does not run the kit it should."""

    exit_code = ExitCode.CRASHED_OR_HUNG
